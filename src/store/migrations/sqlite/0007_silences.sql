-- Silences (Alertmanager's model): `doc` is the whole silence as JSON; the times are its
-- projections for "active now" and retention.
CREATE TABLE silences (
    id          TEXT PRIMARY KEY,          -- UUIDv7
    starts_at   INTEGER NOT NULL,          -- Unix ms
    ends_at     INTEGER NOT NULL,          -- Unix ms (the moment it was expired, if by hand)
    updated_at  INTEGER NOT NULL,          -- Unix ms
    doc         TEXT NOT NULL
);
CREATE INDEX silences_ends ON silences (ends_at);

-- A notification a silence covers waits as outcome 'silenced' (due at the silence's end) and
-- names the silence.
ALTER TABLE notifications ADD COLUMN silenced_by TEXT;
