//! The frozen evaluation set is a function of a transcript's content, recorded once in
//! Postgres (issue 9, item 5): the same text is on the same side whatever its id or how it
//! arrived, the share cannot change per process, and `voc export --exclude-eval` leaves out
//! exactly the frozen rows.

mod common;

use common::database_url;
use serde_json::Value;
use std::process::Command;
use voc::learning::eval_set::{eval_bucket, in_frozen_eval};
use voc::store::imports::{import_rows, ImportRow};
use voc::store::learning_settings::record_eval_share;

fn row<'a>(source_id: &'a str, text: &'a str, labels: Vec<(&'a str, &'a str)>) -> ImportRow<'a> {
    ImportRow {
        source_id,
        call_id: source_id,
        text,
        labels,
    }
}

async fn bucket_of(pool: &sqlx::PgPool, source_id: &str) -> i32 {
    sqlx::query_scalar("SELECT eval_bucket FROM transcripts WHERE source_id = $1")
        .bind(source_id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test]
async fn the_same_text_lands_in_the_same_bucket_whatever_its_id(pool: sqlx::PgPool) {
    let texts = [
        ("a", "my card was declined at the shop"),
        ("b", "my card was declined at the shop"),
        ("c", "  my card   was declined\tat the shop\n"),
        ("d", "영화 정말 재밌어요"),
        ("e", ""),
    ];
    let rows: Vec<ImportRow> = texts.iter().map(|(s, t)| row(s, t, vec![])).collect();
    import_rows(&pool, &rows, 0).await.unwrap();
    let a = bucket_of(&pool, "a").await;
    assert_eq!(a, bucket_of(&pool, "b").await, "duplicates split");
    assert_eq!(
        a,
        bucket_of(&pool, "c").await,
        "whitespace changed the side"
    );
    // Postgres and the Rust function agree, so a file can be split as the database is.
    for (source, text) in texts {
        assert_eq!(
            bucket_of(&pool, source).await as u32,
            eval_bucket(text),
            "{source}"
        );
    }
    // Rewriting a stored text (as `voc redact` does) keeps the recorded bucket.
    sqlx::query("UPDATE transcripts SET text = 'rewritten' WHERE source_id = 'a'")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(bucket_of(&pool, "a").await, a);
}

#[sqlx::test]
async fn the_first_recorded_share_is_the_one_every_process_uses(pool: sqlx::PgPool) {
    assert_eq!(record_eval_share(&pool, 0.2).await.unwrap(), 0.2);
    assert_eq!(record_eval_share(&pool, 0.5).await.unwrap(), 0.2);
}

fn export(url: &str, extra: &[&str]) -> (Vec<Value>, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_voc"))
        .args(["export", "--database-url", url])
        .args(extra)
        .output()
        .expect("run voc export");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "voc export failed: {stderr}");
    let rows = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let counts = serde_json::from_str(stderr.lines().last().expect("counts")).expect("JSON");
    (rows, counts)
}

#[sqlx::test]
async fn export_exclude_eval_leaves_out_exactly_the_frozen_rows(
    opts: sqlx::postgres::PgPoolOptions,
    connect: sqlx::postgres::PgConnectOptions,
) {
    let pool = opts.connect_with(connect.clone()).await.unwrap();
    let url = database_url(&connect);
    let texts: Vec<(String, String)> = (0..300)
        .map(|i| {
            (
                format!("call-{i}"),
                format!("the customer asked about order {i}"),
            )
        })
        .collect();
    let rows: Vec<ImportRow> = texts
        .iter()
        .enumerate()
        .map(|(i, (s, t))| {
            let labels = if i % 3 == 0 {
                vec![]
            } else {
                vec![("sentiment", "negative")]
            };
            row(s, t, labels)
        })
        .collect();
    import_rows(&pool, &rows, 0).await.unwrap();
    record_eval_share(&pool, 0.25).await.unwrap();

    let (all, counts) = export(&url, &[]);
    assert_eq!(all.len(), 300, "{counts}");
    let labeled = all.iter().filter(|r| r["sentiment"] == "negative").count();
    assert_eq!(labeled, 200);

    // The recorded share (0.25) decides, not the flag's default.
    let (kept, counts) = export(&url, &["--exclude-eval", "--labeled-only"]);
    assert_eq!(counts["eval_share"], 0.25, "{counts}");
    let frozen: Vec<&(String, String)> = texts
        .iter()
        .filter(|(_, t)| in_frozen_eval(eval_bucket(t), 0.25))
        .collect();
    assert!((40..110).contains(&frozen.len()), "{} frozen", frozen.len());
    let kept_texts: Vec<&str> = kept.iter().map(|r| r["text"].as_str().unwrap()).collect();
    for (_, t) in &frozen {
        assert!(
            !kept_texts.contains(&t.as_str()),
            "frozen row exported: {t}"
        );
    }
    let expected = texts
        .iter()
        .enumerate()
        .filter(|(i, (_, t))| i % 3 != 0 && !in_frozen_eval(eval_bucket(t), 0.25))
        .count();
    assert_eq!(kept.len(), expected, "{counts}");
    assert!(kept
        .iter()
        .all(|r| r["sentiment"] == "negative" && r["id"].is_string()));
}
