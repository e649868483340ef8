//! The training scheduler one step at a time: each test drives `Scheduler::tick` itself
//! (no background loop runs), against the real Postgres and the real model, and checks
//! what each check decided.

mod common;

use common::post_json;
use serde_json::json;
use std::time::Duration;
use voc::learning::{LearningSettings, Scheduler, Tick};
use voc::store::training_runs::{self, RunState, Trigger};

/// No automatic trigger unless a test sets one; short runs.
fn settings() -> LearningSettings {
    let mut l = LearningSettings {
        min_new_labels: i64::MAX,
        interval: None,
        ..Default::default()
    };
    l.fine_tune.max_epochs = 1;
    l
}

/// The app (without its background tasks) and a scheduler on its handle, on a store of
/// their own.
async fn scheduler(
    pool: &sqlx::PgPool,
    learning: LearningSettings,
) -> (axum::Router, Scheduler, tempfile::TempDir) {
    let (store, _base) = common::private_store();
    let mut settings = common::settings();
    settings.store_dir = store.path().to_path_buf();
    let (app, state) = common::app_with(settings, pool.clone()).await;
    (
        app,
        Scheduler::new(state.learning_handle(), learning),
        store,
    )
}

async fn one_label(app: &axum::Router) {
    let a = post_json(app, "/classify", &json!({"text": "정말 최고의 영화"})).await;
    let id = a.json["transcript_id"].as_str().unwrap().to_string();
    let f = post_json(
        app,
        "/feedback",
        &json!({"transcript_id": id, "labels": {"sentiment": "positive"}}),
    )
    .await;
    assert_eq!(f.status, 200, "{}", f.text);
}

fn ran(tick: &Tick) -> (i64, Trigger, RunState) {
    match tick {
        Tick::Ran {
            run,
            trigger,
            state,
            recorded: true,
        } => (*run, *trigger, *state),
        other => panic!("expected a run recorded here, got {other:?}"),
    }
}

#[sqlx::test]
async fn the_interval_starts_a_run_only_once_it_passed_and_a_label_arrived(pool: sqlx::PgPool) {
    let mut learning = settings();
    learning.interval = Some(Duration::from_secs(3600));
    let (app, mut scheduler, _store) = scheduler(&pool, learning).await;
    let later = |minutes: i64| scheduler.started() + chrono::Duration::minutes(minutes);
    let (early, due) = (later(30), later(61));

    // No label: the interval has passed, and nothing is due.
    assert_eq!(scheduler.tick_at(due).await.unwrap(), Tick::NotDue);
    one_label(&app).await;
    // A label, but the interval has not passed.
    assert_eq!(scheduler.tick_at(early).await.unwrap(), Tick::NotDue);
    // Both: a run, and one label is too few to train on, so it fails and says why.
    let (id, trigger, state) = ran(&scheduler.tick_at(due).await.unwrap());
    assert_eq!((trigger, state), (Trigger::Interval, RunState::Failed));
    let run = training_runs::get(&pool, id).await.unwrap().unwrap();
    assert!(
        run.reason.as_deref().unwrap().contains("too few"),
        "{run:?}"
    );
    // The run counts as the last one: the interval starts again from it.
    assert_eq!(scheduler.tick_at(due).await.unwrap(), Tick::NotDue);
}

#[sqlx::test]
async fn a_queued_run_waits_while_another_process_holds_the_slot(pool: sqlx::PgPool) {
    let (app, mut scheduler, _store) = scheduler(&pool, settings()).await;
    assert_eq!(scheduler.tick().await.unwrap(), Tick::NotDue);
    let asked = post_json(&app, "/training-runs", &json!({})).await;
    assert_eq!(asked.status, 202, "{}", asked.text);

    let mut other = pool.acquire().await.unwrap().detach();
    assert!(training_runs::try_lock(&mut other).await.unwrap());
    assert_eq!(scheduler.tick().await.unwrap(), Tick::Busy);
    let run = training_runs::open(&pool).await.unwrap().unwrap();
    assert_eq!(run.state, RunState::Queued, "{run:?}");

    training_runs::unlock(&mut other).await.unwrap();
    let (id, trigger, state) = ran(&scheduler.tick().await.unwrap());
    assert_eq!((id, trigger), (run.id, Trigger::Manual));
    // No labels at all: the run fails rather than training on nothing.
    assert_eq!(state, RunState::Failed);
    assert_eq!(scheduler.tick().await.unwrap(), Tick::NotDue);
}

#[sqlx::test]
async fn a_run_left_by_a_dead_process_is_failed_by_the_next_tick(pool: sqlx::PgPool) {
    let (_app, mut scheduler, _store) = scheduler(&pool, settings()).await;
    let mut dead = pool.acquire().await.unwrap().detach();
    let run = training_runs::start(
        &mut dead,
        training_runs::RunStart {
            trigger: Trigger::Manual,
            owner: "gone:1",
            label_watermark: 0,
            parent_version: "v0",
        },
    )
    .await
    .unwrap();
    // Its process died long ago: no heartbeat for a minute, and no lock held.
    sqlx::query(
        "UPDATE training_runs SET heartbeat_at = now() - interval '1 minute' WHERE id = $1",
    )
    .bind(run.id)
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(scheduler.tick().await.unwrap(), Tick::Swept);
    let after = training_runs::get(&pool, run.id).await.unwrap().unwrap();
    assert_eq!(after.state, RunState::Failed, "{after:?}");
    assert_eq!(scheduler.tick().await.unwrap(), Tick::NotDue);
}

#[sqlx::test]
async fn a_process_that_does_not_train_never_takes_a_run(pool: sqlx::PgPool) {
    let mut learning = settings();
    learning.enabled = false;
    let (app, mut scheduler, _store) = scheduler(&pool, learning).await;
    post_json(&app, "/training-runs", &json!({})).await;
    assert_eq!(scheduler.tick().await.unwrap(), Tick::Disabled);
    let run = training_runs::open(&pool).await.unwrap().unwrap();
    assert_eq!(run.state, RunState::Queued);
}
