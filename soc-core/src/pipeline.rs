//! The detection step, generic over [`Storage`]: claim a batch of unscored logs, score it, and
//! commit the detections and the "scored" marks in one transaction.
//!
//! Exactly-once comes from the storage contract: a batch is either committed whole or left
//! pending (to be claimed again), and two workers never hold the same log.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::detector::Detector;
use crate::store::{NewDetection, PendingLog, Storage, StorageError, TenantId};

/// What one pipeline step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchReport {
    /// Logs scored and marked scored (0 when nothing was pending).
    pub scored: usize,
    /// Detections recorded (logs whose risk reached the threat threshold).
    pub threats: usize,
    /// Wall time of the step.
    pub elapsed: Duration,
}

/// Scores up to `batch_size` pending logs with `detector` and records a detection, with its
/// explanation, for each log whose risk reaches the detector's threat threshold.
pub async fn run_once<S: Storage + ?Sized>(
    storage: &S,
    detector: &Detector,
    model_version: &str,
    batch_size: usize,
) -> Result<BatchReport, StorageError> {
    run_once_by_tenant(storage, batch_size, |_| (detector, model_version)).await
}

/// Like [`run_once`], with the detector (and its version) chosen per tenant by `select`: a
/// batch spans tenants, and each tenant's logs are scored by the model that tenant uses.
pub async fn run_once_by_tenant<'d, S, F>(
    storage: &S,
    batch_size: usize,
    select: F,
) -> Result<BatchReport, StorageError>
where
    S: Storage + ?Sized,
    F: Fn(TenantId) -> (&'d Detector, &'d str) + Send + Sync,
{
    let start = Instant::now();
    let mut threats = 0;
    let mut scorer = |logs: &[PendingLog]| -> Vec<NewDetection> {
        let mut by_tenant: BTreeMap<TenantId, Vec<&PendingLog>> = BTreeMap::new();
        for log in logs {
            by_tenant.entry(log.tenant_id).or_default().push(log);
        }
        let mut detections = Vec::new();
        for (tenant, logs) in by_tenant {
            let (detector, model_version) = select(tenant);
            let messages: Vec<&str> = logs.iter().map(|l| l.message.as_str()).collect();
            detections.extend(
                detector
                    .score(&messages)
                    .into_iter()
                    .zip(logs)
                    .filter(|(score, _)| detector.is_threat(score.risk))
                    .map(|(score, log)| NewDetection {
                        tenant_id: log.tenant_id,
                        log_id: log.log_id,
                        agent_id: log.agent_id,
                        risk: score.risk,
                        severity: score.severity.as_str().to_string(),
                        anomaly: score.anomaly,
                        malicious_probability: score.malicious_probability,
                        model_version: model_version.to_string(),
                        explanation: serde_json::to_value(detector.explain(&log.message))
                            .unwrap_or_default(),
                    }),
            );
        }
        threats = detections.len();
        detections
    };
    let scored = storage.score_pending(batch_size, &mut scorer).await?;
    Ok(BatchReport {
        scored,
        threats,
        elapsed: start.elapsed(),
    })
}

/// Runs steps until no log is pending; returns the totals.
pub async fn drain<S: Storage + ?Sized>(
    storage: &S,
    detector: &Detector,
    model_version: &str,
    batch_size: usize,
) -> Result<BatchReport, StorageError> {
    let start = Instant::now();
    let mut total = BatchReport::default();
    loop {
        let step = run_once(storage, detector, model_version, batch_size).await?;
        if step.scored == 0 {
            total.elapsed = start.elapsed();
            return Ok(total);
        }
        total.scored += step.scored;
        total.threats += step.threats;
    }
}
