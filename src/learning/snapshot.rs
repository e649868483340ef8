//! A run's input, read from Postgres and the store before its thread starts: the labeled
//! transcripts up to the run's watermark split into training rows and the frozen
//! evaluation set, a sample of unlabeled transcripts, and the tasks with classes added.

use super::eval_set::in_frozen_eval;
use super::handle::LearningHandle;
use super::record::{to_json, LabelCounts, SnapshotRecord};
use super::run::{fine_tune_config, snapshot_dataset, tasks_with_added, RunInput};
use super::settings::LearningSettings;
use crate::data::{Example, TaskLabels};
use crate::model::read_manifest;
use crate::store::labels::{self, LabeledTranscript};
use crate::store::training_runs;
use std::path::Path;

/// Reads the snapshot and builds the run's input; an error is the run's failure reason.
pub async fn prepare_input(
    handle: &LearningHandle,
    settings: &LearningSettings,
    run_id: i64,
    watermark: i64,
    parent_dir: &Path,
) -> Result<RunInput, String> {
    let manifest = read_manifest(parent_dir).map_err(|e| e.to_string())?;
    let (labeled, unlabeled) = labels::snapshot(&handle.pool, watermark, settings.unlabeled_sample)
        .await
        .map_err(|e| e.to_string())?;
    let added = labels::added_classes(&handle.pool)
        .await
        .map_err(|e| e.to_string())?;
    let tasks = tasks_with_added(&manifest.tasks, &added);
    let (mut train_rows, eval_rows) = split_labeled(labeled, &tasks, settings.eval_share);
    let snapshot = SnapshotRecord {
        label_watermark: watermark,
        train_labeled: count_by_task(&train_rows, &tasks),
        eval_labeled: count_by_task(&eval_rows, &tasks),
        unlabeled: unlabeled.len(),
        tasks: &tasks,
    };
    if let Err(e) = training_runs::set_snapshot(&handle.pool, run_id, &to_json(&snapshot)).await {
        tracing::warn!(run = run_id, error = %e, "cannot record the run's snapshot");
    }
    let target_labels = train_rows
        .iter()
        .filter(|e| e.labels.contains_key(&manifest.target_task))
        .count();
    // Unlabeled transcripts from the evaluation share stay out of training too.
    train_rows.extend(
        unlabeled
            .into_iter()
            .filter(|(_, _, bucket)| !in_frozen_eval(*bucket as u32, settings.eval_share))
            .map(|(id, text, _)| Example {
                id: id.to_string(),
                text,
                labels: Default::default(),
            }),
    );
    Ok(RunInput {
        run_id,
        parent_dir: parent_dir.to_path_buf(),
        store: handle.store_dir.as_ref().clone(),
        device: handle.device,
        config: fine_tune_config(
            &manifest.config,
            &settings.fine_tune,
            run_id as u64,
            target_labels,
        ),
        tasks,
        train: snapshot_dataset(run_id, train_rows),
        eval: eval_rows,
        gate: settings.gate.clone(),
        nice: settings.fine_tune.nice,
    })
}

/// Labeled transcripts as (training rows, frozen evaluation rows), keeping only the labels
/// of `tasks`.
fn split_labeled(
    labeled: Vec<LabeledTranscript>,
    tasks: &[TaskLabels],
    eval_share: f64,
) -> (Vec<Example>, Vec<Example>) {
    let (mut train, mut eval) = (Vec::new(), Vec::new());
    for row in labeled {
        let frozen = in_frozen_eval(row.eval_bucket as u32, eval_share);
        let example = Example {
            id: row.transcript_id.to_string(),
            text: row.text,
            labels: row
                .labels
                .into_iter()
                .filter(|(t, _)| tasks.iter().any(|task| &task.name == t))
                .collect(),
        };
        if frozen {
            eval.push(example);
        } else {
            train.push(example);
        }
    }
    (train, eval)
}

fn count_by_task(rows: &[Example], tasks: &[TaskLabels]) -> LabelCounts {
    tasks
        .iter()
        .map(|t| {
            let n = rows
                .iter()
                .filter(|e| e.labels.contains_key(&t.name))
                .count();
            (t.name.clone(), n)
        })
        .collect()
}
