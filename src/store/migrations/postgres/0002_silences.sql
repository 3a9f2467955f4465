-- Silences (Alertmanager's model): `doc` is the whole silence as JSON; the times are its
-- projections for "active now" and retention.
CREATE TABLE silences (
    id          TEXT PRIMARY KEY,
    starts_at   BIGINT NOT NULL,
    ends_at     BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    doc         TEXT NOT NULL
);
CREATE INDEX silences_ends ON silences (ends_at);

-- A notification a silence covers waits as outcome 'silenced' (due at the silence's end) and
-- names the silence.
ALTER TABLE notifications ADD COLUMN silenced_by TEXT;
