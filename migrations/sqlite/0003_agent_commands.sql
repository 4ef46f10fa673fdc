-- Agent commands: what an analyst asks an agent to do, delivered when the agent polls and
-- completed when it reports a result. Status: pending → delivered → succeeded | failed.
ALTER TABLE agent_commands ADD COLUMN parameters TEXT NOT NULL DEFAULT '{}';  -- JSON object
ALTER TABLE agent_commands ADD COLUMN issued_by_key INTEGER;                  -- api_keys.id
ALTER TABLE agent_commands ADD COLUMN delivered_at INTEGER;
ALTER TABLE agent_commands ADD COLUMN completed_at INTEGER;
ALTER TABLE agent_commands ADD COLUMN result TEXT;                            -- JSON, from the agent
CREATE INDEX idx_agent_commands_agent ON agent_commands (tenant_id, agent_id, id);
-- The per-tenant rate limit counts the last minute's commands.
CREATE INDEX idx_agent_commands_created ON agent_commands (tenant_id, created_at);
