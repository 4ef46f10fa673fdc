//! Model versions over HTTP: upload, list, activate / roll back, download, per-tenant scoring,
//! imported labels and background retraining; on SQLite and (with `SOC_TEST_PG_URL`)
//! PostgreSQL.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, TestServer, error_code, spawn};
use serde_json::{Value, json};
use soc_core::store::Storage;
use soc_core::{Detector, DetectorParams};

/// A small detector trained on the sample corpus (`threshold`: its threat threshold).
fn small_detector(seed: u64, threshold: f64) -> Detector {
    let lines = soc_server::sample::generate(600, 0.2, seed);
    let texts: Vec<&str> = lines.iter().map(|l| l.message.as_str()).collect();
    let labels: Vec<bool> = lines.iter().map(|l| l.malicious).collect();
    let mut params = DetectorParams {
        random_state: Some(seed),
        ..DetectorParams::default()
    };
    params.risk.threshold = threshold;
    params.fit(&texts, Some(&labels)).unwrap()
}

async fn upload(s: &TestServer, key: &str, bytes: Vec<u8>) -> (u16, Value) {
    let resp = s
        .client
        .post(s.url("/api/models"))
        .bearer_auth(key)
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn uploaded_models_are_candidates_until_activated(b: Backend) {
    let s = spawn(b, true).await.unwrap();
    let global = s.state.pipeline.report().active_model_version.unwrap();
    let (_, admin, analyst, agent) = s.tenant("acme").await;
    let (_, _, analyst_b, _) = s.tenant("other").await;

    // Before any upload the tenant sees the global bootstrap model, which serves it.
    let (st, list) = s.get("/api/models", &analyst).await;
    assert_eq!(st, 200, "{list}");
    assert_eq!(list["serving_version"], global.as_str());
    let rows = list["models"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{list}");
    assert_eq!(rows[0]["scope"], "global");
    assert_eq!(rows[0]["status"], "active");
    assert_eq!(rows[0]["source"], "bootstrap");
    assert!(rows[0]["roc_auc"].as_f64().unwrap() > 0.9, "{list}");

    // The global artifact downloads and loads.
    let resp = s
        .client
        .get(s.url(&format!("/api/models/{global}/artifact")))
        .bearer_auth(&analyst)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let bytes = resp.bytes().await.unwrap();
    Detector::from_bytes(&bytes).unwrap();

    // Uploads: admin only; a bad artifact is refused with a clear error.
    let model = small_detector(7, 0.7).to_bytes();
    // Larger than the 64 KiB limit of other bodies: the models route has its own.
    assert!(model.len() > 64 * 1024, "{}", model.len());
    assert_eq!(upload(&s, &analyst, model.clone()).await.0, 403);
    assert_eq!(upload(&s, &agent, model.clone()).await.0, 403);
    let (st, body) = upload(&s, &admin, Vec::new()).await;
    assert_eq!((st, error_code(&body)), (400, "bad_request"));
    let (st, body) = upload(&s, &admin, b"not a model".to_vec()).await;
    assert_eq!((st, error_code(&body)), (422, "invalid_model"), "{body}");
    let mut corrupt = model.clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let (st, body) = upload(&s, &admin, corrupt).await;
    assert_eq!((st, error_code(&body)), (422, "invalid_model"), "{body}");
    let (st, body) = upload(&s, &admin, model.clone()).await;
    assert_eq!(st, 201, "{body}");
    let first = body["model"]["version"].as_str().unwrap().to_owned();
    assert_eq!(body["model"]["status"], "candidate");
    assert_eq!(body["model"]["scope"], "tenant");
    assert_eq!(body["model"]["source"], "upload");
    assert!(
        body["model"]["metrics"]["test"]["roc_auc"]
            .as_f64()
            .unwrap()
            > 0.5
    );
    assert_eq!(body["model"]["test_size"], 2000);

    // A candidate does not serve; its bytes come back unchanged.
    let (_, list) = s.get("/api/models", &analyst).await;
    assert_eq!(list["serving_version"], global.as_str());
    let resp = s
        .client
        .get(s.url(&format!("/api/models/{first}/artifact")))
        .bearer_auth(&analyst)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.bytes().await.unwrap().as_ref(), model.as_slice());

    // Activation: admin only; the other tenant can neither see nor activate it.
    let path = format!("/api/models/{first}/activate");
    assert_eq!(s.post(&path, &analyst, json!({})).await.0, 403);
    let (st, body) = s.get(&format!("/api/models/{first}"), &analyst_b).await;
    assert_eq!((st, error_code(&body)), (404, "not_found"));
    let (st, body) = s.post("/api/models/nope/activate", &admin, json!({})).await;
    assert_eq!((st, error_code(&body)), (404, "not_found"));
    let (st, body) = s.post(&path, &admin, json!({})).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["model"]["status"], "active");
    assert_eq!(body["retired_version"], Value::Null);
    let (_, list) = s.get("/api/models", &analyst).await;
    assert_eq!(list["serving_version"], first.as_str());
    let (_, list_b) = s.get("/api/models", &analyst_b).await;
    assert_eq!(list_b["serving_version"], global.as_str());
    assert_eq!(list_b["models"].as_array().unwrap().len(), 1);

    // A second version replaces it; rolling back retires the second one.
    let (_, body) = upload(&s, &admin, small_detector(8, 0.7).to_bytes()).await;
    let second = body["model"]["version"].as_str().unwrap().to_owned();
    let (_, body) = s
        .post(&format!("/api/models/{second}/activate"), &admin, json!({}))
        .await;
    assert_eq!(body["retired_version"], first.as_str());
    let (_, body) = s.post(&path, &admin, json!({})).await;
    assert_eq!(body["retired_version"], second.as_str());
    let (_, m) = s.get(&format!("/api/models/{second}"), &analyst).await;
    assert_eq!(m["model"]["status"], "retired");

    // Pages of one, newest first, cover every version once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/models?limit=1&cursor={c}"),
            None => "/api/models?limit=1".to_owned(),
        };
        let (st, page) = s.get(&path, &analyst).await;
        assert_eq!(st, 200, "{page}");
        for m in page["models"].as_array().unwrap() {
            seen.push(m["version"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, vec![second.clone(), first.clone(), global.clone()]);
    assert_eq!(s.get("/api/models?cursor=x", &analyst).await.0, 400);
}

/// Waits until every log of the tenant is scored; returns its threats.
async fn scored_threats(s: &TestServer, analyst: &str, n_logs: usize) -> Vec<Value> {
    let t0 = Instant::now();
    loop {
        let (_, logs) = s.get("/api/logs?limit=1000", analyst).await;
        let rows = logs["logs"].as_array().unwrap();
        if rows.len() == n_logs && rows.iter().all(|l| l["scored"] == true) {
            let (_, list) = s.get("/api/threats?limit=1000", analyst).await;
            return list["threats"].as_array().unwrap().clone();
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "logs not scored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn each_tenant_is_scored_by_its_own_active_model(b: Backend) {
    let s = spawn(b, true).await.unwrap();
    let global = s.state.pipeline.report().active_model_version.unwrap();
    let (_, admin_a, analyst_a, agent_a) = s.tenant("acme").await;
    let (_, _, analyst_b, agent_b) = s.tenant("other").await;
    // Tenant A's model flags everything (threshold 1e-6), so its threats are easy to tell apart.
    let (_, body) = upload(&s, &admin_a, small_detector(9, 1e-6).to_bytes()).await;
    let own = body["model"]["version"].as_str().unwrap().to_owned();
    let (st, _) = s
        .post(&format!("/api/models/{own}/activate"), &admin_a, json!({}))
        .await;
    assert_eq!(st, 200);
    // Workers notice the activation within seconds.
    let t0 = Instant::now();
    while s.state.pipeline.report().tenant_models != 1 {
        assert!(t0.elapsed() < Duration::from_secs(30), "not picked up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let lines: Vec<String> = soc_server::sample::generate(40, 0.5, 3)
        .into_iter()
        .map(|l| l.message)
        .collect();
    for (agent, host) in [(&agent_a, "a-1"), (&agent_b, "b-1")] {
        let id = s.agent(agent, host).await;
        let logs: Vec<Value> = lines
            .iter()
            .map(|m| json!({"agent_id": id, "message": m}))
            .collect();
        let (st, body) = s.post("/api/logs", agent, Value::Array(logs)).await;
        assert_eq!(st, 201, "{body}");
    }
    let threats_a = scored_threats(&s, &analyst_a, lines.len()).await;
    let threats_b = scored_threats(&s, &analyst_b, lines.len()).await;
    // A's near-zero threshold flags more of the same lines than the global 0.7 does.
    assert!(!threats_b.is_empty() && threats_a.len() > threats_b.len());
    assert!(threats_a.iter().all(|t| t["model_version"] == own.as_str()));
    assert!(
        threats_b
            .iter()
            .all(|t| t["model_version"] == global.as_str())
    );
}

async fn labels_feed_a_background_retrain(b: Backend) {
    let s = spawn(b, true).await.unwrap();
    let (t, admin, analyst, agent) = s.tenant("acme").await;

    // Imports: analyst or admin, JSON array or NDJSON, validated.
    let labels: Vec<Value> = (0..40)
        .map(|i| json!({"message": format!("rclone copy /srv/finance/q{i} mega:dump"), "malicious": true}))
        .collect();
    assert_eq!(
        s.post("/api/labels", &agent, Value::Array(labels.clone()))
            .await
            .0,
        403
    );
    let (st, body) = s.post("/api/labels", &analyst, Value::Array(labels)).await;
    assert_eq!((st, &body["accepted"]), (201, &json!(40)), "{body}");
    let ndjson = (0..10)
        .map(|i| {
            json!({"message": format!("backup job {i} finished ok"), "malicious": false})
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n");
    let (st, body) = s
        .post_raw("/api/labels", &admin, ndjson, "application/x-ndjson")
        .await;
    assert_eq!((st, &body["accepted"]), (201, &json!(10)), "{body}");
    let (st, body) = s
        .post(
            "/api/labels",
            &analyst,
            json!([{"message": "", "malicious": true}]),
        )
        .await;
    assert_eq!((st, error_code(&body)), (422, "invalid_input"));
    let (st, body) = s
        .post("/api/labels", &analyst, json!([{"message": "x"}]))
        .await;
    assert_eq!((st, error_code(&body)), (422, "invalid_input"));
    let (st, _) = s
        .post_raw("/api/labels", &analyst, "[{", "application/json")
        .await;
    assert_eq!(st, 400);
    let too_many: Vec<Value> = (0..10_001)
        .map(|_| json!({"message": "m", "malicious": false}))
        .collect();
    let (st, _) = s
        .post("/api/labels", &analyst, Value::Array(too_many))
        .await;
    assert_eq!(st, 413);
    assert_eq!(
        s.state
            .db
            .training_examples(Some(t), 1000)
            .await
            .unwrap()
            .len(),
        50,
        "refused imports store nothing"
    );

    // Retrain: admin only, 202 and a job to poll; one at a time per tenant.
    assert_eq!(
        s.post("/api/models/retrain", &analyst, json!({})).await.0,
        403
    );
    let (st, body) = s.post("/api/models/retrain", &admin, json!({})).await;
    assert_eq!(st, 202, "{body}");
    assert_eq!(body["started"], true);
    let poll = body["poll"].as_str().unwrap().to_owned();
    let (st, again) = s.post("/api/models/retrain", &admin, json!({})).await;
    assert_eq!(st, 202);
    if again["job"]["status"] == "running" {
        assert_eq!(again["started"], false);
        assert_eq!(again["poll"], poll.as_str());
    }
    let t0 = Instant::now();
    let job = loop {
        let (st, body) = s.get(&poll, &admin).await;
        assert_eq!(st, 200, "{body}");
        if body["job"]["status"] != "running" {
            break body["job"].clone();
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "retrain too slow");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(job["status"], "succeeded", "{job}");
    let outcome = &job["outcome"];
    let version = outcome["version"].as_str().unwrap();
    let (_, m) = s.get(&format!("/api/models/{version}"), &analyst).await;
    assert_eq!(m["model"]["source"], "retrain");
    assert_eq!(m["model"]["scope"], "tenant");
    let expected = if outcome["promoted"] == true {
        "active"
    } else {
        "candidate"
    };
    assert_eq!(m["model"]["status"], expected, "{job}");
    // The candidate was compared with the serving model on the same held-out set.
    assert!(outcome["compared_with"][1].is_number(), "{job}");
    let (st, body) = s.get("/api/models/retrain/nope", &admin).await;
    assert_eq!((st, error_code(&body)), (404, "not_found"));
}

/// A database migrated to 0001 with model versions in it keeps its active versions through
/// 0002 (the `active` flag becomes `status`).
async fn migration_0002_converts_the_active_flag(b: Backend) {
    let dir = common::temp_dir();
    let url = common::fresh_database(b, &dir).await.unwrap();
    let db = soc_server::Db::connect(&url).await.unwrap();
    let backend = db.backend();
    let only_0001 = dir.join("migrations-0001");
    std::fs::create_dir_all(&only_0001).unwrap();
    std::fs::copy(
        format!(
            "{}/../migrations/{backend}/0001_init.sql",
            env!("CARGO_MANIFEST_DIR")
        ),
        only_0001.join("0001_init.sql"),
    )
    .unwrap();
    let m = sqlx::migrate::Migrator::new(only_0001.as_path())
        .await
        .unwrap();
    let insert = "INSERT INTO model_versions (tenant_id, version, key, metrics, active, created_at) \
                  VALUES (0, 'bootstrap-1', 'k1', '{}', FALSE, 1), (0, 'v2', 'k2', '{}', TRUE, 2), \
                  (5, 'v3', 'k3', '{}', TRUE, 3)";
    match &db {
        soc_server::Db::Postgres(p) => {
            m.run(p).await.unwrap();
            sqlx::query(insert).execute(p).await.unwrap();
        }
        soc_server::Db::Sqlite(p) => {
            m.run(p).await.unwrap();
            sqlx::query(insert).execute(p).await.unwrap();
        }
    }
    db.migrate().await.unwrap();
    let old = db.model_version(0, "bootstrap-1").await.unwrap().unwrap();
    assert_eq!(
        (old.status.as_str(), old.source.as_str()),
        ("retired", "bootstrap")
    );
    assert_eq!(
        db.active_model_version().await.unwrap().unwrap().version,
        "v2"
    );
    assert_eq!(
        db.active_model_version_of(5)
            .await
            .unwrap()
            .unwrap()
            .version,
        "v3"
    );
    // One active version per tenant from now on.
    let a = db
        .activate_model_version(0, "bootstrap-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.retired.as_deref(), Some("v2"));
    assert_eq!(db.active_model_versions().await.unwrap().len(), 2);
}

both_backends!(
    migration_0002_converts_the_active_flag,
    uploaded_models_are_candidates_until_activated,
    each_tenant_is_scored_by_its_own_active_model,
    labels_feed_a_background_retrain,
);
