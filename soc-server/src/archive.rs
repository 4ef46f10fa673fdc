//! Log archival to the logs bucket and restore.
//!
//! Scored logs older than `SOC_LOG_RETENTION_DAYS` (by event time) are written, per tenant and
//! UTC day, as gzip NDJSON objects
//! `agent_logs/{tenant_id}/{yyyy}/{mm}/{dd}/part-{first_id}-{last_id}.ndjson.gz`, one
//! [`ArchivedLog`] per line (a log's threat travels inside its record). Each object is read
//! back and verified (record count and SHA-256 of the NDJSON) before the rows are deleted, in
//! that order, so a failure at any step deletes nothing that is not safely stored.
//!
//! Crash safety: an object name depends only on its rows, and a run that finds an existing
//! object of the same day whose id range overlaps the rows it is archiving (what a crash
//! between upload and delete leaves behind, or a restore) merges that object's records into
//! the new one, uploads and verifies it, deletes the superseded objects and only then the
//! rows. Whatever step a crash interrupts, the next run ends with every log in exactly one
//! object and none left in the database.
//!
//! Each object's gzip header comment holds `codegrey-soc-archive/1 records=N sha256=HEX`,
//! so a restore detects a damaged object before it inserts anything from it.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use flate2::read::GzDecoder;
use flate2::{Compression, GzBuilder};
use sha2::{Digest, Sha256};
use soc_core::store::{FsModelStore, ModelStore, StorageError};

use crate::Config;
use crate::db::{ArchivedLog, Db};
use crate::s3::S3ObjectStore;

/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;
/// Key prefix of the log archives.
pub const ARCHIVE_PREFIX: &str = "agent_logs/";
/// Suffix of every archive object.
pub const ARCHIVE_SUFFIX: &str = ".ndjson.gz";
/// First word of the gzip header comment of our objects (format version 1).
const FORMAT_TAG: &str = "codegrey-soc-archive/1";

/// A failure of archival or restore. Nothing is deleted from the database when one occurs.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The archive store could not be read or written (unreachable, refused, …).
    #[error("archive store unavailable: {0}")]
    Store(StorageError),
    /// The database failed.
    #[error("database error: {0}")]
    Database(StorageError),
    /// The object read back after the upload is not what was written.
    #[error("archive `{key}` did not verify after upload ({reason}); its rows were kept")]
    Verification {
        /// Object key.
        key: String,
        /// What differed.
        reason: String,
    },
    /// An archive object is damaged or not one of ours.
    #[error("archive `{key}` is corrupt: {reason}")]
    Corrupt {
        /// Object key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// Nothing to restore under that key or prefix.
    #[error("no archive object under `{0}`")]
    NotFound(String),
    /// The key or prefix is not one of the archive's.
    #[error("`{0}` is not an archive key or prefix (expected agent_logs/{{tenant_id}}/…)")]
    InvalidKey(String),
}

/// Archival settings.
#[derive(Debug, Clone, Copy)]
pub struct ArchiveSettings {
    /// Logs whose event time is older than this many days are archived.
    pub retention_days: f64,
    /// Most logs read from the database for one object.
    pub part_rows: usize,
}

impl ArchiveSettings {
    /// From the configuration.
    pub fn from_config(config: &Config) -> Self {
        Self {
            retention_days: config.log_retention_days,
            part_rows: config.archive_part_rows.max(1),
        }
    }
}

/// What an archival run did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ArchiveReport {
    /// Objects written (and verified).
    pub objects_written: usize,
    /// Logs deleted from the database after their object verified.
    pub logs_deleted: u64,
    /// Threats archived with their logs.
    pub threats_archived: u64,
    /// Objects of an interrupted run merged into a new object and removed.
    pub objects_superseded: usize,
    /// Logs kept because their threat was triaged while they were archived (next run).
    pub logs_kept_changed: usize,
}

/// What a restore did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RestoreReport {
    /// Objects read and verified.
    pub objects: usize,
    /// Records in them.
    pub records: u64,
    /// Logs inserted (records whose log was already present are skipped).
    pub logs_inserted: u64,
    /// Threats inserted.
    pub threats_inserted: u64,
}

/// Record count and SHA-256 of an object's NDJSON.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Digest256 {
    records: usize,
    sha256: String,
}

/// Gzip NDJSON of `lines` (each a JSON document) with the count and checksum in the gzip
/// header comment. Returns the bytes and the digest.
pub(crate) fn encode_ndjson<T: serde::Serialize>(
    lines: &[T],
) -> Result<(Vec<u8>, String), serde_json::Error> {
    let mut ndjson = Vec::new();
    for l in lines {
        serde_json::to_writer(&mut ndjson, l)?;
        ndjson.push(b'\n');
    }
    let sha = hex(&Sha256::digest(&ndjson));
    let comment = format!("{FORMAT_TAG} records={} sha256={sha}", lines.len());
    let mut gz = GzBuilder::new()
        .comment(comment.as_bytes())
        .write(Vec::new(), Compression::default());
    gz.write_all(&ndjson).map_err(serde_json::Error::io)?;
    Ok((gz.finish().map_err(serde_json::Error::io)?, sha))
}

/// Decompresses an object and checks it against the count and checksum of its header.
fn decode_ndjson(bytes: &[u8]) -> Result<(Vec<u8>, Digest256), String> {
    let mut gz = GzDecoder::new(bytes);
    let mut ndjson = Vec::new();
    // The decoder also checks the gzip trailer (CRC-32 and length).
    gz.read_to_end(&mut ndjson)
        .map_err(|e| format!("not a valid gzip stream ({e})"))?;
    let comment = gz
        .header()
        .and_then(|h| h.comment())
        .ok_or("no checksum in the gzip header")?;
    let comment = std::str::from_utf8(comment).map_err(|_| "unreadable gzip header comment")?;
    let mut words = comment.split(' ');
    if words.next() != Some(FORMAT_TAG) {
        return Err(format!("unknown format `{comment}`"));
    }
    let mut expected = Digest256 {
        records: usize::MAX,
        sha256: String::new(),
    };
    for w in words {
        if let Some(n) = w.strip_prefix("records=") {
            expected.records = n.parse().map_err(|_| "bad record count in the header")?;
        } else if let Some(s) = w.strip_prefix("sha256=") {
            expected.sha256 = s.to_owned();
        }
    }
    let actual = Digest256 {
        records: ndjson.iter().filter(|b| **b == b'\n').count(),
        sha256: hex(&Sha256::digest(&ndjson)),
    };
    if actual.sha256 != expected.sha256 {
        return Err(format!(
            "checksum mismatch (header sha256={}, content sha256={})",
            expected.sha256, actual.sha256
        ));
    }
    if actual.records != expected.records {
        return Err(format!(
            "record count mismatch (header {}, content {})",
            expected.records, actual.records
        ));
    }
    Ok((ndjson, actual))
}

/// Reads and checks an archive object of `tenant_id`.
fn decode_archive(
    key: &str,
    tenant_id: i64,
    bytes: &[u8],
) -> Result<Vec<ArchivedLog>, ArchiveError> {
    let corrupt = |reason: String| ArchiveError::Corrupt {
        key: key.to_owned(),
        reason,
    };
    let (ndjson, _) = decode_ndjson(bytes).map_err(corrupt)?;
    let mut out = Vec::new();
    for (i, line) in ndjson
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        let record: ArchivedLog =
            serde_json::from_slice(line).map_err(|e| corrupt(format!("record {}: {e}", i + 1)))?;
        if record.tenant_id != tenant_id {
            return Err(corrupt(format!(
                "record {} belongs to tenant {}, not {tenant_id}",
                i + 1,
                record.tenant_id
            )));
        }
        out.push(record);
    }
    Ok(out)
}

/// `agent_logs/{tenant}/{yyyy}/{mm}/{dd}/` of the UTC day starting at `day_ms`.
fn day_prefix(tenant_id: i64, day_ms: i64) -> String {
    let day = chrono::DateTime::from_timestamp_millis(day_ms).unwrap_or_default();
    format!("{ARCHIVE_PREFIX}{tenant_id}/{}/", day.format("%Y/%m/%d"))
}

/// Object key of the logs `first_id..=last_id` of a tenant's day. Ids are zero-padded so that
/// listing order is id order.
pub fn part_key(tenant_id: i64, day_ms: i64, first_id: i64, last_id: i64) -> String {
    format!(
        "{}part-{first_id:019}-{last_id:019}{ARCHIVE_SUFFIX}",
        day_prefix(tenant_id, day_ms)
    )
}

/// The id range of a part key, if it is one.
fn part_range(key: &str) -> Option<(i64, i64)> {
    let name = key.rsplit('/').next()?;
    let ids = name.strip_prefix("part-")?.strip_suffix(ARCHIVE_SUFFIX)?;
    let (a, b) = ids.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// The tenant id of an archive key or prefix (`agent_logs/{tenant}/…`).
fn key_tenant(key: &str) -> Option<i64> {
    key.strip_prefix(ARCHIVE_PREFIX)?
        .split('/')
        .next()?
        .parse()
        .ok()
}

/// Archives every tenant's scored logs older than the retention. Stops at the first failure
/// (what was archived before it stays archived; nothing unverified is deleted).
pub async fn archive_old_logs(
    db: &Db,
    store: &dyn ModelStore,
    settings: ArchiveSettings,
    now_ms: i64,
) -> Result<ArchiveReport, ArchiveError> {
    let cutoff = now_ms - (settings.retention_days * DAY_MS as f64) as i64;
    let mut report = ArchiveReport::default();
    for tenant in db.tenant_ids().await.map_err(ArchiveError::Database)? {
        while let Some(oldest) = db
            .oldest_archivable(tenant, cutoff)
            .await
            .map_err(ArchiveError::Database)?
        {
            let day = oldest.div_euclid(DAY_MS) * DAY_MS;
            let rows = db
                .archivable_logs(
                    tenant,
                    day,
                    (day + DAY_MS).min(cutoff),
                    settings.part_rows as i64,
                )
                .await
                .map_err(ArchiveError::Database)?;
            if rows.is_empty() {
                break;
            }
            let deleted = archive_part(db, store, tenant, day, rows, &mut report).await?;
            if deleted == 0 {
                // Every row changed under us: leave the rest of this tenant to the next run.
                break;
            }
        }
    }
    Ok(report)
}

/// Uploads, verifies, and deletes one part; returns the number of logs deleted. Public for the
/// crash tests, which run it through [`upload_part`] only.
async fn archive_part(
    db: &Db,
    store: &dyn ModelStore,
    tenant_id: i64,
    day_ms: i64,
    rows: Vec<ArchivedLog>,
    report: &mut ArchiveReport,
) -> Result<u64, ArchiveError> {
    let uploaded = upload_part(db, store, tenant_id, day_ms, rows).await?;
    for old in &uploaded.superseded {
        store.delete(old).await.map_err(ArchiveError::Store)?;
    }
    let deletion = db
        .delete_archived(tenant_id, &uploaded.from_db)
        .await
        .map_err(ArchiveError::Database)?;
    if !deletion.changed.is_empty() {
        tracing::info!(
            tenant_id,
            kept = deletion.changed.len(),
            "logs whose threat changed during archival were kept for the next run"
        );
    }
    report.objects_written += 1;
    report.objects_superseded += uploaded.superseded.len();
    report.logs_deleted += deletion.deleted;
    report.logs_kept_changed += deletion.changed.len();
    report.threats_archived += uploaded
        .from_db
        .iter()
        .filter(|l| l.threat.is_some() && !deletion.changed.contains(&l.id))
        .count() as u64;
    tracing::info!(
        tenant_id,
        key = %uploaded.key,
        records = uploaded.records,
        deleted = deletion.deleted,
        "logs archived"
    );
    Ok(deletion.deleted)
}

/// A part uploaded and verified, not yet committed (superseded objects and rows still there).
#[derive(Debug)]
pub struct UploadedPart {
    /// The object written.
    pub key: String,
    /// Records in it.
    pub records: usize,
    /// Older objects of the same day whose records it contains.
    pub superseded: Vec<String>,
    /// The records that were read from the database (to delete once the object verified).
    pub from_db: Vec<ArchivedLog>,
}

/// The first half of archiving a part: merges in the overlapping objects of the same day,
/// uploads the object and verifies it by reading it back. Deletes nothing.
pub async fn upload_part(
    db: &Db,
    store: &dyn ModelStore,
    tenant_id: i64,
    day_ms: i64,
    rows: Vec<ArchivedLog>,
) -> Result<UploadedPart, ArchiveError> {
    let (lo, hi) = match (rows.first(), rows.last()) {
        (Some(a), Some(b)) => (a.id, b.id),
        _ => {
            return Err(ArchiveError::Database(StorageError::NotFound(
                "no rows to archive".into(),
            )));
        }
    };
    let mut merged: BTreeMap<i64, ArchivedLog> = rows.into_iter().map(|r| (r.id, r)).collect();
    let mut from_db_ids: Vec<i64> = merged.keys().copied().collect();
    let overlapping: Vec<String> = store
        .list(&day_prefix(tenant_id, day_ms))
        .await
        .map_err(ArchiveError::Store)?
        .into_iter()
        .filter(|k| part_range(k).is_some_and(|(a, b)| a <= hi && lo <= b))
        .collect();
    let mut old_records: BTreeMap<i64, ArchivedLog> = BTreeMap::new();
    for key in &overlapping {
        let bytes = store.get(key).await.map_err(ArchiveError::Store)?;
        for r in decode_archive(key, tenant_id, &bytes)? {
            if !merged.contains_key(&r.id) {
                old_records.insert(r.id, r);
            }
        }
    }
    if !old_records.is_empty() {
        // Records of an interrupted run still in the database: take their current state.
        let ids: Vec<i64> = old_records.keys().copied().collect();
        for fresh in db
            .archived_logs_by_ids(tenant_id, &ids)
            .await
            .map_err(ArchiveError::Database)?
        {
            old_records.remove(&fresh.id);
            from_db_ids.push(fresh.id);
            merged.insert(fresh.id, fresh);
        }
        merged.extend(old_records);
    }
    let records: Vec<ArchivedLog> = merged.into_values().collect();
    let (first, last) = (records[0].id, records[records.len() - 1].id);
    let key = part_key(tenant_id, day_ms, first, last);
    let (bytes, sha) = encode_ndjson(&records).map_err(|e| ArchiveError::Verification {
        key: key.clone(),
        reason: format!("cannot serialize: {e}"),
    })?;
    store.put(&key, bytes).await.map_err(ArchiveError::Store)?;
    let back = store.get(&key).await.map_err(ArchiveError::Store)?;
    let verification = |reason: String| ArchiveError::Verification {
        key: key.clone(),
        reason,
    };
    let (_, digest) = decode_ndjson(&back).map_err(verification)?;
    if digest.records != records.len() || digest.sha256 != sha {
        return Err(verification(format!(
            "read back {} records with sha256 {}, wrote {} with {sha}",
            digest.records,
            digest.sha256,
            records.len()
        )));
    }
    from_db_ids.sort_unstable();
    let from_db = records
        .iter()
        .filter(|r| from_db_ids.binary_search(&r.id).is_ok())
        .cloned()
        .collect();
    Ok(UploadedPart {
        records: records.len(),
        superseded: overlapping.into_iter().filter(|k| *k != key).collect(),
        key,
        from_db,
    })
}

/// Re-imports the archive object `key_or_prefix`, or every object under that prefix, with the
/// original ids. Idempotent: logs (and threats) present already are skipped. Each object is
/// verified before any of its rows is inserted; a corrupt object stops the restore with
/// [`ArchiveError::Corrupt`] (objects restored before it stay restored).
pub async fn restore(
    db: &Db,
    store: &dyn ModelStore,
    key_or_prefix: &str,
) -> Result<RestoreReport, ArchiveError> {
    let Some(tenant_id) = key_tenant(key_or_prefix) else {
        return Err(ArchiveError::InvalidKey(key_or_prefix.to_owned()));
    };
    let keys: Vec<String> = if key_or_prefix.ends_with(ARCHIVE_SUFFIX) {
        vec![key_or_prefix.to_owned()]
    } else {
        store
            .list(key_or_prefix)
            .await
            .map_err(ArchiveError::Store)?
            .into_iter()
            .filter(|k| k.ends_with(ARCHIVE_SUFFIX))
            .collect()
    };
    if keys.is_empty() {
        return Err(ArchiveError::NotFound(key_or_prefix.to_owned()));
    }
    let mut report = RestoreReport::default();
    for key in keys {
        let bytes = match store.get(&key).await {
            Ok(b) => b,
            Err(StorageError::NotFound(_)) => return Err(ArchiveError::NotFound(key)),
            Err(StorageError::InvalidKey(_)) => return Err(ArchiveError::InvalidKey(key)),
            Err(e) => return Err(ArchiveError::Store(e)),
        };
        let records = decode_archive(&key, tenant_id, &bytes)?;
        let (logs, threats) = db
            .restore_archived(&records)
            .await
            .map_err(ArchiveError::Database)?;
        report.objects += 1;
        report.records += records.len() as u64;
        report.logs_inserted += logs;
        report.threats_inserted += threats;
        tracing::info!(%key, records = records.len(), logs, threats, "archive restored");
    }
    Ok(report)
}

/// The store of the log archives: the `S3_LOGS_BUCKET` bucket when it is set (read and written
/// directly, without a local cache, so that verification reads what S3 holds), else
/// `{data_dir}/archive` on the filesystem.
pub async fn open_archive_store(config: &Config) -> anyhow::Result<Arc<dyn ModelStore>> {
    if let Some(bucket) = config.s3_logs_bucket.as_deref().filter(|b| !b.is_empty()) {
        let store = S3ObjectStore::connect(&config.s3_settings(), bucket).await;
        return Ok(Arc::new(store));
    }
    let dir = config.data_dir.join("archive");
    let store = FsModelStore::new(&dir)
        .map_err(|e| anyhow::anyhow!("archive store unusable ({}): {e}", dir.display()))?;
    Ok(Arc::new(store))
}

/// Runs archival every `interval` in the background; a failed run is logged and retried at
/// the next tick (it deleted nothing it had not verified).
pub fn spawn_periodic(
    db: Db,
    store: Arc<dyn ModelStore>,
    settings: ArchiveSettings,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match archive_old_logs(&db, store.as_ref(), settings, crate::db::now_ms()).await {
                Ok(r) if r.objects_written > 0 => tracing::info!(?r, "archival run done"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "archival run failed; retrying next interval"),
            }
        }
    })
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_id_and_parse_back() {
        let k = part_key(7, 1_700_006_400_000, 42, 1234);
        assert_eq!(
            k,
            "agent_logs/7/2023/11/15/part-0000000000000000042-0000000000000001234.ndjson.gz"
        );
        soc_core::store::validate_key(&k).unwrap();
        assert_eq!(part_range(&k), Some((42, 1234)));
        assert_eq!(key_tenant(&k), Some(7));
        assert!(part_key(7, 0, 9, 9) < part_key(7, 0, 10, 10));
    }

    #[test]
    fn ndjson_round_trip_and_corruption_is_detected() {
        let lines = vec![serde_json::json!({"a": 1}), serde_json::json!({"b": "x"})];
        let (bytes, sha) = encode_ndjson(&lines).unwrap();
        let (ndjson, d) = decode_ndjson(&bytes).unwrap();
        assert_eq!(d.records, 2);
        assert_eq!(d.sha256, sha);
        assert_eq!(ndjson, b"{\"a\":1}\n{\"b\":\"x\"}\n");
        // Any flipped byte is caught: in the header comment, the deflate data or the trailer.
        for i in [20, bytes.len() / 2 + 10, bytes.len() - 3] {
            let mut bad = bytes.clone();
            bad[i.min(bytes.len() - 1)] ^= 0x55;
            assert!(decode_ndjson(&bad).is_err(), "flip at {i} not detected");
        }
        assert!(
            decode_ndjson(&bytes[..bytes.len() - 8]).is_err(),
            "truncation"
        );
    }
}
