//! In-memory backends: [`InMemoryModelStore`] and [`InMemoryStorage`], for tests, examples,
//! Python and embedding the detector in a process without a database.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use super::{
    BatchScorer, ModelStore, NewDetection, PendingLog, Storage, StorageError, TenantId,
    TrainingExample, validate_key,
};

/// Locks `mutex`, ignoring poisoning: no code of this module panics while holding a lock (the
/// scorer runs unlocked), so the data is consistent even if some other holder panicked.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Model artifacts in a map, by key. Keys follow [`validate_key`], as with every model store
/// of soc-core. Cloning the bytes on `get` keeps it simple; artifacts are read rarely.
#[derive(Debug, Default)]
pub struct InMemoryModelStore {
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl InMemoryModelStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl ModelStore for InMemoryModelStore {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        validate_key(key)?;
        lock(&self.objects).insert(key.to_owned(), bytes);
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, StorageError> {
        validate_key(key)?;
        lock(&self.objects)
            .get(key)
            .cloned()
            .ok_or_else(|| StorageError::NotFound(key.to_owned()))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        // Keys are sorted, and those starting with `prefix` form one contiguous range.
        Ok(lock(&self.objects)
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .map(|(key, _)| key)
            .take_while(|key| key.starts_with(prefix))
            .cloned()
            .collect())
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        validate_key(key)?;
        lock(&self.objects).remove(key);
        Ok(())
    }
}

/// Where a log is in the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LogState {
    /// Waiting to be claimed.
    Pending,
    /// Claimed by a running `score_pending` call.
    Claimed,
    /// Scored (its detections, if any, are recorded).
    Scored,
}

#[derive(Debug)]
struct LogRow {
    log: PendingLog,
    state: LogState,
}

#[derive(Debug, Default)]
struct Tables {
    /// Last log id handed out (ids start at 1 and are unique across tenants).
    last_log_id: i64,
    /// Every log, by id.
    logs: BTreeMap<i64, LogRow>,
    /// Ids of the logs in state `Pending`, oldest first.
    pending: BTreeSet<i64>,
    /// Number of logs in state `Claimed`.
    claimed: usize,
    /// Recorded detections, in commit order.
    detections: Vec<NewDetection>,
    /// Ids of scored logs, in the order they were marked scored.
    scored: Vec<i64>,
    /// Training examples, oldest first.
    training: Vec<TrainingExample>,
    /// Test hook: the next commit fails.
    fail_next_commit: bool,
}

impl Tables {
    /// Returns claimed logs to `Pending`.
    fn release(&mut self, ids: &[i64]) {
        for id in ids {
            if let Some(row) = self.logs.get_mut(id)
                && row.state == LogState::Claimed
            {
                row.state = LogState::Pending;
                self.pending.insert(*id);
                self.claimed -= 1;
            }
        }
    }

    /// Records `detections` and marks the claimed logs `ids` scored, all or nothing.
    fn commit(&mut self, ids: &[i64], detections: Vec<NewDetection>) -> Result<(), StorageError> {
        if std::mem::take(&mut self.fail_next_commit) {
            return Err(StorageError::Unavailable(
                "commit failed (injected by `fail_next_commit`)".to_owned(),
            ));
        }
        // A detection must be about a log of this batch, as a foreign key would enforce.
        for d in &detections {
            let in_batch = ids.binary_search(&d.log_id).is_ok()
                && self
                    .logs
                    .get(&d.log_id)
                    .is_some_and(|row| row.log.tenant_id == d.tenant_id);
            if !in_batch {
                return Err(StorageError::Conflict(format!(
                    "detection for log {} of tenant {} is not about a log of the scored batch",
                    d.log_id, d.tenant_id
                )));
            }
        }
        for id in ids {
            if let Some(row) = self.logs.get_mut(id) {
                debug_assert_eq!(row.state, LogState::Claimed);
                row.state = LogState::Scored;
                self.claimed -= 1;
                self.scored.push(*id);
            }
        }
        self.detections.extend(detections);
        Ok(())
    }
}

/// Returns a claim to `Pending` unless the batch was committed, also when unwinding.
struct Claim<'a> {
    tables: &'a Mutex<Tables>,
    ids: Vec<i64>,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if !self.ids.is_empty() {
            lock(self.tables).release(&self.ids);
        }
    }
}

/// A [`Storage`] in memory: logs, detections and training examples in one mutex.
///
/// It keeps the guarantees of the trait: `score_pending` claims logs (so concurrent callers
/// take disjoint batches), runs the scorer without holding the lock, then records the
/// detections and marks the logs scored in one step. If the scorer panics or the commit fails,
/// the claim is released and the logs are pending again, so every log is scored exactly once.
///
/// Logs get ids 1, 2, 3, ... in insertion order (unique across tenants); "oldest first" is
/// id order. `pending_count` counts the logs not scored yet, including those claimed by a
/// running `score_pending`.
///
/// ```
/// use soc_core::store::{InMemoryStorage, NewDetection, PendingLog, Storage};
///
/// let storage = InMemoryStorage::new();
/// let id = storage.insert_log(1, 7, "Failed password for root from 203.0.113.9");
/// let scored = pollster::block_on(storage.score_pending(100, &mut |logs: &[PendingLog]| {
///     logs.iter()
///         .map(|log| NewDetection {
///             tenant_id: log.tenant_id,
///             log_id: log.log_id,
///             agent_id: log.agent_id,
///             risk: 8.0,
///             severity: "high".into(),
///             anomaly: 0.9,
///             malicious_probability: 0.7,
///             model_version: "1".into(),
///             explanation: serde_json::Value::Null,
///         })
///         .collect()
/// }))?;
/// assert_eq!(scored, 1);
/// assert_eq!(storage.scored_log_ids(), [id]);
/// assert_eq!(storage.detections()[0].severity, "high");
/// # Ok::<(), soc_core::store::StorageError>(())
/// ```
#[derive(Debug, Default)]
pub struct InMemoryStorage {
    tables: Mutex<Tables>,
}

impl InMemoryStorage {
    /// An empty storage.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a pending log and returns its id.
    pub fn insert_log(
        &self,
        tenant_id: TenantId,
        agent_id: i64,
        message: impl Into<String>,
    ) -> i64 {
        let mut t = lock(&self.tables);
        t.last_log_id += 1;
        let log_id = t.last_log_id;
        let log = PendingLog {
            tenant_id,
            log_id,
            agent_id,
            message: message.into(),
        };
        t.logs.insert(
            log_id,
            LogRow {
                log,
                state: LogState::Pending,
            },
        );
        t.pending.insert(log_id);
        log_id
    }

    /// Adds a labeled example for training.
    pub fn add_training_example(&self, example: TrainingExample) {
        lock(&self.tables).training.push(example);
    }

    /// The recorded detections, in the order they were committed.
    pub fn detections(&self) -> Vec<NewDetection> {
        lock(&self.tables).detections.clone()
    }

    /// Ids of the scored logs, in the order they were marked scored (a log scored twice would
    /// appear twice).
    pub fn scored_log_ids(&self) -> Vec<i64> {
        lock(&self.tables).scored.clone()
    }

    /// Number of logs not scored yet (pending or claimed by a running `score_pending`).
    pub fn pending_len(&self) -> u64 {
        let t = lock(&self.tables);
        (t.pending.len() + t.claimed) as u64
    }

    /// Test hook: makes the next `score_pending` commit fail with
    /// [`StorageError::Unavailable`], as a lost database connection would. Its logs stay
    /// pending.
    pub fn fail_next_commit(&self) {
        lock(&self.tables).fail_next_commit = true;
    }

    fn score_pending_now(
        &self,
        limit: usize,
        score: &mut BatchScorer<'_>,
    ) -> Result<usize, StorageError> {
        // Claim: take the oldest pending logs out of `pending`.
        let (mut claim, batch) = {
            let mut t = lock(&self.tables);
            let ids: Vec<i64> = t.pending.iter().take(limit).copied().collect();
            let mut batch = Vec::with_capacity(ids.len());
            for id in &ids {
                t.pending.remove(id);
                if let Some(row) = t.logs.get_mut(id) {
                    row.state = LogState::Claimed;
                    batch.push(row.log.clone());
                }
            }
            t.claimed += ids.len();
            let claim = Claim {
                tables: &self.tables,
                ids,
            };
            (claim, batch)
        };
        if batch.is_empty() {
            return Ok(0);
        }

        // Score without the lock. A panic is turned into an error; dropping `claim` releases
        // the batch.
        let detections =
            panic::catch_unwind(AssertUnwindSafe(|| score(&batch))).map_err(|payload| {
                let reason = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic payload".to_owned());
                StorageError::Unavailable(format!(
                    "the scorer panicked ({reason}); {} logs left pending",
                    batch.len()
                ))
            })?;

        // Commit, or release the claim under the same lock.
        let mut t = lock(&self.tables);
        let ids = std::mem::take(&mut claim.ids);
        match t.commit(&ids, detections) {
            Ok(()) => Ok(batch.len()),
            Err(e) => {
                t.release(&ids);
                Err(e)
            }
        }
    }
}

#[async_trait]
impl Storage for InMemoryStorage {
    async fn score_pending(
        &self,
        limit: usize,
        score: &mut BatchScorer<'_>,
    ) -> Result<usize, StorageError> {
        self.score_pending_now(limit, score)
    }

    async fn pending_count(&self) -> Result<u64, StorageError> {
        Ok(self.pending_len())
    }

    async fn training_examples(
        &self,
        tenant: Option<TenantId>,
        limit: usize,
    ) -> Result<Vec<TrainingExample>, StorageError> {
        Ok(lock(&self.tables)
            .training
            .iter()
            .rev()
            .filter(|e| tenant.is_none_or(|t| e.tenant_id == t))
            .take(limit)
            .cloned()
            .collect())
    }
}
