-- Retraining samples a tenant's recent logs for the anomaly model and leaves out those an
-- analyst's verdict labeled malicious: a lookup of (tenant_id, log_id) per sampled log.
CREATE INDEX idx_labels_log ON labels (tenant_id, log_id);
