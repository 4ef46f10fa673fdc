//! Sanitized training export: a tenant's labeled examples (analyst verdicts, imported labels)
//! as gzip NDJSON `{"message", "malicious", "source"}` in the model store (the `S3_BUCKET`
//! bucket, beside the models trained from such data) under
//! `training_data/{tenant_id}/export-{unix_ms}.ndjson.gz`, with IP addresses, e-mail
//! addresses, user names and host names replaced by keyed pseudonyms
//! ([`crate::sanitize`], `docs/sanitized-export.md`).

use serde::Serialize;
use soc_core::store::{ModelStore, StorageError};

use crate::archive::encode_ndjson;
use crate::db::{Db, Tenant};
use crate::sanitize::Pseudonymizer;

/// Shortest accepted `SOC_SECRET_KEY`, in bytes: pseudonyms are only as strong as the key.
pub const MIN_SECRET_KEY_BYTES: usize = 16;
/// Labels read from the database at a time.
const PAGE: i64 = 5000;

/// Why an export did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// No key: exporting without one would either leak or use a guessable key.
    #[error(
        "SOC_SECRET_KEY is not set: the sanitized export derives its pseudonyms from it (set at least {MIN_SECRET_KEY_BYTES} random bytes, the same for every export)"
    )]
    MissingSecretKey,
    /// A key too short to resist guessing.
    #[error("SOC_SECRET_KEY is too short: at least {MIN_SECRET_KEY_BYTES} bytes are required")]
    WeakSecretKey,
    /// No such tenant.
    #[error("no tenant named `{0}`")]
    UnknownTenant(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(StorageError),
    /// The model store failed (nothing was exported).
    #[error("model store unavailable: {0}")]
    Store(StorageError),
    /// Serialization failed.
    #[error("cannot encode the export: {0}")]
    Encode(#[from] serde_json::Error),
}

/// One exported example.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ExportedExample {
    /// The sanitized line.
    pub message: String,
    /// `true`: malicious.
    pub malicious: bool,
    /// Where the label came from (`verdict`, `import`, …).
    pub source: String,
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportReport {
    /// Object key.
    pub key: String,
    /// Examples written.
    pub examples: usize,
    /// Of which malicious.
    pub malicious: usize,
    /// SHA-256 of the NDJSON (also in the gzip header comment).
    pub sha256: String,
}

/// Checks the secret key and returns its bytes.
pub fn secret_key_bytes(secret: Option<&str>) -> Result<&[u8], ExportError> {
    match secret {
        None | Some("") => Err(ExportError::MissingSecretKey),
        Some(s) if s.len() < MIN_SECRET_KEY_BYTES => Err(ExportError::WeakSecretKey),
        Some(s) => Ok(s.as_bytes()),
    }
}

/// Model-store key of an export made at `now_ms`.
pub fn export_key(tenant_id: i64, now_ms: i64) -> String {
    format!("training_data/{tenant_id}/export-{now_ms}.ndjson.gz")
}

/// Exports the labeled examples of the tenant named `tenant_name`, sanitized with `secret`.
pub async fn export_training_data(
    db: &Db,
    store: &dyn ModelStore,
    secret: Option<&str>,
    tenant_name: &str,
    now_ms: i64,
) -> Result<ExportReport, ExportError> {
    let key = secret_key_bytes(secret)?;
    let tenant: Tenant = db
        .tenant_by_name(tenant_name)
        .await
        .map_err(ExportError::Database)?
        .ok_or_else(|| ExportError::UnknownTenant(tenant_name.to_owned()))?;
    let hosts = db
        .agent_hostnames(tenant.id)
        .await
        .map_err(ExportError::Database)?;
    let pseudonymizer = Pseudonymizer::new(key, &hosts);
    let mut examples = Vec::new();
    let mut after = 0;
    loop {
        let page = db
            .labels_after(tenant.id, after, PAGE)
            .await
            .map_err(ExportError::Database)?;
        let Some(last) = page.last() else { break };
        after = last.id;
        examples.extend(page.into_iter().map(|l| ExportedExample {
            message: pseudonymizer.sanitize(&l.message),
            malicious: l.malicious,
            source: l.source,
        }));
    }
    let (bytes, sha256) = encode_ndjson(&examples)?;
    let object_key = export_key(tenant.id, now_ms);
    store
        .put(&object_key, bytes)
        .await
        .map_err(ExportError::Store)?;
    let report = ExportReport {
        key: object_key,
        examples: examples.len(),
        malicious: examples.iter().filter(|e| e.malicious).count(),
        sha256,
    };
    tracing::info!(?report, "sanitized training data exported");
    Ok(report)
}
