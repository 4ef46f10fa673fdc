//! All SQL of the server: one [`Db`] over PostgreSQL or SQLite (sqlx), implementing soc-core's
//! [`Storage`] plus the queries of the API. Times are milliseconds since the Unix epoch on both
//! backends. The SQL text is shared where both databases accept it (`$1` placeholders work on
//! SQLite too); the detection queue differs (`FOR UPDATE SKIP LOCKED` vs `BEGIN IMMEDIATE`).

use std::collections::BTreeSet;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use soc_core::store::{
    BatchScorer, NewDetection, PendingLog, Storage, StorageError, TenantId, TrainingExample,
};
use sqlx::FromRow;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

static PG_MIGRATOR: Migrator = sqlx::migrate!("../migrations/postgres");
static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("../migrations/sqlite");

/// Channel of the PostgreSQL NOTIFY sent when logs are committed (wakes other replicas).
pub const LOGS_CHANNEL: &str = "soc_logs";

/// The database, PostgreSQL or SQLite. Cheap to clone (a pool handle).
#[derive(Debug, Clone)]
pub enum Db {
    /// Production backend.
    Postgres(PgPool),
    /// Embedded default.
    Sqlite(SqlitePool),
}

/// Runs `$body` with `$pool` bound to the pool of either backend (the body is compiled twice).
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            Db::Postgres($pool) => $body,
            Db::Sqlite($pool) => $body,
        }
    };
}

/// Serializes milliseconds since the epoch as an RFC 3339 UTC timestamp.
pub fn ser_ms<S: serde::Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&ms_to_rfc3339(*ms))
}

/// [`ser_ms`] for an optional time (`null` when absent).
pub fn ser_opt_ms<S: serde::Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => s.serialize_str(&ms_to_rfc3339(*ms)),
        None => s.serialize_none(),
    }
}

/// `2026-11-24T18:00:00.000Z` for milliseconds since the epoch.
pub fn ms_to_rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Maps a sqlx error to the storage error vocabulary (details go to the log, not to clients).
pub(crate) fn db_err(e: sqlx::Error) -> StorageError {
    match &e {
        sqlx::Error::RowNotFound => StorageError::NotFound("row".into()),
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            StorageError::Conflict(d.message().to_owned())
        }
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
            StorageError::Conflict(d.message().to_owned())
        }
        _ => StorageError::Unavailable(e.to_string()),
    }
}

type R<T> = Result<T, StorageError>;

/// A tenant.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Tenant {
    /// Id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Agent limit override.
    pub max_agents: Option<i64>,
    /// Creation time (ms).
    #[serde(serialize_with = "ser_ms")]
    pub created_at: i64,
}

/// A stored API key (hash only).
#[derive(Debug, Clone, FromRow)]
pub struct ApiKeyRow {
    /// Tenant.
    pub tenant_id: i64,
    /// Key id.
    pub id: i64,
    /// SHA-256 of the key.
    pub key_hash: Vec<u8>,
    /// admin / analyst / agent.
    pub role: String,
}

/// An agent.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Agent {
    /// Id.
    pub id: i64,
    /// Tenant.
    #[serde(skip)]
    pub tenant_id: i64,
    /// Host name (unique per tenant).
    pub hostname: String,
    /// Operating system.
    pub os: Option<String>,
    /// IP address as reported.
    pub ip_address: Option<String>,
    /// Agent version.
    pub version: Option<String>,
    /// Registration time (ms).
    #[serde(serialize_with = "ser_ms")]
    pub created_at: i64,
    /// Last registration, heartbeat or log batch (ms).
    #[serde(serialize_with = "ser_ms")]
    pub last_seen: i64,
}

/// What an agent reports when it registers.
#[derive(Debug, Clone, Default)]
pub struct AgentInfo {
    /// Host name.
    pub hostname: String,
    /// Operating system.
    pub os: Option<String>,
    /// IP address.
    pub ip_address: Option<String>,
    /// Agent version.
    pub version: Option<String>,
}

/// Result of a registration.
#[derive(Debug)]
pub enum Registered {
    /// A new agent.
    Created(Agent),
    /// The hostname was already registered: same agent, refreshed.
    Existing(Agent),
    /// The tenant reached its agent limit.
    LimitReached(i64),
}

/// A command for an agent (`parameters` and `result` are JSON text).
#[derive(Debug, Clone, FromRow)]
pub struct AgentCommand {
    /// Id.
    pub id: i64,
    /// The agent it is for.
    pub agent_id: i64,
    /// What to do (`collect_logs`, `isolate_host`, …).
    pub command: String,
    /// JSON object.
    pub parameters: String,
    /// pending, delivered, succeeded or failed.
    pub status: String,
    /// Key that issued it.
    pub issued_by_key: Option<i64>,
    /// Creation time (ms).
    pub created_at: i64,
    /// First delivery to the agent (ms).
    pub delivered_at: Option<i64>,
    /// When the agent reported its result (ms).
    pub completed_at: Option<i64>,
    /// JSON, as reported by the agent.
    pub result: Option<String>,
}

/// Result of issuing a command.
#[derive(Debug)]
pub enum CommandIssued {
    /// Stored, pending.
    Created(AgentCommand),
    /// The agent is not the tenant's.
    NoSuchAgent,
    /// The tenant issued its per-minute allowance; a slot frees after this many milliseconds.
    RateLimited { retry_after_ms: i64 },
}

/// Result of an agent reporting a command's outcome.
#[derive(Debug)]
pub enum CommandCompleted {
    /// Recorded now.
    Completed(AgentCommand),
    /// It had completed before (the stored row is returned unchanged).
    AlreadyCompleted(AgentCommand),
    /// No such command for this agent.
    NotFound,
}

/// Command statuses an agent may report.
pub const COMMAND_RESULTS: [&str; 2] = ["succeeded", "failed"];
/// Every command status.
pub const COMMAND_STATUSES: [&str; 4] = ["pending", "delivered", "succeeded", "failed"];

const COMMAND_COLUMNS: &str = "id, agent_id, command, parameters, status, issued_by_key, \
     created_at, delivered_at, completed_at, result";

/// A log to insert.
#[derive(Debug, Clone)]
pub struct NewLog {
    /// Agent id (must belong to the tenant).
    pub agent_id: i64,
    /// Event time (ms).
    pub timestamp: i64,
    /// Source (file, channel…).
    pub source: Option<String>,
    /// Level.
    pub level: Option<String>,
    /// The line.
    pub message: String,
}

/// Result of an ingest.
#[derive(Debug)]
pub enum Ingested {
    /// Committed: first and last ids, commit time.
    Committed {
        /// Number of logs.
        count: usize,
        /// Commit time (ms).
        received_at: i64,
    },
    /// Some agent ids are not agents of the tenant: nothing was written.
    UnknownAgents(Vec<i64>),
}

/// A stored log.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct LogRow {
    /// Id.
    pub id: i64,
    /// Agent.
    pub agent_id: i64,
    /// Event time (ms).
    #[serde(serialize_with = "ser_ms")]
    pub timestamp: i64,
    /// Commit time (ms).
    #[serde(serialize_with = "ser_ms")]
    pub received_at: i64,
    /// Source.
    pub source: Option<String>,
    /// Level.
    pub level: Option<String>,
    /// The line.
    pub message: String,
    /// Whether the detection pipeline has scored it.
    pub scored: bool,
}

/// Filters of `GET /api/logs`.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    /// Only this agent.
    pub agent_id: Option<i64>,
    /// Event time ≥ (ms).
    pub since: Option<i64>,
    /// Event time < (ms).
    pub until: Option<i64>,
    /// Ids < cursor (newest first).
    pub before_id: Option<i64>,
    /// Page size.
    pub limit: i64,
}

/// A threat (detection) row.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Threat {
    /// Id.
    pub id: i64,
    /// Log the threat is about.
    pub log_id: i64,
    /// Agent.
    pub agent_id: i64,
    /// Risk 0–10.
    pub risk: f64,
    /// low / medium / high / critical.
    pub severity: String,
    /// Calibrated anomaly.
    pub anomaly: f64,
    /// Malicious probability.
    pub malicious_probability: f64,
    /// Model version.
    pub model_version: String,
    /// Explanation (JSON text).
    #[serde(skip)]
    pub explanation: String,
    /// open / acknowledged / resolved.
    pub status: String,
    /// true_positive / false_positive.
    pub verdict: Option<String>,
    /// Assignee.
    pub assignee: Option<String>,
    /// Note.
    pub note: Option<String>,
    /// Detection time (ms).
    #[serde(serialize_with = "ser_ms")]
    pub detected_at: i64,
    /// Last change (ms).
    #[serde(serialize_with = "ser_ms")]
    pub updated_at: i64,
}

/// Filters of `GET /api/threats`.
#[derive(Debug, Clone, Default)]
pub struct ThreatFilter {
    /// Severity.
    pub severity: Option<String>,
    /// Status.
    pub status: Option<String>,
    /// Agent.
    pub agent_id: Option<i64>,
    /// Detected ≥ (ms).
    pub since: Option<i64>,
    /// Detected < (ms).
    pub until: Option<i64>,
    /// Ids < cursor.
    pub before_id: Option<i64>,
    /// Page size.
    pub limit: i64,
}

/// A triage change (`None`: unchanged).
#[derive(Debug, Clone, Default)]
pub struct ThreatUpdate {
    /// New status.
    pub status: Option<String>,
    /// New verdict (also stored as a training label).
    pub verdict: Option<String>,
    /// New assignee.
    pub assignee: Option<String>,
    /// New note.
    pub note: Option<String>,
}

/// The tenant id of global model versions (the fallback of every tenant).
pub const GLOBAL_TENANT: i64 = 0;

/// A model version row.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct ModelVersion {
    /// Owner: a tenant, or [`GLOBAL_TENANT`].
    pub tenant_id: i64,
    /// Version string (unique per tenant).
    pub version: String,
    /// Model store key of the artifact.
    #[serde(skip)]
    pub key: String,
    /// candidate / active / retired.
    pub status: String,
    /// bootstrap / retrain / upload.
    pub source: String,
    /// Metrics and corpus details (JSON text).
    #[serde(skip)]
    pub metrics: String,
    /// Training examples (labeled), when trained by the server.
    pub train_size: Option<i64>,
    /// Held-out examples the metrics were measured on.
    pub test_size: Option<i64>,
    /// Held-out ROC AUC of the risk score.
    pub roc_auc: Option<f64>,
    /// Training wall time in seconds, when trained by the server.
    pub training_seconds: Option<f64>,
    /// Creation time (ms).
    #[serde(serialize_with = "ser_ms")]
    pub created_at: i64,
}

/// A model version to record.
#[derive(Debug, Clone)]
pub struct NewModelVersion {
    /// Owner: a tenant, or [`GLOBAL_TENANT`].
    pub tenant_id: i64,
    /// Version string.
    pub version: String,
    /// Model store key.
    pub key: String,
    /// bootstrap / retrain / upload.
    pub source: &'static str,
    /// Metrics and corpus details (JSON).
    pub metrics: serde_json::Value,
    /// Training examples.
    pub train_size: Option<i64>,
    /// Held-out examples.
    pub test_size: Option<i64>,
    /// Held-out ROC AUC.
    pub roc_auc: Option<f64>,
    /// Training wall time (s).
    pub training_seconds: Option<f64>,
}

/// Cursor of `GET /api/models`: the last row of the previous page.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelCursor {
    /// Creation time (ms).
    pub created_at: i64,
    /// Owner.
    pub tenant_id: i64,
    /// Version.
    pub version: String,
}

impl ModelCursor {
    /// `created_at.tenant_id.version` (versions are made by the server, without dots).
    pub fn encode(mv: &ModelVersion) -> String {
        format!("{}.{}.{}", mv.created_at, mv.tenant_id, mv.version)
    }

    /// The inverse of [`ModelCursor::encode`]; `None` when malformed.
    pub fn decode(s: &str) -> Option<Self> {
        let mut parts = s.splitn(3, '.');
        let created_at = parts.next()?.parse().ok()?;
        let tenant_id = parts.next()?.parse().ok()?;
        let version = parts.next()?.to_owned();
        Some(ModelCursor {
            created_at,
            tenant_id,
            version,
        })
    }
}

/// What an activation did.
#[derive(Debug, Clone)]
pub struct Activation {
    /// The version now active.
    pub active: ModelVersion,
    /// The version it replaced (now retired), if another one was active.
    pub retired: Option<String>,
}

#[derive(FromRow)]
struct PendingRow {
    tenant_id: i64,
    log_id: i64,
    agent_id: i64,
    message: String,
}

#[derive(FromRow)]
struct ExampleRow {
    tenant_id: i64,
    message: String,
    malicious: bool,
}

impl Db {
    /// Connects to `url` (`postgres://…` / `postgresql://…` or `sqlite://…`), creating the
    /// SQLite file and its directory when missing.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await?;
            Ok(Db::Postgres(pool))
        } else if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(30))
                .foreign_keys(true);
            if let Some(parent) = opts.get_filename().parent()
                && !parent.as_os_str().is_empty()
            {
                std::fs::create_dir_all(parent)?;
            }
            let pool = SqlitePoolOptions::new()
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(opts)
                .await?;
            Ok(Db::Sqlite(pool))
        } else {
            anyhow::bail!("unsupported database URL scheme (expected postgres:// or sqlite://)")
        }
    }

    /// `postgres` or `sqlite`.
    pub fn backend(&self) -> &'static str {
        match self {
            Db::Postgres(_) => "postgres",
            Db::Sqlite(_) => "sqlite",
        }
    }

    /// Applies the migrations of the backend.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match self {
            Db::Postgres(p) => PG_MIGRATOR.run(p).await?,
            Db::Sqlite(p) => SQLITE_MIGRATOR.run(p).await?,
        }
        Ok(())
    }

    /// `SELECT 1`.
    pub async fn ping(&self) -> R<()> {
        on_pool!(self, p => sqlx::query("SELECT 1").execute(p).await.map(|_| ()).map_err(db_err))?;
        Ok(())
    }

    /// Closes the pool.
    pub async fn close(&self) {
        on_pool!(self, p => p.close().await)
    }

    // ---- tenants and keys -------------------------------------------------------------------

    /// Number of tenants.
    pub async fn tenant_count(&self) -> R<i64> {
        on_pool!(self, p => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM tenants")
            .fetch_one(p).await.map_err(db_err))
    }

    /// Creates a tenant; `Ok(None)` when the name is taken.
    pub async fn create_tenant(&self, name: &str) -> R<Option<Tenant>> {
        let sql = "INSERT INTO tenants (name, created_at) VALUES ($1, $2) \
                   ON CONFLICT (name) DO NOTHING RETURNING id, name, max_agents, created_at";
        on_pool!(self, p => sqlx::query_as::<_, Tenant>(sql).bind(name).bind(now_ms())
            .fetch_optional(p).await.map_err(db_err))
    }

    /// A tenant by id.
    pub async fn tenant(&self, id: i64) -> R<Option<Tenant>> {
        let sql = "SELECT id, name, max_agents, created_at FROM tenants WHERE id = $1";
        on_pool!(self, p => sqlx::query_as::<_, Tenant>(sql).bind(id)
            .fetch_optional(p).await.map_err(db_err))
    }

    /// Sets a tenant's agent limit (`None`: the global default).
    pub async fn set_tenant_max_agents(&self, id: i64, max: Option<i64>) -> R<bool> {
        let sql = "UPDATE tenants SET max_agents = $1 WHERE id = $2";
        let n = on_pool!(self, p => sqlx::query(sql).bind(max).bind(id)
            .execute(p).await.map_err(db_err)?.rows_affected());
        Ok(n == 1)
    }

    /// Stores a key hash; returns the key id.
    pub async fn insert_api_key(
        &self,
        tenant_id: i64,
        lookup: &str,
        key_hash: &[u8],
        role: &str,
        name: Option<&str>,
    ) -> R<i64> {
        let sql = "INSERT INTO api_keys (tenant_id, lookup, key_hash, role, name, created_at) \
                   VALUES ($1, $2, $3, $4, $5, $6) RETURNING id";
        on_pool!(self, p => sqlx::query_scalar::<_, i64>(sql).bind(tenant_id).bind(lookup)
            .bind(key_hash).bind(role).bind(name).bind(now_ms())
            .fetch_one(p).await.map_err(db_err))
    }

    /// Unrevoked keys whose lookup prefix is `lookup` (normally zero or one).
    pub async fn api_keys_by_lookup(&self, lookup: &str) -> R<Vec<ApiKeyRow>> {
        let sql = "SELECT tenant_id, id, key_hash, role FROM api_keys \
                   WHERE lookup = $1 AND revoked_at IS NULL";
        on_pool!(self, p => sqlx::query_as::<_, ApiKeyRow>(sql).bind(lookup)
            .fetch_all(p).await.map_err(db_err))
    }

    /// Revokes a key of a tenant.
    pub async fn revoke_api_key(&self, tenant_id: i64, key_id: i64) -> R<bool> {
        let sql = "UPDATE api_keys SET revoked_at = $1 \
                   WHERE tenant_id = $2 AND id = $3 AND revoked_at IS NULL";
        let n = on_pool!(self, p => sqlx::query(sql).bind(now_ms()).bind(tenant_id).bind(key_id)
            .execute(p).await.map_err(db_err)?.rows_affected());
        Ok(n == 1)
    }

    // ---- agents -----------------------------------------------------------------------------

    /// Registers an agent, idempotent per (tenant, hostname); enforces the agent limit.
    pub async fn register_agent(
        &self,
        tenant_id: i64,
        info: &AgentInfo,
        default_limit: i64,
    ) -> R<Registered> {
        const SELECT: &str = "SELECT id, tenant_id, hostname, os, ip_address, version, created_at, last_seen \
             FROM agents WHERE tenant_id = $1 AND hostname = $2";
        const UPDATE: &str = "UPDATE agents SET os = COALESCE($1, os), ip_address = COALESCE($2, ip_address), \
             version = COALESCE($3, version), last_seen = $4 WHERE tenant_id = $5 AND id = $6 \
             RETURNING id, tenant_id, hostname, os, ip_address, version, created_at, last_seen";
        const INSERT: &str = "INSERT INTO agents (tenant_id, hostname, os, ip_address, version, created_at, last_seen) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) \
             RETURNING id, tenant_id, hostname, os, ip_address, version, created_at, last_seen";
        let now = now_ms();
        macro_rules! body {
            ($tx:ident, $lock_sql:expr) => {{
                // Serializes registrations of one tenant, so the limit holds under concurrency.
                let limit: Option<i64> = sqlx::query_scalar::<_, Option<i64>>($lock_sql)
                    .bind(tenant_id)
                    .fetch_optional(&mut *$tx)
                    .await
                    .map_err(db_err)?
                    .ok_or_else(|| StorageError::NotFound(format!("tenant {tenant_id}")))?;
                let limit = limit.unwrap_or(default_limit);
                let existing = sqlx::query_as::<_, Agent>(SELECT)
                    .bind(tenant_id)
                    .bind(&info.hostname)
                    .fetch_optional(&mut *$tx)
                    .await
                    .map_err(db_err)?;
                let out = if let Some(a) = existing {
                    let a = sqlx::query_as::<_, Agent>(UPDATE)
                        .bind(&info.os)
                        .bind(&info.ip_address)
                        .bind(&info.version)
                        .bind(now)
                        .bind(tenant_id)
                        .bind(a.id)
                        .fetch_one(&mut *$tx)
                        .await
                        .map_err(db_err)?;
                    Registered::Existing(a)
                } else {
                    let count: i64 =
                        sqlx::query_scalar("SELECT COUNT(*) FROM agents WHERE tenant_id = $1")
                            .bind(tenant_id)
                            .fetch_one(&mut *$tx)
                            .await
                            .map_err(db_err)?;
                    if count >= limit {
                        return Ok(Registered::LimitReached(limit));
                    }
                    let a = sqlx::query_as::<_, Agent>(INSERT)
                        .bind(tenant_id)
                        .bind(&info.hostname)
                        .bind(&info.os)
                        .bind(&info.ip_address)
                        .bind(&info.version)
                        .bind(now)
                        .fetch_one(&mut *$tx)
                        .await
                        .map_err(db_err)?;
                    Registered::Created(a)
                };
                $tx.commit().await.map_err(db_err)?;
                Ok(out)
            }};
        }
        match self {
            Db::Postgres(p) => {
                let mut tx = p.begin().await.map_err(db_err)?;
                body!(
                    tx,
                    "SELECT max_agents FROM tenants WHERE id = $1 FOR UPDATE"
                )
            }
            Db::Sqlite(p) => {
                let mut tx = p.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
                body!(tx, "SELECT max_agents FROM tenants WHERE id = $1")
            }
        }
    }

    /// Agents of a tenant, by id, after `after_id`.
    pub async fn list_agents(&self, tenant_id: i64, after_id: i64, limit: i64) -> R<Vec<Agent>> {
        let sql = "SELECT id, tenant_id, hostname, os, ip_address, version, created_at, last_seen \
                   FROM agents WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3";
        on_pool!(self, p => sqlx::query_as::<_, Agent>(sql).bind(tenant_id).bind(after_id)
            .bind(limit).fetch_all(p).await.map_err(db_err))
    }

    /// One agent of a tenant.
    pub async fn agent(&self, tenant_id: i64, id: i64) -> R<Option<Agent>> {
        let sql = "SELECT id, tenant_id, hostname, os, ip_address, version, created_at, last_seen \
                   FROM agents WHERE tenant_id = $1 AND id = $2";
        on_pool!(self, p => sqlx::query_as::<_, Agent>(sql).bind(tenant_id).bind(id)
            .fetch_optional(p).await.map_err(db_err))
    }

    /// Heartbeat: sets `last_seen`; false when the agent is not the tenant's.
    pub async fn touch_agent(&self, tenant_id: i64, id: i64) -> R<bool> {
        let sql = "UPDATE agents SET last_seen = $1 WHERE tenant_id = $2 AND id = $3";
        let n = on_pool!(self, p => sqlx::query(sql).bind(now_ms()).bind(tenant_id).bind(id)
            .execute(p).await.map_err(db_err)?.rows_affected());
        Ok(n == 1)
    }

    // ---- agent commands ---------------------------------------------------------------------

    /// Stores a pending command for an agent of the tenant, unless the tenant already issued
    /// `per_minute` commands in the last 60 s.
    pub async fn issue_command(
        &self,
        tenant_id: i64,
        agent_id: i64,
        command: &str,
        parameters: &str,
        issued_by_key: i64,
        per_minute: i64,
    ) -> R<CommandIssued> {
        const WINDOW_MS: i64 = 60_000;
        let now = now_ms();
        let insert = format!(
            "INSERT INTO agent_commands (tenant_id, agent_id, command, parameters, status, issued_by_key, created_at) \
             VALUES ($1, $2, $3, $4, 'pending', $5, $6) RETURNING {COMMAND_COLUMNS}"
        );
        macro_rules! body {
            ($tx:ident, $lock_sql:expr) => {{
                // Serializes the tenant's commands, so the limit holds under concurrency.
                sqlx::query($lock_sql).bind(tenant_id).execute(&mut *$tx).await.map_err(db_err)?;
                let agent: Option<i64> =
                    sqlx::query_scalar("SELECT id FROM agents WHERE tenant_id = $1 AND id = $2")
                        .bind(tenant_id)
                        .bind(agent_id)
                        .fetch_optional(&mut *$tx)
                        .await
                        .map_err(db_err)?;
                if agent.is_none() {
                    return Ok(CommandIssued::NoSuchAgent);
                }
                let recent: Vec<i64> = sqlx::query_scalar(
                    "SELECT created_at FROM agent_commands WHERE tenant_id = $1 AND created_at > $2 \
                     ORDER BY created_at LIMIT $3",
                )
                .bind(tenant_id)
                .bind(now - WINDOW_MS)
                .bind(per_minute.max(1))
                .fetch_all(&mut *$tx)
                .await
                .map_err(db_err)?;
                if recent.len() as i64 >= per_minute {
                    let oldest = recent.first().copied().unwrap_or(now);
                    return Ok(CommandIssued::RateLimited {
                        retry_after_ms: (oldest + WINDOW_MS - now).max(1),
                    });
                }
                let c = sqlx::query_as::<_, AgentCommand>(&insert)
                    .bind(tenant_id)
                    .bind(agent_id)
                    .bind(command)
                    .bind(parameters)
                    .bind(issued_by_key)
                    .bind(now)
                    .fetch_one(&mut *$tx)
                    .await
                    .map_err(db_err)?;
                $tx.commit().await.map_err(db_err)?;
                Ok(CommandIssued::Created(c))
            }};
        }
        match self {
            Db::Postgres(p) => {
                let mut tx = p.begin().await.map_err(db_err)?;
                body!(tx, "SELECT id FROM tenants WHERE id = $1 FOR UPDATE")
            }
            Db::Sqlite(p) => {
                let mut tx = p.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
                body!(tx, "SELECT id FROM tenants WHERE id = $1")
            }
        }
    }

    /// An agent's poll: its unfinished commands, oldest first (pending ones become delivered;
    /// delivered ones are sent again until a result arrives, so a lost answer loses nothing).
    /// Refreshes `last_seen`. `None` when the agent is not the tenant's.
    pub async fn poll_commands(
        &self,
        tenant_id: i64,
        agent_id: i64,
        limit: i64,
    ) -> R<Option<Vec<AgentCommand>>> {
        let now = now_ms();
        let select = format!(
            "SELECT {COMMAND_COLUMNS} FROM agent_commands WHERE tenant_id = $1 AND agent_id = $2 \
             AND status IN ('pending', 'delivered') ORDER BY id LIMIT $3"
        );
        on_pool!(self, p => {
            let mut tx = p.begin().await.map_err(db_err)?;
            let seen = sqlx::query("UPDATE agents SET last_seen = $1 WHERE tenant_id = $2 AND id = $3")
                .bind(now).bind(tenant_id).bind(agent_id)
                .execute(&mut *tx).await.map_err(db_err)?.rows_affected();
            if seen == 0 {
                return Ok(None);
            }
            let mut cmds = sqlx::query_as::<_, AgentCommand>(&select)
                .bind(tenant_id).bind(agent_id).bind(limit)
                .fetch_all(&mut *tx).await.map_err(db_err)?;
            let ids: Vec<i64> = cmds.iter().filter(|c| c.status == "pending").map(|c| c.id).collect();
            for id in ids {
                sqlx::query("UPDATE agent_commands SET status = 'delivered', delivered_at = $1 \
                             WHERE tenant_id = $2 AND id = $3 AND status = 'pending'")
                    .bind(now).bind(tenant_id).bind(id)
                    .execute(&mut *tx).await.map_err(db_err)?;
            }
            tx.commit().await.map_err(db_err)?;
            for c in cmds.iter_mut().filter(|c| c.status == "pending") {
                c.status = "delivered".into();
                c.delivered_at = Some(now);
            }
            Ok(Some(cmds))
        })
    }

    /// Records the outcome an agent reports (`succeeded` or `failed`) with its JSON result.
    pub async fn complete_command(
        &self,
        tenant_id: i64,
        agent_id: i64,
        command_id: i64,
        status: &str,
        result: &str,
    ) -> R<CommandCompleted> {
        let update = format!(
            "UPDATE agent_commands SET status = $1, result = $2, completed_at = $3, \
             delivered_at = COALESCE(delivered_at, $3) \
             WHERE tenant_id = $4 AND agent_id = $5 AND id = $6 AND status IN ('pending', 'delivered') \
             RETURNING {COMMAND_COLUMNS}"
        );
        let select = format!(
            "SELECT {COMMAND_COLUMNS} FROM agent_commands WHERE tenant_id = $1 AND agent_id = $2 AND id = $3"
        );
        on_pool!(self, p => {
            let done = sqlx::query_as::<_, AgentCommand>(&update)
                .bind(status).bind(result).bind(now_ms())
                .bind(tenant_id).bind(agent_id).bind(command_id)
                .fetch_optional(p).await.map_err(db_err)?;
            if let Some(c) = done {
                return Ok(CommandCompleted::Completed(c));
            }
            let existing = sqlx::query_as::<_, AgentCommand>(&select)
                .bind(tenant_id).bind(agent_id).bind(command_id)
                .fetch_optional(p).await.map_err(db_err)?;
            Ok(existing.map_or(CommandCompleted::NotFound, CommandCompleted::AlreadyCompleted))
        })
    }

    /// An agent's commands, newest first, optionally of one status, with ids < `before_id`.
    pub async fn list_commands(
        &self,
        tenant_id: i64,
        agent_id: i64,
        status: Option<&str>,
        before_id: Option<i64>,
        limit: i64,
    ) -> R<Vec<AgentCommand>> {
        let sql = format!(
            "SELECT {COMMAND_COLUMNS} FROM agent_commands WHERE tenant_id = $1 AND agent_id = $2 \
             AND ($3 IS NULL OR status = $3) AND ($4 IS NULL OR id < $4) ORDER BY id DESC LIMIT $5"
        );
        on_pool!(self, p => sqlx::query_as::<_, AgentCommand>(&sql).bind(tenant_id).bind(agent_id)
            .bind(status).bind(before_id).bind(limit).fetch_all(p).await.map_err(db_err))
    }

    // ---- logs -------------------------------------------------------------------------------

    /// Inserts a batch of logs in one transaction (and refreshes the agents' `last_seen`).
    /// Every agent id must be an agent of the tenant, else nothing is written.
    pub async fn insert_logs(&self, tenant_id: i64, logs: &[NewLog]) -> R<Ingested> {
        let agents: Vec<i64> = logs
            .iter()
            .map(|l| l.agent_id)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let now = now_ms();
        match self {
            Db::Postgres(p) => {
                // Check the agents without locking them: every ingest of a tenant touches the
                // same agent rows, and holding their locks until commit would serialize ingest
                // (the foreign key still guards against an agent deleted meanwhile).
                let found: Vec<i64> = sqlx::query_scalar(
                    "SELECT id FROM agents WHERE tenant_id = $1 AND id = ANY($2)",
                )
                .bind(tenant_id)
                .bind(&agents)
                .fetch_all(p)
                .await
                .map_err(db_err)?;
                if found.len() != agents.len() {
                    let found: BTreeSet<i64> = found.into_iter().collect();
                    let unknown = agents.into_iter().filter(|a| !found.contains(a)).collect();
                    return Ok(Ingested::UnknownAgents(unknown));
                }
                let mut tx = p.begin().await.map_err(db_err)?;
                let agent_ids: Vec<i64> = logs.iter().map(|l| l.agent_id).collect();
                let ts: Vec<i64> = logs.iter().map(|l| l.timestamp).collect();
                let sources: Vec<Option<String>> = logs.iter().map(|l| l.source.clone()).collect();
                let levels: Vec<Option<String>> = logs.iter().map(|l| l.level.clone()).collect();
                let messages: Vec<&str> = logs.iter().map(|l| l.message.as_str()).collect();
                sqlx::query(
                    "INSERT INTO agent_logs (tenant_id, agent_id, timestamp, received_at, source, level, message) \
                     SELECT $1, a, t, $2, s, l, m \
                     FROM UNNEST($3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::text[]) AS x(a, t, s, l, m)",
                )
                .bind(tenant_id)
                .bind(now)
                .bind(&agent_ids)
                .bind(&ts)
                .bind(&sources)
                .bind(&levels)
                .bind(&messages)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
                sqlx::query("SELECT pg_notify($1, '')")
                    .bind(LOGS_CHANNEL)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                tx.commit().await.map_err(db_err)?;
                // Heartbeat after the commit, best effort, at most once a second per agent.
                let touched = sqlx::query(
                    "UPDATE agents SET last_seen = $1 WHERE tenant_id = $2 AND id = ANY($3) AND last_seen < $1 - 1000",
                )
                .bind(now)
                .bind(tenant_id)
                .bind(&agents)
                .execute(p)
                .await;
                if let Err(e) = touched {
                    tracing::debug!(error = %e, "last_seen update skipped");
                }
            }
            Db::Sqlite(p) => {
                let mut tx = p.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
                let mut unknown = Vec::new();
                for a in &agents {
                    let n = sqlx::query(
                        "UPDATE agents SET last_seen = $1 WHERE tenant_id = $2 AND id = $3",
                    )
                    .bind(now)
                    .bind(tenant_id)
                    .bind(a)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?
                    .rows_affected();
                    if n == 0 {
                        unknown.push(*a);
                    }
                }
                if !unknown.is_empty() {
                    return Ok(Ingested::UnknownAgents(unknown));
                }
                for l in logs {
                    sqlx::query(
                        "INSERT INTO agent_logs (tenant_id, agent_id, timestamp, received_at, source, level, message) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(tenant_id)
                    .bind(l.agent_id)
                    .bind(l.timestamp)
                    .bind(now)
                    .bind(&l.source)
                    .bind(&l.level)
                    .bind(&l.message)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                }
                tx.commit().await.map_err(db_err)?;
            }
        }
        Ok(Ingested::Committed {
            count: logs.len(),
            received_at: now,
        })
    }

    /// Logs of a tenant, newest first.
    pub async fn list_logs(&self, tenant_id: i64, f: &LogFilter) -> R<Vec<LogRow>> {
        let sql = "SELECT id, agent_id, timestamp, received_at, source, level, message, scored \
                   FROM agent_logs WHERE tenant_id = $1 \
                   AND ($2 IS NULL OR agent_id = $2) \
                   AND ($3 IS NULL OR timestamp >= $3) \
                   AND ($4 IS NULL OR timestamp < $4) \
                   AND ($5 IS NULL OR id < $5) \
                   ORDER BY id DESC LIMIT $6";
        on_pool!(self, p => sqlx::query_as::<_, LogRow>(sql).bind(tenant_id).bind(f.agent_id)
            .bind(f.since).bind(f.until).bind(f.before_id).bind(f.limit)
            .fetch_all(p).await.map_err(db_err))
    }

    /// One log of a tenant.
    pub async fn log(&self, tenant_id: i64, id: i64) -> R<Option<LogRow>> {
        let sql = "SELECT id, agent_id, timestamp, received_at, source, level, message, scored \
                   FROM agent_logs WHERE tenant_id = $1 AND id = $2";
        on_pool!(self, p => sqlx::query_as::<_, LogRow>(sql).bind(tenant_id).bind(id)
            .fetch_optional(p).await.map_err(db_err))
    }

    // ---- threats ----------------------------------------------------------------------------

    /// Threats of a tenant, newest first.
    pub async fn list_threats(&self, tenant_id: i64, f: &ThreatFilter) -> R<Vec<Threat>> {
        let sql = "SELECT id, log_id, agent_id, risk, severity, anomaly, malicious_probability, \
                   model_version, explanation, status, verdict, assignee, note, detected_at, updated_at \
                   FROM threat_detections WHERE tenant_id = $1 \
                   AND ($2 IS NULL OR severity = $2) \
                   AND ($3 IS NULL OR status = $3) \
                   AND ($4 IS NULL OR agent_id = $4) \
                   AND ($5 IS NULL OR detected_at >= $5) \
                   AND ($6 IS NULL OR detected_at < $6) \
                   AND ($7 IS NULL OR id < $7) \
                   ORDER BY id DESC LIMIT $8";
        on_pool!(self, p => sqlx::query_as::<_, Threat>(sql).bind(tenant_id)
            .bind(&f.severity).bind(&f.status).bind(f.agent_id).bind(f.since).bind(f.until)
            .bind(f.before_id).bind(f.limit)
            .fetch_all(p).await.map_err(db_err))
    }

    /// Threats of a tenant detected at or after `since_ms`, oldest first (for the live stream).
    pub async fn threats_since(&self, tenant_id: i64, since_ms: i64, limit: i64) -> R<Vec<Threat>> {
        let sql = "SELECT id, log_id, agent_id, risk, severity, anomaly, malicious_probability, \
                   model_version, explanation, status, verdict, assignee, note, detected_at, updated_at \
                   FROM threat_detections WHERE tenant_id = $1 AND detected_at >= $2 \
                   ORDER BY detected_at, id LIMIT $3";
        on_pool!(self, p => sqlx::query_as::<_, Threat>(sql).bind(tenant_id).bind(since_ms)
            .bind(limit).fetch_all(p).await.map_err(db_err))
    }

    /// One threat of a tenant.
    pub async fn threat(&self, tenant_id: i64, id: i64) -> R<Option<Threat>> {
        let sql = "SELECT id, log_id, agent_id, risk, severity, anomaly, malicious_probability, \
                   model_version, explanation, status, verdict, assignee, note, detected_at, updated_at \
                   FROM threat_detections WHERE tenant_id = $1 AND id = $2";
        on_pool!(self, p => sqlx::query_as::<_, Threat>(sql).bind(tenant_id).bind(id)
            .fetch_optional(p).await.map_err(db_err))
    }

    /// Applies a triage change; a verdict is also stored (or replaced) as a training label of
    /// the threat's log, in the same transaction. `None` when the threat is not the tenant's.
    pub async fn update_threat(
        &self,
        tenant_id: i64,
        id: i64,
        u: &ThreatUpdate,
    ) -> R<Option<Threat>> {
        const UPDATE: &str = "UPDATE threat_detections SET status = COALESCE($1, status), \
             verdict = COALESCE($2, verdict), assignee = COALESCE($3, assignee), \
             note = COALESCE($4, note), updated_at = $5 WHERE tenant_id = $6 AND id = $7 \
             RETURNING id, log_id, agent_id, risk, severity, anomaly, malicious_probability, \
             model_version, explanation, status, verdict, assignee, note, detected_at, updated_at";
        const LABEL: &str = "INSERT INTO labels (tenant_id, threat_id, log_id, message, malicious, source, created_at) \
             SELECT $1, $2, l.id, l.message, $3, 'verdict', $4 FROM agent_logs l WHERE l.tenant_id = $1 AND l.id = $5 \
             ON CONFLICT (tenant_id, threat_id) DO UPDATE SET malicious = excluded.malicious, created_at = excluded.created_at";
        let now = now_ms();
        macro_rules! body {
            ($tx:ident) => {{
                let t = sqlx::query_as::<_, Threat>(UPDATE)
                    .bind(&u.status)
                    .bind(&u.verdict)
                    .bind(&u.assignee)
                    .bind(&u.note)
                    .bind(now)
                    .bind(tenant_id)
                    .bind(id)
                    .fetch_optional(&mut *$tx)
                    .await
                    .map_err(db_err)?;
                let Some(t) = t else { return Ok(None) };
                if let Some(v) = &u.verdict {
                    sqlx::query(LABEL)
                        .bind(tenant_id)
                        .bind(id)
                        .bind(v == "true_positive")
                        .bind(now)
                        .bind(t.log_id)
                        .execute(&mut *$tx)
                        .await
                        .map_err(db_err)?;
                }
                $tx.commit().await.map_err(db_err)?;
                Ok(Some(t))
            }};
        }
        match self {
            Db::Postgres(p) => {
                let mut tx = p.begin().await.map_err(db_err)?;
                body!(tx)
            }
            Db::Sqlite(p) => {
                let mut tx = p.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
                body!(tx)
            }
        }
    }

    /// Counts for status and tests: (logs, scored logs, threats) of a tenant.
    pub async fn counts(&self, tenant_id: i64) -> R<(i64, i64, i64)> {
        let sql = "SELECT (SELECT COUNT(*) FROM agent_logs WHERE tenant_id = $1), \
                   (SELECT COUNT(*) FROM agent_logs WHERE tenant_id = $1 AND scored), \
                   (SELECT COUNT(*) FROM threat_detections WHERE tenant_id = $1)";
        on_pool!(self, p => sqlx::query_as::<_, (i64, i64, i64)>(sql).bind(tenant_id)
            .fetch_one(p).await.map_err(db_err))
    }

    /// Detection lag of each threat of a tenant: commit of the detection minus commit of the
    /// log, in milliseconds (for the load benchmark).
    pub async fn detection_lags_ms(&self, tenant_id: i64) -> R<Vec<i64>> {
        let sql = "SELECT t.detected_at - l.received_at FROM threat_detections t \
                   JOIN agent_logs l ON l.tenant_id = t.tenant_id AND l.id = t.log_id \
                   WHERE t.tenant_id = $1";
        on_pool!(self, p => sqlx::query_scalar::<_, i64>(sql).bind(tenant_id)
            .fetch_all(p).await.map_err(db_err))
    }

    // ---- model versions ---------------------------------------------------------------------

    /// Records a model version as a candidate.
    pub async fn insert_model_version(&self, mv: &NewModelVersion) -> R<ModelVersion> {
        let sql = "INSERT INTO model_versions (tenant_id, version, key, metrics, status, source, \
                   train_size, test_size, roc_auc, training_seconds, created_at) \
                   VALUES ($1, $2, $3, $4, 'candidate', $5, $6, $7, $8, $9, $10) \
                   RETURNING tenant_id, version, key, status, source, metrics, train_size, test_size, \
                   roc_auc, training_seconds, created_at";
        on_pool!(self, p => sqlx::query_as::<_, ModelVersion>(sql).bind(mv.tenant_id)
            .bind(&mv.version).bind(&mv.key).bind(mv.metrics.to_string()).bind(mv.source)
            .bind(mv.train_size).bind(mv.test_size).bind(mv.roc_auc).bind(mv.training_seconds)
            .bind(now_ms())
            .fetch_one(p).await.map_err(db_err))
    }

    /// Makes `version` of `tenant_id` the active one; the previously active version (if any)
    /// becomes retired, in the same transaction. `None` when the tenant has no such version.
    pub async fn activate_model_version(
        &self,
        tenant_id: i64,
        version: &str,
    ) -> R<Option<Activation>> {
        const RETIRE: &str = "UPDATE model_versions SET status = 'retired' \
             WHERE tenant_id = $1 AND status = 'active' AND version <> $2 RETURNING version";
        const ACTIVATE: &str = "UPDATE model_versions SET status = 'active' \
             WHERE tenant_id = $1 AND version = $2 \
             RETURNING tenant_id, version, key, status, source, metrics, train_size, test_size, \
             roc_auc, training_seconds, created_at";
        const EXISTS: &str =
            "SELECT COUNT(*) FROM model_versions WHERE tenant_id = $1 AND version = $2";
        macro_rules! body {
            ($tx:ident) => {{
                let n: i64 = sqlx::query_scalar(EXISTS)
                    .bind(tenant_id)
                    .bind(version)
                    .fetch_one(&mut *$tx)
                    .await
                    .map_err(db_err)?;
                if n == 0 {
                    return Ok(None);
                }
                let retired: Option<String> = sqlx::query_scalar(RETIRE)
                    .bind(tenant_id)
                    .bind(version)
                    .fetch_optional(&mut *$tx)
                    .await
                    .map_err(db_err)?;
                let active = sqlx::query_as::<_, ModelVersion>(ACTIVATE)
                    .bind(tenant_id)
                    .bind(version)
                    .fetch_one(&mut *$tx)
                    .await
                    .map_err(db_err)?;
                $tx.commit().await.map_err(db_err)?;
                Ok(Some(Activation { active, retired }))
            }};
        }
        match self {
            Db::Postgres(p) => {
                let mut tx = p.begin().await.map_err(db_err)?;
                // Concurrent activations of one tenant take turns (one active per tenant).
                sqlx::query("SELECT pg_advisory_xact_lock(7301, $1::int)")
                    .bind(i32::try_from(tenant_id).unwrap_or(i32::MAX))
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                body!(tx)
            }
            Db::Sqlite(p) => {
                let mut tx = p.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
                body!(tx)
            }
        }
    }

    /// Records a global model version and makes it the active one.
    pub async fn record_model_version(&self, mv: &NewModelVersion) -> R<ModelVersion> {
        self.insert_model_version(mv).await?;
        self.activate_model_version(mv.tenant_id, &mv.version)
            .await?
            .map(|a| a.active)
            .ok_or_else(|| StorageError::NotFound(format!("model version {}", mv.version)))
    }

    /// The active global model version, if any.
    pub async fn active_model_version(&self) -> R<Option<ModelVersion>> {
        self.active_model_version_of(GLOBAL_TENANT).await
    }

    /// The active model version of `tenant_id` (its own, not the global fallback), if any.
    pub async fn active_model_version_of(&self, tenant_id: i64) -> R<Option<ModelVersion>> {
        let sql = "SELECT tenant_id, version, key, status, source, metrics, train_size, test_size, \
                   roc_auc, training_seconds, created_at FROM model_versions \
                   WHERE tenant_id = $1 AND status = 'active'";
        on_pool!(self, p => sqlx::query_as::<_, ModelVersion>(sql).bind(tenant_id)
            .fetch_optional(p).await.map_err(db_err))
    }

    /// Every active version (global and per tenant): what the detection workers score with.
    pub async fn active_model_versions(&self) -> R<Vec<ModelVersion>> {
        let sql = "SELECT tenant_id, version, key, status, source, metrics, train_size, test_size, \
                   roc_auc, training_seconds, created_at FROM model_versions WHERE status = 'active'";
        on_pool!(self, p => sqlx::query_as::<_, ModelVersion>(sql).fetch_all(p).await.map_err(db_err))
    }

    /// One version of `tenant_id`.
    pub async fn model_version(&self, tenant_id: i64, version: &str) -> R<Option<ModelVersion>> {
        let sql = "SELECT tenant_id, version, key, status, source, metrics, train_size, test_size, \
                   roc_auc, training_seconds, created_at FROM model_versions \
                   WHERE tenant_id = $1 AND version = $2";
        on_pool!(self, p => sqlx::query_as::<_, ModelVersion>(sql).bind(tenant_id).bind(version)
            .fetch_optional(p).await.map_err(db_err))
    }

    /// Versions of `tenant_id` and the global ones, newest first, after `cursor`.
    pub async fn list_model_versions(
        &self,
        tenant_id: i64,
        cursor: Option<&ModelCursor>,
        limit: i64,
    ) -> R<Vec<ModelVersion>> {
        let sql = "SELECT tenant_id, version, key, status, source, metrics, train_size, test_size, \
                   roc_auc, training_seconds, created_at FROM model_versions \
                   WHERE tenant_id IN ($1, 0) \
                   AND ($2 IS NULL OR created_at < $2 \
                        OR (created_at = $2 AND (tenant_id < $3 OR (tenant_id = $3 AND version < $4)))) \
                   ORDER BY created_at DESC, tenant_id DESC, version DESC LIMIT $5";
        let (c_at, c_tenant, c_version) = match cursor {
            Some(c) => (Some(c.created_at), c.tenant_id, c.version.as_str()),
            None => (None, 0, ""),
        };
        on_pool!(self, p => sqlx::query_as::<_, ModelVersion>(sql).bind(tenant_id).bind(c_at)
            .bind(c_tenant).bind(c_version).bind(limit)
            .fetch_all(p).await.map_err(db_err))
    }

    /// The query of [`Db::recent_log_messages`]: newest first by `id` within the tenant, which
    /// both backends answer by walking the `(tenant_id, id)` index backwards and stopping at
    /// the limit (no scan of the tenant's other logs, no sort); the malicious-label check is a
    /// lookup in `idx_labels_log`.
    pub const RECENT_LOGS_SQL: &str = "SELECT a.message FROM agent_logs a WHERE a.tenant_id = $1 \
         AND NOT EXISTS (SELECT 1 FROM labels l WHERE l.tenant_id = a.tenant_id \
         AND l.log_id = a.id AND l.malicious) \
         ORDER BY a.id DESC LIMIT $2";

    /// The messages of the tenant's most recent `limit` logs (newest first), leaving out logs
    /// an analyst's verdict labeled malicious, and stopping early once the messages total
    /// `max_bytes` (rows are streamed, so a tenant of huge lines cannot exhaust memory).
    pub async fn recent_log_messages(
        &self,
        tenant_id: i64,
        limit: usize,
        max_bytes: usize,
    ) -> R<Vec<String>> {
        use futures_util::TryStreamExt;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut out = Vec::new();
        let mut bytes = 0usize;
        on_pool!(self, p => {
            let mut rows = sqlx::query_scalar::<_, String>(Self::RECENT_LOGS_SQL)
                .bind(tenant_id)
                .bind(limit)
                .fetch(p);
            while let Some(message) = rows.try_next().await.map_err(db_err)? {
                bytes += message.len();
                if bytes > max_bytes {
                    break;
                }
                out.push(message);
            }
        });
        Ok(out)
    }

    /// Tenants with at least one training label (the scheduled retrain's work list).
    pub async fn labeled_tenants(&self) -> R<Vec<i64>> {
        let sql = "SELECT DISTINCT tenant_id FROM labels ORDER BY tenant_id";
        on_pool!(self, p => sqlx::query_scalar::<_, i64>(sql).fetch_all(p).await.map_err(db_err))
    }

    /// Stores imported training labels (`POST /api/labels`) in one transaction; returns how
    /// many.
    pub async fn insert_labels(&self, tenant_id: i64, labels: &[(String, bool)]) -> R<usize> {
        let now = now_ms();
        match self {
            Db::Postgres(p) => {
                let messages: Vec<&str> = labels.iter().map(|(m, _)| m.as_str()).collect();
                let malicious: Vec<bool> = labels.iter().map(|(_, y)| *y).collect();
                sqlx::query(
                    "INSERT INTO labels (tenant_id, message, malicious, source, created_at) \
                     SELECT $1, m, y, 'import', $4 FROM UNNEST($2::text[], $3::bool[]) AS x(m, y)",
                )
                .bind(tenant_id)
                .bind(&messages)
                .bind(&malicious)
                .bind(now)
                .execute(p)
                .await
                .map_err(db_err)?;
            }
            Db::Sqlite(p) => {
                let mut tx = p.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
                for (message, malicious) in labels {
                    sqlx::query(
                        "INSERT INTO labels (tenant_id, message, malicious, source, created_at) \
                         VALUES ($1, $2, $3, 'import', $4)",
                    )
                    .bind(tenant_id)
                    .bind(message)
                    .bind(malicious)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                }
                tx.commit().await.map_err(db_err)?;
            }
        }
        Ok(labels.len())
    }

    /// Stores a training label not attached to a threat (imports, tests).
    pub async fn insert_label(&self, tenant_id: i64, message: &str, malicious: bool) -> R<()> {
        let sql = "INSERT INTO labels (tenant_id, message, malicious, source, created_at) \
                   VALUES ($1, $2, $3, 'import', $4)";
        on_pool!(self, p => sqlx::query(sql).bind(tenant_id).bind(message).bind(malicious)
            .bind(now_ms()).execute(p).await.map(|_| ()).map_err(db_err))?;
        Ok(())
    }
}

/// Builds the detections rows and marks the claimed logs scored, PostgreSQL flavour.
async fn pg_commit_batch(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    logs: &[PendingLog],
    dets: &[NewDetection],
) -> R<()> {
    let now = now_ms();
    if !dets.is_empty() {
        let col = |f: fn(&NewDetection) -> i64| dets.iter().map(f).collect::<Vec<i64>>();
        let colf = |f: fn(&NewDetection) -> f64| dets.iter().map(f).collect::<Vec<f64>>();
        let severities: Vec<&str> = dets.iter().map(|d| d.severity.as_str()).collect();
        let versions: Vec<&str> = dets.iter().map(|d| d.model_version.as_str()).collect();
        let expl: Vec<String> = dets.iter().map(|d| d.explanation.to_string()).collect();
        sqlx::query(
            "INSERT INTO threat_detections (tenant_id, log_id, agent_id, risk, severity, anomaly, \
             malicious_probability, model_version, explanation, detected_at, updated_at) \
             SELECT t, l, a, r, s, an, mp, v, e, $10, $10 FROM UNNEST($1::bigint[], $2::bigint[], \
             $3::bigint[], $4::float8[], $5::text[], $6::float8[], $7::float8[], $8::text[], $9::text[]) \
             AS x(t, l, a, r, s, an, mp, v, e)",
        )
        .bind(col(|d| d.tenant_id))
        .bind(col(|d| d.log_id))
        .bind(col(|d| d.agent_id))
        .bind(colf(|d| d.risk))
        .bind(&severities)
        .bind(colf(|d| d.anomaly))
        .bind(colf(|d| d.malicious_probability))
        .bind(&versions)
        .bind(&expl)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    }
    let tenants: Vec<i64> = logs.iter().map(|l| l.tenant_id).collect();
    let ids: Vec<i64> = logs.iter().map(|l| l.log_id).collect();
    sqlx::query(
        "UPDATE agent_logs SET scored = TRUE FROM UNNEST($1::bigint[], $2::bigint[]) AS x(t, i) \
         WHERE agent_logs.tenant_id = x.t AND agent_logs.id = x.i",
    )
    .bind(&tenants)
    .bind(&ids)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Runs CPU-bound work (the scorer) without stalling the async scheduler: on a multi-thread
/// runtime this worker hands its other tasks over while `f` runs. Only CPU work goes in here;
/// I/O awaited inside `block_in_place` could hang a runtime that is shutting down.
fn run_cpu<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

fn to_pending(rows: Vec<PendingRow>) -> Vec<PendingLog> {
    rows.into_iter()
        .map(|r| PendingLog {
            tenant_id: r.tenant_id,
            log_id: r.log_id,
            agent_id: r.agent_id,
            message: r.message,
        })
        .collect()
}

#[async_trait]
impl Storage for Db {
    async fn score_pending(&self, limit: usize, score: &mut BatchScorer<'_>) -> R<usize> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        match self {
            Db::Postgres(p) => {
                let mut tx = p.begin().await.map_err(db_err)?;
                let rows: Vec<PendingRow> = sqlx::query_as(
                    "SELECT tenant_id, id AS log_id, agent_id, message FROM agent_logs \
                     WHERE NOT scored ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                )
                .bind(limit)
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?;
                if rows.is_empty() {
                    return Ok(0);
                }
                let logs = to_pending(rows);
                let dets = run_cpu(|| score(&logs));
                pg_commit_batch(&mut tx, &logs, &dets).await?;
                tx.commit().await.map_err(db_err)?;
                Ok(logs.len())
            }
            Db::Sqlite(p) => {
                // BEGIN IMMEDIATE takes SQLite's write lock: one claimer at a time.
                let mut tx = p.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
                let rows: Vec<PendingRow> = sqlx::query_as(
                    "SELECT tenant_id, id AS log_id, agent_id, message FROM agent_logs \
                     WHERE NOT scored ORDER BY id LIMIT $1",
                )
                .bind(limit)
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?;
                if rows.is_empty() {
                    return Ok(0);
                }
                let logs = to_pending(rows);
                let dets = run_cpu(|| score(&logs));
                let now = now_ms();
                for d in &dets {
                    sqlx::query(
                        "INSERT INTO threat_detections (tenant_id, log_id, agent_id, risk, severity, anomaly, \
                         malicious_probability, model_version, explanation, detected_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
                    )
                    .bind(d.tenant_id)
                    .bind(d.log_id)
                    .bind(d.agent_id)
                    .bind(d.risk)
                    .bind(&d.severity)
                    .bind(d.anomaly)
                    .bind(d.malicious_probability)
                    .bind(&d.model_version)
                    .bind(d.explanation.to_string())
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                }
                // We hold the write lock, so the claimed logs are exactly the pending ones up
                // to the last claimed id.
                let last = logs.last().map_or(0, |l| l.log_id);
                sqlx::query("UPDATE agent_logs SET scored = TRUE WHERE NOT scored AND id <= $1")
                    .bind(last)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                tx.commit().await.map_err(db_err)?;
                Ok(logs.len())
            }
        }
    }

    async fn pending_count(&self) -> R<u64> {
        let n: i64 = on_pool!(self, p => sqlx::query_scalar("SELECT COUNT(*) FROM agent_logs WHERE NOT scored")
            .fetch_one(p).await.map_err(db_err))?;
        Ok(n.max(0) as u64)
    }

    async fn training_examples(
        &self,
        tenant: Option<TenantId>,
        limit: usize,
    ) -> R<Vec<TrainingExample>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let sql = "SELECT tenant_id, message, malicious FROM labels \
                   WHERE ($1 IS NULL OR tenant_id = $1) ORDER BY created_at DESC, id DESC LIMIT $2";
        let rows: Vec<ExampleRow> = on_pool!(self, p => sqlx::query_as(sql).bind(tenant).bind(limit)
            .fetch_all(p).await.map_err(db_err))?;
        Ok(rows
            .into_iter()
            .map(|r| TrainingExample {
                tenant_id: r.tenant_id,
                message: r.message,
                malicious: r.malicious,
            })
            .collect())
    }
}

// ---- archival, restore and training export (archive.rs, export.rs) -----------------------

/// A log as written to an archive: every column (times in ms since the epoch) and the threat
/// recorded for it, if any, which is archived and deleted together with its log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, FromRow)]
pub struct ArchivedLog {
    /// Id (kept on restore).
    pub id: i64,
    /// Tenant.
    pub tenant_id: i64,
    /// Agent.
    pub agent_id: i64,
    /// Event time (ms).
    pub timestamp: i64,
    /// Commit time (ms).
    pub received_at: i64,
    /// Source.
    pub source: Option<String>,
    /// Level.
    pub level: Option<String>,
    /// The line.
    pub message: String,
    /// The threat detected on this log.
    #[sqlx(skip)]
    pub threat: Option<ArchivedThreat>,
}

/// A threat as archived inside its log's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, FromRow)]
pub struct ArchivedThreat {
    /// Id (kept on restore).
    pub id: i64,
    /// The log it is about.
    pub log_id: i64,
    /// Risk 0–10.
    pub risk: f64,
    /// Severity.
    pub severity: String,
    /// Calibrated anomaly.
    pub anomaly: f64,
    /// Malicious probability.
    pub malicious_probability: f64,
    /// Model version.
    pub model_version: String,
    /// Explanation (JSON text).
    pub explanation: String,
    /// Triage status.
    pub status: String,
    /// Verdict.
    pub verdict: Option<String>,
    /// Assignee.
    pub assignee: Option<String>,
    /// Note.
    pub note: Option<String>,
    /// Detection time (ms).
    pub detected_at: i64,
    /// Last change (ms): the archiver deletes a threat only if it did not change since it
    /// was read.
    pub updated_at: i64,
}

/// A training label, as the export reads it.
#[derive(Debug, Clone, FromRow)]
pub struct LabelRow {
    /// Id (export pages by it).
    pub id: i64,
    /// The line.
    pub message: String,
    /// `true`: malicious.
    pub malicious: bool,
    /// `verdict`, `import`, …
    pub source: String,
}

/// What [`Db::delete_archived`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ArchivedDeletion {
    /// Logs deleted (with their threats).
    pub deleted: u64,
    /// Logs kept because their threat changed after it was read (re-archived next run).
    pub changed: Vec<i64>,
}

const ARCHIVE_LOG_COLUMNS: &str =
    "id, tenant_id, agent_id, timestamp, received_at, source, level, message";
const ARCHIVE_THREAT_COLUMNS: &str = "id, log_id, risk, severity, anomaly, malicious_probability, \
     model_version, explanation, status, verdict, assignee, note, detected_at, updated_at";

/// `ids` as the JSON array SQLite's `json_each` expands (it has no array parameters).
fn json_ids(ids: &[i64]) -> String {
    serde_json::to_string(ids).expect("integers serialize")
}

impl Db {
    /// Every tenant id.
    pub async fn tenant_ids(&self) -> R<Vec<i64>> {
        on_pool!(self, p => sqlx::query_scalar::<_, i64>("SELECT id FROM tenants ORDER BY id")
            .fetch_all(p).await.map_err(db_err))
    }

    /// A tenant by name.
    pub async fn tenant_by_name(&self, name: &str) -> R<Option<Tenant>> {
        let sql = "SELECT id, name, max_agents, created_at FROM tenants WHERE name = $1";
        on_pool!(self, p => sqlx::query_as::<_, Tenant>(sql).bind(name)
            .fetch_optional(p).await.map_err(db_err))
    }

    /// Host names of a tenant's agents.
    pub async fn agent_hostnames(&self, tenant_id: i64) -> R<Vec<String>> {
        let sql = "SELECT hostname FROM agents WHERE tenant_id = $1 ORDER BY id";
        on_pool!(self, p => sqlx::query_scalar::<_, String>(sql).bind(tenant_id)
            .fetch_all(p).await.map_err(db_err))
    }

    /// Event time of the oldest scored log of a tenant older than `before_ms`.
    pub async fn oldest_archivable(&self, tenant_id: i64, before_ms: i64) -> R<Option<i64>> {
        let sql = "SELECT MIN(timestamp) FROM agent_logs \
                   WHERE tenant_id = $1 AND timestamp < $2 AND scored";
        on_pool!(self, p => sqlx::query_scalar::<_, Option<i64>>(sql).bind(tenant_id)
            .bind(before_ms).fetch_one(p).await.map_err(db_err))
    }

    /// Up to `limit` scored logs of a tenant with `from_ms <= timestamp < to_ms`, by id, with
    /// their threats. Pending logs are never archived: they still need detection.
    pub async fn archivable_logs(
        &self,
        tenant_id: i64,
        from_ms: i64,
        to_ms: i64,
        limit: i64,
    ) -> R<Vec<ArchivedLog>> {
        let sql = format!(
            "SELECT {ARCHIVE_LOG_COLUMNS} FROM agent_logs WHERE tenant_id = $1 \
             AND timestamp >= $2 AND timestamp < $3 AND scored ORDER BY id LIMIT $4"
        );
        let logs: Vec<ArchivedLog> = on_pool!(self, p => sqlx::query_as(&sql).bind(tenant_id)
            .bind(from_ms).bind(to_ms).bind(limit).fetch_all(p).await.map_err(db_err))?;
        self.with_threats(tenant_id, logs).await
    }

    /// The scored logs of a tenant among `ids`, by id, with their threats.
    pub async fn archived_logs_by_ids(&self, tenant_id: i64, ids: &[i64]) -> R<Vec<ArchivedLog>> {
        let logs: Vec<ArchivedLog> = match self {
            Db::Postgres(p) => sqlx::query_as(&format!(
                "SELECT {ARCHIVE_LOG_COLUMNS} FROM agent_logs WHERE tenant_id = $1 \
                 AND id = ANY($2) AND scored ORDER BY id"
            ))
            .bind(tenant_id)
            .bind(ids)
            .fetch_all(p)
            .await
            .map_err(db_err)?,
            Db::Sqlite(p) => sqlx::query_as(&format!(
                "SELECT {ARCHIVE_LOG_COLUMNS} FROM agent_logs WHERE tenant_id = $1 \
                 AND id IN (SELECT value FROM json_each($2)) AND scored ORDER BY id"
            ))
            .bind(tenant_id)
            .bind(json_ids(ids))
            .fetch_all(p)
            .await
            .map_err(db_err)?,
        };
        self.with_threats(tenant_id, logs).await
    }

    async fn with_threats(
        &self,
        tenant_id: i64,
        mut logs: Vec<ArchivedLog>,
    ) -> R<Vec<ArchivedLog>> {
        if logs.is_empty() {
            return Ok(logs);
        }
        let ids: Vec<i64> = logs.iter().map(|l| l.id).collect();
        let threats: Vec<ArchivedThreat> = match self {
            Db::Postgres(p) => sqlx::query_as(&format!(
                "SELECT {ARCHIVE_THREAT_COLUMNS} FROM threat_detections \
                 WHERE tenant_id = $1 AND log_id = ANY($2)"
            ))
            .bind(tenant_id)
            .bind(&ids)
            .fetch_all(p)
            .await
            .map_err(db_err)?,
            Db::Sqlite(p) => sqlx::query_as(&format!(
                "SELECT {ARCHIVE_THREAT_COLUMNS} FROM threat_detections \
                 WHERE tenant_id = $1 AND log_id IN (SELECT value FROM json_each($2))"
            ))
            .bind(tenant_id)
            .bind(json_ids(&ids))
            .fetch_all(p)
            .await
            .map_err(db_err)?,
        };
        let mut by_log: std::collections::HashMap<i64, ArchivedThreat> =
            threats.into_iter().map(|t| (t.log_id, t)).collect();
        for l in &mut logs {
            l.threat = by_log.remove(&l.id);
        }
        Ok(logs)
    }

    /// Deletes archived logs of a tenant and their threats, in one transaction, after the
    /// archive holding them was verified. A log whose threat changed (triage) since it was
    /// archived is kept, so the change is not lost; the next run archives it again.
    pub async fn delete_archived(
        &self,
        tenant_id: i64,
        archived: &[ArchivedLog],
    ) -> R<ArchivedDeletion> {
        let ids: Vec<i64> = archived.iter().map(|l| l.id).collect();
        let expected: std::collections::HashMap<i64, Option<i64>> = archived
            .iter()
            .map(|l| (l.id, l.threat.as_ref().map(|t| t.updated_at)))
            .collect();
        let lock_threats =
            "SELECT log_id, updated_at FROM threat_detections WHERE tenant_id = $1 AND ";
        macro_rules! body {
            ($tx:ident, $in_ids:expr, $bind_ids:expr, $for_update:expr) => {{
                let current: Vec<(i64, i64)> = sqlx::query_as(&format!(
                    "{lock_threats}{}{}",
                    $in_ids("log_id"),
                    $for_update
                ))
                .bind(tenant_id)
                .bind($bind_ids(&ids))
                .fetch_all(&mut *$tx)
                .await
                .map_err(db_err)?;
                let current: std::collections::HashMap<i64, i64> = current.into_iter().collect();
                let (keep, changed): (Vec<i64>, Vec<i64>) = ids
                    .iter()
                    .copied()
                    .partition(|id| current.get(id).copied() == expected[id]);
                sqlx::query(&format!(
                    "DELETE FROM threat_detections WHERE tenant_id = $1 AND {}",
                    $in_ids("log_id")
                ))
                .bind(tenant_id)
                .bind($bind_ids(&keep))
                .execute(&mut *$tx)
                .await
                .map_err(db_err)?;
                let deleted = sqlx::query(&format!(
                    "DELETE FROM agent_logs WHERE tenant_id = $1 AND scored AND {}",
                    $in_ids("id")
                ))
                .bind(tenant_id)
                .bind($bind_ids(&keep))
                .execute(&mut *$tx)
                .await
                .map_err(db_err)?
                .rows_affected();
                $tx.commit().await.map_err(db_err)?;
                Ok(ArchivedDeletion { deleted, changed })
            }};
        }
        match self {
            Db::Postgres(p) => {
                let mut tx = p.begin().await.map_err(db_err)?;
                body!(
                    tx,
                    |col: &str| format!("{col} = ANY($2)"),
                    |v: &Vec<i64>| v.clone(),
                    " FOR UPDATE"
                )
            }
            Db::Sqlite(p) => {
                let mut tx = p.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
                body!(
                    tx,
                    |col: &str| format!("{col} IN (SELECT value FROM json_each($2))"),
                    |v: &Vec<i64>| json_ids(v),
                    ""
                )
            }
        }
    }

    /// Re-inserts archived logs and their threats with their original ids, in one
    /// transaction; rows that exist already are left alone (restoring is idempotent).
    /// Returns (logs inserted, threats inserted).
    pub async fn restore_archived(&self, logs: &[ArchivedLog]) -> R<(u64, u64)> {
        const LOG: &str = "INSERT INTO agent_logs (id, tenant_id, agent_id, timestamp, received_at, \
             source, level, message, scored) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, TRUE) \
             ON CONFLICT DO NOTHING";
        const THREAT: &str = "INSERT INTO threat_detections (id, tenant_id, log_id, agent_id, risk, \
             severity, anomaly, malicious_probability, model_version, explanation, status, verdict, \
             assignee, note, detected_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
             ON CONFLICT DO NOTHING";
        macro_rules! body {
            ($tx:ident) => {{
                let (mut n_logs, mut n_threats) = (0, 0);
                for l in logs {
                    n_logs += sqlx::query(LOG)
                        .bind(l.id)
                        .bind(l.tenant_id)
                        .bind(l.agent_id)
                        .bind(l.timestamp)
                        .bind(l.received_at)
                        .bind(&l.source)
                        .bind(&l.level)
                        .bind(&l.message)
                        .execute(&mut *$tx)
                        .await
                        .map_err(db_err)?
                        .rows_affected();
                    let Some(t) = &l.threat else { continue };
                    n_threats += sqlx::query(THREAT)
                        .bind(t.id)
                        .bind(l.tenant_id)
                        .bind(l.id)
                        .bind(l.agent_id)
                        .bind(t.risk)
                        .bind(&t.severity)
                        .bind(t.anomaly)
                        .bind(t.malicious_probability)
                        .bind(&t.model_version)
                        .bind(&t.explanation)
                        .bind(&t.status)
                        .bind(&t.verdict)
                        .bind(&t.assignee)
                        .bind(&t.note)
                        .bind(t.detected_at)
                        .bind(t.updated_at)
                        .execute(&mut *$tx)
                        .await
                        .map_err(db_err)?
                        .rows_affected();
                }
                $tx.commit().await.map_err(db_err)?;
                Ok((n_logs, n_threats))
            }};
        }
        match self {
            Db::Postgres(p) => {
                let mut tx = p.begin().await.map_err(db_err)?;
                body!(tx)
            }
            Db::Sqlite(p) => {
                let mut tx = p.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
                body!(tx)
            }
        }
    }

    /// Up to `limit` training labels of a tenant with ids above `after_id`, by id.
    pub async fn labels_after(
        &self,
        tenant_id: i64,
        after_id: i64,
        limit: i64,
    ) -> R<Vec<LabelRow>> {
        let sql = "SELECT id, message, malicious, source FROM labels \
                   WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3";
        on_pool!(self, p => sqlx::query_as::<_, LabelRow>(sql).bind(tenant_id).bind(after_id)
            .bind(limit).fetch_all(p).await.map_err(db_err))
    }
}
