-- One row per execution (one trigger attempt of one check, with or without a job instance).
-- `doc` is the whole execution report as JSON; the other columns are its indexed projections.
CREATE TABLE executions (
    id              TEXT PRIMARY KEY,          -- UUIDv7: sorts by creation time
    check_name      TEXT NOT NULL,
    platform        TEXT NOT NULL,
    origin          TEXT NOT NULL,             -- cli | schedule | api | watch
    scheduled_at    INTEGER,                   -- Unix ms of the schedule tick, if scheduled
    trigger_status  TEXT NOT NULL,
    state           TEXT NOT NULL,
    active          INTEGER NOT NULL,          -- 1 while state is pending or running
    job_instance_id INTEGER,
    created_at      INTEGER NOT NULL,          -- Unix ms
    updated_at      INTEGER NOT NULL,          -- Unix ms
    doc             TEXT NOT NULL
);

-- A scheduled tick is recorded once, whatever happens (restart, several replicas).
CREATE UNIQUE INDEX executions_tick ON executions (check_name, scheduled_at) WHERE scheduled_at IS NOT NULL;
CREATE INDEX executions_active ON executions (active, id);
CREATE INDEX executions_check ON executions (check_name, id);
