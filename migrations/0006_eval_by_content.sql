-- The frozen evaluation set by content (issue 9, item 5). Membership used to hash the random
-- transcript id given at insert, so the same text imported twice could sit on both sides and a
-- model trained on a file before importing it had seen ~10 % of the "frozen" rows.
--
-- Now each transcript gets a bucket 0..9999 from the SHA-256 of its text with every run of
-- ASCII whitespace folded into one space and the ends trimmed (the first 60 bits of the digest,
-- modulo 10000), recorded once at insert: a later rewrite of the text (`voc redact`) keeps it.
-- `voc::learning::eval_set::eval_bucket` computes the same function for files.
CREATE FUNCTION voc_eval_bucket(body text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT (('x' || substr(encode(sha256(convert_to(
      btrim(regexp_replace(body, '[ \t\n\r\f\v]+', ' ', 'g'), ' '), 'UTF8')), 'hex'), 1, 15)
    )::bit(60)::bigint % 10000)::integer
$$;

ALTER TABLE transcripts ADD COLUMN eval_bucket integer;
UPDATE transcripts SET eval_bucket = voc_eval_bucket(text);
ALTER TABLE transcripts ALTER COLUMN eval_bucket SET NOT NULL;

CREATE FUNCTION voc_set_eval_bucket() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.eval_bucket := voc_eval_bucket(NEW.text);
  RETURN NEW;
END
$$;
CREATE TRIGGER transcripts_eval_bucket BEFORE INSERT ON transcripts
  FOR EACH ROW EXECUTE FUNCTION voc_set_eval_bucket();

-- Settings of the learning loop that must not change per process: the first server that
-- starts records its evaluation share here and every later one uses the recorded value.
CREATE TABLE learning_settings (
    name        text PRIMARY KEY,
    value       double precision NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
