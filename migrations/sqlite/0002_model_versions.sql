-- Model versions get a lifecycle (candidate → active → retired, one active per tenant) and the
-- figures operators compare versions by. tenant_id 0 is the global model.

ALTER TABLE model_versions ADD COLUMN status TEXT NOT NULL DEFAULT 'candidate'
    CHECK (status IN ('candidate', 'active', 'retired'));
UPDATE model_versions SET status = CASE WHEN active THEN 'active' ELSE 'retired' END;
-- 0001 kept one active row per tenant; should several exist, the newest stays active.
UPDATE model_versions SET status = 'retired'
    WHERE status = 'active' AND created_at < (
        SELECT MAX(m.created_at) FROM model_versions m
        WHERE m.tenant_id = model_versions.tenant_id AND m.status = 'active');
ALTER TABLE model_versions DROP COLUMN active;

-- bootstrap | retrain | upload
ALTER TABLE model_versions ADD COLUMN source TEXT NOT NULL DEFAULT 'retrain';
ALTER TABLE model_versions ADD COLUMN train_size INTEGER;
ALTER TABLE model_versions ADD COLUMN test_size INTEGER;
ALTER TABLE model_versions ADD COLUMN roc_auc REAL;
ALTER TABLE model_versions ADD COLUMN training_seconds REAL;
UPDATE model_versions SET source = 'bootstrap' WHERE version LIKE 'bootstrap-%';

CREATE UNIQUE INDEX idx_model_versions_active ON model_versions (tenant_id) WHERE status = 'active';
CREATE INDEX idx_model_versions_created ON model_versions (tenant_id, created_at);
