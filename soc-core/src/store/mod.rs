//! What the detection pipeline needs from a database ([`Storage`]) and from a model store
//! ([`ModelStore`]), with in-memory and filesystem implementations. The PostgreSQL, SQLite and
//! S3 implementations live in soc-server; soc-core knows nothing about SQL or HTTP.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

mod fs;
mod key;
mod memory;

pub use fs::FsModelStore;
pub use key::{MAX_KEY_LEN, MAX_SEGMENT_LEN, validate_key};
pub use memory::{InMemoryModelStore, InMemoryStorage};

/// A failure of a storage backend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The key or row does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The write conflicts with existing data.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The key is not acceptable to the store (empty, absolute, `..`, ...).
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// The backend cannot be reached or failed; retrying later may work.
    #[error("storage backend unavailable: {0}")]
    Unavailable(String),
}

/// Tenant identifier.
pub type TenantId = i64;

/// A log that has not been scored yet, as the pipeline reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingLog {
    /// Tenant that owns the log.
    pub tenant_id: TenantId,
    /// Log id, unique within the tenant.
    pub log_id: i64,
    /// Agent that shipped the log.
    pub agent_id: i64,
    /// The raw log line.
    pub message: String,
}

/// A detection to record for a scored log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewDetection {
    /// Tenant that owns the log.
    pub tenant_id: TenantId,
    /// The log the detection is about.
    pub log_id: i64,
    /// Agent that shipped the log.
    pub agent_id: i64,
    /// Risk 0–10.
    pub risk: f64,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: String,
    /// Calibrated anomaly score in [0, 1].
    pub anomaly: f64,
    /// Malicious probability in [0, 1].
    pub malicious_probability: f64,
    /// Version of the model that scored the log.
    pub model_version: String,
    /// Explanation as JSON (top terms, which model fired).
    pub explanation: serde_json::Value,
}

/// A labeled example for training (analyst verdict, imported label or sample data).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingExample {
    /// Tenant the example belongs to.
    pub tenant_id: TenantId,
    /// The log line.
    pub message: String,
    /// `true` when malicious.
    pub malicious: bool,
}

/// Scores one claimed batch: returns the detections to record (possibly none) for `logs`.
/// It runs while the batch is claimed, so it must be pure CPU work.
pub type BatchScorer<'a> = dyn FnMut(&[PendingLog]) -> Vec<NewDetection> + Send + 'a;

/// What the detection pipeline needs from a database.
///
/// `score_pending` must be atomic: the batch's detections are recorded and its logs marked
/// scored together, or not at all (a failure or crash leaves the logs pending, to be claimed
/// again). Two callers never claim the same log at the same time. Together these make
/// detection exactly-once per log.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Claims up to `limit` pending logs (oldest first), calls `score` once on them, records
    /// the returned detections and marks the claimed logs scored. Returns how many logs were
    /// scored (0 when none was pending).
    async fn score_pending(
        &self,
        limit: usize,
        score: &mut BatchScorer<'_>,
    ) -> Result<usize, StorageError>;

    /// Number of logs waiting to be scored (for status reporting).
    async fn pending_count(&self) -> Result<u64, StorageError>;

    /// Up to `limit` labeled examples of `tenant` (or of every tenant when `None`), newest first.
    async fn training_examples(
        &self,
        tenant: Option<TenantId>,
        limit: usize,
    ) -> Result<Vec<TrainingExample>, StorageError>;
}

/// Opaque artifact bytes by key (`ml_models/global/3.cgsoc`, ...).
#[async_trait]
pub trait ModelStore: Send + Sync + 'static {
    /// Stores `bytes` under `key`, replacing what was there. Durable when it returns.
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StorageError>;
    /// The bytes under `key`, or [`StorageError::NotFound`].
    async fn get(&self, key: &str) -> Result<Vec<u8>, StorageError>;
    /// Every key that starts with `prefix`, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError>;
    /// Removes `key`; removing a missing key is not an error.
    async fn delete(&self, key: &str) -> Result<(), StorageError>;
}
