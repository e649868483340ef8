-- The labelers' review queue (issue 11).
--
-- review_items: one row per classified transcript and task, written in the same statement
-- as the prediction: the model's guess, the margin between its two most probable labels
-- (small = unsure) and the probabilities, a random key for unbiased samples, and how many current labels the
-- transcript has for the task (kept by a trigger on labels, whatever path wrote them).
-- The partial indexes cover the rows nobody labeled yet, so the `uncertain`, `random` and
-- `recent` rankings read the first rows of an index however many transcripts are stored.
CREATE TABLE review_items (
    transcript_id uuid NOT NULL REFERENCES transcripts (id) ON DELETE CASCADE,
    task          text NOT NULL,
    model_version text NOT NULL,
    guess         text NOT NULL,
    margin        real NOT NULL,
    -- {label: p} for this task under `model_version`.
    probabilities jsonb NOT NULL DEFAULT '{}'::jsonb,
    sample_key    integer NOT NULL DEFAULT (floor(random() * 2147483647))::integer,
    labeled       integer NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (transcript_id, task)
);
CREATE INDEX review_items_uncertain ON review_items (task, margin) WHERE labeled = 0;
CREATE INDEX review_items_random ON review_items (task, sample_key) WHERE labeled = 0;
CREATE INDEX review_items_recent ON review_items (task, created_at DESC) WHERE labeled = 0;
-- Unlabeled items scored by an older version, for re-scoring after a new one goes live.
CREATE INDEX review_items_version ON review_items (model_version) WHERE labeled = 0;
CREATE INDEX review_items_started ON review_items (task, created_at DESC) WHERE labeled > 0;

-- review_leases: who was shown which item, until when, and how it ended. A lease is open
-- while `finished` is null and `expires_at` is in the future.
CREATE TABLE review_leases (
    id            uuid PRIMARY KEY,
    transcript_id uuid NOT NULL,
    task          text NOT NULL,
    annotator     text NOT NULL,
    strategy      text NOT NULL CHECK (strategy IN ('uncertain', 'disagreement', 'random', 'recent')),
    leased_at     timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    finished      text CHECK (finished IN ('labeled', 'skipped')),
    finished_at   timestamptz,
    label         text,
    FOREIGN KEY (transcript_id, task) REFERENCES review_items (transcript_id, task) ON DELETE CASCADE
);
CREATE INDEX review_leases_item ON review_leases (transcript_id, task);
CREATE INDEX review_leases_annotator ON review_leases (annotator, task, leased_at DESC);

CREATE FUNCTION voc_review_count_labels() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE review_items r
    SET labeled = (SELECT count(*) FROM labels l
                   WHERE l.transcript_id = NEW.transcript_id AND l.task = NEW.task
                     AND l.superseded_at IS NULL)
    WHERE r.transcript_id = NEW.transcript_id AND r.task = NEW.task;
    RETURN NULL;
END $$;
CREATE TRIGGER labels_review_count AFTER INSERT OR UPDATE OF superseded_at ON labels
    FOR EACH ROW EXECUTE FUNCTION voc_review_count_labels();

-- Transcripts classified before this migration join the queue with their first prediction.
INSERT INTO review_items (transcript_id, task, model_version, guess, margin, probabilities, labeled, created_at)
SELECT DISTINCT ON (p.transcript_id, o.key)
       p.transcript_id, o.key, p.model_version, o.value->>'label',
       (SELECT COALESCE(s[1], 0) - COALESCE(s[2], 0)
        FROM (SELECT array_agg(v::real ORDER BY v::real DESC) AS s
              FROM jsonb_each_text(o.value->'probabilities') AS e(k, v)) AS sorted),
       COALESCE(o.value->'probabilities', '{}'::jsonb),
       (SELECT count(*) FROM labels l
        WHERE l.transcript_id = p.transcript_id AND l.task = o.key AND l.superseded_at IS NULL),
       p.created_at
FROM predictions p, jsonb_each(p.outputs) AS o
ORDER BY p.transcript_id, o.key, p.created_at;
