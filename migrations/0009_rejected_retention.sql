-- Versions the gate rejected stay on disk for inspection (and a manual activation) for a
-- retention period, then the scheduler removes their folders; the row stays (predictions
-- refer to it) and says when the files went.
ALTER TABLE model_versions ADD COLUMN files_removed_at timestamptz;
