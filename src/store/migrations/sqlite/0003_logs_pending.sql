-- Ended executions whose logs were still being fetched (read at every start): a partial
-- index, so the start does not scan the whole history.
CREATE INDEX executions_logs_pending ON executions (id)
    WHERE active = 0 AND json_extract(doc, '$.logs_pending') = 1;
