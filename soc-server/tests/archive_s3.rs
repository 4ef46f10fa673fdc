//! Log archival against a real S3 server (moto on loopback; `scripts/with-moto.sh` sets
//! `SOC_TEST_S3_ENDPOINT`), on SQLite and (with `SOC_TEST_PG_URL`) PostgreSQL: a crash between
//! upload and delete, S3 unreachable, slow or answering 503 (nothing deleted, the next run
//! archives), and a corrupt object (restore refuses it).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::s3::{Fault, FaultProxy, dead_port, fresh_bucket, fresh_bucket_name, s3_config};
use common::{Backend, fresh_db, temp_dir};
use soc_core::store::{ModelStore, NewDetection, PendingLog, Storage};
use soc_server::Db;
use soc_server::archive::{self, ArchiveError, ArchiveSettings};
use soc_server::db::{AgentInfo, ArchivedLog, NewLog, Registered};
use soc_server::s3::S3ObjectStore;

const DAY: i64 = 86_400_000;
const NOW: i64 = 1_795_478_400_000;
const SETTINGS: ArchiveSettings = ArchiveSettings {
    retention_days: 30.0,
    part_rows: 25,
};

/// A tenant with `n` scored logs over two days 40 days ago (every third one a threat).
async fn seed(db: &Db, n: usize) -> (i64, Vec<ArchivedLog>) {
    let t = db.create_tenant("acme").await.unwrap().unwrap();
    let info = AgentInfo {
        hostname: "web-01".into(),
        ..Default::default()
    };
    let Registered::Created(a) = db.register_agent(t.id, &info, 10).await.unwrap() else {
        panic!("agent not created")
    };
    let logs: Vec<NewLog> = (0..n)
        .map(|i| NewLog {
            agent_id: a.id,
            timestamp: NOW - 40 * DAY - (i as i64 % 2) * DAY + i as i64,
            source: Some("auth.log".into()),
            level: None,
            message: format!("sshd[{i}]: Failed password for root from 203.0.113.{i} port 22"),
        })
        .collect();
    db.insert_logs(t.id, &logs).await.unwrap();
    db.score_pending(10_000, &mut |logs: &[PendingLog]| {
        logs.iter()
            .filter(|l| l.log_id % 3 == 0)
            .map(|l| NewDetection {
                tenant_id: l.tenant_id,
                log_id: l.log_id,
                agent_id: l.agent_id,
                risk: 9.5,
                severity: "critical".into(),
                anomaly: 0.9,
                malicious_probability: 0.95,
                model_version: "test".into(),
                explanation: serde_json::json!({"terms": ["failed"]}),
            })
            .collect()
    })
    .await
    .unwrap();
    let before = archivable(db, t.id).await;
    assert_eq!(before.len(), n);
    (t.id, before)
}

async fn archivable(db: &Db, tenant: i64) -> Vec<ArchivedLog> {
    db.archivable_logs(tenant, i64::MIN, NOW - 30 * DAY, i64::MAX)
        .await
        .unwrap()
}

/// Every record of every object of the tenant in the bucket; panics on a log in two objects.
async fn records_in(store: &dyn ModelStore, tenant: i64) -> (usize, Vec<ArchivedLog>) {
    let keys = store.list(&format!("agent_logs/{tenant}/")).await.unwrap();
    let mut out = BTreeMap::new();
    for key in &keys {
        let bytes = store.get(key).await.unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut text)
            .unwrap();
        for line in text.lines() {
            let r: ArchivedLog = serde_json::from_str(line).unwrap();
            assert!(
                out.insert(r.id, r).is_none(),
                "a log in two objects ({key})"
            );
        }
    }
    (keys.len(), out.into_values().collect())
}

/// A store of `bucket` reached through `endpoint` (moto, a proxy or a dead port).
/// An archive run through `store` fails with a store error and leaves every log in place.
async fn archive_fails_deleting_nothing(
    db: &Db,
    store: &S3ObjectStore,
    tenant: i64,
    before: &[ArchivedLog],
    why: &str,
) {
    let err = archive::archive_old_logs(db, store, SETTINGS, NOW)
        .await
        .unwrap_err();
    assert!(matches!(err, ArchiveError::Store(_)), "{why}: {err}");
    assert_eq!(archivable(db, tenant).await, before, "{why}");
}

async fn store_via(endpoint: &str, bucket: &str) -> S3ObjectStore {
    let config = s3_config(&temp_dir(), endpoint, bucket);
    S3ObjectStore::connect(&config.s3_settings(), bucket).await
}

async fn crash_between_upload_and_delete_on_s3(b: Backend) {
    let endpoint = require_s3!();
    let db = fresh_db(b).await.unwrap();
    let (tenant, before) = seed(&db, 60).await;
    let store = fresh_bucket(&endpoint).await;
    // Upload and verify the first 10 logs of the oldest day, then "crash".
    let day = common::oldest_archive_day(&db, tenant, NOW - 30 * DAY).await;
    let rows = db
        .archivable_logs(tenant, day, day + DAY, 10)
        .await
        .unwrap();
    archive::upload_part(&db, &store, tenant, day, rows)
        .await
        .unwrap();
    assert_eq!(archivable(&db, tenant).await, before, "nothing deleted");
    assert_eq!(records_in(&store, tenant).await.0, 1);

    let report = archive::archive_old_logs(&db, &store, SETTINGS, NOW)
        .await
        .unwrap();
    assert_eq!(report.logs_deleted, 60);
    assert_eq!(report.objects_superseded, 1);
    assert!(archivable(&db, tenant).await.is_empty());
    let (objects, records) = records_in(&store, tenant).await;
    assert_eq!(objects, report.objects_written);
    assert_eq!(records, before, "every log exactly once");

    let r = archive::restore(&db, &store, &format!("agent_logs/{tenant}/"))
        .await
        .unwrap();
    assert_eq!((r.objects, r.logs_inserted), (objects, 60));
    assert_eq!(archivable(&db, tenant).await, before);
    let r = archive::restore(&db, &store, &format!("agent_logs/{tenant}/"))
        .await
        .unwrap();
    assert_eq!((r.logs_inserted, r.threats_inserted), (0, 0));
}

async fn s3_unreachable_slow_or_failing_deletes_nothing(b: Backend) {
    let endpoint = require_s3!();
    let db = fresh_db(b).await.unwrap();
    let (tenant, before) = seed(&db, 40).await;
    let bucket = fresh_bucket(&endpoint).await;
    let name = bucket.bucket().to_owned();

    let dead = store_via(&format!("http://127.0.0.1:{}", dead_port()), &name).await;
    archive_fails_deleting_nothing(&db, &dead, tenant, &before, "unreachable: nothing deleted")
        .await;

    let proxy = FaultProxy::start(&endpoint, Fault::Status(503)).await;
    let failing = store_via(&proxy.endpoint(), &name).await;
    archive_fails_deleting_nothing(&db, &failing, tenant, &before, "503: nothing deleted").await;

    // Slower than the 3 s operation timeout of the test settings.
    proxy.set(Fault::Delay(Duration::from_secs(4)));
    archive_fails_deleting_nothing(&db, &failing, tenant, &before, "slow: nothing deleted").await;

    // S3 is back: the next run archives everything, each log once.
    proxy.set(Fault::Pass);
    let report = archive::archive_old_logs(&db, &failing, SETTINGS, NOW)
        .await
        .unwrap();
    assert_eq!(report.logs_deleted, 40);
    assert_eq!(records_in(&bucket, tenant).await.1, before);
}

async fn corrupt_object_on_s3_is_refused(b: Backend) {
    let endpoint = require_s3!();
    let db = fresh_db(b).await.unwrap();
    let (tenant, _) = seed(&db, 20).await;
    let store = fresh_bucket(&endpoint).await;
    archive::archive_old_logs(&db, &store, SETTINGS, NOW)
        .await
        .unwrap();
    let key = store
        .list(&format!("agent_logs/{tenant}/"))
        .await
        .unwrap()
        .remove(0);
    let mut bytes = store.get(&key).await.unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x01;
    store.put(&key, bytes).await.unwrap();
    let err = archive::restore(&db, &store, &key).await.unwrap_err();
    assert!(matches!(err, ArchiveError::Corrupt { .. }), "{err}");
    assert!(archivable(&db, tenant).await.is_empty(), "nothing restored");
    // A bucket that does not exist: a store error, not a panic.
    let missing = store_via(&endpoint, &fresh_bucket_name()).await;
    let err = archive::restore(&db, &missing, &format!("agent_logs/{tenant}/"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ArchiveError::Store(_) | ArchiveError::NotFound(_)),
        "{err}"
    );
}

both_backends!(
    crash_between_upload_and_delete_on_s3,
    s3_unreachable_slow_or_failing_deletes_nothing,
    corrupt_object_on_s3_is_refused,
);
