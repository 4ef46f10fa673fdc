-- CodeGrey SOC schema (SQLite). Same tables and columns as migrations/postgres; ids are rowids
-- (unique across tenants), with (tenant_id, id) unique for tenant-scoped foreign keys.

CREATE TABLE tenants (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    max_agents  INTEGER,
    created_at  INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   INTEGER NOT NULL REFERENCES tenants (id),
    lookup      TEXT NOT NULL,
    key_hash    BLOB NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'analyst', 'agent')),
    name        TEXT,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX idx_api_keys_lookup ON api_keys (lookup);
CREATE UNIQUE INDEX idx_api_keys_tenant ON api_keys (tenant_id, id);

CREATE TABLE agents (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   INTEGER NOT NULL REFERENCES tenants (id),
    hostname    TEXT NOT NULL,
    os          TEXT,
    ip_address  TEXT,
    version     TEXT,
    created_at  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    UNIQUE (tenant_id, hostname)
);
CREATE UNIQUE INDEX idx_agents_tenant ON agents (tenant_id, id);

CREATE TABLE agent_logs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   INTEGER NOT NULL,
    agent_id    INTEGER NOT NULL,
    timestamp   INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    source      TEXT,
    level       TEXT,
    message     TEXT NOT NULL,
    scored      BOOLEAN NOT NULL DEFAULT FALSE,
    FOREIGN KEY (tenant_id, agent_id) REFERENCES agents (tenant_id, id)
);
CREATE UNIQUE INDEX idx_agent_logs_tenant ON agent_logs (tenant_id, id);
CREATE INDEX idx_agent_logs_timestamp ON agent_logs (tenant_id, timestamp);
CREATE INDEX idx_agent_logs_agent ON agent_logs (tenant_id, agent_id, id);
CREATE INDEX idx_agent_logs_pending ON agent_logs (id) WHERE NOT scored;

CREATE TABLE threat_detections (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id             INTEGER NOT NULL,
    log_id                INTEGER NOT NULL,
    agent_id              INTEGER NOT NULL,
    risk                  REAL NOT NULL,
    severity              TEXT NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    anomaly               REAL NOT NULL,
    malicious_probability REAL NOT NULL,
    model_version         TEXT NOT NULL,
    explanation           TEXT NOT NULL,
    status                TEXT NOT NULL DEFAULT 'open'
                          CHECK (status IN ('open', 'acknowledged', 'resolved')),
    verdict               TEXT CHECK (verdict IN ('true_positive', 'false_positive')),
    assignee              TEXT,
    note                  TEXT,
    detected_at           INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL,
    UNIQUE (tenant_id, log_id),
    FOREIGN KEY (tenant_id, log_id) REFERENCES agent_logs (tenant_id, id)
);
CREATE UNIQUE INDEX idx_threat_detections_tenant ON threat_detections (tenant_id, id);
CREATE INDEX idx_threat_detections_severity ON threat_detections (tenant_id, severity);
CREATE INDEX idx_threat_detections_detected ON threat_detections (tenant_id, detected_at);

CREATE TABLE model_versions (
    tenant_id   INTEGER NOT NULL DEFAULT 0,
    version     TEXT NOT NULL,
    key         TEXT NOT NULL,
    metrics     TEXT NOT NULL,
    active      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, version)
);

CREATE TABLE labels (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   INTEGER NOT NULL REFERENCES tenants (id),
    threat_id   INTEGER,
    log_id      INTEGER,
    message     TEXT NOT NULL,
    malicious   BOOLEAN NOT NULL,
    source      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (tenant_id, threat_id)
);

CREATE TABLE agent_commands (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   INTEGER NOT NULL,
    agent_id    INTEGER NOT NULL,
    command     TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'pending',
    created_at  INTEGER NOT NULL,
    FOREIGN KEY (tenant_id, agent_id) REFERENCES agents (tenant_id, id)
);
CREATE UNIQUE INDEX idx_agent_commands_tenant ON agent_commands (tenant_id, id);
