//! Evaluation metrics for binary detection, used by model training reports and benchmarks.

use serde::{Deserialize, Serialize};

/// Area under the ROC curve of `scores` (higher = more likely positive) against `labels`,
/// with ties counted as half (the Mann–Whitney statistic, equal to scikit-learn's
/// `roc_auc_score`). `None` when either class is missing or a score is NaN.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    if scores.len() != labels.len() || scores.iter().any(|s| s.is_nan()) {
        return None;
    }
    let n_pos = labels.iter().filter(|&&l| l).count();
    let n_neg = labels.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Sum of the (tie-averaged, 1-based) ranks of the positives.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += avg_rank * order[i..=j].iter().filter(|&&k| labels[k]).count() as f64;
        i = j + 1;
    }
    let (p, n) = (n_pos as f64, n_neg as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// Precision, recall and F1 of the decision `score >= threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ThresholdMetrics {
    /// The decision threshold.
    pub threshold: f64,
    /// Flagged positives / flagged (1.0 when nothing is flagged).
    pub precision: f64,
    /// Flagged positives / positives (0.0 when there is no positive).
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// Flagged negatives / negatives.
    pub false_positive_rate: f64,
}

/// Precision, recall, F1 and false-positive rate of `score >= threshold`.
pub fn at_threshold(scores: &[f64], labels: &[bool], threshold: f64) -> ThresholdMetrics {
    let (mut tp, mut fp, mut pos, mut neg) = (0usize, 0usize, 0usize, 0usize);
    for (&s, &l) in scores.iter().zip(labels) {
        let flagged = s >= threshold;
        if l {
            pos += 1;
            tp += usize::from(flagged);
        } else {
            neg += 1;
            fp += usize::from(flagged);
        }
    }
    let ratio = |a: usize, b: usize, empty: f64| if b == 0 { empty } else { a as f64 / b as f64 };
    let precision = ratio(tp, tp + fp, 1.0);
    let recall = ratio(tp, pos, 0.0);
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    ThresholdMetrics {
        threshold,
        precision,
        recall,
        f1,
        false_positive_rate: ratio(fp, neg, 0.0),
    }
}

/// The smallest threshold whose false-positive rate on the negatives is at most `max_fpr`,
/// and the recall of the positives at that threshold: "how much do we catch when we allow
/// `max_fpr` false alarms". `None` without negatives or positives.
pub fn recall_at_fpr(scores: &[f64], labels: &[bool], max_fpr: f64) -> Option<(f64, f64)> {
    let mut neg: Vec<f64> = scores
        .iter()
        .zip(labels)
        .filter(|(_, l)| !**l)
        .map(|(s, _)| *s)
        .collect();
    if neg.is_empty() || neg.len() == labels.len() {
        return None;
    }
    neg.sort_by(|a, b| b.total_cmp(a));
    // Allow at most floor(max_fpr * n_neg) negatives at or above the threshold.
    let allowed = (max_fpr * neg.len() as f64).floor() as usize;
    let threshold = match neg.get(allowed) {
        // Just above the first negative that must not be flagged.
        Some(&s) => s.next_up(),
        None => f64::NEG_INFINITY,
    };
    let m = at_threshold(scores, labels, threshold);
    Some((threshold, m.recall))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roc_auc_matches_sklearn_examples() {
        // sklearn: roc_auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
        let auc = roc_auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]).unwrap();
        assert!((auc - 0.75).abs() < 1e-12);
        // ties count half
        let auc = roc_auc(&[0.5, 0.5], &[false, true]).unwrap();
        assert!((auc - 0.5).abs() < 1e-12);
        assert!(roc_auc(&[0.5, 0.5], &[true, true]).is_none());
    }

    #[test]
    fn threshold_metrics() {
        let m = at_threshold(&[0.9, 0.8, 0.2, 0.1], &[true, false, true, false], 0.5);
        assert_eq!(
            (m.precision, m.recall, m.false_positive_rate),
            (0.5, 0.5, 0.5)
        );
    }

    #[test]
    fn recall_at_one_percent_fpr() {
        let mut scores: Vec<f64> = (0..100).map(|i| i as f64 / 100.0).collect();
        let mut labels = vec![false; 100];
        scores.extend([0.995, 0.5]);
        labels.extend([true, true]);
        let (t, recall) = recall_at_fpr(&scores, &labels, 0.01).unwrap();
        assert!(t > 0.98 && t <= 0.995, "{t}");
        assert_eq!(recall, 0.5);
    }
}
