-- Alerts: one row per fingerprint (label set), its current status and holders (`doc` is the
-- whole alert as JSON; `status`, `ends_at` are projections for the outbox's repeat pass).
CREATE TABLE alerts (
    fingerprint TEXT PRIMARY KEY,
    status      TEXT NOT NULL,             -- firing | resolved
    ends_at     INTEGER,                   -- Unix ms, when resolved
    updated_at  INTEGER NOT NULL,          -- Unix ms
    doc         TEXT NOT NULL
);

-- The outbox: one row per notification of one alert to one receiver. Written in the same
-- transaction as the execution state change that caused it; delivered by the receiver's
-- worker; kept after delivery (the notification log: outcome, attempts, last error).
CREATE TABLE notifications (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    version         INTEGER NOT NULL DEFAULT 1, -- bumped when a pending row takes a newer alert state
    receiver        TEXT NOT NULL,
    group_key       TEXT NOT NULL,
    fingerprint     TEXT NOT NULL,
    status          TEXT NOT NULL,             -- firing | resolved (of the alert snapshot)
    kind            TEXT NOT NULL,             -- new | repeat
    alert           TEXT NOT NULL,             -- the alert snapshot (JSON)
    created_at      INTEGER NOT NULL,          -- Unix ms
    due_at          INTEGER NOT NULL,          -- Unix ms: not before (group timers, retry backoff)
    attempts        INTEGER NOT NULL DEFAULT 0,
    outcome         TEXT NOT NULL,             -- pending | errored (will retry) | delivered | rejected
    last_error      TEXT,
    last_attempt_at INTEGER,
    delivered_at    INTEGER
);

CREATE INDEX notifications_due ON notifications (receiver, outcome, due_at);
CREATE INDEX notifications_alert ON notifications (receiver, fingerprint, id);
CREATE INDEX notifications_group ON notifications (receiver, group_key, outcome);
