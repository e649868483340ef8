-- The service's tables: model versions, transcripts, predictions and human labels.
-- Training runs (issue 4) arrive in a later numbered migration; applied migrations are never edited.

CREATE TABLE model_versions (
    version      text PRIMARY KEY,
    path         text NOT NULL,
    tasks        jsonb NOT NULL,
    metrics      jsonb NOT NULL DEFAULT '{}'::jsonb,
    active       boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    activated_at timestamptz
);
-- At most one active version.
CREATE UNIQUE INDEX model_versions_one_active ON model_versions (active) WHERE active;

CREATE TABLE transcripts (
    id         uuid PRIMARY KEY,
    call_id    text,
    text       text NOT NULL,
    metadata   jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX transcripts_call_id ON transcripts (call_id, created_at) WHERE call_id IS NOT NULL;

CREATE TABLE predictions (
    id            uuid PRIMARY KEY,
    transcript_id uuid NOT NULL REFERENCES transcripts (id) ON DELETE CASCADE,
    model_version text NOT NULL REFERENCES model_versions (version),
    -- {task: {label, confidence, probabilities: {label: p}}}
    outputs       jsonb NOT NULL,
    latency_ms    real NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX predictions_transcript ON predictions (transcript_id);

CREATE TABLE labels (
    id            bigserial PRIMARY KEY,
    transcript_id uuid NOT NULL REFERENCES transcripts (id) ON DELETE CASCADE,
    task          text NOT NULL,
    label         text NOT NULL,
    source        text NOT NULL CHECK (source IN ('feedback', 'import')),
    annotator     text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- Set when a later label by the same annotator for the same task replaces this one.
    superseded_at timestamptz
);
-- One current label per transcript, task and annotator; history stays in superseded rows.
CREATE UNIQUE INDEX labels_current
    ON labels (transcript_id, task, (COALESCE(annotator, '')))
    WHERE superseded_at IS NULL;
CREATE INDEX labels_transcript ON labels (transcript_id);
