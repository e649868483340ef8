//! The retention sweep of rejected versions, driven one call at a time on a real store
//! folder and a real Postgres.

mod common;

use serde_json::json;
use std::time::Duration;
use voc::learning::retention::remove_expired_rejected;
use voc::store::models::{self, NewModelVersion};

const DAY: Duration = Duration::from_secs(24 * 3600);

/// Registers `version` with a folder in `store`, decided `decision` by the gate `age_days` ago.
async fn version(
    pool: &sqlx::PgPool,
    store: &std::path::Path,
    name: &str,
    decision: &str,
    age_days: i32,
) {
    std::fs::create_dir_all(store.join(name)).unwrap();
    std::fs::write(store.join(name).join("weights.safetensors"), b"w").unwrap();
    let new = NewModelVersion {
        version: name,
        path: name,
        tasks: json!([]),
        metrics: json!({}),
    };
    models::register(pool, new).await.unwrap();
    models::set_gate(pool, name, &json!({"decision": decision, "reason": "test"}))
        .await
        .unwrap();
    sqlx::query("UPDATE model_versions SET created_at = now() - make_interval(days => $2) WHERE version = $1")
        .bind(name)
        .bind(age_days)
        .execute(pool)
        .await
        .unwrap();
}

async fn removed_at(pool: &sqlx::PgPool, name: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    models::get(pool, name)
        .await
        .unwrap()
        .unwrap()
        .files_removed_at
}

#[sqlx::test]
async fn only_rejected_versions_past_retention_and_never_activated_lose_their_folders(
    pool: sqlx::PgPool,
) {
    let store = tempfile::tempdir().unwrap();
    let s = store.path();
    version(&pool, s, "v-old-rejected", "rejected", 40).await;
    version(&pool, s, "v-new-rejected", "rejected", 3).await;
    version(&pool, s, "v-old-promoted", "promoted", 40).await;
    version(&pool, s, "v-old-tried", "rejected", 40).await;
    // An operator tried this rejected one (POST /models/{v}/activate), then rolled back.
    assert!(models::activate(&pool, "v-old-tried").await.unwrap());
    assert!(models::activate(&pool, "v-old-promoted").await.unwrap());

    let removed = remove_expired_rejected(&pool, s, 30 * DAY).await.unwrap();
    assert_eq!(removed, vec!["v-old-rejected".to_string()]);
    assert!(!s.join("v-old-rejected").exists());
    for kept in ["v-new-rejected", "v-old-promoted", "v-old-tried"] {
        assert!(
            s.join(kept).join("weights.safetensors").exists(),
            "{kept} was removed"
        );
        assert_eq!(removed_at(&pool, kept).await, None, "{kept}");
    }
    let first = removed_at(&pool, "v-old-rejected")
        .await
        .expect("the removal is recorded");
    // The row stays: its predictions refer to it.
    assert!(models::get(&pool, "v-old-rejected")
        .await
        .unwrap()
        .is_some());

    // A second sweep removes nothing more and keeps the first removal's time.
    assert!(remove_expired_rejected(&pool, s, 30 * DAY)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(removed_at(&pool, "v-old-rejected").await, Some(first));

    // Another replica's own copy of the same version is removed by its own sweep.
    let other = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(other.path().join("v-old-rejected")).unwrap();
    let removed = remove_expired_rejected(&pool, other.path(), 30 * DAY)
        .await
        .unwrap();
    assert_eq!(removed, vec!["v-old-rejected".to_string()]);
}
