-- Learning from feedback (issue 4): classes added after training, fine-tuning runs,
-- and transcripts loaded by `voc import`.

-- Classes added to a task through POST /tasks/{task}/labels; feedback may use them at once
-- and the next fine-tuning run grows the task's head to include them.
CREATE TABLE task_labels (
    task       text NOT NULL,
    label      text NOT NULL,
    added_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (task, label)
);

-- One fine-tuning run: queued (asked for), running, then one of the final states.
CREATE TABLE training_runs (
    id               bigserial PRIMARY KEY,
    state            text NOT NULL DEFAULT 'queued'
                     CHECK (state IN ('queued', 'running', 'promoted', 'rejected', 'failed', 'cancelled')),
    -- What started it: 'labels' (enough new labels), 'interval', or 'manual' (POST /training-runs).
    trigger          text NOT NULL,
    requested_at     timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    -- The process running it (host:pid) and when it last reported.
    owner            text,
    heartbeat_at     timestamptz,
    -- Labels with an id up to this one are in the run's snapshot.
    label_watermark  bigint,
    parent_version   text,
    candidate_version text,
    -- {labeled: {task: n}, eval: {task: n}, unlabeled: n}
    snapshot         jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- {epoch, step, planned_steps, loss, valid_score, examples_per_second, ...}
    progress         jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- The gate's scores of candidate and active model on the frozen evaluation set.
    evaluation       jsonb,
    -- Why it was promoted, rejected or failed.
    reason           text,
    cancel_requested boolean NOT NULL DEFAULT false
);
-- At most one queued or running run at a time.
CREATE UNIQUE INDEX training_runs_one_open ON training_runs ((true)) WHERE state IN ('queued', 'running');
CREATE INDEX training_runs_recent ON training_runs (id DESC);

-- Imported rows keep the id they had in their file, so a second import finds them.
ALTER TABLE transcripts ADD COLUMN source_id text;
CREATE UNIQUE INDEX transcripts_source_id ON transcripts (source_id) WHERE source_id IS NOT NULL;
-- Snapshots read the newest current label per transcript and task, and count new labels.
CREATE INDEX labels_current_by_task ON labels (task, transcript_id) WHERE superseded_at IS NULL;
-- Runs sample the newest unlabeled transcripts.
CREATE INDEX transcripts_created_at ON transcripts (created_at);
-- The gate's decision on a version trained by a run: {decision, reason, run, scores}.
ALTER TABLE model_versions ADD COLUMN gate jsonb;
