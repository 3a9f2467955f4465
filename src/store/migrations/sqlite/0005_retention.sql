-- Retention: ended executions are pruned by age of their last write.
CREATE INDEX executions_ended ON executions (active, updated_at);
-- Delivered and rejected notifications are pruned by age.
CREATE INDEX notifications_done ON notifications (outcome, created_at);
