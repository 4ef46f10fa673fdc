//! What the tenant's own logs as unlabeled background (`ML_ANOMALY_SAMPLE_SIZE`) do to its
//! model, on real data: loghub BGL_2k as a tenant's traffic. The detector is trained as a
//! tenant retrain trains it (the built-in labeled sample corpus, the server's seed and
//! threshold), once without and once with the earlier part of the tenant's log as background
//! (unlabeled: its alerts included), and both are scored on the later part.
//!
//! ```text
//! cargo run --release -p soc-server --example anomaly_sample -- [BGL_2k.log] [BACKGROUND_SHARE]
//! ```
//! Defaults: `../shared/data/loghub_bgl_2k/BGL_2k.log`, `0.5` (the first half is background,
//! the second half is scored: a time split, as a retrain sees the past and scores the future).
//! Alerts (the first token is not `-`) are BlueGene/L system failures, not attacks: the figures
//! measure "unusual for this tenant", the anomaly side's job.

use soc_core::{Detector, DetectorParams, metrics};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args
        .first()
        .map_or("../shared/data/loghub_bgl_2k/BGL_2k.log", String::as_str);
    let share: f64 = args.get(1).map_or(Ok(0.5), |s| s.parse())?;
    let raw =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {path}: {e}"))?;
    // The label is the first token; strip it so that it does not leak into the features.
    let lines: Vec<(String, bool)> = raw
        .lines()
        .filter_map(|l| {
            let (label, rest) = l.trim_end().split_once(' ')?;
            Some((rest.to_owned(), label != "-"))
        })
        .collect();
    let cut = (lines.len() as f64 * share) as usize;
    let (past, future) = lines.split_at(cut);
    let background: Vec<&str> = past.iter().map(|(t, _)| t.as_str()).collect();
    let test: Vec<&str> = future.iter().map(|(t, _)| t.as_str()).collect();
    let truth: Vec<bool> = future.iter().map(|(_, y)| *y).collect();

    let sample = soc_server::sample::generate(4000, 0.15, 42);
    let texts: Vec<&str> = sample.iter().map(|l| l.message.as_str()).collect();
    let labels: Vec<bool> = sample.iter().map(|l| l.malicious).collect();
    let mut params = DetectorParams {
        random_state: Some(42),
        ..DetectorParams::default()
    };
    params.risk.threshold = 0.7;

    println!(
        "{path}: background {} lines ({} alerts), scored {} lines ({} alerts)",
        past.len(),
        past.iter().filter(|(_, y)| *y).count(),
        future.len(),
        truth.iter().filter(|y| **y).count()
    );
    println!("model                 anomaly_auc  risk_auc  threats_on_normal  threats_on_alerts");
    let report = |name: &str, d: &Detector| {
        let scores = d.score(&test);
        let anomaly: Vec<f64> = scores.iter().map(|s| s.anomaly).collect();
        let risk: Vec<f64> = scores.iter().map(|s| s.risk).collect();
        let threats = |alert: bool| {
            scores
                .iter()
                .zip(&truth)
                .filter(|(s, y)| **y == alert && d.is_threat(s.risk))
                .count()
        };
        println!(
            "{name:<22}{:>11.3}{:>10.3}{:>19}{:>19}",
            metrics::roc_auc(&anomaly, &truth).unwrap_or(f64::NAN),
            metrics::roc_auc(&risk, &truth).unwrap_or(f64::NAN),
            threats(false),
            threats(true)
        );
    };
    let without = params.fit(&texts, Some(&labels))?;
    report("labels only", &without);
    let with = params.fit_with_background(&texts, Some(&labels), &background)?;
    report("labels + background", &with);
    Ok(())
}
