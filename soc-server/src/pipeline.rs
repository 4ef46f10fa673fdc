//! Shared state of the detection pipeline: the wake-up signal ingest pulls, and what
//! `/api/system/status` reports.

use std::sync::Mutex;

use serde::Serialize;
use tokio::sync::{Notify, watch};

/// What the pipeline reports (`status.ai_agents`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct PipelineReport {
    /// Whether the detection loop is running.
    pub pipeline_running: bool,
    /// Detection workers in this process.
    pub workers: usize,
    /// Version of the global detector in use.
    pub active_model_version: Option<String>,
    /// Tenants scored by a model of their own.
    pub tenant_models: usize,
    /// Logs in the last batch.
    pub last_batch_size: usize,
    /// Threats in the last batch.
    pub last_batch_threats: usize,
    /// Time to claim, score and commit the last batch (ms).
    pub last_batch_latency_ms: f64,
    /// Logs scored since start.
    pub scored_total: u64,
    /// Threats recorded since start.
    pub threats_total: u64,
    /// Last pipeline error, if the last attempt failed.
    pub last_error: Option<String>,
}

/// The pipeline's shared state.
#[derive(Debug)]
pub struct Pipeline {
    /// Notified when logs are committed.
    pub wake: Notify,
    /// Bumped when this process commits threats (live streams wait on it).
    pub threats_committed: watch::Sender<u64>,
    /// The detectors in use (global and per tenant), shared by the workers.
    pub detectors: crate::detection::ActiveDetectors,
    /// Background retrains of this process.
    pub retrains: crate::detection::RetrainJobs,
    report: Mutex<PipelineReport>,
}

impl Default for Pipeline {
    fn default() -> Self {
        Pipeline {
            wake: Notify::new(),
            threats_committed: watch::Sender::new(0),
            detectors: Default::default(),
            retrains: Default::default(),
            report: Mutex::default(),
        }
    }
}

impl Pipeline {
    /// A snapshot of the report.
    pub fn report(&self) -> PipelineReport {
        self.report
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Wakes the detection workers: those waiting now, and one more that is about to wait.
    pub fn wake(&self) {
        self.wake.notify_waiters();
        self.wake.notify_one();
    }

    /// Updates the report.
    pub fn update(&self, f: impl FnOnce(&mut PipelineReport)) {
        f(&mut self
            .report
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner));
    }
}
