//! The training lock and the run states when the lock's connection is lost (issue 9, item 8):
//! a live owner cut off from its lock keeps its run, a dead one's run is failed, and a run
//! another process ended is never flipped back by its owner.

use std::time::Duration;
use voc::store::training_runs::{self, RunEnd, RunStart, RunState, Trigger};

async fn start_run(conn: &mut sqlx::PgConnection, owner: &str) -> i64 {
    training_runs::start(
        conn,
        RunStart {
            trigger: Trigger::Manual,
            owner,
            label_watermark: 0,
            parent_version: "v0",
        },
    )
    .await
    .unwrap()
    .id
}

async fn state_of(pool: &sqlx::PgPool, id: i64) -> RunState {
    training_runs::get(pool, id).await.unwrap().unwrap().state
}

#[sqlx::test]
async fn a_live_run_cut_off_from_its_lock_is_left_running_and_a_silent_one_is_failed(
    pool: sqlx::PgPool,
) {
    let mut owner = pool.acquire().await.unwrap().detach();
    assert!(training_runs::try_lock(&mut owner).await.unwrap());
    let id = start_run(&mut owner, "replica-a").await;
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(training_runs::lock_holder(&pool).await.unwrap(), Some(pid));

    // The lock's connection is cut (as by a Postgres restart or an idle timeout) while the
    // owner goes on training and beating its heartbeat through its pool.
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .execute(&pool)
        .await
        .unwrap();
    assert!(!training_runs::connection_alive(&mut owner).await);
    training_runs::heartbeat(&pool, id, None).await.unwrap();

    // Another replica now gets the lock and sweeps for orphans: the live run stays.
    let mut other = pool.acquire().await.unwrap().detach();
    assert!(training_runs::try_lock(&mut other).await.unwrap());
    let swept = training_runs::fail_orphans(&mut other, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(swept.is_empty(), "a live run was marked failed: {swept:?}");
    assert_eq!(state_of(&pool, id).await, RunState::Running);

    // An owner that stopped beating is dead: its run is failed.
    sqlx::query(
        "UPDATE training_runs SET heartbeat_at = now() - interval '1 minute' WHERE id = $1",
    )
    .bind(id)
    .execute(&pool)
    .await
    .unwrap();
    let swept = training_runs::fail_orphans(&mut other, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(swept, vec![id]);
    assert_eq!(state_of(&pool, id).await, RunState::Failed);
}

#[sqlx::test]
async fn a_run_ended_elsewhere_is_not_flipped_to_promoted_by_its_owner(pool: sqlx::PgPool) {
    let mut conn = pool.acquire().await.unwrap().detach();
    let id = start_run(&mut conn, "replica-a").await;
    training_runs::fail_owned(&pool, "replica-a", "marked failed by another replica")
        .await
        .unwrap();
    assert!(!training_runs::is_running(&pool, id).await.unwrap());
    let applied = training_runs::finish(
        &pool,
        id,
        RunEnd {
            state: RunState::Promoted,
            candidate_version: Some("v1"),
            evaluation: None,
            reason: "the gate passed",
        },
    )
    .await
    .unwrap();
    assert!(!applied);
    let run = training_runs::get(&pool, id).await.unwrap().unwrap();
    assert_eq!(run.state, RunState::Failed);
    assert_eq!(run.candidate_version, None);
}
