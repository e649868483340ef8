//! Inference with a loaded model version: texts in, per-task labels and probabilities out.
//!
//! A `Classifier` holds tch tensors, which are `Send` but not `Sync`: give it one owning
//! thread and send it work (see the service's inference worker).

use super::encoder::TokenBatch;
use super::manifest::ModelManifest;
use super::network::MultiTaskNet;
use super::prepared::{PreparedBatch, TextPreparer};
use super::version_dir::{load_version, LoadedVersion, ModelError};
use crate::data::TaskLabels;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// Texts are scored, shortest first, in chunks of at most this many rows on a GPU.
const GPU_CHUNK: usize = 256;
/// On the CPU the chunks are smaller, so a chunk pads less: a short text is not padded to a
/// long one's length. Measured with `bash bench/profile_batch.sh` (42 airline texts a batch,
/// one thread): 42 % of the positions of a whole batch were padding; the CNN trunk took
/// 11.4 ms a batch as one chunk, 12.4 in chunks of 4, 10.2 of 8, 9.8 of 14, 9.9 of 21.
const CPU_CHUNK: usize = 16;

fn chunk_rows(device: Device) -> usize {
    match device {
        Device::Cpu => CPU_CHUNK,
        _ => GPU_CHUNK,
    }
}

/// One task's answer for one text.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct TaskPrediction {
    pub label: String,
    pub confidence: f32,
    /// Every class of the task with its probability.
    pub probabilities: BTreeMap<String, f32>,
}

impl TaskPrediction {
    /// The most probable class's probability less the second's (the whole probability
    /// when the task has one class): near 0 when the model could not choose between two.
    pub fn margin(&self) -> f32 {
        let (mut first, mut second) = (0f32, 0f32);
        for &p in self.probabilities.values() {
            if p > first {
                (first, second) = (p, first);
            } else if p > second {
                second = p;
            }
        }
        first - second
    }
}

/// Every task's answer for one text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    pub tasks: BTreeMap<String, TaskPrediction>,
}

pub struct Classifier {
    version: LoadedVersion,
    preparer: TextPreparer,
    device: Device,
}

impl Classifier {
    /// Loads and checks the version in `dir` (see [`load_version`]).
    pub fn load(dir: &Path, device: Device) -> Result<Classifier, ModelError> {
        let version = load_version(dir, device)?;
        let preparer = TextPreparer::new(
            &version.manifest.version,
            version.tokenizer.clone(),
            version.tfidf.clone(),
        );
        Ok(Classifier {
            version,
            preparer,
            device,
        })
    }

    /// A classifier of the same version that shares this one's weights (see
    /// [`LoadedVersion::replicate`]); give it to another thread.
    pub fn replicate(&self) -> Classifier {
        Classifier {
            version: self.version.replicate(),
            preparer: self.preparer.clone(),
            device: self.device,
        }
    }

    /// The network's tensors by name (handles on the loaded weights, not copies).
    pub fn weights(&self) -> std::collections::HashMap<String, Tensor> {
        self.version.vs.variables()
    }

    pub fn manifest(&self) -> &ModelManifest {
        &self.version.manifest
    }

    /// The validation metrics saved with the version.
    pub fn metrics(&self) -> &serde_json::Value {
        &self.version.metrics
    }

    pub fn dir(&self) -> &Path {
        &self.version.dir
    }

    /// Token ids of each text, truncated to the model's maximum length.
    pub fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<i64>>, ModelError> {
        texts
            .iter()
            .map(|t| self.version.tokenizer.encode(t).map_err(ModelError::from))
            .collect()
    }

    /// Rows with their labels turned into class ids of this model's tasks.
    pub fn encode_rows(
        &self,
        examples: &[&crate::data::Example],
    ) -> Result<super::encoded::EncodedRows, ModelError> {
        Ok(super::encoded::EncodedRows::encode(
            examples,
            &self.version.tokenizer,
            &self.version.manifest.tasks,
        )?)
    }

    pub fn net(&self) -> &MultiTaskNet {
        &self.version.net
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// What prepares texts for this version on any thread (see [`super::prepared`]).
    pub fn preparer(&self) -> &TextPreparer {
        &self.preparer
    }

    /// Per-task `[texts, classes]` probabilities: the network's, averaged with the TF-IDF
    /// companion's when the version has one.
    pub fn probabilities(&self, texts: &[&str]) -> Result<Vec<Tensor>, ModelError> {
        self.prepared_probabilities(&self.preparer.prepare(texts)?)
    }

    /// [`Classifier::probabilities`] of texts prepared by this version; a batch another
    /// version prepared is refused (its token ids mean other pieces here).
    pub fn prepared_probabilities(&self, batch: &PreparedBatch) -> Result<Vec<Tensor>, ModelError> {
        if batch.version() != self.preparer.version() {
            return Err(ModelError::Input(format!(
                "texts prepared by version {} given to version {}",
                batch.version(),
                self.preparer.version()
            )));
        }
        let network = probabilities(&self.version.net, &batch.tokens, self.device);
        Ok(match (&self.version.tfidf, &batch.tfidf) {
            (Some(companion), Some(rows)) => companion.mix_rows(network, rows),
            _ => network,
        })
    }

    /// The TF-IDF companion, when the version has one.
    pub fn tfidf(&self) -> Option<&super::tfidf::TfidfModel> {
        self.version.tfidf.as_deref()
    }

    /// Labels, confidences and probabilities for each text, in input order.
    pub fn predict(&self, texts: &[&str]) -> Result<Vec<Prediction>, ModelError> {
        Ok(self.scores(texts)?.into_predictions())
    }

    /// Every text's probabilities as plain numbers, without building the answers: the
    /// model's part of `predict` (`bench/profile_batch.sh` times the two apart).
    pub fn scores(&self, texts: &[&str]) -> Result<Scores, ModelError> {
        self.prepared_scores(&self.preparer.prepare(texts)?)
    }

    /// [`Classifier::scores`] of texts prepared by this version (see
    /// [`Classifier::prepared_probabilities`]).
    pub fn prepared_scores(&self, batch: &PreparedBatch) -> Result<Scores, ModelError> {
        let per_task = self
            .prepared_probabilities(batch)?
            .iter()
            .map(|p| Vec::<f32>::try_from(p.flatten(0, -1)))
            .collect::<Result<_, tch::TchError>>()?;
        Ok(Scores {
            tasks: self.version.manifest.tasks.clone(),
            per_task,
            texts: batch.len(),
        })
    }
}

/// Per task, the `[texts × classes]` probabilities of one batch (row-major), with the
/// tasks' labels in output order.
pub struct Scores {
    tasks: Vec<TaskLabels>,
    per_task: Vec<Vec<f32>>,
    texts: usize,
}

impl Scores {
    /// How many texts were scored.
    pub fn len(&self) -> usize {
        self.texts
    }

    pub fn is_empty(&self) -> bool {
        self.texts == 0
    }

    /// Labels, confidences and probabilities for each text, in input order.
    pub fn into_predictions(self) -> Vec<Prediction> {
        (0..self.texts)
            .map(|i| Prediction {
                tasks: self
                    .tasks
                    .iter()
                    .zip(&self.per_task)
                    .map(|(task, flat)| {
                        let classes = task.labels.len();
                        let row = &flat[i * classes..(i + 1) * classes];
                        (task.name.clone(), task_prediction(&task.labels, row))
                    })
                    .collect(),
            })
            .collect()
    }
}

/// One task's answer from its probabilities, in the order of `labels`.
fn task_prediction(labels: &[String], row: &[f32]) -> TaskPrediction {
    let (best, confidence) =
        row.iter().enumerate().fold(
            (0, f32::MIN),
            |acc, (j, &p)| if p > acc.1 { (j, p) } else { acc },
        );
    TaskPrediction {
        label: labels[best].clone(),
        confidence,
        probabilities: labels.iter().cloned().zip(row.iter().copied()).collect(),
    }
}

/// Scores tokenized rows with `net` in inference mode; per-task `[rows, classes]`
/// probabilities on the CPU, in input order. Rows are grouped by length for speed;
/// padding does not change any row's result.
pub fn probabilities(net: &MultiTaskNet, rows: &[Vec<i64>], device: Device) -> Vec<Tensor> {
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&i| rows[i].len());
    let mut chunks: Vec<Vec<Tensor>> = Vec::new();
    tch::no_grad(|| {
        for idx in order.chunks(chunk_rows(device)) {
            let batch_rows: Vec<&[i64]> = idx.iter().map(|&i| rows[i].as_slice()).collect();
            let batch = TokenBatch::new(&batch_rows, device);
            let out = net.forward_t(&batch, false);
            chunks.push(
                out.logits
                    .iter()
                    .map(|l| l.softmax(-1, Kind::Float).to_device(Device::Cpu))
                    .collect(),
            );
        }
    });
    let n_tasks = chunks.first().map(|c| c.len()).unwrap_or(0);
    let inverse: Vec<i64> = {
        let mut inv = vec![0i64; rows.len()];
        for (pos, &i) in order.iter().enumerate() {
            inv[i] = pos as i64;
        }
        inv
    };
    let inverse = Tensor::from_slice(&inverse);
    (0..n_tasks)
        .map(|t| {
            let parts: Vec<&Tensor> = chunks.iter().map(|c| &c[t]).collect();
            Tensor::cat(&parts, 0).index_select(0, &inverse)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::TaskPrediction;

    fn task(probabilities: &[(&str, f32)]) -> TaskPrediction {
        TaskPrediction {
            label: probabilities[0].0.into(),
            confidence: probabilities[0].1,
            probabilities: probabilities
                .iter()
                .map(|&(l, p)| (l.to_string(), p))
                .collect(),
        }
    }

    #[test]
    fn rows_in_length_sorted_chunks_score_as_they_do_alone_and_come_back_in_input_order() {
        use crate::config::ModelConfig;
        use crate::data::TaskLabels;
        use crate::model::network::MultiTaskNet;
        tch::manual_seed(3);
        let vs = tch::nn::VarStore::new(tch::Device::Cpu);
        let tasks = vec![TaskLabels::new("sentiment", &["neg", "pos"])];
        let net = MultiTaskNet::new(&vs.root(), &ModelConfig::default(), 40, &tasks, "sentiment");
        // More rows than one CPU chunk, of lengths 1..=29 in a shuffled order.
        let rows: Vec<Vec<i64>> = (0..3 * super::CPU_CHUNK + 5)
            .map(|i| {
                let len = 1 + (i * 7) % 29;
                (0..len).map(|j| 1 + ((i + j * 3) % 39) as i64).collect()
            })
            .collect();
        let together = super::probabilities(&net, &rows, tch::Device::Cpu);
        for (i, row) in rows.iter().enumerate() {
            let alone = super::probabilities(&net, std::slice::from_ref(row), tch::Device::Cpu);
            let diff = (together[0].get(i as i64) - alone[0].get(0))
                .abs()
                .max()
                .double_value(&[]);
            assert!(diff < 1e-5, "row {i} (length {}): {diff}", row.len());
        }
    }

    #[test]
    fn the_margin_is_the_top_probability_less_the_second() {
        let m = task(&[("negative", 0.2), ("neutral", 0.45), ("positive", 0.35)]).margin();
        assert!((m - 0.10).abs() < 1e-6, "{m}");
        // The order of the map does not matter, nor ties below the top two.
        let m = task(&[("a", 0.1), ("b", 0.1), ("c", 0.8)]).margin();
        assert!((m - 0.7).abs() < 1e-6, "{m}");
        assert_eq!(task(&[("a", 0.5), ("b", 0.5)]).margin(), 0.0);
        assert_eq!(task(&[("only", 1.0)]).margin(), 1.0);
    }
}
