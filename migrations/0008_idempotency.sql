-- POST /classify with an Idempotency-Key: the transcript's id is derived from the key, and
-- the digest of the (redacted) request it answered is kept so that the same key sent with
-- another request is refused instead of answered with the first one's result.
ALTER TABLE transcripts ADD COLUMN request_digest BYTEA;
