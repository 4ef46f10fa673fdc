//! The detector end to end on a seeded synthetic corpus of syslog / web / auth lines: fit on
//! the first 80% (with labels), score the rest, show quality, speed and the top threats with
//! their explanations, save and reload the model.
//!
//! `cargo run --release -p soc-core --example demo [-- --lines N]`

#[path = "../../benches/common/mod.rs"]
mod common;

use std::time::Instant;

use soc_core::metrics::roc_auc;
use soc_core::{Detector, DetectorParams};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut n_lines = 100_000;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--lines" => n_lines = args.next().ok_or("--lines needs a number")?.parse()?,
            "-h" | "--help" => {
                println!("usage: demo [--lines N]   (default 100000 synthetic lines)");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?} (try --help)").into()),
        }
    }
    if n_lines < 1000 {
        return Err("--lines must be at least 1000".into());
    }

    let (lines, labels) = common::synthetic_corpus(n_lines, 42);
    let split = n_lines * 8 / 10;
    let (train, test) = lines.split_at(split);
    let (train_labels, test_labels) = labels.split_at(split);
    println!(
        "{} synthetic lines ({} attacks); training on the first {split}, scoring the last {}",
        n_lines,
        labels.iter().filter(|&&l| l).count(),
        test.len()
    );

    let start = Instant::now();
    let params = DetectorParams {
        random_state: Some(42),
        ..DetectorParams::default()
    };
    let detector = params.fit(train, Some(train_labels))?;
    println!("fit: {:.2} s", start.elapsed().as_secs_f64());

    let start = Instant::now();
    let scores = detector.score(test);
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "scored {} lines in {elapsed:.3} s ({:.0} lines/s)",
        test.len(),
        test.len() as f64 / elapsed
    );

    let risks: Vec<f64> = scores.iter().map(|s| s.risk).collect();
    let threats = scores.iter().filter(|s| detector.is_threat(s.risk)).count();
    let caught = scores
        .iter()
        .zip(test_labels)
        .filter(|(s, l)| **l && detector.is_threat(s.risk))
        .count();
    let attacks = test_labels.iter().filter(|&&l| l).count();
    println!(
        "ROC AUC {:.4}; {threats} threats at the default threshold, {caught} of {attacks} attacks",
        roc_auc(&risks, test_labels).unwrap_or(f64::NAN)
    );

    let mut ranked: Vec<usize> = (0..test.len()).collect();
    ranked.sort_by(|&a, &b| risks[b].total_cmp(&risks[a]));
    println!("\ntop threats:");
    for &i in ranked.iter().take(3) {
        let why = detector.explain(&test[i]);
        let terms: Vec<&str> = why
            .top_terms
            .iter()
            .take(5)
            .map(|t| t.term.as_str())
            .collect();
        let unusual: Vec<&str> = why
            .unusual_features
            .iter()
            .map(|f| f.feature.as_str())
            .collect();
        println!(
            "  risk {:.1} {:<8} fired: {:?}; terms {terms:?}; unusual {unusual:?}\n    {}",
            why.score.risk,
            why.score.severity.as_str(),
            why.fired,
            test[i]
        );
    }

    let path = std::env::temp_dir().join("codegrey-demo-detector.cgsoc");
    detector.save(&path)?;
    let reloaded = Detector::load(&path)?;
    assert_eq!(reloaded.score_one(&test[0]), detector.score_one(&test[0]));
    println!(
        "\nsaved to {} ({} bytes) and reloaded: identical scores",
        path.display(),
        std::fs::metadata(&path)?.len()
    );
    std::fs::remove_file(&path)?;
    Ok(())
}
