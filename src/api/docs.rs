//! GET /openapi.json (a hand-written OpenAPI 3.1 document) and GET /docs (a page that renders
//! it with Swagger UI from a CDN, with a plain route list for when the CDN is out of reach).

use axum::response::Html;
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

/// The OpenAPI document for every route of [`super::app`].
pub fn document() -> Value {
    let common = |extra: Value| {
        let mut r = json!({
            "400": error_response("The body is not valid JSON"),
            "401": error_response("Missing or unknown API key"),
            "413": error_response("The body is over the size limit"),
            "422": error_response("The JSON does not have the expected shape or values"),
            "503": error_response("Queue full or database unavailable; see Retry-After"),
        });
        if let (Some(r), Some(e)) = (r.as_object_mut(), extra.as_object()) {
            r.extend(e.clone());
        }
        r
    };
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
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                    "type": "object", "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {}}}}},
                "TranscriptIn": {"type": "object", "required": ["text"], "additionalProperties": false, "properties": {
                    "text": {"type": "string", "minLength": 1},
                    "call_id": {"type": ["string", "null"]},
                    "metadata": {"type": ["object", "null"]}}},
                "ClassifyRequest": {"oneOf": [
                    {"$ref": "#/components/schemas/TranscriptIn"},
                    {"type": "object", "required": ["items"], "additionalProperties": false, "properties": {
                        "items": {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/TranscriptIn"}}}}]},
                "TaskPrediction": {"type": "object", "properties": {
                    "label": {"type": "string"}, "confidence": {"type": "number"},
                    "probabilities": {"type": "object", "additionalProperties": {"type": "number"}}}},
                "Classification": {"type": "object", "properties": {
                    "transcript_id": {"type": "string", "format": "uuid"},
                    "prediction_id": {"type": "string", "format": "uuid"},
                    "model_version": {"type": "string"},
                    "predictions": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/TaskPrediction"}},
                    "latency_ms": {"type": "number"},
                    "redacted": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 1},
                        "description": "personal data replaced by tags before the text was classified and stored, as counts per kind (CARD, PHONE, EMAIL, RRN, IBAN, SSN, NUMBER); {} when none or when the server runs with --no-redact"}}},
                "ClassifyResponse": {"oneOf": [
                    {"$ref": "#/components/schemas/Classification"},
                    {"type": "object", "properties": {"results": {"type": "array", "items": {"$ref": "#/components/schemas/Classification"}}}}]},
                "FeedbackRequest": {"type": "object", "required": ["labels"], "additionalProperties": false, "properties": {
                    "transcript_id": {"type": "string", "format": "uuid"},
                    "prediction_id": {"type": "string", "format": "uuid"},
                    "call_id": {"type": "string"},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}, "description": "task -> label; both must be the active model's"},
                    "annotator": {"type": "string"}}},
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
                    "version": {"type": "string"}, "path": {"type": "string"}, "tasks": {"type": "array"},
                    "metrics": {"type": "object"}, "active": {"type": "boolean"},
                    "created_at": {"type": "string"}, "activated_at": {"type": ["string", "null"]},
                    "gate": {"type": ["object", "null"], "description": "for versions made by a training run: {decision: promoted|rejected, reason, run, tasks}"}}},
                "TrainingRun": {"type": "object", "properties": {
                    "id": {"type": "integer"},
                    "state": {"enum": ["queued", "running", "promoted", "rejected", "failed", "cancelled"]},
                    "trigger": {"enum": ["labels", "interval", "manual"]},
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
            }
        },
        "paths": {
            "/classify": {"post": {
                "summary": "Classify and store one transcript (`text`) or a batch (`items`)",
                "security": [{"bearer": []}, {"apiKey": []}],
                "requestBody": json_body("ClassifyRequest"),
                "responses": common(json!({"200": ok("ClassifyResponse")}))}},
            "/feedback": {"post": {
                "summary": "Record human labels for a transcript (admin key)",
                "security": [{"bearer": []}, {"apiKey": []}],
                "requestBody": json_body("FeedbackRequest"),
                "responses": common(json!({"200": ok("FeedbackResponse"), "404": error_response("No such transcript, prediction or call"), "409": error_response("The call_id held personal data and, redacted, names more than one transcript")}))}},
            "/transcripts/{id}": {"get": {
                "summary": "A transcript with its predictions and labels (admin key)",
                "security": [{"bearer": []}, {"apiKey": []}],
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}}],
                "responses": common(json!({"200": ok("Transcript"), "404": error_response("No such transcript")}))}},
            "/models": {"get": {
                "summary": "Every registered model version",
                "security": [{"bearer": []}, {"apiKey": []}],
                "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object", "properties": {"versions": {"type": "array", "items": {"$ref": "#/components/schemas/ModelVersion"}}}}}}}}}},
            "/models/active": {"get": {
                "summary": "The version being served, its tasks and labels",
                "security": [{"bearer": []}, {"apiKey": []}],
                "responses": {"200": {"description": "OK"}}}},
            "/models/{version}/activate": {"post": {
                "summary": "Serve a stored version here and in every process on the database: rollback (admin key)",
                "security": [{"bearer": []}, {"apiKey": []}],
                "parameters": [{"name": "version", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": ok("ModelVersion"), "404": error_response("No such version"), "409": error_response("The version cannot be loaded")}}},
            "/tasks": {"get": {
                "summary": "The active model's tasks and classes, and classes added since that the next run will learn",
                "security": [{"bearer": []}, {"apiKey": []}],
                "responses": {"200": {"description": "OK"}}}},
            "/tasks/{task}/labels": {"post": {
                "summary": "Add a class to a task (admin key); feedback may use it at once, the next training run learns it",
                "security": [{"bearer": []}, {"apiKey": []}],
                "parameters": [{"name": "task", "in": "path", "required": true, "schema": {"type": "string"}}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["label"], "additionalProperties": false, "properties": {"label": {"type": "string", "minLength": 1, "maxLength": 100}}}}}},
                "responses": common(json!({"201": {"description": "Added"}, "200": {"description": "Already known"}, "404": error_response("No such task")}))}},
            "/training-runs": {
                "get": {
                    "summary": "Fine-tuning runs, newest first (`?limit=`, default 50)",
                    "security": [{"bearer": []}, {"apiKey": []}],
                    "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object", "properties": {"runs": {"type": "array", "items": {"$ref": "#/components/schemas/TrainingRun"}}}}}}}}},
                "post": {
                    "summary": "Ask for a fine-tuning run now (admin key); answers the open run if one is queued or running",
                    "security": [{"bearer": []}, {"apiKey": []}],
                    "responses": {"202": {"description": "Queued"}, "200": {"description": "A run is already queued or running"}}}},
            "/training-runs/{id}": {"get": {
                "summary": "One run: state, progress, snapshot, the gate's evaluation and decision",
                "security": [{"bearer": []}, {"apiKey": []}],
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}],
                "responses": {"200": ok("TrainingRun"), "404": error_response("No such run")}}},
            "/training-runs/{id}/cancel": {"post": {
                "summary": "Cancel a queued run, or stop a running one at its next step (admin key)",
                "security": [{"bearer": []}, {"apiKey": []}],
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}],
                "responses": {"202": ok("TrainingRun"), "404": error_response("No such run"), "409": error_response("The run already ended")}}},
            "/health": {"get": {"summary": "Liveness (alias /healthz)", "responses": {"200": {"description": "OK"}}}},
            "/ready": {"get": {"summary": "Readiness: the model is loaded and the database answers (alias /readyz)", "responses": {"200": {"description": "OK"}, "503": error_response("Database unavailable")}}},
            "/metrics": {"get": {"summary": "Prometheus metrics (text format); needs a key when keys are configured, unless --public-metrics", "security": [{}, {"bearer": []}, {"apiKey": []}], "responses": {"200": {"description": "OK", "content": {"text/plain": {}}}, "401": error_response("Missing or unknown API key")}}},
            "/openapi.json": {"get": {"summary": "This document; needs a key when keys are configured, unless --public-docs", "security": [{}, {"bearer": []}, {"apiKey": []}], "responses": {"200": {"description": "OK"}, "401": error_response("Missing or unknown API key")}}},
            "/docs": {"get": {"summary": "API documentation page; needs a key when keys are configured, unless --public-docs", "security": [{}, {"bearer": []}, {"apiKey": []}], "responses": {"200": {"description": "OK", "content": {"text/html": {}}}, "401": error_response("Missing or unknown API key")}}}
        }
    })
}

pub async fn openapi() -> Json<Value> {
    Json(document())
}

pub async fn page() -> Html<String> {
    let doc = document();
    let mut list = String::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, ops) in paths {
            for (method, op) in ops.as_object().into_iter().flatten() {
                let summary = op["summary"].as_str().unwrap_or("");
                list.push_str(&format!(
                    "<li><code>{} {}</code> — {}</li>\n",
                    method.to_uppercase(),
                    path,
                    summary.replace('<', "&lt;")
                ));
            }
        }
    }
    Html(format!(
        r##"<!doctype html>
<html><head><meta charset="utf-8"><title>voc API</title>
<link rel="stylesheet" href="https://unpkg.com/swagger-ui-dist@5/swagger-ui.css"></head>
<body>
<div id="swagger-ui"><h1>voc API</h1>
<p>The interactive view needs the Swagger UI CDN; the raw document is at <a href="/openapi.json">/openapi.json</a>.</p>
<ul>
{list}</ul></div>
<script src="https://unpkg.com/swagger-ui-dist@5/swagger-ui-bundle.js" crossorigin></script>
<script>if (window.SwaggerUIBundle) {{ SwaggerUIBundle({{url: "/openapi.json", dom_id: "#swagger-ui"}}); }}</script>
</body></html>"##
    ))
}
