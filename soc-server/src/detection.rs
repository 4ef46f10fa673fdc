//! The in-process detection pipeline: the only module of the server that touches the ML
//! engine. It loads the active detector from the model store (or trains a bootstrap one from
//! the built-in labeled sample corpus when there is none) and runs
//! [`soc_core::pipeline::run_once`] whenever logs arrive (ingest notifies it, PostgreSQL
//! NOTIFY wakes it for logs committed by other replicas), with an interval fallback.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use soc_core::store::Storage;
use soc_core::{Detector, DetectorParams, metrics};

use crate::AppState;
use crate::db::{Db, LOGS_CHANNEL};
use crate::sample;

/// Seed of the bootstrap corpus and detector (reproducible bootstrap models).
const BOOTSTRAP_SEED: u64 = 42;
/// Size of the bootstrap training corpus.
const BOOTSTRAP_TRAIN: usize = 4000;
/// Size of the held-out corpus the bootstrap metrics are measured on.
const BOOTSTRAP_TEST: usize = 2000;
/// Share of attacks in the sample corpus.
const ATTACK_RATIO: f64 = 0.15;

/// How often a detection worker checks whether the active model version changed.
const MODEL_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// Labeled examples from the database used by a retrain, at most.
const MAX_LABELED_EXAMPLES: usize = 50_000;

/// The active version's detector when it is not `current` (and loads).
async fn reload_if_changed(state: &AppState, current: &str) -> Option<(Arc<Detector>, String)> {
    let mv = state.db.active_model_version().await.ok()??;
    if mv.version == current {
        return None;
    }
    let bytes = state
        .models
        .get(&mv.key)
        .await
        .map_err(|e| tracing::error!(key = %mv.key, error = %e, "new active model is missing"))
        .ok()?;
    let d = Detector::from_bytes(&bytes)
        .map_err(|e| tracing::error!(key = %mv.key, error = %e, "new active model is unreadable"))
        .ok()?;
    Some((Arc::new(d), mv.version))
}

/// Trains a new global detector on the sample corpus plus every analyst verdict and imported
/// label in the database, measures it on the held-out sample corpus, stores it and makes it the
/// active version (running workers switch to it within a few seconds). Returns the version.
pub async fn retrain(state: &AppState) -> anyhow::Result<String> {
    let labeled = state
        .db
        .training_examples(None, MAX_LABELED_EXAMPLES)
        .await?;
    let n_labeled = labeled.len();
    let threshold = state.config.threat_detection_threshold;
    let started = std::time::Instant::now();
    let extra: Vec<(String, bool)> = labeled
        .into_iter()
        .map(|e| (e.message, e.malicious))
        .collect();
    let (detector, test) = tokio::task::spawn_blocking(move || train(threshold, &extra)).await??;
    let version = format!("v{}", crate::db::now_ms());
    let key = model_key(&version);
    state.models.put(&key, detector.to_bytes()).await?;
    let metrics = json!({
        "kind": "retrain",
        "training_seconds": started.elapsed().as_secs_f64(),
        "corpus": {"sample": BOOTSTRAP_TRAIN, "labeled": n_labeled, "seed": BOOTSTRAP_SEED},
        "test": test,
    });
    state
        .db
        .record_model_version(&version, &key, &metrics.to_string())
        .await?;
    tracing::info!(%version, labeled = n_labeled, "Model accuracy (held-out sample corpus): {}", metrics["test"]);
    Ok(version)
}

/// Model store key of a global model version.
pub fn model_key(version: &str) -> String {
    format!("ml_models/global/{version}.cgsoc")
}

/// The active detector and its version: from the model store when a version is recorded,
/// else a bootstrap detector trained now, stored and recorded.
pub async fn load_or_bootstrap(state: &AppState) -> anyhow::Result<(Arc<Detector>, String)> {
    if let Some(mv) = state.db.active_model_version().await? {
        match state.models.get(&mv.key).await {
            Ok(bytes) => match Detector::from_bytes(&bytes) {
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
                    return Ok((Arc::new(d), mv.version));
                }
                Err(e) => {
                    tracing::error!(key = %mv.key, error = %e, "active model is unreadable; training a bootstrap model")
                }
            },
            Err(e) => {
                tracing::error!(key = %mv.key, error = %e, "active model is missing from the model store; training a bootstrap model")
            }
        }
    }
    bootstrap(state).await
}

/// Trains the bootstrap detector on the labeled sample corpus, measures it on a held-out
/// sample, stores it and records it as the active version.
pub async fn bootstrap(state: &AppState) -> anyhow::Result<(Arc<Detector>, String)> {
    let threshold = state.config.threat_detection_threshold;
    let started = std::time::Instant::now();
    let (detector, metrics) = tokio::task::spawn_blocking(move || train(threshold, &[])).await??;
    let version = format!("bootstrap-{}", crate::db::now_ms());
    let key = model_key(&version);
    state.models.put(&key, detector.to_bytes()).await?;
    let metrics = json!({
        "kind": "bootstrap",
        "training_seconds": started.elapsed().as_secs_f64(),
        "corpus": {"train": BOOTSTRAP_TRAIN, "test": BOOTSTRAP_TEST, "attack_ratio": ATTACK_RATIO, "seed": BOOTSTRAP_SEED},
        "test": metrics,
    });
    state
        .db
        .record_model_version(&version, &key, &metrics.to_string())
        .await?;
    tracing::info!(%version, %key, "Model accuracy (held-out sample corpus): {}", metrics["test"]);
    Ok((Arc::new(detector), version))
}

/// Fits a detector on the sample corpus plus `extra` labeled lines and measures it on the
/// held-out sample corpus.
fn train(
    threshold: f64,
    extra: &[(String, bool)],
) -> anyhow::Result<(Detector, serde_json::Value)> {
    let train = sample::generate(BOOTSTRAP_TRAIN, ATTACK_RATIO, BOOTSTRAP_SEED);
    let texts: Vec<&str> = train
        .iter()
        .map(|l| l.message.as_str())
        .chain(extra.iter().map(|(m, _)| m.as_str()))
        .collect();
    let labels: Vec<bool> = train
        .iter()
        .map(|l| l.malicious)
        .chain(extra.iter().map(|(_, y)| *y))
        .collect();
    let mut params = DetectorParams {
        random_state: Some(BOOTSTRAP_SEED),
        ..DetectorParams::default()
    };
    params.risk.threshold = threshold;
    let detector = params.fit(&texts, Some(&labels))?;
    let test = sample::generate(BOOTSTRAP_TEST, ATTACK_RATIO, BOOTSTRAP_SEED + 1);
    let texts: Vec<&str> = test.iter().map(|l| l.message.as_str()).collect();
    let labels: Vec<bool> = test.iter().map(|l| l.malicious).collect();
    let risks: Vec<f64> = detector.score(&texts).iter().map(|s| s.risk).collect();
    let at = metrics::at_threshold(&risks, &labels, 10.0 * threshold);
    let m = json!({
        "roc_auc": metrics::roc_auc(&risks, &labels),
        "precision": at.precision,
        "recall": at.recall,
        "f1": at.f1,
        "false_positive_rate": at.false_positive_rate,
    });
    Ok((detector, m))
}

/// Loads (or trains) the detector and starts the detection loop. Returns the model version.
pub async fn start(state: &AppState) -> anyhow::Result<String> {
    let (detector, version) = load_or_bootstrap(state).await?;
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
                if let Err(e) = retrain(&st).await {
                    tracing::error!(error = %e, "scheduled retraining failed; the active model stays");
                }
            }
        });
    }
    for worker in 0..workers {
        let (st, d, v) = (state.clone(), detector.clone(), version.clone());
        tokio::spawn(async move { run_loop(st, d, v, worker).await });
    }
    Ok(version)
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

async fn run_loop(
    state: AppState,
    mut detector: Arc<Detector>,
    mut version: String,
    worker: usize,
) {
    let interval = Duration::from_millis(state.config.detection_interval_ms.max(10));
    let batch = state.config.detection_batch_size.max(1);
    tracing::info!(%version, worker, batch, ?interval, "detection worker running");
    let mut last_model_check = std::time::Instant::now();
    loop {
        // Pick up a new active model version (retrained here, by another replica or by
        // `soc-server retrain`).
        if last_model_check.elapsed() >= MODEL_CHECK_INTERVAL {
            last_model_check = std::time::Instant::now();
            if let Some((d, v)) = reload_if_changed(&state, &version).await {
                tracing::info!(worker, from = %version, to = %v, "detector swapped");
                state
                    .pipeline
                    .update(|p| p.active_model_version = Some(v.clone()));
                detector = d;
                version = v;
            }
        }
        // The scoring itself runs under `block_in_place` inside `Db::score_pending`; the
        // database I/O stays on this async task (so shutdown can drop it at any await).
        let step = soc_core::pipeline::run_once(&state.db, &detector, &version, batch).await;
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
