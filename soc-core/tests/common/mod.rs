//! Shared helpers of the integration tests: where the data sets and scikit-learn are.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// `../shared/data` beside the repository (or `SOC_DATA_DIR`).
pub(crate) fn data_dir() -> PathBuf {
    std::env::var_os("SOC_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"))
}

/// A Python with scikit-learn: `SOC_PYTHON`, else the repository's `.venv` (created by
/// `scripts/test.sh`). Panics with instructions when there is none: the parity tests must not
/// pass silently without scikit-learn.
pub(crate) fn python() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let candidates = std::env::var_os("SOC_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain([root.join(".venv/bin/python")]);
    for python in candidates {
        let ok = Command::new(&python)
            .args(["-c", "import sklearn, numpy"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return python;
        }
    }
    panic!(
        "no Python with scikit-learn found: run scripts/test.sh (it creates .venv with scikit-learn) \
         or set SOC_PYTHON to a python that has scikit-learn and numpy"
    );
}

/// A fresh path in the temp directory.
pub(crate) fn temp_path(name: &str) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("soc-core-{}-{n}-{name}", std::process::id()))
}

/// A JSON array of numbers as `f64`s (panics on anything else: test data).
pub(crate) fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .expect("a JSON array")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}
