-- jobwatch on PostgreSQL: the same tables as on SQLite (see ../sqlite/), plus the shards
-- several replicas lease, and the replicas' heartbeats. Every time in `shards` and `replicas`
-- is the database's (`now()`): no replica's clock decides who holds what.

-- The number of shards, set once per database.
CREATE TABLE cluster (
    shards INTEGER NOT NULL CHECK (shards > 0)
);
INSERT INTO cluster (shards) VALUES (256);

-- One row per shard: who holds it until when, and how many times it was acquired (`epoch`,
-- the fencing counter every write of an execution of the shard is checked against).
CREATE TABLE shards (
    shard       INTEGER PRIMARY KEY,
    owner       TEXT,
    lease_until TIMESTAMPTZ NOT NULL DEFAULT 'epoch',
    epoch       BIGINT NOT NULL DEFAULT 0
);
INSERT INTO shards (shard) SELECT s FROM generate_series(0, 255) AS s;

-- Live replicas (each renews its row with its leases), so that a replica holding no shard
-- yet counts when the others balance.
CREATE TABLE replicas (
    id         TEXT PRIMARY KEY,
    seen_until TIMESTAMPTZ NOT NULL,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE executions (
    id              TEXT PRIMARY KEY,          -- UUIDv7: sorts by creation time
    shard           INTEGER NOT NULL,          -- by id, for life
    check_name      TEXT NOT NULL,
    platform        TEXT NOT NULL,
    origin          TEXT NOT NULL,
    scheduled_at    BIGINT,                    -- Unix ms of the schedule tick, if scheduled
    trigger_status  TEXT NOT NULL,
    state           TEXT NOT NULL,
    active          BOOLEAN NOT NULL,          -- while state is pending or running
    job_instance_id BIGINT,
    created_at      BIGINT NOT NULL,           -- Unix ms
    updated_at      BIGINT NOT NULL,           -- Unix ms
    next_poll_at    BIGINT,                    -- Unix ms, as of the last saved change
    logs_pending    BOOLEAN NOT NULL DEFAULT FALSE,
    doc             TEXT NOT NULL
);
-- A scheduled tick is recorded once, whatever happens (restart, several replicas).
CREATE UNIQUE INDEX executions_tick ON executions (check_name, scheduled_at) WHERE scheduled_at IS NOT NULL;
CREATE INDEX executions_active ON executions (active, id);
CREATE INDEX executions_check ON executions (check_name, id);
CREATE INDEX executions_shard ON executions (shard, id) WHERE active;
CREATE INDEX executions_untriggered ON executions (shard) WHERE active AND next_poll_at IS NULL;
CREATE INDEX executions_ended ON executions (updated_at) WHERE NOT active;
CREATE INDEX executions_logs_pending ON executions (shard) WHERE NOT active AND logs_pending;

CREATE TABLE alerts (
    fingerprint TEXT PRIMARY KEY,
    status      TEXT NOT NULL,
    ends_at     BIGINT,
    updated_at  BIGINT NOT NULL,
    doc         TEXT NOT NULL
);

-- The outbox. `claimed_by`/`claim_until`: the replica sending it now, until when (database
-- time); another replica takes it only after.
CREATE TABLE notifications (
    id              BIGSERIAL PRIMARY KEY,
    version         BIGINT NOT NULL DEFAULT 1,
    receiver        TEXT NOT NULL,
    group_key       TEXT NOT NULL,
    fingerprint     TEXT NOT NULL,
    status          TEXT NOT NULL,
    kind            TEXT NOT NULL,
    alert           TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    due_at          BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    outcome         TEXT NOT NULL,
    last_error      TEXT,
    last_attempt_at BIGINT,
    delivered_at    BIGINT,
    claimed_by      TEXT,
    claim_until     TIMESTAMPTZ
);
CREATE INDEX notifications_due ON notifications (receiver, outcome, due_at);
CREATE INDEX notifications_alert ON notifications (receiver, fingerprint, id);
CREATE INDEX notifications_group ON notifications (receiver, group_key, outcome);
CREATE INDEX notifications_done ON notifications (outcome, created_at);
