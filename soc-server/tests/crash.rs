//! Crash safety of the real binary: `kill -9` while logs are being ingested and scored, then a
//! restart. Every acknowledged log must be stored exactly once and scored exactly once, with
//! exactly the detections one uninterrupted pass of the stored model gives. Runs on SQLite and
//! (with `SOC_TEST_PG_URL`) PostgreSQL.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Backend;
use serde_json::{Value, json};
use soc_core::Detector;
use soc_server::Db;

/// Lines per ingest request.
const BATCH: usize = 250;

/// A `soc-server serve` process.
struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Starts the binary on `url` with its data under `dir` and waits until it answers.
async fn start(dir: &Path, url: &str, run: usize) -> Server {
    let port = free_port();
    let stderr = std::fs::File::create(dir.join(format!("stderr-{run}.log"))).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_soc-server"))
        .arg("serve")
        .current_dir(dir)
        .env("DATABASE_URL", url)
        .env("SOC_DATA_DIR", dir.join("data"))
        .env("SOC_LOG_DIR", dir.join("logs"))
        .env("SOC_HOST", "127.0.0.1")
        .env("SOC_PORT", port.to_string())
        .env("SOC_DETECTION_BATCH_SIZE", "200")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("spawn soc-server");
    let mut server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(r) = client.get(format!("{}/healthz", server.base)).send().await
            && r.status() == 200
        {
            return server;
        }
        if let Some(status) = server.child.try_wait().unwrap() {
            let log = std::fs::read_to_string(dir.join(format!("stderr-{run}.log")));
            panic!("soc-server exited with {status}: {log:?}");
        }
        assert!(Instant::now() < deadline, "soc-server did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The lines of batch `b`: sample traffic with attacks, each line made unique by a marker.
fn batch_lines(b: usize) -> Vec<String> {
    soc_server::sample::generate(BATCH, 0.2, 1000 + b as u64)
        .into_iter()
        .enumerate()
        .map(|(i, l)| format!("{} seq={b}.{i}", l.message))
        .collect()
}

async fn ingest(client: &reqwest::Client, base: &str, key: &str, agent: i64, b: usize) -> bool {
    let logs: Vec<Value> = batch_lines(b)
        .into_iter()
        .map(|m| json!({"agent_id": agent, "message": m}))
        .collect();
    let resp = client
        .post(format!("{base}/api/logs"))
        .bearer_auth(key)
        .json(&logs)
        .send()
        .await;
    matches!(resp, Ok(r) if r.status().is_success())
}

fn find_artifacts(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            find_artifacts(&path, out);
        } else if path.extension().is_some_and(|e| e == "cgsoc") {
            out.push(path);
        }
    }
}

async fn kill_9_mid_ingest_and_detection_loses_and_duplicates_nothing(b: Backend) {
    let dir = common::temp_dir();
    let Some(url) = common::fresh_database(b, &dir).await else {
        return;
    };
    let client = reqwest::Client::new();
    let server = start(&dir, &url, 1).await;
    let admin = std::fs::read_to_string(dir.join("data/admin-api-key")).unwrap();
    let admin = admin.trim();
    let resp: Value = client
        .post(format!("{}/api/keys", server.base))
        .bearer_auth(admin)
        .json(&json!({"role": "agent"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let agent_key = resp["key"]
        .as_str()
        .unwrap_or_else(|| panic!("{resp}"))
        .to_owned();
    let resp: Value = client
        .post(format!("{}/api/agents/register", server.base))
        .bearer_auth(&agent_key)
        .json(&json!({"hostname": "web-01"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let agent = resp["agent"]["id"].as_i64().unwrap();

    // Ingest concurrently with detection, and kill -9 with requests in flight.
    let mut acknowledged = BTreeSet::new();
    for b in 0..8 {
        assert!(ingest(&client, &server.base, &agent_key, agent, b).await);
        acknowledged.insert(b);
    }
    let sends = (8..12).map(|b| {
        let (client, base, key) = (client.clone(), server.base.clone(), agent_key.clone());
        tokio::spawn(async move { (b, ingest(&client, &base, &key, agent, b).await) })
    });
    let sends: Vec<_> = sends.collect();
    tokio::time::sleep(Duration::from_millis(30)).await;
    drop(server); // SIGKILL
    for s in sends {
        let (b, ok) = s.await.unwrap();
        if ok {
            acknowledged.insert(b);
        }
    }

    eprintln!("acknowledged before the kill: {acknowledged:?}");

    // Restart, ship more, wait until everything is scored.
    let server = start(&dir, &url, 2).await;
    for b in 12..16 {
        assert!(ingest(&client, &server.base, &agent_key, agent, b).await);
        acknowledged.insert(b);
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status: Value = client
            .get(format!("{}/api/system/status", server.base))
            .bearer_auth(admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if status["status"]["ai_agents"]["backlog"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "backlog not drained: {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(server);

    // Every acknowledged batch is stored once; an unacknowledged one entirely or not at all.
    let db = Db::connect(&url).await.unwrap();
    // Each log with its number of detections.
    let sql = "SELECT l.id, l.message, l.scored, (SELECT COUNT(*) FROM threat_detections t \
               WHERE t.tenant_id = l.tenant_id AND t.log_id = l.id) FROM agent_logs l";
    let rows: Vec<(i64, String, bool, i64)> = match &db {
        Db::Postgres(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
        Db::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
    };
    db.close().await;
    for b in 0..16 {
        let stored = batch_lines(b)
            .iter()
            .filter(|line| rows.iter().filter(|(_, m, ..)| m == *line).count() == 1)
            .count();
        let duplicated = batch_lines(b)
            .iter()
            .any(|line| rows.iter().filter(|(_, m, ..)| m == line).count() > 1);
        assert!(!duplicated, "batch {b} stored twice");
        if acknowledged.contains(&b) {
            assert_eq!(stored, BATCH, "acknowledged batch {b} lost lines");
        } else {
            assert!(stored == 0 || stored == BATCH, "batch {b} half stored");
        }
    }
    assert!(
        rows.iter().all(|(_, _, scored, _)| *scored),
        "unscored logs"
    );

    // Exactly the detections of one pass of the (single) stored model.
    let mut artifacts = Vec::new();
    find_artifacts(&dir.join("data"), &mut artifacts);
    assert_eq!(artifacts.len(), 1, "{artifacts:?}");
    let detector = Detector::from_bytes(&std::fs::read(&artifacts[0]).unwrap()).unwrap();
    let messages: Vec<&str> = rows.iter().map(|(_, m, ..)| m.as_str()).collect();
    let expected: BTreeSet<i64> = detector
        .score(&messages)
        .iter()
        .zip(&rows)
        .filter(|(s, _)| detector.is_threat(s.risk))
        .map(|(_, (id, ..))| *id)
        .collect();
    assert!(rows.iter().all(|r| r.3 <= 1), "a log has two detections");
    let recorded: BTreeSet<i64> = rows.iter().filter(|r| r.3 == 1).map(|r| r.0).collect();
    assert!(!expected.is_empty());
    assert_eq!(recorded, expected);
}

both_backends!(kill_9_mid_ingest_and_detection_loses_and_duplicates_nothing);
