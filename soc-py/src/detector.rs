//! `DetectorModel` and `RiskScorerModel`: the end-to-end detector and its risk scorer.

use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use soc_core::{Detector, DetectorParams, RiskParams, RiskScorer, Score, Severity};

use crate::convert::texts;
use crate::errors::{SocResult, core};

/// Severity as a small integer: 0 low, 1 medium, 2 high, 3 critical (the Python wrapper maps
/// it to names).
fn severity_code(s: Severity) -> u8 {
    match s {
        Severity::Low => 0,
        Severity::Medium => 1,
        Severity::High => 2,
        Severity::Critical => 3,
    }
}

/// Scores as four equal-length columns: risk, severity code, anomaly, malicious probability.
type ScoreColumns<'py> = (
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<u8>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
);

fn columns<'py>(py: Python<'py>, scores: &[Score]) -> ScoreColumns<'py> {
    let risk: Vec<f64> = scores.iter().map(|s| s.risk).collect();
    let severity: Vec<u8> = scores.iter().map(|s| severity_code(s.severity)).collect();
    let anomaly: Vec<f64> = scores.iter().map(|s| s.anomaly).collect();
    let malicious: Vec<f64> = scores.iter().map(|s| s.malicious_probability).collect();
    (
        risk.into_pyarray(py),
        severity.into_pyarray(py),
        anomaly.into_pyarray(py),
        malicious.into_pyarray(py),
    )
}

/// A fitted detector: TF-IDF + isolation forest + optional random forest + risk scorer.
#[pyclass(module = "codegrey_soc._native", frozen)]
pub struct DetectorModel {
    inner: Detector,
}

#[pymethods]
impl DetectorModel {
    /// Fits on `texts` (a list of str) and optional labels (`True` = malicious).
    #[staticmethod]
    #[pyo3(signature = (texts, labels, *, n_estimators, max_depth, threshold,
        expected_anomaly_rate, max_line_bytes, random_state, n_jobs))]
    #[allow(clippy::too_many_arguments)]
    fn fit<'py>(
        py: Python<'py>,
        texts: &Bound<'py, PyList>,
        labels: Option<Vec<bool>>,
        n_estimators: usize,
        max_depth: Option<usize>,
        threshold: f64,
        expected_anomaly_rate: f64,
        max_line_bytes: usize,
        random_state: Option<u64>,
        n_jobs: Option<usize>,
    ) -> SocResult<Self> {
        let mut params = DetectorParams {
            risk: RiskParams {
                expected_anomaly_rate,
                threshold,
            },
            max_line_bytes,
            random_state,
            n_jobs,
            ..DetectorParams::default()
        };
        params.isolation.n_estimators = n_estimators;
        params.forest.n_estimators = n_estimators;
        params.forest.max_depth = max_depth;
        let docs = self::texts(texts)?;
        let inner = core(py.detach(|| params.fit(&docs, labels.as_deref())))?;
        Ok(DetectorModel { inner })
    }

    /// Scores `texts` (a list of str); one line is scored on the calling thread, more in
    /// parallel.
    fn score<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyList>,
    ) -> SocResult<ScoreColumns<'py>> {
        let docs = self::texts(texts)?;
        let scores = match docs.as_slice() {
            [one] => vec![self.inner.score_one(one)],
            many => py.detach(|| self.inner.score(many)),
        };
        Ok(columns(py, &scores))
    }

    /// Why `text` scored as it did, as JSON (score, fired, top_terms, unusual_features).
    fn explain_json(&self, py: Python<'_>, text: &str) -> String {
        let why = py.detach(|| self.inner.explain(text));
        // Plain structs of numbers and strings always serialize.
        serde_json::to_string(&why).unwrap_or_default()
    }

    /// Whether a risk is at or above the threat threshold.
    fn is_threat(&self, risk: f64) -> bool {
        self.inner.is_threat(risk)
    }

    /// `(n_samples, n_malicious)` of the training data.
    fn training_size(&self) -> (usize, usize) {
        self.inner.training_size()
    }

    /// Whether a classifier was trained (labels were given).
    #[getter]
    fn has_classifier(&self) -> bool {
        self.inner.classifier().is_some()
    }

    /// The settings as JSON.
    fn params_json(&self) -> String {
        serde_json::to_string(self.inner.params()).unwrap_or_default()
    }

    /// The model in the artifact format.
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.to_bytes())
    }

    /// Reads an artifact written by `to_bytes` (here, by the server or by Rust).
    #[staticmethod]
    fn from_bytes(bytes: &[u8]) -> SocResult<Self> {
        Ok(DetectorModel {
            inner: core(Detector::from_bytes(bytes))?,
        })
    }
}

/// A fitted risk scorer: calibrated anomaly + malicious probability → risk 0–10.
#[pyclass(module = "codegrey_soc._native", frozen)]
pub struct RiskScorerModel {
    inner: RiskScorer,
}

#[pymethods]
impl RiskScorerModel {
    /// Calibrates on raw anomaly scores of training data (the paper's a(x), higher = more
    /// anomalous).
    #[staticmethod]
    #[pyo3(signature = (training_scores, *, expected_anomaly_rate, threshold))]
    fn fit(
        training_scores: PyReadonlyArray1<'_, f64>,
        expected_anomaly_rate: f64,
        threshold: f64,
    ) -> SocResult<Self> {
        let params = RiskParams {
            expected_anomaly_rate,
            threshold,
        };
        let inner = core(RiskScorer::fit(params, training_scores.as_slice()?))?;
        Ok(RiskScorerModel { inner })
    }

    /// Scores raw anomalies with optional malicious probabilities (same length).
    #[pyo3(signature = (raw_anomaly, malicious_probability=None))]
    fn score<'py>(
        &self,
        py: Python<'py>,
        raw_anomaly: PyReadonlyArray1<'py, f64>,
        malicious_probability: Option<PyReadonlyArray1<'py, f64>>,
    ) -> SocResult<ScoreColumns<'py>> {
        let raw = raw_anomaly.as_slice()?;
        let scores: Vec<Score> = match &malicious_probability {
            None => raw.iter().map(|&a| self.inner.score(a, None)).collect(),
            Some(p) => {
                let p = p.as_slice()?;
                if p.len() != raw.len() {
                    return Err(PyValueError::new_err(format!(
                        "{} anomaly scores but {} malicious probabilities",
                        raw.len(),
                        p.len()
                    )));
                }
                raw.iter()
                    .zip(p)
                    .map(|(&a, &p)| self.inner.score(a, Some(p)))
                    .collect()
            }
        };
        Ok(columns(py, &scores))
    }

    /// Calibrated anomaly a′ in [0, 1] of each raw score.
    fn calibrate<'py>(
        &self,
        py: Python<'py>,
        raw_anomaly: PyReadonlyArray1<'py, f64>,
    ) -> SocResult<Bound<'py, PyArray1<f64>>> {
        let out: Vec<f64> = raw_anomaly
            .as_slice()?
            .iter()
            .map(|&a| self.inner.calibrate(a))
            .collect();
        Ok(out.into_pyarray(py))
    }

    /// Whether a risk is at or above the threat threshold.
    fn is_threat(&self, risk: f64) -> bool {
        self.inner.is_threat(risk)
    }

    /// The model in the artifact format.
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.to_bytes())
    }

    /// Reads an artifact written by `to_bytes`.
    #[staticmethod]
    fn from_bytes(bytes: &[u8]) -> SocResult<Self> {
        Ok(RiskScorerModel {
            inner: core(RiskScorer::from_bytes(bytes))?,
        })
    }
}
