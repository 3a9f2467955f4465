-- When the active execution is next due to be polled (Unix ms; NULL: not being polled —
-- pending, submitting, or ended). Written with every saved change: a value in the past means
-- "due now", so a replica taking the execution over polls it at once (a later issue hands
-- work between replicas by this column).
ALTER TABLE executions ADD COLUMN next_poll_at INTEGER;
CREATE INDEX executions_next_poll_at ON executions (next_poll_at) WHERE active = 1;
