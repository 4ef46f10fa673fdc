//! Replays the `artifact_load` fuzz target's committed inputs (seeds and crash reproducers)
//! through the loaders, so that CI keeps every bug the fuzzer found fixed; and writes the seeds.
//!
//! Regenerate the seeds after a change to the artifact format:
//! `cargo test --release -p soc-core --test fuzz_corpus -- --ignored write_fuzz_seeds`.

mod artifact_harness;

use std::path::{Path, PathBuf};

use artifact_harness::{load_and_score, reseal_as_every_kind, split};
use ndarray::Array2;
use soc_core::{
    DetectorParams, IsolationForestParams, Matrix, RandomForestParams, RiskParams, RiskScorer,
    TfidfParams,
};

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Seeds: one small real artifact of each kind.
fn seeds_dir() -> PathBuf {
    fuzz_dir().join("seeds/artifact_load")
}

/// Inputs that crashed the fuzzer once (minimized), kept after the fix.
fn regressions_dir() -> PathBuf {
    fuzz_dir().join("regressions/artifact_load")
}

fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, Vec<u8>)> = entries
        .map(|e| e.expect("a readable directory entry").path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != "README.md"))
        .map(|p| {
            let bytes = std::fs::read(&p).expect("a readable corpus file");
            (p, bytes)
        })
        .collect();
    out.sort();
    out
}

/// What the fuzz target does with one input.
fn replay(bytes: &[u8]) -> Vec<&'static str> {
    let loaded = load_and_score(bytes);
    for resealed in reseal_as_every_kind(bytes) {
        load_and_score(&resealed);
    }
    loaded
}

#[test]
fn seeds_are_current_artifacts_of_every_kind() {
    let seeds = files(&seeds_dir());
    let mut kinds: Vec<&str> = Vec::new();
    for (path, bytes) in &seeds {
        let loaded = replay(bytes);
        let (header, _) = split(bytes).expect("a seed has a readable header");
        assert_eq!(
            loaded,
            [header["kind"].as_str().unwrap()],
            "{} no longer loads: regenerate the seeds (see this file's docs)",
            path.display()
        );
        kinds.extend(loaded);
    }
    kinds.sort();
    kinds.dedup();
    let mut every = artifact_harness::KINDS.to_vec();
    every.sort();
    assert_eq!(kinds, every, "a seed of every kind");
}

#[test]
fn crash_reproducers_stay_fixed() {
    // Every reproducer is replayed exactly as the fuzzer ran it; `load_and_score` panics on a
    // regression. Those kept are hostile inputs, so none of them loads as-is.
    let reproducers = files(&regressions_dir());
    assert!(
        reproducers.len() >= 4,
        "the committed reproducers are missing"
    );
    for (path, bytes) in reproducers {
        let loaded = replay(&bytes);
        assert!(loaded.is_empty(), "{} loads as {loaded:?}", path.display());
    }
}

fn lines() -> (Vec<String>, Vec<bool>) {
    let mut lines: Vec<String> = (0..40)
        .map(|i| format!("GET /item?id={} HTTP/1.1 200 {}", i % 7, 900 + i % 5))
        .collect();
    lines.extend((0..6).map(|i| format!("GET /item?id={i} UNION SELECT pass FROM users--")));
    let labels = (0..lines.len()).map(|i| i >= 40).collect();
    (lines, labels)
}

#[test]
#[ignore = "writes the fuzz seeds into the source tree; run by hand"]
fn write_fuzz_seeds() {
    let (lines, labels) = lines();
    let x = Array2::from_shape_fn((32, 4), |(r, c)| ((r * 5 + c * 3) % 7) as f64);
    let y: Vec<i64> = (0..32).map(|r| i64::from(r % 4 == 0)).collect();
    let isolation = IsolationForestParams {
        n_estimators: 3,
        random_state: Some(1),
        ..IsolationForestParams::default()
    }
    .fit(Matrix::from(&x))
    .unwrap();
    let small_detector = |labels: Option<&[bool]>| {
        DetectorParams {
            isolation: IsolationForestParams {
                n_estimators: 2,
                max_samples: soc_core::MaxSamples::Count(16),
                ..IsolationForestParams::default()
            },
            forest: RandomForestParams {
                n_estimators: 2,
                ..RandomForestParams::default()
            },
            random_state: Some(3),
            ..DetectorParams::default()
        }
        .fit(&lines, labels)
        .unwrap()
    };
    let seeds: [(&str, Vec<u8>); 6] = [
        (
            "tfidf_vectorizer",
            TfidfParams::default().fit(&lines).unwrap().to_bytes(),
        ),
        ("isolation_forest", isolation.to_bytes()),
        (
            "random_forest_classifier",
            RandomForestParams {
                n_estimators: 2,
                random_state: Some(2),
                ..RandomForestParams::default()
            }
            .fit(Matrix::from(&x), &y)
            .unwrap()
            .to_bytes(),
        ),
        (
            "risk_scorer",
            RiskScorer::fit(
                RiskParams::default(),
                &isolation.score_samples(Matrix::from(&x)).unwrap()[..8],
            )
            .unwrap()
            .to_bytes(),
        ),
        ("detector_unlabeled", small_detector(None).to_bytes()),
        ("detector_labeled", small_detector(Some(&labels)).to_bytes()),
    ];
    let dir = seeds_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in seeds {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}
