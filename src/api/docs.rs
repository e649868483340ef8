//! GET /openapi.json (a hand-written OpenAPI 3.1 document) and GET /docs (a page that renders
//! it with a vendored Swagger UI served from `/docs/…`, with a plain route list besides).

use crate::error::ApiError;
use crate::review::queue::Strategy;
use crate::service::AppState;
use crate::store::training_runs::{RunState, Trigger};
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::Json;
use serde_json::{json, Value};

fn error_response(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn json_body(schema: &str) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
}

fn ok(schema: &str) -> Value {
    json!({"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
}

/// A JSON answer with an inline schema.
fn ok_with(schema: Value) -> Value {
    json!({"description": "OK", "content": {"application/json": {"schema": schema}}})
}

/// `responses` plus what the key check, the body limit and the database may answer on any
/// route behind a key; with `body`, also what a JSON body may be refused with.
fn responses(own: Value, body: bool) -> Value {
    let mut r = json!({
        "401": error_response("Missing or unknown API key"),
        "503": error_response("Queue full or database unavailable; see Retry-After"),
    });
    if body {
        r["400"] = error_response("The body is not valid JSON, or a header is malformed");
        r["413"] = error_response("The body is over the size limit");
        r["415"] = error_response(
            "The body is not sent as application/json, or is sent compressed (Content-Encoding)",
        );
        r["422"] = error_response("The JSON does not have the expected shape or values");
    }
    if let (Some(r), Some(own)) = (r.as_object_mut(), own.as_object()) {
        r.extend(own.clone());
    }
    r
}

/// An admin route's own responses, plus the 403 a classify key gets there.
fn admin_only(mut own: Value) -> Value {
    own["403"] = error_response("A classify key: this route needs an admin key");
    own
}

/// A review route's own responses, plus the 403 a classify key (or an annotator key acting
/// as someone else) gets there.
fn labeler_only(mut own: Value) -> Value {
    own["403"] = error_response("A classify key, or an annotator key naming another annotator");
    own
}

fn lease_id() -> Value {
    path_param("lease", json!({"type": "string", "format": "uuid"}))
}

/// An annotator name `?annotator=` accepts: after trimming, 1 to 100 characters, none of
/// them control or invisible.
fn annotator_name() -> Value {
    class_name()
}

fn lease() -> Value {
    json!({"type": "object", "required": ["lease_id", "transcript_id", "task", "annotator", "strategy", "leased_at", "expires_at", "finished", "label"], "properties": {
        "lease_id": {"type": "string", "format": "uuid"}, "transcript_id": {"type": "string", "format": "uuid"},
        "task": {"type": "string"}, "annotator": {"type": "string"}, "strategy": {"enum": Strategy::ALL.map(Strategy::as_str)},
        "leased_at": {"type": "string", "format": "date-time"}, "expires_at": {"type": "string", "format": "date-time"},
        "finished": {"enum": ["labeled", "skipped", null]}, "label": {"type": ["string", "null"]},
        "outcome": {"enum": ["created", "replaced", "unchanged"], "description": "after a label: what happened to it"}}})
}

fn review_item() -> Value {
    let mut item = lease();
    if let Some(required) = item["required"].as_array_mut() {
        required.extend([json!("transcript"), json!("prediction"), json!("labels")]);
    }
    item["properties"]["transcript"] =
        json!({"type": "object", "required": ["id", "text", "call_id", "created_at"]});
    item["properties"]["prediction"] = json!({"type": "object", "required": ["model_version", "guess", "margin", "probabilities", "outputs"],
        "description": "the guess for the task of the version that last scored it (the active one, once the queue is rescored), the margin between its two most probable labels, its probabilities, and every task's outputs when the transcript was classified"});
    item["properties"]["labels"] =
        json!({"type": "array", "items": {"type": "string"}, "description": "the task's classes"});
    item
}

/// A path parameter; a value that does not parse is answered 400.
fn path_param(name: &str, schema: Value) -> Value {
    json!([{"name": name, "in": "path", "required": true, "schema": schema}])
}

/// The security of a route behind a key: either header.
fn keyed() -> Value {
    json!([{"bearer": []}, {"apiKey": []}])
}

/// Characters Rust's `char::is_whitespace` (Unicode White_Space) counts, as a regex class
/// body that means the same to every regex dialect.
const WHITESPACE: &str =
    r"\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

/// The characters `data::chars::is_invisible_or_control` counts, as a regex class body.
const INVISIBLE: &str = r"\u0000-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff";

/// What the server knows only at run time and the document states: the tasks and classes
/// feedback accepts, and the request limits.
#[derive(Debug, Clone, Default)]
pub struct Live {
    pub tasks: Vec<crate::data::TaskLabels>,
    pub max_items: usize,
}

/// JSON that holds no NUL character anywhere (metadata is stored as JSONB, which cannot).
fn no_nul_json() -> Value {
    json!({"anyOf": [
        {"type": "string", "pattern": "^[^\\u0000]*$"},
        {"type": ["number", "boolean", "null"]},
        {"type": "array", "items": {"$ref": "#/components/schemas/NoNulJson"}},
        {"type": "object", "propertyNames": {"pattern": "^[^\\u0000]*$"},
         "additionalProperties": {"$ref": "#/components/schemas/NoNulJson"}}]})
}

fn transcript_in() -> Value {
    json!({"type": "object", "required": ["text"], "additionalProperties": false, "properties": {
        "text": {"type": "string", "pattern": format!("^[^\\u0000]*[^{INVISIBLE}{WHITESPACE}][^\\u0000]*$"),
                 "description": "the transcript: at least one visible character, no NUL characters"},
        "call_id": {"type": ["string", "null"], "pattern": "^[^\\u0000]*$"},
        "metadata": {"anyOf": [{"type": "null"}, {"type": "object",
            "propertyNames": {"pattern": "^[^\\u0000]*$"},
            "additionalProperties": {"$ref": "#/components/schemas/NoNulJson"}}]}}})
}

fn classification() -> Value {
    json!({"type": "object", "additionalProperties": false,
        "required": ["transcript_id", "prediction_id", "model_version", "predictions", "latency_ms", "redacted"],
        "properties": {
            "transcript_id": {"type": "string", "format": "uuid"},
            "prediction_id": {"type": "string", "format": "uuid"},
            "model_version": {"type": "string"},
            "predictions": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/TaskPrediction"}},
            "latency_ms": {"type": "number"},
            "redacted": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 1},
                "description": "personal data replaced by tags before the text was classified and stored, as counts per kind (CARD, PHONE, EMAIL, RRN, IBAN, SSN, NUMBER); {} when none or when the server runs with --no-redact"}}})
}

/// `labels` of a feedback request: at least one of the live tasks, each with one of its
/// classes.
fn feedback_labels(live: &Live) -> Value {
    let properties: serde_json::Map<String, Value> = live
        .tasks
        .iter()
        .map(|t| (t.name.clone(), json!({"enum": t.labels})))
        .collect();
    json!({"type": "object", "minProperties": 1, "additionalProperties": false, "properties": properties,
        "description": "task -> label: the active model's tasks and classes, and classes added since (GET /tasks)"})
}

fn feedback_request(live: &Live) -> Value {
    // At least one of the three, and not null (null counts as absent).
    let named_by: Vec<Value> = ["transcript_id", "prediction_id", "call_id"]
        .iter()
        .map(|k| json!({"required": [k], "properties": {*k: {"type": "string"}}}))
        .collect();
    json!({"type": "object", "required": ["labels"], "additionalProperties": false,
        "anyOf": named_by,
        "description": "names the transcript by transcript_id, else prediction_id, else call_id (its newest transcript)",
        "properties": {
            "transcript_id": {"type": ["string", "null"], "format": "uuid"},
            "prediction_id": {"type": ["string", "null"], "format": "uuid"},
            "call_id": {"type": ["string", "null"], "pattern": "^[^\\u0000]*$"},
            "labels": feedback_labels(live),
            "annotator": {"type": ["string", "null"], "pattern": "^[^\\u0000]*$"}}})
}

/// A class name POST /tasks/{task}/labels accepts: after trimming, 1 to 100 characters,
/// none of them control or invisible.
fn class_name() -> Value {
    json!({"type": "string", "maxLength": 100,
        "pattern": format!("^[^{INVISIBLE}]*[^{INVISIBLE}{WHITESPACE}][^{INVISIBLE}]*$")})
}

fn schemas(live: &Live) -> Value {
    json!({
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {}}}}},
        "NoNulJson": no_nul_json(),
        "TranscriptIn": transcript_in(),
        "ClassifyRequest": {"oneOf": [
            {"$ref": "#/components/schemas/TranscriptIn"},
            {"type": "object", "required": ["items"], "additionalProperties": false, "properties": {
                "items": {"type": "array", "minItems": 1, "maxItems": live.max_items, "items": {"$ref": "#/components/schemas/TranscriptIn"}}}}]},
        "TaskPrediction": {"type": "object", "required": ["label", "confidence", "probabilities"], "properties": {
            "label": {"type": "string"}, "confidence": {"type": "number"},
            "probabilities": {"type": "object", "additionalProperties": {"type": "number"}}}},
        "Classification": classification(),
        "ClassifyResponse": {"oneOf": [
            {"$ref": "#/components/schemas/Classification"},
            {"type": "object", "required": ["results"], "additionalProperties": false, "properties": {
                "results": {"type": "array", "items": {"$ref": "#/components/schemas/Classification"}}}}]},
        "FeedbackRequest": feedback_request(live),
        "Lease": lease(),
        "ReviewItem": review_item(),
        "FeedbackResponse": {"type": "object", "properties": {
            "transcript_id": {"type": "string", "format": "uuid"},
            "labels": {"type": "array", "items": {"type": "object", "properties": {
                "task": {"type": "string"}, "label": {"type": "string"},
                "outcome": {"enum": ["created", "replaced", "unchanged"]}}}}}},
        "Transcript": {"type": "object", "properties": {
            "id": {"type": "string", "format": "uuid"}, "call_id": {"type": ["string", "null"]},
            "text": {"type": "string"}, "metadata": {"type": "object"}, "created_at": {"type": "string", "format": "date-time"},
            "predictions": {"type": "array", "items": {"type": "object"}},
            "labels": {"type": "array", "items": {"type": "object", "description": "superseded_at is set on replaced labels"}}}},
        "ModelVersion": {"type": "object", "properties": {
            "version": {"type": "string"},
            "path": {"type": "string", "description": "the version's folder inside each server's model store (admin keys only)"},
            "tasks": {"type": "array"},
            "metrics": {"type": "object"}, "active": {"type": "boolean"},
            "created_at": {"type": "string"}, "activated_at": {"type": ["string", "null"]},
            "gate": {"type": ["object", "null"], "description": "for versions made by a training run: {decision: promoted|rejected, reason, run, tasks}"},
            "files_removed_at": {"type": ["string", "null"], "description": "when a rejected version's folder was removed after its retention period"}}},
        "TrainingRun": {"type": "object", "properties": {
            "id": {"type": "integer"},
            "state": {"enum": RunState::ALL.map(RunState::as_str)},
            "trigger": {"enum": Trigger::ALL.map(Trigger::as_str)},
            "requested_at": {"type": "string"}, "started_at": {"type": ["string", "null"]}, "finished_at": {"type": ["string", "null"]},
            "owner": {"type": ["string", "null"], "description": "host:pid of the process running it"},
            "heartbeat_at": {"type": ["string", "null"]},
            "label_watermark": {"type": ["integer", "null"], "description": "labels with ids up to this are in the snapshot"},
            "parent_version": {"type": ["string", "null"]}, "candidate_version": {"type": ["string", "null"]},
            "snapshot": {"type": "object", "description": "labeled rows per task (train and frozen evaluation set), unlabeled rows"},
            "progress": {"type": "object", "description": "epoch, step, planned_steps, loss, valid_score, best_score, examples_per_second, elapsed_seconds"},
            "evaluation": {"type": ["object", "null"], "description": "the gate: candidate and active metrics on the frozen evaluation set, per task"},
            "reason": {"type": ["string", "null"]},
            "cancel_requested": {"type": "boolean"}}}
    })
}

fn paths() -> Value {
    let run_id = path_param("id", json!({"type": "integer", "format": "int64"}));
    json!({
        "/classify": {"post": {
            "summary": "Classify and store one transcript (`text`) or a batch (`items`); with an Idempotency-Key, a retry gets the first attempt's answer (header Idempotent-Replayed: true) and stores nothing more",
            "security": keyed(),
            "parameters": [{"name": "Idempotency-Key", "in": "header", "required": false,
                "schema": {"type": "string", "pattern": "^[!-~]{1,255}$"},
                "description": "1-255 visible ASCII characters, scoped to the API key; the same key with another body is refused (422)"}],
            "requestBody": json_body("ClassifyRequest"),
            "responses": responses(json!({"200": ok("ClassifyResponse")}), true)}},
        "/feedback": {"post": {
            "summary": "Record human labels for a transcript (admin key)",
            "security": keyed(),
            "requestBody": json_body("FeedbackRequest"),
            "responses": responses(admin_only(json!({"200": ok("FeedbackResponse"), "404": error_response("No such transcript, prediction or call"), "409": error_response("The call_id held personal data and, redacted, names more than one transcript")})), true)}},
        "/transcripts/{id}": {"get": {
            "summary": "A transcript with its predictions and labels (admin key)",
            "security": keyed(),
            "parameters": path_param("id", json!({"type": "string", "format": "uuid"})),
            "responses": responses(admin_only(json!({"200": ok("Transcript"), "400": error_response("The id is not a UUID"), "404": error_response("No such transcript")})), false)}},
        "/models": {"get": {
            "summary": "Every registered model version",
            "security": keyed(),
            "responses": responses(json!({"200": ok_with(json!({"type": "object", "properties": {"versions": {"type": "array", "items": {"$ref": "#/components/schemas/ModelVersion"}}}}))}), false)}},
        "/models/active": {"get": {
            "summary": "The version being served, its tasks and labels",
            "security": keyed(),
            "responses": responses(json!({"200": ok_with(json!({"type": "object", "required": ["version", "tasks"]}))}), false)}},
        "/models/{version}/activate": {"post": {
            "summary": "Serve a stored version here and in every process on the database: rollback (admin key)",
            "security": keyed(),
            "parameters": path_param("version", json!({"type": "string"})),
            "responses": responses(admin_only(json!({"200": ok("ModelVersion"), "404": error_response("No such version"), "409": error_response("The version cannot be loaded")})), false)}},
        "/tasks": {"get": {
            "summary": "The active model's tasks and classes, and classes added since that the next run will learn",
            "security": keyed(),
            "responses": responses(json!({"200": ok_with(json!({"type": "object", "required": ["model_version", "tasks"]}))}), false)}},
        "/tasks/{task}/labels": {"post": {
            "summary": "Add a class to a task (admin key); feedback may use it at once, the next training run learns it",
            "security": keyed(),
            "parameters": path_param("task", json!({"type": "string"})),
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["label"], "additionalProperties": false, "properties": {"label": class_name()}}}}},
            "responses": responses(admin_only(json!({"201": {"description": "Added"}, "200": {"description": "Already known"}, "404": error_response("No such task")})), true)}},
        "/tasks/{task}/agreement": {"get": {
            "summary": "How much annotators agree on a task (admin key): Cohen's kappa per pair, Krippendorff's alpha (nominal) over all, on the transcripts two or more named annotators labeled; a statistic is null where it is not defined",
            "security": keyed(),
            "parameters": path_param("task", json!({"type": "string"})),
            "responses": responses(admin_only(json!({"200": ok_with(json!({"type": "object", "required": ["task", "annotators", "items", "krippendorff_alpha", "pairs"],
                "properties": {"task": {"type": "string"}, "annotators": {"type": "array", "items": {"type": "string"}}, "items": {"type": "integer"},
                    "krippendorff_alpha": {"type": ["number", "null"]},
                    "pairs": {"type": "array", "items": {"type": "object", "required": ["annotators", "items", "observed_agreement", "cohen_kappa"],
                        "properties": {"annotators": {"type": "array", "items": {"type": "string"}}, "items": {"type": "integer"}, "observed_agreement": {"type": "number"}, "cohen_kappa": {"type": ["number", "null"]}}}}}})),
                "404": error_response("No such task")})), false)}},
        "/review/next": {"get": {
            "summary": "The next transcript of a task for this annotator, leased to them (an annotator key, or an admin key naming ?annotator=); the item they already hold if any; 204 when nothing waits",
            "security": keyed(),
            "parameters": [
                {"name": "task", "in": "query", "required": true, "schema": {"type": "string"}, "description": "one of the active model's tasks (GET /tasks)"},
                {"name": "strategy", "in": "query", "required": false, "schema": {"enum": Strategy::ALL.map(Strategy::as_str)},
                 "description": "uncertain (default: smallest margin between the two most probable labels), disagreement (labeled items whose labels differ from the model's guess or from each other), random (an unbiased sample), recent"},
                {"name": "annotator", "in": "query", "required": true, "schema": annotator_name(),
                 "description": "who labels: needed with an admin key or on a keyless server (422 without it); an annotator key may leave it out or give its own name (another name is 403)"}],
            "responses": responses(labeler_only(json!({"200": ok("ReviewItem"), "204": {"description": "Nothing waits for this annotator"},
                "400": error_response("A query parameter is missing or malformed"), "404": error_response("No such task"),
                "422": error_response("Unknown strategy, or no annotator named")})), false)}},
        "/review/queue": {"get": {
            "summary": "Per task, how many items wait (unlabeled, wanting more annotators, disagreements), are leased and are labeled",
            "security": keyed(),
            "responses": responses(labeler_only(json!({"200": ok_with(json!({"type": "object", "required": ["model_version", "overlap", "lease_s", "strategies", "tasks"], "properties": {
                "model_version": {"type": "string"}, "overlap": {"type": "integer"}, "lease_s": {"type": "integer"}, "strategies": {"type": "array", "items": {"type": "string"}},
                "tasks": {"type": "array", "items": {"type": "object", "required": ["task", "unlabeled", "wanting_more", "disagreements", "leased", "labeled", "rescore_pending"]}}}}))})), false)}},
        "/review/{lease}/label": {"post": {
            "summary": "Label the leased transcript (recorded under the lease's annotator) and close the lease",
            "security": keyed(),
            "parameters": lease_id(),
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["label"], "additionalProperties": false, "properties": {"label": {"type": "string", "description": "one of the task's classes"}}}}}},
            "responses": responses(labeler_only(json!({"200": ok("Lease"), "404": error_response("No such lease for this annotator"), "409": error_response("The lease is already labeled or skipped")})), true)}},
        "/review/{lease}/skip": {"post": {
            "summary": "Give the leased transcript back unlabeled; this annotator is not shown it again",
            "security": keyed(),
            "parameters": lease_id(),
            "responses": responses(labeler_only(json!({"200": ok("Lease"), "404": error_response("No such lease for this annotator"), "409": error_response("The lease is already labeled or skipped")})), false)}},
        "/review/{lease}/undo": {"post": {
            "summary": "Take back a label (withdrawn: it no longer trains or counts) or a skip; the item is leased to the same annotator again",
            "security": keyed(),
            "parameters": lease_id(),
            "responses": responses(labeler_only(json!({"200": ok("Lease"), "404": error_response("No such lease for this annotator"), "409": error_response("Nothing to undo, or a skipped item was given to another annotator since")})), false)}},
        "/labels/export": {"get": {
            "summary": "Every labeled transcript with its current label per task (admin key), as JSONL (id, text, one key per task) or CSV (id,text,<task>...), the formats voc train reads; streamed",
            "security": keyed(),
            "parameters": [
                {"name": "format", "in": "query", "required": false, "schema": {"type": "string", "enum": ["jsonl", "csv"]}, "description": "jsonl (default) or csv"},
                {"name": "exclude_eval", "in": "query", "required": false, "schema": {"type": "boolean"}, "description": "leave out the frozen evaluation set the gate scores candidates on"}],
            "responses": responses(admin_only(json!({"200": {"description": "The export", "content": {"application/x-ndjson": {}, "text/csv": {}}},
                "400": error_response("A query parameter is not what it must be"), "422": error_response("Unknown format")})), false)}},
        "/training-runs": {
            "get": {
                "summary": "Fine-tuning runs, newest first",
                "security": keyed(),
                "parameters": [{"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "format": "int64"}, "description": "how many (default 50, clamped to 1-500)"}],
                "responses": responses(json!({"200": ok_with(json!({"type": "object", "properties": {"runs": {"type": "array", "items": {"$ref": "#/components/schemas/TrainingRun"}}}})), "400": error_response("limit is not an integer")}), false)},
            "post": {
                "summary": "Ask for a fine-tuning run now (admin key); answers the open run if one is queued or running",
                "security": keyed(),
                "responses": responses(admin_only(json!({"202": {"description": "Queued"}, "200": {"description": "A run is already queued or running"}})), false)}},
        "/training-runs/{id}": {"get": {
            "summary": "One run: state, progress, snapshot, the gate's evaluation and decision",
            "security": keyed(),
            "parameters": run_id,
            "responses": responses(json!({"200": ok("TrainingRun"), "400": error_response("The id is not an integer"), "404": error_response("No such run")}), false)}},
        "/training-runs/{id}/cancel": {"post": {
            "summary": "Cancel a queued run, or stop a running one at its next step (admin key)",
            "security": keyed(),
            "parameters": run_id,
            "responses": responses(admin_only(json!({"202": ok("TrainingRun"), "400": error_response("The id is not an integer"), "404": error_response("No such run"), "409": error_response("The run already ended")})), false)}},
        "/health": {"get": {"summary": "Liveness (alias /healthz): 503 once an inference thread is dead", "responses": {"200": {"description": "OK"}, "503": error_response("An inference thread is dead")}}},
        "/ready": {"get": {"summary": "Readiness: the model is loaded and the database answers (alias /readyz)", "responses": {"200": {"description": "OK"}, "503": error_response("Database unavailable or an inference thread is dead")}}},
        "/metrics": {"get": {"summary": "Prometheus metrics (text format); needs a key when keys are configured, unless --public-metrics", "security": [{}, {"bearer": []}, {"apiKey": []}], "responses": {"200": {"description": "OK", "content": {"text/plain": {}}}, "401": error_response("Missing or unknown API key")}}},
        "/openapi.json": {"get": {"summary": "This document; needs a key when keys are configured, unless --public-docs", "security": [{}, {"bearer": []}, {"apiKey": []}], "responses": {"200": {"description": "OK", "content": {"application/json": {}}}, "401": error_response("Missing or unknown API key"), "503": error_response("Database unavailable")}}},
        "/docs": {"get": {"summary": "API documentation page; needs a key when keys are configured, unless --public-docs", "security": [{}, {"bearer": []}, {"apiKey": []}], "responses": {"200": {"description": "OK", "content": {"text/html": {}}}, "401": error_response("Missing or unknown API key")}}},
        "/docs/swagger-ui-bundle.js": asset_path("Swagger UI's script (vendored, Apache-2.0)", "text/javascript"),
        "/docs/swagger-ui.css": asset_path("Swagger UI's style sheet (vendored, Apache-2.0)", "text/css"),
        "/docs/swagger-ui-init.js": asset_path("Starts Swagger UI on /docs", "text/javascript")
    })
}

/// A file of the /docs page: same keys as /docs.
fn asset_path(summary: &str, content_type: &str) -> Value {
    json!({"get": {"summary": summary, "security": [{}, {"bearer": []}, {"apiKey": []}], "responses": {
        "200": {"description": "OK", "content": {content_type: {}}},
        "401": error_response("Missing or unknown API key")}}})
}

/// The OpenAPI document for every route of [`super::app`], with what only the running
/// server knows (its tasks and classes, its limits). `tests/openapi_contract.rs` runs
/// schemathesis against it, so a handler that drifts from it fails the tests.
pub fn document(live: &Live) -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "voc",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Classifies call transcripts (every task of the active model), stores transcripts, predictions and human labels in Postgres."
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}
            },
            "schemas": schemas(live)
        },
        "paths": paths()
    })
}

/// The document as this server answers it now.
pub async fn live_document(state: &AppState) -> Result<Value, ApiError> {
    let live = Live {
        tasks: super::tasks::allowed(state).await?,
        max_items: state.limits.max_items_per_request,
    };
    Ok(document(&live))
}

pub async fn openapi(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(live_document(&state).await?))
}

/// Swagger UI 5.33.1, vendored (see `swagger_ui/README.md`): the page loads nothing from
/// another site.
const SWAGGER_UI_JS: &str = include_str!("swagger_ui/swagger-ui-bundle.js");
const SWAGGER_UI_CSS: &str = include_str!("swagger_ui/swagger-ui.css");
/// Starts Swagger UI on the page; a file of its own so the page needs no inline script.
const SWAGGER_UI_INIT: &str =
    "window.onload = function () { SwaggerUIBundle({url: \"/openapi.json\", dom_id: \"#swagger-ui\"}); };\n";
/// Scripts and styles from this server only.
const PAGE_CSP: &str =
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:";

pub async fn swagger_ui_js() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", SWAGGER_UI_JS)
}

pub async fn swagger_ui_css() -> impl IntoResponse {
    asset("text/css; charset=utf-8", SWAGGER_UI_CSS)
}

pub async fn swagger_ui_init() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", SWAGGER_UI_INIT)
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
}

/// The API documentation: Swagger UI over `/openapi.json`, and a plain list of the routes
/// for a browser without JavaScript.
pub async fn page() -> impl IntoResponse {
    let doc = document(&Live::default());
    let mut list = String::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, ops) in paths {
            for (method, op) in ops.as_object().into_iter().flatten() {
                let summary = op["summary"].as_str().unwrap_or("");
                list.push_str(&format!(
                    "<li><code>{} {}</code> — {}</li>\n",
                    method.to_uppercase(),
                    path,
                    summary.replace('&', "&amp;").replace('<', "&lt;")
                ));
            }
        }
    }
    let html = format!(
        r##"<!doctype html>
<html><head><meta charset="utf-8"><title>voc API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css"></head>
<body>
<div id="swagger-ui"><h1>voc API</h1>
<p>The raw document is at <a href="/openapi.json">/openapi.json</a>.</p>
<ul>
{list}</ul></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/swagger-ui-init.js"></script>
</body></html>"##
    );
    ([(header::CONTENT_SECURITY_POLICY, PAGE_CSP)], Html(html))
}
