//! The S3 model store against a real S3 server (moto, on loopback; `scripts/with-moto.sh` sets
//! `SOC_TEST_S3_ENDPOINT`), directly and through [`FaultProxy`]: S3 unreachable, slow, answering
//! 500 / 503, and holding a corrupt object. In each, nothing acknowledged is lost: a model saved
//! while S3 is down reaches S3 once it is back, the server starts and scores with its cached
//! models, and the status says degraded, then available.

mod common;

use std::future::Future;
use std::time::{Duration, Instant};

use common::s3::{
    Fault, FaultProxy, dead_port, direct_store, fresh_bucket, fresh_bucket_name, s3_config,
};
use common::{TestServer, spawn_with, temp_dir};
use serde_json::{Value, json};
use soc_core::store::{ModelStore, StorageError};
use soc_core::{Detector, DetectorParams};
use soc_server::db::GLOBAL_TENANT;
use soc_server::{AppState, Config, detection, model_store};

#[path = "../../soc-core/tests/conformance/model_store.rs"]
mod conformance;

/// Polls `check` every 50 ms until it holds; panics with `what` after `limit`.
async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let t0 = Instant::now();
    while !check().await {
        assert!(t0.elapsed() < limit, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A small but real model artifact.
fn model_bytes(seed: u64) -> Vec<u8> {
    let lines = soc_server::sample::generate(300, 0.2, seed);
    let texts: Vec<&str> = lines.iter().map(|l| l.message.as_str()).collect();
    let labels: Vec<bool> = lines.iter().map(|l| l.malicious).collect();
    let params = DetectorParams {
        random_state: Some(seed),
        ..DetectorParams::default()
    };
    params.fit(&texts, Some(&labels)).unwrap().to_bytes()
}

/// The same artifact with one payload byte changed: it fails the checksum.
fn corrupted(bytes: &[u8]) -> Vec<u8> {
    let mut bad = bytes.to_vec();
    let i = bad.len() - 10;
    bad[i] ^= 0x5a;
    assert!(soc_core::read_header(&bad).is_err());
    bad
}

/// `status.model_store` of `GET /api/system/status`, checked against `model_store_status`.
async fn store_status(s: &TestServer) -> Value {
    let t0 = Instant::now();
    let (code, body) = s.get("/api/system/status", &s.admin_key).await;
    assert_eq!(code, 200, "{body}");
    // The status never waits for S3, however slow S3 is.
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    let store = body["status"]["model_store"].clone();
    assert_eq!(body["status"]["model_store_status"], store["status"]);
    assert_eq!(store["backend"], "s3", "{store}");
    store
}

async fn wait_available(s: &TestServer) {
    eventually("model store available", Duration::from_secs(20), || async {
        let st = store_status(s).await;
        st["status"] == "available" && st["pending_uploads"] == 0
    })
    .await;
}

/// Ships an attack and a benign line and waits until the detector has scored them and
/// recorded the attack as a threat.
async fn scores_an_attack(s: &TestServer) {
    let (_, _, analyst, agent) = s.tenant("acme").await;
    let a = s.agent(&agent, "web-1").await;
    let attack =
        "sshd[4242]: Failed password for invalid user admin from 185.23.4.9 port 40022 ssh2";
    let logs = json!([
        {"agent_id": a, "message": "systemd[1]: Started Session 812 of user bob."},
        {"agent_id": a, "message": attack},
    ]);
    let (code, body) = s.post("/api/logs", &agent, logs).await;
    assert_eq!(code, 201, "{body}");
    eventually(
        "the attack is a threat",
        Duration::from_secs(30),
        || async {
            let (_, threats) = s.get("/api/threats", &analyst).await;
            threats["threats"].as_array().is_some_and(|t| !t.is_empty())
        },
    )
    .await;
}

/// A first server life on `config`: trains and stores the bootstrap model (uploaded to S3),
/// then shuts down. Returns the model's key and bytes.
async fn first_life(config: Config) -> (String, Vec<u8>) {
    let state: AppState = soc_server::connect(config).await.unwrap();
    let (_, version) = detection::load_or_bootstrap(&state).await.unwrap();
    let key = detection::model_key(GLOBAL_TENANT, &version);
    let s3 = state.s3_models.clone().expect("S3-backed store");
    assert_eq!(s3.pending_uploads().await.unwrap(), Vec::<String>::new());
    let bytes = s3.cache().get(&key).await.unwrap();
    assert_eq!(s3.remote().get(&key).await.unwrap(), bytes);
    state.db.close().await;
    (key, bytes)
}

fn active_version(st: &Value) -> String {
    st["status"]["ai_agents"]["active_model_version"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_object_store_passes_the_conformance_suite() {
    let endpoint = require_s3!();
    let store = fresh_bucket(&endpoint).await;
    conformance::model_store_conformance(&store).await;
    // And it really is S3: another client of the bucket sees the same objects.
    let other = direct_store(&endpoint, store.bucket()).await;
    assert_eq!(other.get("other").await.unwrap(), b"other");
    assert_eq!(other.list("").await.unwrap().len(), 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_object_store_errors_are_typed() {
    let endpoint = require_s3!();
    // A bucket that does not exist: unavailable (a configuration problem), not "not found".
    let missing = direct_store(&endpoint, &fresh_bucket_name()).await;
    assert!(matches!(
        missing.get("ml_models/global/1.cgsoc").await,
        Err(StorageError::Unavailable(m)) if m.contains("NoSuchBucket")
    ));
    assert!(matches!(
        missing.check().await,
        Err(StorageError::Unavailable(_))
    ));
    // Nothing listening: unavailable, quickly (the connect timeout bounds it).
    let nowhere = direct_store(&format!("http://127.0.0.1:{}", dead_port()), "b").await;
    let t0 = Instant::now();
    assert!(matches!(
        nowhere.put("k", b"x".to_vec()).await,
        Err(StorageError::Unavailable(_))
    ));
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    // Invalid keys never reach S3.
    assert!(matches!(
        nowhere.get("../x").await,
        Err(StorageError::InvalidKey(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_saved_while_s3_is_unreachable_reaches_s3_when_it_is_back() {
    let endpoint = require_s3!();
    let bucket = fresh_bucket(&endpoint).await;
    let port = dead_port();
    let dir = temp_dir();
    let config = s3_config(&dir, &format!("http://127.0.0.1:{port}"), bucket.bucket());

    // Nothing listens: the server still starts, trains its bootstrap model, keeps it locally
    // and scores with it.
    let s = spawn_with(config, true).await;
    let (_, status) = s.get("/api/system/status", &s.admin_key).await;
    let key = detection::model_key(GLOBAL_TENANT, &active_version(&status));
    let st = store_status(&s).await;
    assert_eq!(st["status"], "degraded", "{st}");
    assert_eq!(st["pending_uploads"], 1, "{st}");
    assert_eq!(st["bucket"], bucket.bucket());
    assert!(
        st["reason"].as_str().unwrap().contains("S3 unreachable"),
        "{st}"
    );
    scores_an_attack(&s).await;
    assert!(matches!(
        bucket.get(&key).await,
        Err(StorageError::NotFound(_))
    ));

    // S3 comes back on the same address: the pending upload drains, the status recovers.
    let _proxy = FaultProxy::start_on(port, &endpoint, Fault::Pass).await;
    wait_available(&s).await;
    let cached = s.state.s3_models.as_ref().unwrap().cache().get(&key).await;
    assert_eq!(bucket.get(&key).await.unwrap(), cached.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_upload_survives_a_restart() {
    let endpoint = require_s3!();
    let bucket = fresh_bucket(&endpoint).await;
    let dir = temp_dir();
    let key = "ml_models/global/v1.cgsoc";
    let bytes = model_bytes(1);
    {
        let down = s3_config(
            &dir,
            &format!("http://127.0.0.1:{}", dead_port()),
            bucket.bucket(),
        );
        let opened = model_store::open(&down).await.unwrap();
        // Acknowledged although S3 is down: the model is durable in the local cache.
        opened.models.put(key, bytes.clone()).await.unwrap();
        let s3 = opened.s3.unwrap();
        assert_eq!(s3.pending_uploads().await.unwrap(), [key]);
        assert_eq!(opened.models.get(key).await.unwrap(), bytes);
        assert_eq!(s3.status().await.status, "degraded");
    } // the process "stops" before S3 comes back

    let up = s3_config(&dir, &endpoint, bucket.bucket());
    let opened = model_store::open(&up).await.unwrap();
    let s3 = opened.s3.unwrap();
    assert_eq!(s3.pending_uploads().await.unwrap(), [key]);
    let _sync = s3.spawn_sync();
    eventually(
        "pending upload drained",
        Duration::from_secs(10),
        || async { s3.pending_uploads().await.unwrap().is_empty() },
    )
    .await;
    assert_eq!(bucket.get(key).await.unwrap(), bytes);
    assert_eq!(s3.status().await.status, "available");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_s3_unreachable_uses_the_cached_models() {
    let endpoint = require_s3!();
    let bucket = fresh_bucket(&endpoint).await;
    let dir = temp_dir();
    let (key, _) = first_life(s3_config(&dir, &endpoint, bucket.bucket())).await;

    let port = dead_port();
    let config = s3_config(&dir, &format!("http://127.0.0.1:{port}"), bucket.bucket());
    let t0 = Instant::now();
    let s = spawn_with(config, true).await;
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    // The cached model, not a new bootstrap one.
    let (_, status) = s.get("/api/system/status", &s.admin_key).await;
    assert_eq!(
        detection::model_key(GLOBAL_TENANT, &active_version(&status)),
        key
    );
    let st = store_status(&s).await;
    assert_eq!(st["status"], "degraded", "{st}");
    assert_eq!(st["pending_uploads"], 0, "{st}");
    assert!(
        st["reason"].as_str().unwrap().contains("S3 unreachable"),
        "{st}"
    );
    scores_an_attack(&s).await;

    let _proxy = FaultProxy::start_on(port, &endpoint, Fault::Pass).await;
    wait_available(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_s3_does_not_hang_the_server() {
    let endpoint = require_s3!();
    let bucket = fresh_bucket(&endpoint).await;
    // Every answer from S3 is held 10 s: longer than the 3 s operation timeout.
    let proxy = FaultProxy::start(&endpoint, Fault::Delay(Duration::from_secs(10))).await;
    let dir = temp_dir();
    let config = s3_config(&dir, &proxy.endpoint(), bucket.bucket());
    let s = spawn_with(config, true).await;
    let st = store_status(&s).await;
    assert_eq!(st["status"], "degraded", "{st}");
    assert_eq!(st["pending_uploads"], 1, "{st}");
    scores_an_attack(&s).await;

    // A save while S3 is slow returns once the operation times out, and is kept.
    let key = "ml_models/global/slow.cgsoc";
    let bytes = model_bytes(2);
    let t0 = Instant::now();
    s.state.models.put(key, bytes.clone()).await.unwrap();
    assert!(t0.elapsed() < Duration::from_secs(8), "{:?}", t0.elapsed());
    assert_eq!(store_status(&s).await["pending_uploads"], 2);

    // Slow but in time (30 ms a chunk): everything drains.
    proxy.set(Fault::Delay(Duration::from_millis(30)));
    wait_available(&s).await;
    assert_eq!(bucket.get(key).await.unwrap(), bytes);
    assert_eq!(bucket.list("ml_models/global/").await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_answering_errors_loses_nothing() {
    let endpoint = require_s3!();
    let bucket = fresh_bucket(&endpoint).await;
    let proxy = FaultProxy::start(&endpoint, Fault::Status(503)).await;
    let dir = temp_dir();
    let config = s3_config(&dir, &proxy.endpoint(), bucket.bucket());
    let s = spawn_with(config, true).await;
    let st = store_status(&s).await;
    assert_eq!(st["status"], "degraded", "{st}");
    assert_eq!(st["pending_uploads"], 1, "{st}");
    let reason = st["reason"].as_str().unwrap();
    assert!(reason.contains("S3 unreachable"), "{reason}");
    scores_an_attack(&s).await;
    // What S3 answered is in the error (and so in the log and the status reason).
    let through_proxy = direct_store(&proxy.endpoint(), bucket.bucket()).await;
    assert!(matches!(
        through_proxy.get("ml_models/global/x.cgsoc").await,
        Err(StorageError::Unavailable(m)) if m.contains("ServiceUnavailable")
    ));

    proxy.set(Fault::Status(500));
    assert!(matches!(
        through_proxy.get("ml_models/global/x.cgsoc").await,
        Err(StorageError::Unavailable(m)) if m.contains("InternalError")
    ));
    let key = "ml_models/global/err.cgsoc";
    let bytes = model_bytes(3);
    s.state.models.put(key, bytes.clone()).await.unwrap();
    let st = store_status(&s).await;
    assert_eq!(st["status"], "degraded", "{st}");
    assert_eq!(st["pending_uploads"], 2, "{st}");
    // A read of a key that is not cached fails cleanly, as unavailable.
    assert!(matches!(
        s.state.models.get("ml_models/global/nope.cgsoc").await,
        Err(StorageError::Unavailable(_))
    ));

    proxy.set(Fault::Pass);
    wait_available(&s).await;
    assert_eq!(bucket.get(key).await.unwrap(), bytes);
    assert_eq!(bucket.list("ml_models/global/").await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_object_in_s3_does_not_replace_the_cached_model() {
    let endpoint = require_s3!();
    let bucket = fresh_bucket(&endpoint).await;
    let dir = temp_dir();
    let (key, good) = first_life(s3_config(&dir, &endpoint, bucket.bucket())).await;
    bucket.put(&key, corrupted(&good)).await.unwrap();

    let s = spawn_with(s3_config(&dir, &endpoint, bucket.bucket()), true).await;
    let (_, status) = s.get("/api/system/status", &s.admin_key).await;
    assert_eq!(
        detection::model_key(GLOBAL_TENANT, &active_version(&status)),
        key
    );
    let cache = s.state.s3_models.as_ref().unwrap().cache();
    assert_eq!(cache.get(&key).await.unwrap(), good);
    scores_an_attack(&s).await;
    // The good cached copy repairs the bucket; the status then recovers.
    wait_available(&s).await;
    assert_eq!(bucket.get(&key).await.unwrap(), good);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_object_in_s3_without_a_cached_copy_is_not_used() {
    let endpoint = require_s3!();
    let bucket = fresh_bucket(&endpoint).await;
    let first_dir = temp_dir();
    let first = s3_config(&first_dir, &endpoint, bucket.bucket());
    let database_url = first.database_url.clone();
    let (key, good) = first_life(first).await;
    bucket.put(&key, corrupted(&good)).await.unwrap();

    // Same database, empty cache: the active model exists only as the corrupt object.
    let mut config = s3_config(&temp_dir(), &endpoint, bucket.bucket());
    config.database_url = database_url;
    let s = spawn_with(config, true).await;
    let st = store_status(&s).await;
    assert_eq!(st["status"], "degraded", "{st}");
    let reason = st["reason"].as_str().unwrap();
    assert!(
        reason.contains("corrupt") && reason.contains(&key),
        "{reason}"
    );
    // The corrupt bytes never entered the cache; the server trained a new model and scores.
    let cache = s.state.s3_models.as_ref().unwrap().cache();
    assert!(matches!(
        cache.get(&key).await,
        Err(StorageError::NotFound(_))
    ));
    let (_, status) = s.get("/api/system/status", &s.admin_key).await;
    assert_ne!(
        detection::model_key(GLOBAL_TENANT, &active_version(&status)),
        key
    );
    scores_an_attack(&s).await;
    assert!(Detector::from_bytes(&bucket.get(&key).await.unwrap()).is_err());
}
