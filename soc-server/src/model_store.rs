//! The model store the server uses: the filesystem store under the data directory, or, with
//! `S3_BUCKET` set, [`CachedModelStore`]: the S3 bucket behind that same directory as a local
//! cache, with durable, retried uploads.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use soc_core::store::{FsModelStore, ModelStore, StorageError, validate_key};
use tokio::sync::Notify;

use crate::config::Config;
use crate::s3::S3ObjectStore;

/// What `GET /api/system/status` says about the model store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelStoreStatus {
    /// `available`, `degraded` (S3 configured but unreachable, a corrupt object in S3, or
    /// uploads still pending: the server works from its local cache) or `unavailable` (the
    /// local store itself fails).
    pub status: &'static str,
    /// `filesystem` or `s3`.
    pub backend: &'static str,
    /// The model bucket, with S3.
    pub bucket: Option<String>,
    /// Why it is not `available`.
    pub reason: Option<String>,
    /// Models stored locally whose upload to S3 has not succeeded yet.
    pub pending_uploads: usize,
}

/// The model store of a server, opened from its configuration.
pub struct OpenedModelStore {
    /// The store every caller uses.
    pub models: Arc<dyn ModelStore>,
    /// The same store when it is S3-backed (for status, start-up download and retries).
    pub s3: Option<Arc<CachedModelStore>>,
}

/// Opens the configured model store: [`CachedModelStore`] when `S3_BUCKET` is set, else the
/// filesystem store in `{data_dir}/models`. Never contacts S3 (start-up must not depend on it).
pub async fn open(config: &Config) -> Result<OpenedModelStore, StorageError> {
    let Some(bucket) = config.models_bucket() else {
        let store = FsModelStore::new(config.models_dir())?;
        // The root must be listable: fail at start-up, not at the first model write.
        store.list("ml_models/").await?;
        return Ok(OpenedModelStore {
            models: Arc::new(store),
            s3: None,
        });
    };
    let remote = S3ObjectStore::connect(&config.s3_settings(), bucket).await;
    let store = Arc::new(CachedModelStore::new(
        config.models_dir(),
        config.pending_uploads_dir(),
        remote,
        config.upload_retry_backoff(),
    )?);
    Ok(OpenedModelStore {
        models: store.clone(),
        s3: Some(store),
    })
}

/// The status of the filesystem store `models`, or of the S3-backed one when there is one.
/// Never waits for S3: the S3 status is what the last S3 request (or background check) saw.
pub async fn status(models: &dyn ModelStore, s3: Option<&CachedModelStore>) -> ModelStoreStatus {
    if let Some(s3) = s3 {
        return s3.status().await;
    }
    let (status, reason) = match models.list("ml_models/").await {
        Ok(_) => ("available", None),
        Err(e) => {
            tracing::warn!(error = %e, "status: model store check failed");
            ("unavailable", Some(e.to_string()))
        }
    };
    ModelStoreStatus {
        status,
        backend: "filesystem",
        bucket: None,
        reason,
        pending_uploads: 0,
    }
}

/// Checks bytes read from S3 before they may enter the cache: a model artifact (`*.cgsoc`)
/// must pass soc-core's header and checksum checks; other keys are opaque.
fn check_artifact(key: &str, bytes: &[u8]) -> Result<(), String> {
    if key.ends_with(".cgsoc") {
        soc_core::read_header(bytes)
            .map(drop)
            .map_err(|e| e.to_string())
    } else {
        Ok(())
    }
}

/// What the last S3 requests showed.
#[derive(Debug, Default)]
struct Health {
    /// The last S3 failure, until a later request succeeds.
    unreachable: Option<String>,
    /// Keys whose S3 object failed [`check_artifact`], with the reason, until the object is
    /// replaced (uploaded again, repaired from the cache) or deleted.
    corrupt: BTreeMap<String, String>,
}

/// An S3 bucket behind a local filesystem cache: the model store of a server with `S3_BUCKET`.
///
/// * `put` first records the key as pending upload (an empty marker file in its own
///   directory), writes the bytes to the cache (atomic and durable), then uploads. When the
///   upload fails, `put` still succeeds (the model is durable locally) and the background task
///   of [`spawn_sync`](Self::spawn_sync) retries the pending uploads with exponential backoff
///   (capped) until S3 accepts them; markers survive restarts. A crash between marker and
///   upload only re-uploads what the cache holds.
/// * `get` reads the cache first, else S3, and caches what it read. An S3 object that fails the
///   artifact checks never enters the cache: `get` fails with [`StorageError::Unavailable`] and
///   the store reports itself degraded.
/// * `list` is the union of the cache and the bucket (the cache alone while S3 is down).
/// * `delete` removes the key from S3, then from the cache; it fails while S3 is down.
/// * [`prefetch`](Self::prefetch) (at start-up) downloads the active models into the cache.
///
/// Keys are immutable in practice (a model version is written once), which is why a cached
/// copy is trusted without asking S3.
pub struct CachedModelStore {
    cache: FsModelStore,
    pending: FsModelStore,
    remote: S3ObjectStore,
    /// Serializes uploads, so that a retry of old bytes never lands after a newer `put`.
    upload_lock: tokio::sync::Mutex<()>,
    health: Mutex<Health>,
    wake: Arc<Notify>,
    backoff: (Duration, Duration),
}

impl CachedModelStore {
    /// The store of `remote`, cached in `cache_dir`, remembering pending uploads in
    /// `pending_dir`; failed uploads are retried after `backoff.0`, doubling up to `backoff.1`.
    pub fn new(
        cache_dir: impl Into<PathBuf>,
        pending_dir: impl Into<PathBuf>,
        remote: S3ObjectStore,
        backoff: (Duration, Duration),
    ) -> Result<Self, StorageError> {
        let cache = FsModelStore::new(cache_dir)?;
        let pending = FsModelStore::new(pending_dir)?;
        if cache.root() == pending.root() {
            return Err(StorageError::Conflict(
                "the model cache and the pending-upload directory must differ".into(),
            ));
        }
        Ok(Self {
            cache,
            pending,
            remote,
            upload_lock: tokio::sync::Mutex::new(()),
            health: Mutex::default(),
            wake: Arc::default(),
            backoff,
        })
    }

    /// The S3 side.
    pub fn remote(&self) -> &S3ObjectStore {
        &self.remote
    }

    /// The local cache.
    pub fn cache(&self) -> &FsModelStore {
        &self.cache
    }

    /// Keys stored locally but not yet in S3, sorted.
    pub async fn pending_uploads(&self) -> Result<Vec<String>, StorageError> {
        self.pending.list("").await
    }

    /// What the last S3 requests showed, plus the pending uploads. Never contacts S3.
    pub async fn status(&self) -> ModelStoreStatus {
        let pending = self.pending.list("").await;
        let mut reasons = Vec::new();
        {
            let health = self.health.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(e) = &health.unreachable {
                reasons.push(format!("S3 unreachable: {e}"));
            }
            for (key, why) in &health.corrupt {
                reasons.push(format!("corrupt object `{key}` in S3: {why}"));
            }
        }
        let (status, pending_uploads) = match &pending {
            Ok(keys) if keys.is_empty() && reasons.is_empty() => ("available", 0),
            Ok(keys) => {
                if !keys.is_empty() {
                    reasons.push(format!("{} model upload(s) pending", keys.len()));
                }
                ("degraded", keys.len())
            }
            Err(e) => {
                reasons.push(format!("pending uploads unreadable: {e}"));
                ("unavailable", 0)
            }
        };
        ModelStoreStatus {
            status,
            backend: "s3",
            bucket: Some(self.remote.bucket().to_owned()),
            reason: (!reasons.is_empty()).then(|| reasons.join("; ")),
            pending_uploads,
        }
    }

    /// Records the outcome of an S3 request: any answer but a failure to reach S3 (or a 5xx)
    /// means S3 is reachable.
    fn observe<T>(&self, result: Result<T, StorageError>) -> Result<T, StorageError> {
        let mut health = self.health.lock().unwrap_or_else(|p| p.into_inner());
        match &result {
            Err(StorageError::Unavailable(e)) => health.unreachable = Some(e.clone()),
            _ => health.unreachable = None,
        }
        result
    }

    fn set_corrupt(&self, key: &str, why: Option<String>) {
        let mut health = self.health.lock().unwrap_or_else(|p| p.into_inner());
        match why {
            Some(why) => health.corrupt.insert(key.to_owned(), why),
            None => health.corrupt.remove(key),
        };
    }

    /// Uploads the pending `key` (what the cache holds) and clears its marker.
    async fn upload(&self, key: &str) -> Result<(), StorageError> {
        let _one_at_a_time = self.upload_lock.lock().await;
        self.upload_locked(key, None).await
    }

    /// [`upload`](Self::upload) of `bytes` (else the cached bytes), `upload_lock` held.
    async fn upload_locked(&self, key: &str, bytes: Option<Vec<u8>>) -> Result<(), StorageError> {
        match self.pending.get(key).await {
            Ok(_) => {}
            Err(StorageError::NotFound(_)) => return Ok(()), // uploaded or deleted meanwhile
            Err(e) => return Err(e),
        }
        let bytes = match bytes {
            Some(b) => b,
            None => match self.cache.get(key).await {
                Ok(b) => b,
                Err(StorageError::NotFound(_)) => {
                    // Only a crash between marker and cache write leaves this: the `put` never
                    // returned, so nothing acknowledged is missing.
                    tracing::warn!(%key, "pending upload has no cached bytes; dropping it");
                    return self.pending.delete(key).await;
                }
                Err(e) => return Err(e),
            },
        };
        self.observe(self.remote.put(key, bytes).await)?;
        self.set_corrupt(key, None);
        self.pending.delete(key).await
    }

    /// One round of the background task: checks the bucket, then uploads every pending key.
    /// `true` when S3 answered and nothing is left to upload.
    pub async fn sync_once(&self) -> bool {
        if let Err(e) = self.observe(self.remote.check().await) {
            tracing::warn!(error = %e, "S3 model bucket unreachable; serving models from the local cache");
            return false;
        }
        let keys = match self.pending_uploads().await {
            Ok(keys) => keys,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the pending model uploads");
                return false;
            }
        };
        for key in keys {
            match self.upload(&key).await {
                Ok(()) => tracing::info!(%key, "pending model uploaded to S3"),
                Err(e) => {
                    tracing::warn!(%key, error = %e, "model upload to S3 failed again; will retry");
                    return false;
                }
            }
        }
        true
    }

    /// Starts the background task: while uploads are pending or S3 is unreachable it runs
    /// [`sync_once`](Self::sync_once) after an exponential backoff (first wait, doubling, up to
    /// the cap); when all is well it checks again after the cap, or at once when a `put`
    /// could not upload. It ends when the store is dropped.
    pub fn spawn_sync(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let store = Arc::downgrade(self);
        let wake = self.wake.clone();
        let (first, cap) = self.backoff;
        tokio::spawn(async move {
            let mut wait = first;
            loop {
                let Some(strong) = store.upgrade() else {
                    return;
                };
                let clean = strong.sync_once().await;
                drop(strong);
                if clean {
                    wait = first;
                    tokio::select! {
                        () = wake.notified() => {}
                        () = tokio::time::sleep(cap) => {}
                    }
                } else {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(cap);
                }
            }
        })
    }

    /// Start-up download of `keys` (the active models) into the cache.
    ///
    /// A valid S3 object replaces a missing or different cached copy. A corrupt S3 object
    /// (failing the artifact checks) never does: the store reports it, and a valid cached
    /// copy is queued for upload to repair the bucket. A key missing from S3 but cached is
    /// queued for upload too (e.g. models of a server that ran without S3). With S3
    /// unreachable the cached copies are used as they are. Never fails: what could not be
    /// done is logged and shows in [`status`](Self::status).
    pub async fn prefetch(&self, keys: &[String]) {
        for key in keys {
            let cached = match self.cache.get(key).await {
                Ok(bytes) if check_artifact(key, &bytes).is_ok() => Some(bytes),
                Ok(_) => {
                    tracing::warn!(%key, "cached model is corrupt; fetching it from S3");
                    None
                }
                Err(_) => None,
            };
            match self.observe(self.remote.get(key).await) {
                Ok(bytes) => match check_artifact(key, &bytes) {
                    Ok(()) => {
                        self.set_corrupt(key, None);
                        if cached.as_ref() != Some(&bytes) {
                            match self.cache.put(key, bytes).await {
                                Ok(()) => tracing::info!(%key, "model downloaded from S3"),
                                Err(e) => {
                                    tracing::error!(%key, error = %e, "cannot cache a model downloaded from S3")
                                }
                            }
                        }
                    }
                    Err(why) => {
                        tracing::error!(%key, reason = %why, cached = cached.is_some(), "corrupt model object in S3; it is not used");
                        self.set_corrupt(key, Some(why));
                        if cached.is_some() {
                            self.queue_upload(key, "repair the corrupt S3 object from the cache")
                                .await;
                        }
                    }
                },
                Err(StorageError::NotFound(_)) if cached.is_some() => {
                    self.queue_upload(key, "cached model missing from S3").await;
                }
                Err(e) => {
                    if cached.is_some() {
                        tracing::warn!(%key, error = %e, "cannot download the model from S3; using the cached copy");
                    } else {
                        tracing::error!(%key, error = %e, "cannot download the model from S3 and it is not cached");
                    }
                }
            }
        }
    }

    async fn queue_upload(&self, key: &str, why: &str) {
        match self.pending.put(key, Vec::new()).await {
            Ok(()) => {
                tracing::warn!(%key, "{why}: upload queued");
                self.wake.notify_one();
            }
            Err(e) => tracing::error!(%key, error = %e, "cannot queue a model upload"),
        }
    }
}

#[async_trait]
impl ModelStore for CachedModelStore {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        validate_key(key)?;
        // Held throughout, so that the background task never sees the marker before the bytes.
        let _one_at_a_time = self.upload_lock.lock().await;
        // Marker first: from here on, whatever the cache holds under `key` reaches S3.
        self.pending.put(key, Vec::new()).await?;
        if let Err(e) = self.cache.put(key, bytes.clone()).await {
            let _ = self.pending.delete(key).await;
            return Err(e);
        }
        if let Err(e) = self.upload_locked(key, Some(bytes)).await {
            tracing::warn!(%key, error = %e, "model saved locally; its upload to S3 failed and will be retried");
            self.wake.notify_one();
        }
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, StorageError> {
        match self.cache.get(key).await {
            Err(StorageError::NotFound(_)) => {}
            cached => return cached,
        }
        let bytes = self.observe(self.remote.get(key).await)?;
        if let Err(why) = check_artifact(key, &bytes) {
            tracing::error!(%key, reason = %why, "corrupt model object in S3; it is not used");
            self.set_corrupt(key, Some(why.clone()));
            return Err(StorageError::Unavailable(format!(
                "the S3 object `{key}` is corrupt: {why}"
            )));
        }
        self.set_corrupt(key, None);
        if let Err(e) = self.cache.put(key, bytes.clone()).await {
            tracing::warn!(%key, error = %e, "cannot cache a model read from S3");
        }
        Ok(bytes)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let mut keys = self.cache.list(prefix).await?;
        match self.observe(self.remote.list(prefix).await) {
            Ok(remote) => {
                keys.extend(remote);
                keys.sort_unstable();
                keys.dedup();
            }
            Err(e) => {
                tracing::warn!(%prefix, error = %e, "S3 unreachable: listing cached models only")
            }
        }
        Ok(keys)
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        validate_key(key)?;
        let _no_upload_meanwhile = self.upload_lock.lock().await;
        self.observe(self.remote.delete(key).await)?;
        self.pending.delete(key).await?;
        self.set_corrupt(key, None);
        self.cache.delete(key).await
    }
}
