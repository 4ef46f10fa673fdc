//! Command line and configuration: every setting comes from a flag or its environment variable
//! (names from the seed deployment guide), with `.env` loaded first by `main`.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand};

/// CodeGrey SOC server: multi-tenant log ingestion, ML threat detection and triage.
#[derive(Debug, Parser)]
#[command(name = "soc-server", version, about)]
pub struct Cli {
    /// Settings shared by every command.
    #[command(flatten)]
    pub config: Config,
    /// What to do (default: `serve`).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API and the detection pipeline (the default).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Train a new model and wait for it. Without `--tenant`: a global model on the sample
    /// corpus, made active. With `--tenant`: that tenant's model on the sample corpus plus its
    /// labels (analysts' verdicts, imports), made active when its held-out ROC AUC is at least
    /// the serving model's. Running servers switch within seconds.
    Retrain {
        /// Tenant id (default: the global model).
        #[arg(long)]
        tenant: Option<i64>,
    },
    /// Create a tenant and print its first admin API key.
    CreateTenant {
        /// Tenant name (unique).
        name: String,
    },
    /// Archive scored logs older than SOC_LOG_RETENTION_DAYS to the logs store (gzip NDJSON,
    /// verified, then deleted from the database) and exit.
    Archive,
    /// Re-import archived logs (an object key, or a prefix such as `agent_logs/1/2026/11/`);
    /// idempotent, original ids kept.
    RestoreArchive {
        /// Object key or key prefix under `agent_logs/`.
        key: String,
    },
    /// Export a tenant's labeled examples, sanitized with keyed pseudonyms (SOC_SECRET_KEY),
    /// to `training_data/{tenant_id}/` in the model store.
    ExportTrainingData {
        /// Tenant name.
        #[arg(long)]
        tenant: String,
    },
    /// Create an API key for a tenant and print it (shown once, stored hashed).
    CreateApiKey {
        /// Tenant id.
        #[arg(long)]
        tenant: i64,
        /// Role: admin, analyst or agent.
        #[arg(long)]
        role: String,
        /// Free-form name to recognize the key by.
        #[arg(long)]
        name: Option<String>,
    },
}

/// Server settings.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "SOC_HOST", default_value = "127.0.0.1", global = true)]
    pub host: String,
    /// Port to listen on (0: any free port).
    #[arg(long, env = "SOC_PORT", default_value_t = 8443, global = true)]
    pub port: u16,
    /// Database URL (`postgres://…` or `sqlite://…`); overrides DB_HOST…DB_PASSWORD.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<String>,
    /// PostgreSQL host (used when DATABASE_URL is not set).
    #[arg(long, env = "DB_HOST", global = true)]
    pub db_host: Option<String>,
    /// PostgreSQL port.
    #[arg(long, env = "DB_PORT", default_value_t = 5432, global = true)]
    pub db_port: u16,
    /// PostgreSQL database name.
    #[arg(long, env = "DB_NAME", default_value = "codegrey_soc", global = true)]
    pub db_name: String,
    /// PostgreSQL user.
    #[arg(long, env = "DB_USER", global = true)]
    pub db_user: Option<String>,
    /// PostgreSQL password.
    #[arg(long, env = "DB_PASSWORD", hide_env_values = true, global = true)]
    pub db_password: Option<String>,
    /// Directory for the embedded SQLite database (soc.db), the model store (models/) and the
    /// first admin key (admin-api-key).
    #[arg(long, env = "SOC_DATA_DIR", default_value = "./data", global = true)]
    pub data_dir: PathBuf,
    /// Directory of the server log file soc_server.log (empty: stdout only).
    #[arg(long, env = "SOC_LOG_DIR", default_value = "./logs", global = true)]
    pub log_dir: PathBuf,
    /// A log is recorded as a threat when its risk (0–10) is at least 10 × this value.
    #[arg(
        long,
        env = "THREAT_DETECTION_THRESHOLD",
        default_value_t = 0.7,
        global = true
    )]
    pub threat_detection_threshold: f64,
    /// Most agents a tenant may register (a tenant's own limit overrides it).
    #[arg(
        long,
        env = "SOC_MAX_AGENTS_PER_TENANT",
        default_value_t = 1000,
        global = true
    )]
    pub max_agents_per_tenant: i64,
    /// Most commands a tenant may issue to its agents per minute.
    #[arg(
        long,
        env = "SOC_MAX_COMMANDS_PER_MINUTE",
        default_value_t = 100,
        value_parser = clap::value_parser!(i64).range(1..),
        global = true
    )]
    pub max_commands_per_minute: i64,
    /// Run the ML detection pipeline.
    #[arg(long, env = "ML_MODELS_ENABLED", default_value = "true", value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set, global = true)]
    pub ml_models_enabled: bool,
    /// Retrain the model of every tenant with labels (analysts' verdicts, imports) every this
    /// many hours (0: never; `POST /api/models/retrain` and `soc-server retrain` do it on
    /// demand).
    #[arg(
        long,
        env = "ML_RETRAIN_INTERVAL_HOURS",
        default_value_t = 24.0,
        global = true
    )]
    pub ml_retrain_interval_hours: f64,
    /// Most recent logs of the tenant a retrain reads as unlabeled examples of its normal
    /// traffic for the anomaly side (isolation forest and its calibration; never the
    /// classifier or its vocabulary). Lines in the held-out split and lines labeled malicious
    /// are left out, so fewer may be used. 0: labeled examples only. The global model never
    /// reads tenant logs.
    #[arg(
        long,
        env = "ML_ANOMALY_SAMPLE_SIZE",
        default_value_t = 20_000,
        global = true
    )]
    pub ml_anomaly_sample_size: usize,
    /// Most logs the pipeline scores in one transaction.
    #[arg(
        long,
        env = "SOC_DETECTION_BATCH_SIZE",
        default_value_t = 2000,
        global = true
    )]
    pub detection_batch_size: usize,
    /// Concurrent detection workers in this process (0: 2 on PostgreSQL, where SKIP LOCKED lets
    /// them overlap scoring with database round trips; 1 on SQLite, which has one writer).
    #[arg(
        long,
        env = "SOC_DETECTION_WORKERS",
        default_value_t = 0,
        global = true
    )]
    pub detection_workers: usize,
    /// Interval fallback of the detection pipeline, in milliseconds (it is also woken by ingest).
    #[arg(
        long,
        env = "SOC_DETECTION_INTERVAL_MS",
        default_value_t = 1000,
        global = true
    )]
    pub detection_interval_ms: u64,
    /// S3 bucket of the model artifacts. Unset: models live only in `{data_dir}/models`. Set:
    /// that directory becomes a local cache of the bucket (see the README's "S3" section).
    #[arg(long, env = "S3_BUCKET", global = true)]
    pub s3_bucket: Option<String>,
    /// S3 bucket of the log archives.
    #[arg(long, env = "S3_LOGS_BUCKET", global = true)]
    pub s3_logs_bucket: Option<String>,
    /// AWS region of the buckets.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1", global = true)]
    pub aws_region: String,
    /// Endpoint of an S3-compatible store (MinIO, moto, ...); unset: AWS S3.
    #[arg(long, env = "S3_ENDPOINT_URL", global = true)]
    pub s3_endpoint_url: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`). Default: on when S3_ENDPOINT_URL is set
    /// (S3-compatible stores rarely serve `bucket.endpoint` names), off for AWS.
    #[arg(long, env = "S3_FORCE_PATH_STYLE", value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set, global = true)]
    pub s3_force_path_style: Option<bool>,
    /// Compute and check request / response checksums only when the operation requires them
    /// (for S3-compatible stores that reject AWS's default CRC32 checksums).
    #[arg(long, env = "S3_CHECKSUMS_WHEN_REQUIRED", default_value = "false", value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set, global = true)]
    pub s3_checksums_when_required: bool,
    /// AWS access key id. Unset: the standard AWS credential chain (profile, web identity,
    /// container or instance role).
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true, global = true)]
    pub aws_access_key_id: Option<String>,
    /// AWS secret access key (with AWS_ACCESS_KEY_ID).
    #[arg(
        long,
        env = "AWS_SECRET_ACCESS_KEY",
        hide_env_values = true,
        global = true
    )]
    pub aws_secret_access_key: Option<String>,
    /// AWS session token (temporary credentials, with AWS_ACCESS_KEY_ID).
    #[arg(long, env = "AWS_SESSION_TOKEN", hide_env_values = true, global = true)]
    pub aws_session_token: Option<String>,
    /// Longest wait for a TCP/TLS connection to S3, in milliseconds.
    #[arg(
        long,
        env = "S3_CONNECT_TIMEOUT_MS",
        default_value_t = 3000,
        global = true
    )]
    pub s3_connect_timeout_ms: u64,
    /// Longest an S3 operation may take, retries included, in milliseconds.
    #[arg(
        long,
        env = "S3_OPERATION_TIMEOUT_MS",
        default_value_t = 60_000,
        global = true
    )]
    pub s3_operation_timeout_ms: u64,
    /// Attempts per S3 operation (the SDK retries throttling, 5xx and network errors).
    #[arg(long, env = "S3_MAX_ATTEMPTS", default_value_t = 3, global = true)]
    pub s3_max_attempts: u32,
    /// First wait before retrying a failed model upload, in milliseconds; it doubles after each
    /// failure up to S3_RETRY_MAX_BACKOFF_MS.
    #[arg(
        long,
        env = "S3_RETRY_BACKOFF_MS",
        default_value_t = 1000,
        global = true
    )]
    pub s3_retry_backoff_ms: u64,
    /// Longest wait between model upload retries, in milliseconds; also how often a healthy
    /// store is checked.
    #[arg(
        long,
        env = "S3_RETRY_MAX_BACKOFF_MS",
        default_value_t = 60_000,
        global = true
    )]
    pub s3_retry_max_backoff_ms: u64,
    /// Scored logs whose event time is older than this many days are archived to the logs
    /// store and deleted from the database (0: keep everything, no archival).
    #[arg(
        long,
        env = "SOC_LOG_RETENTION_DAYS",
        default_value_t = 90.0,
        global = true
    )]
    pub log_retention_days: f64,
    /// How often the server runs archival, in minutes.
    #[arg(
        long,
        env = "SOC_ARCHIVE_INTERVAL_MINUTES",
        default_value_t = 60.0,
        global = true
    )]
    pub archive_interval_minutes: f64,
    /// Most logs per archive object.
    #[arg(
        long,
        env = "SOC_ARCHIVE_PART_ROWS",
        default_value_t = 10_000,
        global = true
    )]
    pub archive_part_rows: usize,
    /// Key of the pseudonyms of the sanitized training export (HMAC-SHA256); at least 16
    /// bytes, the same for every export. The export refuses to run without it.
    #[arg(long, env = "SOC_SECRET_KEY", hide_env_values = true, global = true)]
    pub secret_key: Option<Secret>,
}

/// A secret setting: never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret value.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

impl Config {
    /// Defaults for tests and embedding: every value as if no flag or variable were set.
    pub fn defaults() -> Self {
        Cli::parse_from(["soc-server"]).config
    }

    /// The database to use: DATABASE_URL, else PostgreSQL from DB_HOST…, else the embedded
    /// SQLite file `{data_dir}/soc.db`.
    pub fn database_url(&self) -> String {
        if let Some(url) = self.database_url.as_deref().filter(|u| !u.is_empty()) {
            return url.to_owned();
        }
        if let Some(host) = self.db_host.as_deref().filter(|h| !h.is_empty()) {
            let user = self.db_user.as_deref().unwrap_or("postgres");
            let auth = match self.db_password.as_deref() {
                Some(pw) if !pw.is_empty() => format!("{}:{}", encode(user), encode(pw)),
                _ => encode(user),
            };
            return format!(
                "postgres://{auth}@{}:{}/{}",
                host,
                self.db_port,
                encode(&self.db_name)
            );
        }
        format!("sqlite://{}", self.data_dir.join("soc.db").display())
    }

    /// Where the filesystem model store keeps its artifacts (with S3: the local cache).
    pub fn models_dir(&self) -> PathBuf {
        self.data_dir.join("models")
    }

    /// Where model uploads to S3 that have not succeeded yet are remembered (one empty marker
    /// file per key), so that they survive a restart.
    pub fn pending_uploads_dir(&self) -> PathBuf {
        self.data_dir.join("models-pending-upload")
    }

    /// The S3 connection settings (shared by the model and log buckets).
    pub fn s3_settings(&self) -> S3Settings {
        let nonempty = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        let endpoint_url = nonempty(&self.s3_endpoint_url);
        S3Settings {
            region: self.aws_region.clone(),
            force_path_style: self.s3_force_path_style.unwrap_or(endpoint_url.is_some()),
            endpoint_url,
            checksums_when_required: self.s3_checksums_when_required,
            credentials: nonempty(&self.aws_access_key_id).map(|access_key_id| S3Credentials {
                access_key_id,
                secret_access_key: self.aws_secret_access_key.clone().unwrap_or_default(),
                session_token: nonempty(&self.aws_session_token),
            }),
            connect_timeout: Duration::from_millis(self.s3_connect_timeout_ms.max(1)),
            operation_timeout: Duration::from_millis(self.s3_operation_timeout_ms.max(1)),
            max_attempts: self.s3_max_attempts.max(1),
        }
    }

    /// The model bucket, when models are stored in S3.
    pub fn models_bucket(&self) -> Option<&str> {
        self.s3_bucket.as_deref().filter(|b| !b.is_empty())
    }

    /// Backoff of the model upload retries: first wait and cap.
    pub fn upload_retry_backoff(&self) -> (Duration, Duration) {
        let first = Duration::from_millis(self.s3_retry_backoff_ms.max(1));
        (
            first,
            Duration::from_millis(self.s3_retry_max_backoff_ms).max(first),
        )
    }
}

/// How to reach S3 (or an S3-compatible store), independent of the bucket.
#[derive(Clone)]
pub struct S3Settings {
    /// AWS region.
    pub region: String,
    /// Endpoint of an S3-compatible store; `None` for AWS.
    pub endpoint_url: Option<String>,
    /// Path-style addressing.
    pub force_path_style: bool,
    /// Checksums only where the operation requires them.
    pub checksums_when_required: bool,
    /// Static credentials; `None`: the standard AWS credential chain.
    pub credentials: Option<S3Credentials>,
    /// Longest wait for a connection.
    pub connect_timeout: Duration,
    /// Longest an operation may take, retries included.
    pub operation_timeout: Duration,
    /// Attempts per operation.
    pub max_attempts: u32,
}

/// Static AWS credentials.
#[derive(Clone)]
pub struct S3Credentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token of temporary credentials.
    pub session_token: Option<String>,
}

// Written by hand so that secrets never reach a log line.
impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("force_path_style", &self.force_path_style)
            .field("checksums_when_required", &self.checksums_when_required)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|c| &c.access_key_id),
            )
            .field("connect_timeout", &self.connect_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .field("max_attempts", &self.max_attempts)
            .finish()
    }
}

/// Percent-encodes a URL userinfo / path component.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_from_parts_is_encoded() {
        let mut c = Config::defaults();
        c.database_url = None;
        c.db_host = Some("db.internal".into());
        c.db_user = Some("soc".into());
        c.db_password = Some("p@ss:w/rd".into());
        assert_eq!(
            c.database_url(),
            "postgres://soc:p%40ss%3Aw%2Frd@db.internal:5432/codegrey_soc"
        );
    }

    #[test]
    fn path_style_defaults_to_on_with_an_endpoint_only() {
        let mut c = Config::defaults();
        c.s3_endpoint_url = None;
        c.s3_force_path_style = None;
        assert!(!c.s3_settings().force_path_style);
        c.s3_endpoint_url = Some("http://127.0.0.1:9000".into());
        assert!(c.s3_settings().force_path_style);
        c.s3_force_path_style = Some(false);
        assert!(!c.s3_settings().force_path_style);
    }

    #[test]
    fn s3_settings_debug_hides_the_secret() {
        let mut c = Config::defaults();
        c.aws_access_key_id = Some("AKIDEXAMPLE".into());
        c.aws_secret_access_key = Some("wJalrXUtnFEMI".into());
        let shown = format!("{:?}", c.s3_settings());
        assert!(shown.contains("AKIDEXAMPLE"), "{shown}");
        assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
    }

    #[test]
    fn secret_key_is_not_shown_by_debug() {
        let c = Cli::parse_from(["soc-server", "--secret-key", "hunter2-hunter2-hunter2"]).config;
        assert_eq!(
            c.secret_key.as_ref().map(Secret::expose),
            Some("hunter2-hunter2-hunter2")
        );
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn embedded_default_is_sqlite_in_data_dir() {
        let mut c = Config::defaults();
        c.database_url = None;
        c.db_host = None;
        c.data_dir = "/tmp/x".into();
        assert_eq!(c.database_url(), "sqlite:///tmp/x/soc.db");
    }
}
