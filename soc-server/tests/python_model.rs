//! A detector trained in Python (`codegrey_soc`) and uploaded with `POST /api/models` scores the
//! tenant's logs in the server exactly as it scored them in Python.
//!
//! Needs a Python with the package built into it: `SOC_PYTHON`, else the workspace's `.venv`
//! (`scripts/test.sh` builds it with `maturin develop` before running the Rust tests).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Backend, spawn};
use serde_json::{Value, json};
use soc_core::Detector;
use soc_server::db::ThreatFilter;

fn python_with_package() -> PathBuf {
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

/// Trains in Python on web lines, saves the artifact to `model` and prints the risk of each
/// probe line as its IEEE-754 bit pattern (exact).
const TRAIN: &str = r#"
import json, sys
import codegrey_soc as cs
normal = [f"GET /shop/item?id={i % 40} HTTP/1.1 200 {700 + i % 89}" for i in range(400)]
attacks = [f"GET /shop/item?id={i}' OR 1=1-- HTTP/1.1 500 0" for i in range(40)]
det = cs.Detector(random_state=11).fit(normal + attacks, [0] * 400 + [1] * 40)
det.save(sys.argv[1])
probe = json.loads(sys.argv[2])
print(json.dumps(det.score(probe)["risk"].view("<u8").tolist()))
"#;

fn probe() -> Vec<String> {
    let mut lines: Vec<String> = (0..60)
        .map(|i| format!("GET /shop/item?id={} HTTP/1.1 200 {}", i % 50, 650 + i))
        .collect();
    lines
        .extend((0..20).map(|i| format!("GET /shop/item?id={i}' UNION SELECT 1-- HTTP/1.1 500 0")));
    lines.extend((0..20).map(|i| format!("GET /shop/item?id={i}' OR 1=1-- HTTP/1.1 500 0")));
    lines
}

async fn a_model_trained_in_python_scores_identically_in_the_server(b: Backend) {
    let s = spawn(b, true).await.unwrap();
    let (tenant, admin, _, agent) = s.tenant("notebook").await;

    let dir = common::temp_dir();
    let model = dir.join("detector.cgsoc");
    let probe = probe();
    let out = Command::new(python_with_package())
        .args(["-c", TRAIN])
        .arg(&model)
        .arg(json!(probe).to_string())
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let python_risk: Vec<f64> = serde_json::from_slice::<Vec<u64>>(&out.stdout)
        .expect("python prints the risk bits")
        .into_iter()
        .map(f64::from_bits)
        .collect();
    let bytes = std::fs::read(&model).unwrap();

    // Upload, activate, ship the probe lines as logs.
    let resp = s
        .client
        .post(s.url("/api/models"))
        .bearer_auth(&admin)
        .header("content-type", "application/octet-stream")
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    let version = body["model"]["version"].as_str().unwrap().to_owned();
    let (st, body) = s
        .post(
            &format!("/api/models/{version}/activate"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    // Workers pick up an activation within seconds; wait until they serve this tenant's model.
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.state.pipeline.report().tenant_models < 1 {
        assert!(
            Instant::now() < deadline,
            "the workers did not load the uploaded model"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let agent_id = s.agent(&agent, "analyst-laptop").await;
    let logs: Vec<Value> = probe
        .iter()
        .map(|m| json!({"agent_id": agent_id, "message": m}))
        .collect();
    let (st, body) = s.post("/api/logs", &agent, json!(logs)).await;
    assert_eq!(st, 201, "{body}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while s.state.db.counts(tenant).await.unwrap().1 < probe.len() as i64 {
        assert!(Instant::now() < deadline, "logs not scored");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Exactly the lines the model calls threats, with Python's risk to the bit, by this model.
    let detector = Detector::from_bytes(&bytes).unwrap();
    let filter = ThreatFilter {
        limit: 1000,
        ..Default::default()
    };
    let threats = s.state.db.list_threats(tenant, &filter).await.unwrap();
    let mut flagged = Vec::new();
    for t in &threats {
        assert_eq!(t.model_version, version);
        let log = s.state.db.log(tenant, t.log_id).await.unwrap().unwrap();
        let i = probe.iter().position(|m| *m == log.message).unwrap();
        assert_eq!(
            t.risk.to_bits(),
            python_risk[i].to_bits(),
            "risk of {}",
            log.message
        );
        flagged.push(i);
    }
    flagged.sort_unstable();
    let expected: Vec<usize> = (0..probe.len())
        .filter(|&i| detector.is_threat(python_risk[i]))
        .collect();
    assert!(expected.len() >= 20, "{expected:?}");
    assert_eq!(flagged, expected);
}

both_backends!(a_model_trained_in_python_scores_identically_in_the_server);
