//! Reading training files: JSONL and CSV, task discovery, and a clear error for each kind
//! of bad input.

use std::io::Write;
use voc::data::{detect_tasks, read_dataset, DataError, Format, ReadOptions};

fn file_with(name: &str, content: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(content)
        .unwrap();
    (dir, path)
}

fn read_err(name: &str, content: &str) -> String {
    let (_dir, path) = file_with(name, content.as_bytes());
    let err = read_dataset(&path, &ReadOptions::default()).expect_err("must fail");
    err.to_string()
}

#[test]
fn jsonl_null_and_absent_labels_mean_no_label_for_that_task() {
    let (_d, path) = file_with(
        "a.jsonl",
        br#"{"id": "1", "text": "refund please", "category": "billing", "sentiment": null}
{"id": "2", "text": "great service", "sentiment": "positive"}
{"id": "3", "text": "just text"}
"#,
    );
    let data = read_dataset(&path, &ReadOptions::default()).unwrap();
    assert_eq!(data.examples.len(), 3);
    assert_eq!(data.examples[0].labels.len(), 1);
    assert_eq!(data.examples[1].labels["sentiment"], "positive");
    assert!(data.examples[2].is_unlabeled());
    assert_eq!(data.fingerprint.len(), 64);
}

#[test]
fn csv_reads_named_text_and_task_columns_and_empty_cells_are_unlabeled() {
    let (_d, path) = file_with(
        "calls.csv",
        "call,transcript,menu_choice,mood\nc1,\"hello, my card, it is lost\",cards,negative\nc2,thanks a lot,,positive\nc3,hmm,billing,\n".as_bytes(),
    );
    let options = ReadOptions {
        text_column: "transcript".into(),
        id_column: "call".into(),
        tasks: Some(vec!["menu_choice".into(), "mood".into()]),
        ..Default::default()
    };
    let data = read_dataset(&path, &options).unwrap();
    assert_eq!(data.examples[0].text, "hello, my card, it is lost");
    assert_eq!(data.examples[0].id, "c1");
    assert!(!data.examples[1].labels.contains_key("menu_choice"));
    assert!(!data.examples[2].labels.contains_key("mood"));
}

#[test]
fn tasks_are_found_from_the_data_and_high_cardinality_keys_are_left_as_metadata() {
    let mut lines = String::new();
    for i in 0..300 {
        lines.push_str(&format!(
            "{{\"text\": \"t{i}\", \"sentiment\": \"{}\", \"created\": \"2015-02-{i}\"}}\n",
            if i % 2 == 0 { "positive" } else { "negative" }
        ));
    }
    let (_d, path) = file_with("a.jsonl", lines.as_bytes());
    let data = read_dataset(&path, &ReadOptions::default()).unwrap();
    let (tasks, notes) = detect_tasks(&data, None).unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].name, "sentiment");
    assert_eq!(tasks[0].labels, vec!["negative", "positive"]);
    assert!(notes[0].contains("created"), "{notes:?}");
}

#[test]
fn invalid_json_names_the_file_and_line() {
    let msg = read_err(
        "bad.jsonl",
        "{\"text\": \"ok\", \"s\": \"a\"}\n{\"text\": oops}\n",
    );
    assert!(
        msg.contains("bad.jsonl:2") && msg.contains("invalid JSON"),
        "{msg}"
    );
}

#[test]
fn a_row_without_text_is_an_error_naming_its_line() {
    let msg = read_err("a.jsonl", "{\"text\": \"ok\"}\n\n{\"body\": \"x\"}\n");
    assert!(
        msg.contains("a.jsonl:3") && msg.contains("missing text"),
        "{msg}"
    );
}

#[test]
fn an_empty_text_is_an_error() {
    let msg = read_err("a.jsonl", "{\"text\": \"   \"}\n");
    assert!(
        msg.contains("a.jsonl:1") && msg.contains("text is empty"),
        "{msg}"
    );
    let invisible = read_err("b.jsonl", "{\"text\": \"\\u200b \\ufeff\\u2060\"}\n");
    assert!(
        invisible.contains("b.jsonl:1") && invisible.contains("text is empty"),
        "a text of zero-width characters is empty too: {invisible}"
    );
}

#[test]
fn a_label_that_is_not_a_scalar_is_an_error() {
    let msg = read_err("a.jsonl", "{\"text\": \"x\", \"sentiment\": [\"a\"]}\n");
    assert!(
        msg.contains("label for 'sentiment' is not a string"),
        "{msg}"
    );
}

#[test]
fn a_row_that_is_not_an_object_is_an_error() {
    let msg = read_err("a.jsonl", "[1, 2]\n");
    assert!(msg.contains("not a JSON object"), "{msg}");
}

#[test]
fn a_csv_row_with_the_wrong_number_of_fields_is_an_error() {
    let msg = read_err(
        "a.csv",
        "text,sentiment\nhello,positive\nbye,negative,extra\n",
    );
    assert!(msg.contains("a.csv:3") && msg.contains("3 fields"), "{msg}");
}

#[test]
fn a_file_that_is_not_utf8_is_refused() {
    let (_d, path) = file_with("a.jsonl", &[0xff, 0xfe, 0x00, b'\n']);
    let err = read_dataset(&path, &ReadOptions::default()).unwrap_err();
    assert!(matches!(err, DataError::BadFile { .. }), "{err}");
    assert!(err.to_string().contains("not UTF-8"));
}

#[test]
fn an_empty_file_is_refused() {
    let msg = read_err("a.jsonl", "\n\n");
    assert!(msg.contains("no usable rows"), "{msg}");
}

#[test]
fn a_missing_file_is_refused_with_its_path() {
    let err = read_dataset(
        std::path::Path::new("/nonexistent/x.jsonl"),
        &ReadOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/x.jsonl"));
}

#[test]
fn bad_rows_can_be_skipped_and_are_counted() {
    let (_d, path) = file_with(
        "a.jsonl",
        b"{\"text\": \"good\", \"s\": \"a\"}\nnot json\n{\"text\": \"\"}\n{\"text\": \"fine\", \"s\": \"b\"}\n",
    );
    let options = ReadOptions {
        skip_bad_rows: true,
        ..Default::default()
    };
    let data = read_dataset(&path, &options).unwrap();
    assert_eq!(data.examples.len(), 2);
    assert_eq!(data.skipped.len(), 2);
    assert_eq!(data.skipped[0].line, 2);
}

#[test]
fn a_named_task_with_no_labels_is_refused() {
    let (_d, path) = file_with(
        "a.jsonl",
        b"{\"text\": \"x\", \"s\": \"a\"}\n{\"text\": \"y\", \"s\": \"b\"}\n",
    );
    let data = read_dataset(&path, &ReadOptions::default()).unwrap();
    let err = detect_tasks(&data, Some(&["sentiment".to_string()])).unwrap_err();
    assert!(err.contains("task 'sentiment' has no labels"), "{err}");
}

#[test]
fn format_is_guessed_from_the_extension() {
    assert_eq!(
        Format::from_path(std::path::Path::new("x.CSV")),
        Format::Csv
    );
    assert_eq!(
        Format::from_path(std::path::Path::new("x.jsonl")),
        Format::Jsonl
    );
}
