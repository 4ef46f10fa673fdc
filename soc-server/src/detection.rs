//! The in-process detection pipeline and the model lifecycle: the only module of the server
//! that touches the ML engine.
//!
//! - Scoring: each tenant's logs are scored by that tenant's active model, else by the global
//!   one. Workers share one [`ActiveDetectors`] cache keyed by (tenant, version), refreshed
//!   from `model_versions` every few seconds, so activations anywhere take effect within
//!   [`MODEL_CHECK_INTERVAL`]. When no global version is recorded, a bootstrap detector is
//!   trained from the built-in labeled sample corpus.
//! - Versions: trained here (bootstrap, retrain) or uploaded (`POST /api/models`); each one is
//!   measured on the tenant's held-out set and recorded as `candidate`; activating one retires
//!   the previous active version.
//! - Retraining (on demand or every `ML_RETRAIN_INTERVAL_HOURS`, one at a time per tenant, on
//!   the blocking pool): sample corpus + the tenant's labels (analyst verdicts and imports),
//!   with a deterministic split by a hash of the message, so that candidate and active model
//!   are compared on the same held-out examples; plus the tenant's most recent logs
//!   (`ML_ANOMALY_SAMPLE_SIZE`) as unlabeled background for the anomaly side, so that the
//!   tenant's own traffic defines "normal". The candidate is promoted when its held-out ROC
//!   AUC is at least that of the model serving the tenant now.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};
use soc_core::store::{Storage, StorageError};
use soc_core::{Detector, DetectorParams, metrics};

use crate::AppState;
use crate::db::{self, Db, GLOBAL_TENANT, LOGS_CHANNEL, ModelVersion, NewModelVersion};
use crate::sample;

/// Seed of the bootstrap corpus and detector (reproducible bootstrap models).
const BOOTSTRAP_SEED: u64 = 42;
/// Size of the bootstrap training corpus.
const BOOTSTRAP_TRAIN: usize = 4000;
/// Size of the held-out corpus the metrics are measured on (with the tenant's held-out labels).
const BOOTSTRAP_TEST: usize = 2000;
/// Share of attacks in the sample corpus.
const ATTACK_RATIO: f64 = 0.15;

/// How often the detection workers look for newly activated model versions.
pub const MODEL_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// Labeled examples of a tenant used by a retrain, at most (the newest).
const MAX_LABELED_EXAMPLES: usize = 50_000;

/// One labeled example in `HELD_OUT_MODULUS` is held out (by a hash of its message).
const HELD_OUT_MODULUS: u64 = 5;

/// Bytes of log messages a retrain reads for its unlabeled sample, at most (with
/// `ML_ANOMALY_SAMPLE_SIZE` lines of at most 64 KiB, the line count alone would allow
/// gigabytes).
const MAX_ANOMALY_SAMPLE_BYTES: usize = 64 * 1024 * 1024;

/// What can go wrong with model versions.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// No such version for the tenant.
    #[error("model version `{0}` not found")]
    NotFound(String),
    /// The uploaded bytes are not a detector artifact this server can load.
    #[error("not a usable detector artifact: {0}")]
    InvalidArtifact(String),
    /// Training was refused (for example labels of one class only).
    #[error("training failed: {0}")]
    Training(#[from] soc_core::Error),
    /// Database or model store.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The blocking task running the ML code died.
    #[error("model task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

type Result<T, E = ModelError> = std::result::Result<T, E>;

/// Model store key of a version.
pub fn model_key(tenant_id: i64, version: &str) -> String {
    if tenant_id == GLOBAL_TENANT {
        format!("ml_models/global/{version}.cgsoc")
    } else {
        format!("ml_models/tenant-{tenant_id}/{version}.cgsoc")
    }
}

/// A new version name: `{source}-{ms}-{4 hex}` (unique per tenant in practice; the primary key
/// turns a collision into an error, never into an overwrite).
fn new_version(source: &str) -> String {
    format!("{source}-{}-{:04x}", db::now_ms(), rand::random::<u16>())
}

// ---- the tenant's training and held-out sets ---------------------------------------------------

/// Labeled lines.
#[derive(Debug, Clone, Default)]
pub struct Labeled {
    /// The lines.
    pub texts: Vec<String>,
    /// `true` = malicious.
    pub labels: Vec<bool>,
}

impl Labeled {
    fn push(&mut self, text: String, malicious: bool) {
        self.texts.push(text);
        self.labels.push(malicious);
    }
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.texts.len()
    }
    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }
}

/// FNV-1a: a stable hash (std's hasher may change between releases; the split must not).
fn stable_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Whether a labeled message belongs to the held-out split.
pub fn is_held_out(message: &str) -> bool {
    stable_hash(message).is_multiple_of(HELD_OUT_MODULUS)
}

/// The training and held-out sets of a tenant (the global model: the sample corpus only).
#[derive(Debug, Clone)]
pub struct Corpus {
    /// Sample corpus + the tenant's labels outside the held-out split.
    pub train: Labeled,
    /// Held-out sample corpus + the tenant's held-out labels.
    pub test: Labeled,
    /// Tenant labels in `train`.
    pub labeled_train: usize,
    /// Tenant labels in `test`.
    pub labeled_test: usize,
    /// Unlabeled recent logs of the tenant for the anomaly side only (see [`corpus`]).
    pub background: Vec<String>,
}

/// Reads the labels of `tenant_id` and builds its training and held-out sets, plus up to
/// `anomaly_sample` of its most recent logs as unlabeled background (none for the global
/// model: tenants' traffic stays in their own models).
///
/// The background leaves out, so that evaluation stays honest and attacks are not taught as
/// normal: logs in the held-out split (by the same hash of the message as labels, and any
/// line of the held-out set), logs an analyst's verdict labeled malicious, and lines imported
/// as malicious labels. It may therefore hold fewer lines than asked for.
pub async fn corpus(db: &Db, tenant_id: i64, anomaly_sample: usize) -> Result<Corpus> {
    let labeled = if tenant_id == GLOBAL_TENANT {
        Vec::new()
    } else {
        db.training_examples(Some(tenant_id), MAX_LABELED_EXAMPLES)
            .await?
    };
    let recent = if tenant_id == GLOBAL_TENANT || anomaly_sample == 0 {
        Vec::new()
    } else {
        db.recent_log_messages(tenant_id, anomaly_sample, MAX_ANOMALY_SAMPLE_BYTES)
            .await?
    };
    let mut c = Corpus {
        train: Labeled::default(),
        test: Labeled::default(),
        labeled_train: 0,
        labeled_test: 0,
        background: Vec::new(),
    };
    for l in sample::generate(BOOTSTRAP_TRAIN, ATTACK_RATIO, BOOTSTRAP_SEED) {
        c.train.push(l.message, l.malicious);
    }
    for l in sample::generate(BOOTSTRAP_TEST, ATTACK_RATIO, BOOTSTRAP_SEED + 1) {
        c.test.push(l.message, l.malicious);
    }
    let mut malicious = HashSet::new();
    for e in labeled {
        if e.malicious {
            malicious.insert(e.message.clone());
        }
        if is_held_out(&e.message) {
            c.labeled_test += 1;
            c.test.push(e.message, e.malicious);
        } else {
            c.labeled_train += 1;
            c.train.push(e.message, e.malicious);
        }
    }
    let held_out: HashSet<&str> = c.test.texts.iter().map(String::as_str).collect();
    c.background = recent
        .into_iter()
        .filter(|m| !is_held_out(m) && !held_out.contains(m.as_str()) && !malicious.contains(m))
        .collect();
    Ok(c)
}

/// Held-out metrics of a detector on `corpus.test`: ROC AUC of the risk, and precision,
/// recall, F1 and false positive rate at the detector's own threat threshold; plus
/// `tenant_roc_auc`, the ROC AUC on the tenant's held-out labels alone (`null` without both
/// classes there), which decides promotions when present: on the whole set the sample corpus
/// dominates and every reasonable model scores close to 1.
pub fn evaluate(detector: &Detector, corpus: &Corpus) -> Value {
    let test = &corpus.test;
    let risks: Vec<f64> = detector.score(&test.texts).iter().map(|s| s.risk).collect();
    let threshold = 10.0 * detector.risk_scorer().params().threshold;
    let at = metrics::at_threshold(&risks, &test.labels, threshold);
    let tenant_from = test.len() - corpus.labeled_test;
    json!({
        "roc_auc": metrics::roc_auc(&risks, &test.labels),
        "tenant_roc_auc": metrics::roc_auc(&risks[tenant_from..], &test.labels[tenant_from..]),
        "precision": at.precision,
        "recall": at.recall,
        "f1": at.f1,
        "false_positive_rate": at.false_positive_rate,
        "threshold": detector.risk_scorer().params().threshold,
    })
}

/// The figure promotions compare: the tenant's held-out ROC AUC when it exists, else the
/// whole held-out set's.
fn promotion_auc(m: &Value) -> Option<f64> {
    m["tenant_roc_auc"]
        .as_f64()
        .or_else(|| m["roc_auc"].as_f64())
}

fn fit(threshold: f64, corpus: &Corpus) -> Result<Detector> {
    let mut params = DetectorParams {
        random_state: Some(BOOTSTRAP_SEED),
        ..DetectorParams::default()
    };
    params.risk.threshold = threshold;
    let train = &corpus.train;
    Ok(params.fit_with_background(&train.texts, Some(&train.labels), &corpus.background)?)
}

/// Runs ML work on the blocking pool, keeping the caller's tracing span.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let span = tracing::Span::current();
    Ok(tokio::task::spawn_blocking(move || span.in_scope(f)).await?)
}

/// `unlabeled_sample`: background lines of the training (`None` for an upload).
fn log_accuracy(mv: &ModelVersion, m: &Value, unlabeled_sample: Option<usize>) {
    tracing::info!(
        tenant = mv.tenant_id,
        version = %mv.version,
        source = %mv.source,
        train_size = mv.train_size,
        test_size = mv.test_size,
        unlabeled_sample,
        training_seconds = mv.training_seconds,
        "Model accuracy (held-out): roc_auc={} precision={} recall={} f1={} false_positive_rate={}",
        m["roc_auc"], m["precision"], m["recall"], m["f1"], m["false_positive_rate"]
    );
}

/// Trains a detector for `tenant_id` on its corpus, stores it and records it as a candidate.
/// Returns the version, its held-out metrics and the corpus (for comparisons).
async fn train_candidate(
    state: &AppState,
    tenant_id: i64,
    source: &'static str,
) -> Result<(ModelVersion, Value, Arc<Corpus>)> {
    let sample_size = state.config.ml_anomaly_sample_size;
    let corpus = Arc::new(corpus(&state.db, tenant_id, sample_size).await?);
    let threshold = state.config.threat_detection_threshold;
    let started = Instant::now();
    let c = corpus.clone();
    let (detector, test_metrics) = blocking(move || {
        let d = fit(threshold, &c)?;
        let m = evaluate(&d, &c);
        Ok::<_, ModelError>((d, m))
    })
    .await??;
    let training_seconds = started.elapsed().as_secs_f64();
    let version = new_version(source);
    let key = model_key(tenant_id, &version);
    let bytes = blocking(move || detector.to_bytes()).await?;
    state.models.put(&key, bytes).await?;
    let metrics = json!({
        "test": test_metrics,
        "corpus": {
            "sample_train": BOOTSTRAP_TRAIN, "sample_test": BOOTSTRAP_TEST,
            "labeled_train": corpus.labeled_train, "labeled_test": corpus.labeled_test,
            "unlabeled_sample": corpus.background.len(), "seed": BOOTSTRAP_SEED,
        },
    });
    let mv = state
        .db
        .insert_model_version(&NewModelVersion {
            tenant_id,
            version,
            key,
            source,
            metrics: metrics.clone(),
            train_size: Some(corpus.train.len() as i64),
            test_size: Some(corpus.test.len() as i64),
            roc_auc: test_metrics["roc_auc"].as_f64(),
            training_seconds: Some(training_seconds),
        })
        .await?;
    log_accuracy(&mv, &test_metrics, Some(corpus.background.len()));
    Ok((mv, test_metrics, corpus))
}

// ---- bootstrap and the global model -------------------------------------------------------------

/// The active global detector and its version: from the model store when a version is
/// recorded, else a bootstrap detector trained now, stored and recorded.
pub async fn load_or_bootstrap(state: &AppState) -> anyhow::Result<(Arc<Detector>, String)> {
    if let Some(mv) = state.db.active_model_version().await? {
        match load(state, &mv).await {
            Ok(d) => {
                tracing::info!(version = %mv.version, key = %mv.key, "detector loaded");
                let configured = state.config.threat_detection_threshold;
                let saved = d.risk_scorer().params().threshold;
                if (configured - saved).abs() > 1e-9 {
                    tracing::warn!(
                        configured,
                        saved,
                        "THREAT_DETECTION_THRESHOLD differs from the active model's; the model's applies until it is retrained"
                    );
                }
                return Ok((d, mv.version));
            }
            Err(e) => {
                tracing::error!(key = %mv.key, error = %e, "active global model is unusable; training a bootstrap model")
            }
        }
    }
    bootstrap(state).await
}

/// Trains the bootstrap detector on the labeled sample corpus, measures it on a held-out
/// sample, stores it and records it as the active global version.
pub async fn bootstrap(state: &AppState) -> anyhow::Result<(Arc<Detector>, String)> {
    let (mv, _, _) = train_candidate(state, GLOBAL_TENANT, "bootstrap").await?;
    let active = state
        .db
        .activate_model_version(GLOBAL_TENANT, &mv.version)
        .await?
        .ok_or_else(|| anyhow::anyhow!("bootstrap version {} vanished", mv.version))?
        .active;
    let detector = load(state, &active).await?;
    Ok((detector, active.version))
}

async fn load(state: &AppState, mv: &ModelVersion) -> Result<Arc<Detector>> {
    let bytes = state.models.get(&mv.key).await?;
    let d = blocking(move || detector_from_artifact(&bytes))
        .await?
        .map_err(|e| ModelError::InvalidArtifact(e.to_string()))?;
    Ok(Arc::new(d))
}

/// Loads a detector that scores on the server's own thread pool, whatever `n_jobs` it was
/// trained with (a model trained in a notebook with `n_jobs=1` must not slow the server down).
fn detector_from_artifact(bytes: &[u8]) -> soc_core::Result<Detector> {
    let mut detector = Detector::from_bytes(bytes)?;
    detector.set_n_jobs(None);
    Ok(detector)
}

// ---- uploads, listing, activation -----------------------------------------------------------

/// Registers an uploaded artifact as a candidate version of `tenant_id`: checks that it loads
/// as a detector, measures it on the tenant's held-out set, stores it.
pub async fn upload(state: &AppState, tenant_id: i64, bytes: Vec<u8>) -> Result<ModelVersion> {
    let bytes = Arc::new(bytes);
    let b = bytes.clone();
    let (detector, header) = blocking(move || {
        let header = soc_core::read_header(&b)?;
        let d = detector_from_artifact(&b)?;
        Ok::<_, soc_core::Error>((d, header))
    })
    .await?
    .map_err(|e| ModelError::InvalidArtifact(e.to_string()))?;
    let corpus = corpus(&state.db, tenant_id, 0).await?;
    let test_size = corpus.test.len() as i64;
    let labeled_test = corpus.labeled_test;
    let test_metrics = blocking(move || evaluate(&detector, &corpus)).await?;
    let version = new_version("upload");
    let key = model_key(tenant_id, &version);
    let bytes = Arc::try_unwrap(bytes).unwrap_or_else(|b| (*b).clone());
    state.models.put(&key, bytes).await?;
    let metrics = json!({
        "test": test_metrics,
        "corpus": {"sample_test": BOOTSTRAP_TEST, "labeled_test": labeled_test},
        "artifact": {"crate_version": header.crate_version, "created_at": header.created_at,
                     "metrics": header.metrics, "params": header.params},
    });
    let mv = state
        .db
        .insert_model_version(&NewModelVersion {
            tenant_id,
            version,
            key,
            source: "upload",
            metrics,
            train_size: None,
            test_size: Some(test_size),
            roc_auc: test_metrics["roc_auc"].as_f64(),
            training_seconds: None,
        })
        .await?;
    log_accuracy(&mv, &test_metrics, None);
    Ok(mv)
}

/// A version as the API shows it.
#[derive(Debug, Serialize)]
pub struct ModelVersionOut {
    /// The row.
    #[serde(flatten)]
    pub row: ModelVersion,
    /// `tenant` (the caller's own) or `global`.
    pub scope: &'static str,
    /// Held-out metrics and corpus details.
    pub metrics: Value,
}

impl From<ModelVersion> for ModelVersionOut {
    fn from(row: ModelVersion) -> Self {
        ModelVersionOut {
            scope: if row.tenant_id == GLOBAL_TENANT {
                "global"
            } else {
                "tenant"
            },
            metrics: serde_json::from_str(&row.metrics).unwrap_or(Value::Null),
            row,
        }
    }
}

/// A version of the tenant, else the global version of that name (readable by every tenant).
pub async fn find_version(state: &AppState, tenant_id: i64, version: &str) -> Result<ModelVersion> {
    if let Some(mv) = state.db.model_version(tenant_id, version).await? {
        return Ok(mv);
    }
    state
        .db
        .model_version(GLOBAL_TENANT, version)
        .await?
        .ok_or_else(|| ModelError::NotFound(version.to_owned()))
}

/// The artifact bytes of a version of the tenant (or global).
pub async fn artifact(state: &AppState, tenant_id: i64, version: &str) -> Result<Vec<u8>> {
    let mv = find_version(state, tenant_id, version).await?;
    Ok(state.models.get(&mv.key).await?)
}

/// Activates a version of the tenant (promote or roll back); the previous one is retired.
pub async fn activate(state: &AppState, tenant_id: i64, version: &str) -> Result<db::Activation> {
    let a = state
        .db
        .activate_model_version(tenant_id, version)
        .await?
        .ok_or_else(|| ModelError::NotFound(version.to_owned()))?;
    tracing::info!(tenant = tenant_id, version, retired = ?a.retired, "model version activated");
    Ok(a)
}

// ---- retraining ---------------------------------------------------------------------------------

/// What a retrain did.
#[derive(Debug, Clone, Serialize)]
pub struct RetrainOutcome {
    /// The new version (candidate, or active when promoted).
    pub version: String,
    /// Whether it became the tenant's active version.
    pub promoted: bool,
    /// Held-out ROC AUC of the new version (on the tenant's held-out labels when they have
    /// both classes, else on the whole held-out set).
    pub roc_auc: Option<f64>,
    /// The version serving the tenant before, and its ROC AUC on the same held-out examples.
    pub compared_with: Option<(String, Option<f64>)>,
    /// Held-out metrics of the new version.
    pub metrics: Value,
}

/// Trains a new model for `tenant_id` (or the global one) and promotes it when its held-out
/// ROC AUC is at least that of the model serving the tenant now, measured on the same
/// held-out set (the global model serves a tenant without its own). Runs the ML work on the
/// blocking pool; callers run it in the background.
pub async fn retrain_tenant(state: &AppState, tenant_id: i64) -> Result<RetrainOutcome> {
    let (mv, test_metrics, corpus) = train_candidate(state, tenant_id, "retrain").await?;
    let serving = match state.db.active_model_version_of(tenant_id).await? {
        Some(mv) => Some(mv),
        None => state.db.active_model_version().await?,
    };
    let new_auc = promotion_auc(&test_metrics);
    let mut compared_with = None;
    let promote = match serving {
        None => true,
        Some(current) => {
            let old_auc = match load(state, &current).await {
                Ok(d) => {
                    let c = corpus.clone();
                    promotion_auc(&blocking(move || evaluate(&d, &c)).await?)
                }
                Err(e) => {
                    tracing::error!(version = %current.version, error = %e, "serving model unusable; the new one replaces it");
                    None
                }
            };
            compared_with = Some((current.version, old_auc));
            should_promote(new_auc, old_auc)
        }
    };
    if promote {
        activate(state, tenant_id, &mv.version).await?;
    } else {
        tracing::info!(tenant = tenant_id, version = %mv.version, ?compared_with, "retrained model is worse on the held-out set; it stays a candidate");
    }
    Ok(RetrainOutcome {
        version: mv.version,
        promoted: promote,
        roc_auc: new_auc,
        compared_with,
        metrics: test_metrics,
    })
}

/// Whether a candidate replaces the serving model, from their ROC AUC on the same held-out
/// examples: when at least as good, or when the serving one cannot be measured.
fn should_promote(candidate: Option<f64>, serving: Option<f64>) -> bool {
    match (candidate, serving) {
        (Some(new), Some(old)) => new >= old,
        (_, None) => true,
        (None, Some(_)) => false,
    }
}

/// Trains a new global model (sample corpus; tenant labels and logs stay in tenant models) and
/// activates it: `soc-server retrain` and tests.
pub async fn retrain(state: &AppState) -> Result<String> {
    let (mv, _, _) = train_candidate(state, GLOBAL_TENANT, "retrain").await?;
    activate(state, GLOBAL_TENANT, &mv.version).await?;
    Ok(mv.version)
}

/// A background retrain.
#[derive(Debug, Clone, Serialize)]
pub struct RetrainJob {
    /// Job id (poll `GET /api/models/retrain/{id}`).
    pub id: String,
    /// Tenant.
    #[serde(skip)]
    pub tenant_id: i64,
    /// `running`, `succeeded` or `failed`.
    pub status: &'static str,
    /// Start time (ms).
    #[serde(serialize_with = "db::ser_ms")]
    pub started_at: i64,
    /// End time (ms).
    pub finished_at: Option<String>,
    /// What it did, when it succeeded.
    pub outcome: Option<RetrainOutcome>,
    /// Why it failed.
    pub error: Option<String>,
}

/// Finished jobs kept for polling, per process.
const KEPT_JOBS: usize = 256;

/// Retrain jobs of this process: at most one running per tenant.
#[derive(Debug, Default)]
pub struct RetrainJobs {
    jobs: Mutex<Vec<RetrainJob>>,
}

impl RetrainJobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<RetrainJob>> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A job of the tenant by id.
    pub fn get(&self, tenant_id: i64, id: &str) -> Option<RetrainJob> {
        self.lock()
            .iter()
            .find(|j| j.tenant_id == tenant_id && j.id == id)
            .cloned()
    }

    /// Registers a job unless one is running for the tenant; `(job, started)`.
    fn begin(&self, tenant_id: i64) -> (RetrainJob, bool) {
        let mut jobs = self.lock();
        if let Some(j) = jobs
            .iter()
            .find(|j| j.tenant_id == tenant_id && j.status == "running")
        {
            return (j.clone(), false);
        }
        if jobs.len() >= KEPT_JOBS
            && let Some(i) = jobs.iter().position(|j| j.status != "running")
        {
            jobs.remove(i);
        }
        let job = RetrainJob {
            id: format!("retrain-{}-{:08x}", db::now_ms(), rand::random::<u32>()),
            tenant_id,
            status: "running",
            started_at: db::now_ms(),
            finished_at: None,
            outcome: None,
            error: None,
        };
        jobs.push(job.clone());
        (job, true)
    }

    fn finish(&self, id: &str, result: Result<RetrainOutcome>) {
        let mut jobs = self.lock();
        if let Some(j) = jobs.iter_mut().find(|j| j.id == id) {
            j.finished_at = Some(db::ms_to_rfc3339(db::now_ms()));
            match result {
                Ok(o) => {
                    j.status = "succeeded";
                    j.outcome = Some(o);
                }
                Err(e) => {
                    j.status = "failed";
                    j.error = Some(e.to_string());
                }
            }
        }
    }
}

/// Starts a background retrain of `tenant_id` unless one is running; returns the job either
/// way (`true` when this call started it).
pub fn start_retrain(state: &AppState, tenant_id: i64) -> (RetrainJob, bool) {
    let (job, started) = state.pipeline.retrains.begin(tenant_id);
    if started {
        let (st, id) = (state.clone(), job.id.clone());
        tokio::spawn(async move {
            // A panic in the retrain must still end the job, or the tenant could never
            // retrain again in this process.
            let inner = st.clone();
            let result = tokio::spawn(async move { retrain_tenant(&inner, tenant_id).await })
                .await
                .unwrap_or_else(|e| Err(ModelError::Task(e)));
            if let Err(e) = &result {
                tracing::error!(tenant = tenant_id, error = %e, "retraining failed; the active model stays");
            }
            st.pipeline.retrains.finish(&id, result);
        });
    }
    (job, started)
}

// ---- the detectors in use -------------------------------------------------------------------

/// The detectors the workers score with: each tenant's active one and the global one.
#[derive(Debug, Default)]
pub struct ActiveSet {
    global: Option<(Arc<Detector>, String)>,
    tenants: HashMap<i64, (Arc<Detector>, String)>,
}

impl ActiveSet {
    /// The detector and version scoring `tenant_id`'s logs.
    pub fn for_tenant(&self, tenant_id: i64) -> Option<(&Detector, &str)> {
        self.tenants
            .get(&tenant_id)
            .or(self.global.as_ref())
            .map(|(d, v)| (d.as_ref(), v.as_str()))
    }

    /// The global version.
    pub fn global_version(&self) -> Option<&str> {
        self.global.as_ref().map(|(_, v)| v.as_str())
    }
}

/// Cache of loaded detectors keyed by (tenant, version), shared by the workers of a process.
#[derive(Debug, Default)]
pub struct ActiveDetectors {
    current: Mutex<Arc<ActiveSet>>,
    refresh: tokio::sync::Mutex<Option<Instant>>,
}

impl ActiveDetectors {
    /// The current set.
    pub fn snapshot(&self) -> Arc<ActiveSet> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn install(&self, set: ActiveSet) {
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(set);
    }

    /// Re-reads the active versions when the last check is older than `max_age` (one worker
    /// does it; the others keep scoring with the current set) and loads the new ones.
    pub async fn refresh(&self, state: &AppState, max_age: Duration) {
        let Ok(mut last) = self.refresh.try_lock() else {
            return;
        };
        if last.is_some_and(|t| t.elapsed() < max_age) {
            return;
        }
        *last = Some(Instant::now());
        let active = match state.db.active_model_versions().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the active model versions; keeping the loaded ones");
                return;
            }
        };
        let old = self.snapshot();
        let cached = |tenant_id: i64, version: &str| {
            let hit = if tenant_id == GLOBAL_TENANT {
                old.global.as_ref()
            } else {
                old.tenants.get(&tenant_id)
            };
            hit.filter(|(_, v)| v == version).map(|(d, _)| d.clone())
        };
        let mut next = ActiveSet::default();
        let mut changed = false;
        for mv in active {
            let detector = match cached(mv.tenant_id, &mv.version) {
                Some(d) => d,
                None => match load(state, &mv).await {
                    Ok(d) => {
                        tracing::info!(tenant = mv.tenant_id, version = %mv.version, "detector loaded");
                        changed = true;
                        d
                    }
                    Err(e) => {
                        // Keep scoring this tenant with what it had rather than stopping.
                        tracing::error!(tenant = mv.tenant_id, version = %mv.version, error = %e, "active model is unusable; keeping the previous one");
                        let previous = if mv.tenant_id == GLOBAL_TENANT {
                            old.global.clone()
                        } else {
                            old.tenants.get(&mv.tenant_id).cloned()
                        };
                        if let Some(p) = previous {
                            if mv.tenant_id == GLOBAL_TENANT {
                                next.global = Some(p);
                            } else {
                                next.tenants.insert(mv.tenant_id, p);
                            }
                        }
                        continue;
                    }
                },
            };
            if mv.tenant_id == GLOBAL_TENANT {
                next.global = Some((detector, mv.version));
            } else {
                next.tenants.insert(mv.tenant_id, (detector, mv.version));
            }
        }
        if next.global.is_none() {
            next.global = old.global.clone();
        }
        changed |= next.tenants.len() != old.tenants.len();
        if changed {
            let global = next.global_version().map(str::to_owned);
            state.pipeline.update(|p| {
                p.active_model_version = global;
                p.tenant_models = next.tenants.len();
            });
        }
        self.install(next);
    }
}

// ---- the detection loop ---------------------------------------------------------------------

/// Loads (or trains) the global detector, loads the tenants' models and starts the detection
/// loop and the retrain schedule. Returns the global model version.
pub async fn start(state: &AppState) -> anyhow::Result<String> {
    let (detector, version) = load_or_bootstrap(state).await?;
    state.pipeline.detectors.install(ActiveSet {
        global: Some((detector, version.clone())),
        tenants: HashMap::new(),
    });
    state
        .pipeline
        .detectors
        .refresh(state, Duration::ZERO)
        .await;
    let workers = match (state.config.detection_workers, &state.db) {
        (0, Db::Postgres(_)) => 2,
        (0, Db::Sqlite(_)) => 1,
        (n, _) => n,
    };
    state.pipeline.update(|r| {
        r.pipeline_running = true;
        r.workers = workers;
        r.active_model_version = Some(version.clone());
    });
    if let Db::Postgres(pool) = &state.db {
        listen_for_other_replicas(pool.clone(), state.clone());
    }
    let hours = state.config.ml_retrain_interval_hours;
    if hours.is_finite() && hours > 0.0 {
        let st = state.clone();
        let every = Duration::from_secs_f64(hours * 3600.0);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                retrain_labeled_tenants(&st).await;
            }
        });
    }
    for worker in 0..workers {
        let st = state.clone();
        tokio::spawn(async move { run_loop(st, worker).await });
    }
    Ok(version)
}

/// The scheduled retrain: every tenant with labels, one after the other.
async fn retrain_labeled_tenants(state: &AppState) {
    let tenants = match state.db.labeled_tenants().await {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "scheduled retraining: cannot list tenants");
            return;
        }
    };
    for tenant_id in tenants {
        let (job, started) = start_retrain(state, tenant_id);
        if !started {
            continue;
        }
        // One at a time: training takes every core.
        while state
            .pipeline
            .retrains
            .get(tenant_id, &job.id)
            .is_some_and(|j| j.status == "running")
        {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Wakes the pipeline when another replica commits logs (PostgreSQL LISTEN).
fn listen_for_other_replicas(pool: sqlx::PgPool, state: AppState) {
    tokio::spawn(async move {
        while !pool.is_closed() {
            let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "LISTEN connection failed; relying on the interval");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    continue;
                }
            };
            if listener.listen(LOGS_CHANNEL).await.is_err() {
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
            while listener.recv().await.is_ok() {
                state.pipeline.wake();
            }
        }
    });
}

async fn run_loop(state: AppState, worker: usize) {
    let interval = Duration::from_millis(state.config.detection_interval_ms.max(10));
    let batch = state.config.detection_batch_size.max(1);
    tracing::info!(worker, batch, ?interval, "detection worker running");
    loop {
        // Pick up newly activated versions (here, by another replica, by the CLI).
        state
            .pipeline
            .detectors
            .refresh(&state, MODEL_CHECK_INTERVAL)
            .await;
        let active = state.pipeline.detectors.snapshot();
        let Some((global, global_version)) = active.for_tenant(GLOBAL_TENANT) else {
            tokio::time::sleep(interval).await;
            continue;
        };
        // The scoring itself runs under `block_in_place` inside `Db::score_pending`; the
        // database I/O stays on this async task (so shutdown can drop it at any await).
        let step = soc_core::pipeline::run_once_by_tenant(&state.db, batch, |tenant| {
            active
                .for_tenant(tenant)
                .unwrap_or((global, global_version))
        })
        .await;
        match step {
            Ok(r) if r.scored > 0 => {
                state.pipeline.update(|p| {
                    p.last_batch_size = r.scored;
                    p.last_batch_threats = r.threats;
                    p.last_batch_latency_ms = r.elapsed.as_secs_f64() * 1e3;
                    p.scored_total += r.scored as u64;
                    p.threats_total += r.threats as u64;
                    p.last_error = None;
                });
                if r.threats > 0 {
                    state.pipeline.threats_committed.send_modify(|n| *n += 1);
                    tracing::info!(
                        scored = r.scored,
                        threats = r.threats,
                        ms = r.elapsed.as_millis() as u64,
                        "batch scored"
                    );
                }
                // More may be pending: go again without waiting.
            }
            Ok(_) => {
                // Every worker waits; ingest wakes them all.
                tokio::select! {
                    _ = state.pipeline.wake.notified() => {}
                    _ = tokio::time::sleep(interval) => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "detection batch failed; its logs stay pending");
                state
                    .pipeline
                    .update(|p| p.last_error = Some(e.to_string()));
                tokio::time::sleep(interval).await;
            }
        }
    }
}

/// The version scoring `tenant_id`'s logs: its own active one, else the global one.
pub async fn serving_version(state: &AppState, tenant_id: i64) -> Result<Option<String>> {
    Ok(match state.db.active_model_version_of(tenant_id).await? {
        Some(mv) => Some(mv.version),
        None => state.db.active_model_version().await?.map(|mv| mv.version),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promotion_needs_at_least_the_serving_auc() {
        assert!(should_promote(Some(0.9), Some(0.9)));
        assert!(should_promote(Some(0.91), Some(0.9)));
        assert!(!should_promote(Some(0.89), Some(0.9)));
        assert!(!should_promote(None, Some(0.5)));
        assert!(should_promote(None, None));
        assert!(should_promote(Some(0.5), None));
    }

    #[test]
    fn held_out_split_is_stable_and_about_one_in_five() {
        // FNV-1a test vectors: the split must not change between releases or platforms.
        assert_eq!(stable_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash("a"), 0xaf63_dc4c_8601_ec8c);
        let held = (0..10_000)
            .filter(|i| is_held_out(&format!("line {i}")))
            .count();
        assert!((1700..2300).contains(&held), "{held}");
    }

    #[test]
    fn promotion_prefers_the_tenant_auc() {
        assert_eq!(
            promotion_auc(&json!({"roc_auc": 0.99, "tenant_roc_auc": 0.8})),
            Some(0.8)
        );
        assert_eq!(
            promotion_auc(&json!({"roc_auc": 0.99, "tenant_roc_auc": null})),
            Some(0.99)
        );
    }
}
