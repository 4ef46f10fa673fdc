//! Turns model outputs (raw anomaly score, malicious probability) into a 0–10 risk and a
//! severity.
//!
//! The raw isolation-forest score barely moves on real logs (its maximum was 0.31–0.43 on our
//! data sets, so a fixed cut never fires), so it is first *calibrated* against the scores of the
//! training data: a line as unusual as the bulk of training lines gets a low calibrated
//! anomaly, one in the rarest `expected_anomaly_rate` of training lines crosses the threat
//! threshold, and one beyond anything seen in training approaches 1. The mapping is strictly
//! increasing, so it keeps the ranking (and the ROC AUC) of the raw score.
//!
//! Risk is the noisy-OR `10 · (1 − (1 − p)(1 − a″))` of the malicious probability `p` and the
//! anomaly's contribution `a″`. Without a classifier `a″ = a′`. With one, the classifier ranks
//! far better than anomaly on the bulk of traffic, so anomaly counts only in its tail:
//! `a″ = w · a′ · ramp`, the ramp rising from 0 at the top 1% (`1 − 10 · rate` quantile) to 1
//! at the threat threshold, and `w` in [0, 1] the anomaly's weight, learned from how well the
//! anomaly alone separates the labeled training lines (see [`RiskScorer::with_anomaly_weight`]).
//! Where anomaly is informative, a line the classifier does not know but that is rarer than
//! 99.9% of normal traffic still becomes a threat; where it is not, it does not blur the
//! classifier's ranking.

use serde::{Deserialize, Serialize};

use crate::signatures::AttackClass;

use crate::error::{Error, Result};
use crate::model::{Artifact, impl_artifact_methods};

/// Risk scoring settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RiskParams {
    /// Fraction of training-like lines whose anomaly alone should reach the threat threshold
    /// (default 0.001: about one line in a thousand of normal traffic).
    pub expected_anomaly_rate: f64,
    /// A threat is recorded when `risk >= 10 * threshold` (the seed's
    /// `THREAT_DETECTION_THRESHOLD`, default 0.7).
    pub threshold: f64,
}

impl Default for RiskParams {
    fn default() -> Self {
        RiskParams {
            expected_anomaly_rate: 0.001,
            threshold: 0.7,
        }
    }
}

impl RiskParams {
    pub(crate) fn validate(&self) -> Result<()> {
        if !(self.expected_anomaly_rate > 0.0 && self.expected_anomaly_rate < 0.1) {
            return Err(Error::invalid_param(
                "expected_anomaly_rate",
                format!("must be in (0, 0.1), got {}", self.expected_anomaly_rate),
            ));
        }
        if !(self.threshold > 0.0 && self.threshold <= 1.0) {
            return Err(Error::invalid_param(
                "threshold",
                format!("must be in (0, 1], got {}", self.threshold),
            ));
        }
        Ok(())
    }
}

/// Severity of a scored line, from its risk: critical ≥ 9, high ≥ 7, medium ≥ 4, else low.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// risk < 4
    Low,
    /// 4 ≤ risk < 7
    Medium,
    /// 7 ≤ risk < 9
    High,
    /// risk ≥ 9
    Critical,
}

impl Severity {
    /// The severity of a risk in 0–10.
    pub fn from_risk(risk: f64) -> Severity {
        if risk >= 9.0 {
            Severity::Critical
        } else if risk >= 7.0 {
            Severity::High
        } else if risk >= 4.0 {
            Severity::Medium
        } else {
            Severity::Low
        }
    }

    /// `low`, `medium`, `high` or `critical` (the names stored in `threat_detections`).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The score of one line.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// Combined risk, 0–10.
    pub risk: f64,
    /// Severity derived from `risk`.
    pub severity: Severity,
    /// Calibrated anomaly in [0, 1] (see the module docs).
    pub anomaly: f64,
    /// Probability that the line is malicious, from the classifier (0 when the detector was
    /// trained without labels).
    pub malicious_probability: f64,
    /// The strongest attack signature the line matched, if any (see
    /// [`crate::signatures`]).
    #[serde(default)]
    pub signature: Option<AttackClass>,
}

impl Score {
    /// Adds a signature match to the score: its confidence `s` joins the models' outputs the
    /// way they join each other, `risk = 10 · (1 − (1 − p)(1 − a″)(1 − s))`, so a confirmed
    /// signature makes a line at least a high-severity threat whatever the models say, and
    /// models and signature agreeing raise it further.
    pub fn with_signature(mut self, class: Option<AttackClass>) -> Score {
        if let Some(class) = class {
            self.risk = 10.0 - (10.0 - self.risk) * (1.0 - class.confidence());
            self.severity = Severity::from_risk(self.risk);
        }
        self.signature = class;
        self
    }
}

/// Number of reference scores kept from training (order statistics, evenly spaced).
const REFERENCE_POINTS: usize = 4096;

/// Combines anomaly and malicious probability into risk:
/// `risk = 10 · (1 − (1 − p)(1 − a′))` with `a′` the calibrated anomaly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskScorer {
    params: RiskParams,
    /// Sorted raw anomaly scores of the training data (a subsample of order statistics).
    reference: Vec<f64>,
    /// Weight of the anomaly next to a classifier, in [0, 1].
    anomaly_weight: f64,
}

impl RiskScorer {
    /// Calibrates on the raw anomaly scores of the training lines.
    pub fn fit(params: RiskParams, training_scores: &[f64]) -> Result<RiskScorer> {
        params.validate()?;
        if training_scores.is_empty() {
            return Err(Error::invalid_input("no training scores to calibrate on"));
        }
        if training_scores.iter().any(|s| !s.is_finite()) {
            return Err(Error::invalid_input("training scores must be finite"));
        }
        let mut sorted = training_scores.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let reference = if n <= REFERENCE_POINTS {
            sorted
        } else {
            (0..REFERENCE_POINTS)
                .map(|i| sorted[i * (n - 1) / (REFERENCE_POINTS - 1)])
                .collect()
        };
        Ok(RiskScorer {
            params,
            reference,
            anomaly_weight: 1.0,
        })
    }

    /// Sets the anomaly's weight next to a classifier from its ROC AUC on labeled training
    /// lines (out of sample for the malicious ones, which the anomaly model never sees): 0 up
    /// to an AUC of 0.97, rising linearly to 1 at 0.995. Next to a classifier that ranks its
    /// attack types near perfectly, an anomaly model that is merely good (0.96 on a synthetic
    /// corpus of mixed logs) adds more noise than it catches; one that separates attacks almost
    /// perfectly (0.999 on web payloads) catches the attack types the classifier never saw.
    pub fn with_anomaly_weight(mut self, training_auc: f64) -> RiskScorer {
        self.anomaly_weight = if training_auc.is_finite() {
            ((training_auc - 0.97) / 0.025).clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// The anomaly's weight next to a classifier, in [0, 1].
    pub fn anomaly_weight(&self) -> f64 {
        self.anomaly_weight
    }

    /// The settings.
    pub fn params(&self) -> &RiskParams {
        &self.params
    }

    /// Empirical quantile of a raw score among the training scores, interpolated between
    /// reference points, in [0, 1].
    fn quantile(&self, a: f64) -> f64 {
        let r = &self.reference;
        let n = r.len();
        if n == 1 {
            return if a < r[0] {
                0.0
            } else if a > r[0] {
                1.0
            } else {
                0.5
            };
        }
        let i = r.partition_point(|&s| s < a);
        if i == 0 {
            return 0.0;
        }
        if i == n {
            return 1.0;
        }
        let (lo, hi) = (r[i - 1], r[i]);
        let frac = if hi > lo { (a - lo) / (hi - lo) } else { 1.0 };
        ((i - 1) as f64 + frac) / (n - 1) as f64
    }

    /// Calibrated anomaly `a′` in [0, 1): piecewise linear in the training quantile q —
    /// q ≤ 1 − 10·rate maps to [0, 0.4] (low), up to 1 − rate to [0.4, threshold], up to the
    /// training maximum to [threshold, 0.8] (high at most: the top of normal traffic is not
    /// critical), and beyond the maximum towards 1.
    pub fn calibrate(&self, a: f64) -> f64 {
        if a.is_nan() {
            return 0.0;
        }
        let rate = self.params.expected_anomaly_rate;
        let t = self.params.threshold;
        let knots = [
            (0.0, 0.0),
            (1.0 - 10.0 * rate, 0.4_f64.min(t)),
            (1.0 - rate, t),
            (1.0, 0.8_f64.max(t)),
        ];
        let max = self.reference[self.reference.len() - 1];
        if a > max {
            // Beyond everything seen in training: approach 1, keeping the order.
            let spread = (max - self.reference[0]).max(1e-9);
            let top = knots[3].1;
            return top + (1.0 - top) * (1.0 - (-(a - max) / spread).exp());
        }
        let q = self.quantile(a);
        for w in knots.windows(2) {
            let ((q0, v0), (q1, v1)) = (w[0], w[1]);
            if q <= q1 {
                return v0 + (v1 - v0) * (q - q0) / (q1 - q0);
            }
        }
        knots[3].1
    }

    /// Risk, severity and both components for a raw anomaly score and a malicious
    /// probability.
    ///
    /// `malicious_probability` is `None` for a detector without a classifier.
    pub fn score(&self, raw_anomaly: f64, malicious_probability: Option<f64>) -> Score {
        let anomaly = self.calibrate(raw_anomaly);
        let contribution = match malicious_probability {
            None => anomaly,
            Some(_) => {
                let (low, high) = (0.4_f64.min(self.params.threshold), self.params.threshold);
                let ramp = if high > low {
                    ((anomaly - low) / (high - low)).clamp(0.0, 1.0)
                } else {
                    1.0
                };
                self.anomaly_weight * anomaly * ramp
            }
        };
        let p = match malicious_probability {
            Some(p) if p.is_finite() => p.clamp(0.0, 1.0),
            _ => 0.0,
        };
        let risk = 10.0 * (1.0 - (1.0 - p) * (1.0 - contribution));
        Score {
            risk,
            severity: Severity::from_risk(risk),
            anomaly,
            malicious_probability: p,
            signature: None,
        }
    }

    /// Whether a risk is high enough to be recorded as a threat.
    pub fn is_threat(&self, risk: f64) -> bool {
        risk >= 10.0 * self.params.threshold
    }

    pub(crate) fn after_load(&mut self) -> Result<()> {
        self.params
            .validate()
            .map_err(|e| Error::invalid_model(format!("bad parameters: {e}")))?;
        if !(0.0..=1.0).contains(&self.anomaly_weight) {
            return Err(Error::invalid_model("anomaly weight must be in [0, 1]"));
        }
        if self.reference.is_empty()
            || self.reference.iter().any(|s| !s.is_finite())
            || self.reference.windows(2).any(|w| w[0] > w[1])
        {
            return Err(Error::invalid_model(
                "risk calibration must be a non-empty sorted list of finite scores",
            ));
        }
        Ok(())
    }
}

/// A scorer saved on its own (the Python package's `RiskScorer.save`); inside a detector it is
/// part of the detector's artifact.
impl Artifact for RiskScorer {
    const KIND: &'static str = "risk_scorer";

    fn params_json(&self) -> serde_json::Value {
        serde_json::to_value(self.params).unwrap_or(serde_json::Value::Null)
    }

    /// One input: the raw anomaly score.
    fn n_features(&self) -> usize {
        1
    }

    fn after_load(&mut self) -> Result<()> {
        RiskScorer::after_load(self)
    }
}

impl_artifact_methods!(RiskScorer);

#[cfg(test)]
mod tests {
    use super::*;

    fn scorer() -> RiskScorer {
        let scores: Vec<f64> = (0..100_000).map(|i| 0.3 + 0.1 * i as f64 / 1e5).collect();
        RiskScorer::fit(RiskParams::default(), &scores).unwrap()
    }

    #[test]
    fn calibration_is_increasing_and_puts_the_bulk_low() {
        let s = scorer();
        let mut prev = -1.0;
        for i in 0..=300 {
            let a = 0.25 + i as f64 * 0.001;
            let c = s.calibrate(a);
            assert!(
                c > prev || (c == 0.0 && prev == 0.0),
                "{a}: {c} after {prev}"
            );
            assert!((0.0..1.0).contains(&c));
            prev = c;
        }
        // The median training line is low; the 99.95th percentile is a threat; beyond max is critical.
        assert!(s.score(0.35, None).severity == Severity::Low);
        assert!(s.is_threat(s.score(0.3 + 0.1 * 0.9995, None).risk));
        assert_eq!(s.score(0.6, None).severity, Severity::Critical);
    }

    #[test]
    fn risk_combines_as_noisy_or() {
        let s = scorer();
        let low = s.score(0.3, Some(0.0));
        assert_eq!(low.risk, 0.0);
        let sure = s.score(0.3, Some(1.0));
        assert_eq!(sure.risk, 10.0);
        assert_eq!(sure.severity, Severity::Critical);
        let tail = s.score(0.3 + 0.1 * 0.9995, Some(0.5));
        assert!(tail.risk > 5.0 && tail.risk < 10.0);
        assert_eq!(s.score(0.35, Some(f64::NAN)).malicious_probability, 0.0);
    }

    #[test]
    fn with_a_classifier_only_the_anomaly_tail_counts() {
        let s = scorer();
        // The median line's anomaly adds nothing to the classifier's verdict...
        assert!((s.score(0.35, Some(0.2)).risk - 2.0).abs() < 1e-12);
        assert!(s.score(0.35, None).risk > 0.0);
        // ...a line rarer than 99.9% of training still becomes a threat on its own.
        assert!(s.is_threat(s.score(0.3 + 0.1 * 0.9995, Some(0.0)).risk));
        assert!(!s.is_threat(s.score(0.3 + 0.1 * 0.98, Some(0.0)).risk));
        // An uninformative anomaly model does not count at all.
        let weak = scorer().with_anomaly_weight(0.85);
        assert_eq!(weak.anomaly_weight(), 0.0);
        assert_eq!(weak.score(0.3 + 0.1 * 0.9995, Some(0.25)).risk, 2.5);
        assert!((scorer().with_anomaly_weight(0.9825).anomaly_weight() - 0.5).abs() < 1e-12);
        assert_eq!(scorer().with_anomaly_weight(0.995).anomaly_weight(), 1.0);
    }

    #[test]
    fn severity_boundaries() {
        assert_eq!(Severity::from_risk(3.99), Severity::Low);
        assert_eq!(Severity::from_risk(4.0), Severity::Medium);
        assert_eq!(Severity::from_risk(7.0), Severity::High);
        assert_eq!(Severity::from_risk(9.0), Severity::Critical);
    }

    #[test]
    fn rejects_bad_settings() {
        let bad = RiskParams {
            threshold: 1.5,
            ..RiskParams::default()
        };
        assert!(RiskScorer::fit(bad, &[0.1]).is_err());
        assert!(RiskScorer::fit(RiskParams::default(), &[]).is_err());
        assert!(RiskScorer::fit(RiskParams::default(), &[f64::NAN]).is_err());
    }

    #[test]
    fn artifact_round_trip_keeps_scores_and_rejects_other_kinds() {
        let scorer = scorer().with_anomaly_weight(0.95);
        let bytes = scorer.to_bytes();
        let back = RiskScorer::from_bytes(&bytes).unwrap();
        assert_eq!(back, scorer);
        assert_eq!(back.score(0.395, Some(0.2)), scorer.score(0.395, Some(0.2)));
        assert_eq!(crate::read_header(&bytes).unwrap().kind, "risk_scorer");
        let mut corrupt = bytes.clone();
        *corrupt.last_mut().unwrap() ^= 1;
        assert!(matches!(
            RiskScorer::from_bytes(&corrupt),
            Err(Error::InvalidModel(_))
        ));
    }
}
