//! Several `voc serve` processes on one database, each with a model store of its own (as on
//! separate machines): what one records in Postgres must mean the same to the others, and
//! following another's activation must not cost a process one of its pool's connections.

mod common;

use common::post_json;
use serde_json::json;
use std::time::Duration;
use voc::service::{AppState, ServiceSettings};

const OLDER: &str = "v00000000-000000-0000";

/// A replica's settings on a store of its own holding the test model and a copy named OLDER.
fn replica(store: &tempfile::TempDir, base: &str) -> ServiceSettings {
    common::copy_version_as(store.path(), base, OLDER);
    let mut settings = common::settings();
    settings.store_dir = store.path().to_path_buf();
    settings
}

async fn serving(app: &axum::Router) -> String {
    let a = post_json(app, "/classify", &json!({ "text": "환불해 주세요" })).await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.json["model_version"].as_str().unwrap().to_string()
}

async fn recorded_path(pool: &sqlx::PgPool, version: &str) -> String {
    sqlx::query_scalar("SELECT path FROM model_versions WHERE version = $1")
        .bind(version)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test]
async fn a_replica_follows_an_activation_from_its_own_store_not_the_others_folder(
    pool: sqlx::PgPool,
) {
    let (store_a, base) = common::private_store();
    let (store_b, _) = common::private_store();
    let (app_a, _) = common::app_with(replica(&store_a, &base), pool.clone()).await;
    let (app_b, state_b) = common::app_with(replica(&store_b, &base), pool.clone()).await;
    assert_eq!(serving(&app_b).await, base);

    let a = post_json(&app_a, &format!("/models/{OLDER}/activate"), &json!({})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    // What Postgres records is the folder's name in the store, not A's path on its disk.
    assert_eq!(recorded_path(&pool, OLDER).await, OLDER);
    assert_eq!(recorded_path(&pool, &base).await, base);

    // A's folders are on A's machine only: B must load its own copy.
    drop(store_a);
    let swapped = voc::service::activation::follow_database(&state_b)
        .await
        .expect("B loads the version A activated from B's own store");
    assert!(swapped);
    assert_eq!(serving(&app_b).await, OLDER);
}

#[sqlx::test]
async fn a_path_recorded_by_an_older_server_or_pointing_outside_the_store_is_not_followed(
    pool: sqlx::PgPool,
) {
    let (store, base) = common::private_store();
    let (app, state) = common::app_with(replica(&store, &base), pool.clone()).await;
    // A path outside the store is refused, whatever is there.
    sqlx::query("UPDATE model_versions SET path = $2 WHERE version = $1")
        .bind(OLDER)
        .bind(format!("../{OLDER}"))
        .execute(&pool)
        .await
        .unwrap();
    assert!(voc::store::models::activate(&pool, OLDER).await.unwrap());
    let err = voc::service::activation::follow_database(&state)
        .await
        .expect_err("a path climbing out of the store is not loaded");
    assert!(err.to_string().contains("not a folder name"), "{err}");
    assert_eq!(serving(&app).await, base);
}

/// Waits until a session on this database has sent LISTEN (the follower is listening).
async fn wait_for_listen(pool: &sqlx::PgPool) {
    common::wait_until(
        Duration::from_secs(30),
        "the follower never listened",
        || async {
            let listening: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND query LIKE 'LISTEN%'",
            )
            .fetch_one(pool)
            .await
            .unwrap();
            listening > 0
        },
    )
    .await;
}

/// Every connection of the pool taken at once (fails when one is held elsewhere).
async fn take_all(state: &AppState, n: u32) -> Result<(), sqlx::Error> {
    let mut held = Vec::new();
    for _ in 0..n {
        held.push(state.pool.acquire().await?);
    }
    Ok(())
}

#[sqlx::test]
async fn the_activation_listener_holds_no_connection_of_the_pool_and_still_hears(
    pool: sqlx::PgPool,
) {
    let (store_a, base) = common::private_store();
    let (store_b, _) = common::private_store();
    let (app_a, _) = common::app_with(replica(&store_a, &base), pool.clone()).await;

    // B's pool is small, and its safety-net poll never comes: only NOTIFY can swap it.
    let connections = 2;
    let options = pool.connect_options().as_ref().clone();
    let small = sqlx::postgres::PgPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(Duration::from_secs(2))
        .connect_with(options)
        .await
        .unwrap();
    let (app_b, state_b) = common::app_with(replica(&store_b, &base), small).await;
    let _follower =
        voc::service::activation::spawn_follower(state_b.clone(), Duration::from_secs(3600), true);
    wait_for_listen(&pool).await;

    take_all(&state_b, connections)
        .await
        .expect("all of B's pool is free for requests while its follower listens");

    let a = post_json(&app_a, &format!("/models/{OLDER}/activate"), &json!({})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    common::wait_until(
        Duration::from_secs(30),
        "B never heard the activation",
        || async { serving(&app_b).await == OLDER },
    )
    .await;
}
