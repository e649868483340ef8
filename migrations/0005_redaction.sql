-- PII redaction (issue 9): which redactor version last rewrote a stored transcript's text.
-- 0: never (rows stored before redaction existed, or with redaction turned off);
-- `voc redact` rewrites the rows below the current version in batches by id and marks them,
-- so an interrupted run resumes where it stopped.
ALTER TABLE transcripts ADD COLUMN redaction_version smallint NOT NULL DEFAULT 0;
CREATE INDEX transcripts_redaction_pending ON transcripts (redaction_version, id);
