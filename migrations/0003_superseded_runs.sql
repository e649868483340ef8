-- A run whose candidate passed the gate but whose parent was no longer the active version
-- when it finished (someone rolled back or activated another version meanwhile) ends
-- 'superseded': its candidate stays on disk and the active version is left alone.
ALTER TABLE training_runs DROP CONSTRAINT training_runs_state_check;
ALTER TABLE training_runs ADD CONSTRAINT training_runs_state_check
    CHECK (state IN ('queued', 'running', 'promoted', 'rejected', 'failed', 'cancelled', 'superseded'));
