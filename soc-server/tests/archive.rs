//! Log archival and restore, on SQLite and (with `SOC_TEST_PG_URL`) PostgreSQL, against the
//! filesystem store: verified upload before delete, crash between upload and delete, failed
//! upload, triage during archival, corrupt objects, idempotent restore.

mod common;

use std::collections::BTreeMap;

use common::{Backend, fresh_db, temp_dir};
use soc_core::store::{FsModelStore, ModelStore, NewDetection, PendingLog, Storage};
use soc_server::Db;
use soc_server::archive::{self, ArchiveError, ArchiveSettings};
use soc_server::db::{AgentInfo, ArchivedLog, Ingested, NewLog, Registered, ThreatUpdate};

const DAY: i64 = 86_400_000;
/// "Now" of the tests: 2026-11-24T00:00:00Z.
const NOW: i64 = 1_795_478_400_000;

fn settings(part_rows: usize) -> ArchiveSettings {
    ArchiveSettings {
        retention_days: 30.0,
        part_rows,
    }
}

/// A tenant with one agent and logs: `old` scored logs spread over three days 40–42 days
/// ago (every third one a threat, one of them triaged), 5 pending old logs and 5 scored
/// recent logs. Returns (tenant, the archivable logs as they are in the database).
async fn seed(db: &Db, name: &str, old: usize) -> (i64, Vec<ArchivedLog>) {
    let t = db.create_tenant(name).await.unwrap().unwrap();
    let info = AgentInfo {
        hostname: format!("{name}-host"),
        ..Default::default()
    };
    let Registered::Created(a) = db.register_agent(t.id, &info, 10).await.unwrap() else {
        panic!("agent not created")
    };
    let log = |timestamp: i64, i: usize| NewLog {
        agent_id: a.id,
        timestamp,
        source: Some("auth.log".into()),
        level: i.is_multiple_of(2).then(|| "info".to_owned()),
        message: format!("sshd[{i}]: line {i} of {name} \"quoted\" ünïcode"),
    };
    let mut logs: Vec<NewLog> = (0..old)
        .map(|i| {
            log(
                NOW - 40 * DAY - (i as i64 % 3) * DAY + DAY / 2 - i as i64 * 1000,
                i,
            )
        })
        .collect();
    // Recent logs, within the retention.
    logs.extend((0..5).map(|i| log(NOW - DAY, 2000 + i)));
    assert!(matches!(
        db.insert_logs(t.id, &logs).await.unwrap(),
        Ingested::Committed { .. }
    ));
    // Score everything inserted so far; every third log becomes a threat.
    loop {
        let n = db
            .score_pending(1000, &mut |logs: &[PendingLog]| {
                logs.iter()
                    .filter(|l| l.log_id % 3 == 0)
                    .map(|l| NewDetection {
                        tenant_id: l.tenant_id,
                        log_id: l.log_id,
                        agent_id: l.agent_id,
                        risk: 8.25,
                        severity: "high".into(),
                        anomaly: 0.5,
                        malicious_probability: 0.75,
                        model_version: "test-v1".into(),
                        explanation: serde_json::json!({"terms": ["sshd"], "fired": "classifier"}),
                    })
                    .collect()
            })
            .await
            .unwrap();
        if n == 0 {
            break;
        }
    }
    let threats = db
        .list_threats(
            t.id,
            &soc_server::db::ThreatFilter {
                limit: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    if let Some(th) = threats.first() {
        let u = ThreatUpdate {
            status: Some("resolved".into()),
            verdict: Some("true_positive".into()),
            assignee: Some("ana".into()),
            note: Some("archived with its log".into()),
        };
        db.update_threat(t.id, th.id, &u).await.unwrap().unwrap();
    }
    let before = archivable(db, t.id).await;
    add_pending(db, t.id, a.id).await;
    (t.id, before)
}

/// Old but pending logs: never archivable, they still need detection. (Seeding another
/// tenant afterwards would score them.)
async fn add_pending(db: &Db, tenant: i64, agent_id: i64) {
    let pending: Vec<NewLog> = (0..5)
        .map(|i| NewLog {
            agent_id,
            timestamp: NOW - 50 * DAY,
            source: None,
            level: None,
            message: format!("pending {i}"),
        })
        .collect();
    db.insert_logs(tenant, &pending).await.unwrap();
}

/// The scored logs older than the retention, with their threats.
async fn archivable(db: &Db, tenant: i64) -> Vec<ArchivedLog> {
    db.archivable_logs(tenant, i64::MIN, NOW - 30 * DAY, i64::MAX)
        .await
        .unwrap()
}

fn store() -> (FsModelStore, std::path::PathBuf) {
    let dir = temp_dir().join("archive");
    (FsModelStore::new(&dir).unwrap(), dir)
}

/// Every record of every object under `agent_logs/{tenant}/`, by id; panics on a duplicate.
async fn archived_records(
    store: &dyn ModelStore,
    tenant: i64,
) -> (usize, BTreeMap<i64, ArchivedLog>) {
    let keys = store.list(&format!("agent_logs/{tenant}/")).await.unwrap();
    let mut out = BTreeMap::new();
    for key in &keys {
        let bytes = store.get(key).await.unwrap();
        let mut gz = flate2::read::GzDecoder::new(&bytes[..]);
        let mut text = String::new();
        std::io::Read::read_to_string(&mut gz, &mut text).unwrap();
        for line in text.lines() {
            let r: ArchivedLog = serde_json::from_str(line).unwrap();
            assert!(out.insert(r.id, r).is_none(), "log in two objects ({key})");
        }
    }
    (keys.len(), out)
}

async fn archive_deletes_only_after_verified_upload_and_restores_exactly(b: Backend) {
    let db = fresh_db(b).await.unwrap();
    let (other, _) = seed(&db, "other", 10).await;
    let (tenant, before) = seed(&db, "acme", 120).await;
    // The other tenant's pending logs were scored by the second seeding.
    assert_eq!(archivable(&db, other).await.len(), 15);
    let other_before = archivable(&db, other).await;
    assert_eq!(before.len(), 120);
    assert!(before.iter().filter(|l| l.threat.is_some()).count() >= 30);
    let (total_before, _, threats_before) = db.counts(tenant).await.unwrap();
    let (store, _) = store();

    let report = archive::archive_old_logs(&db, &store, settings(50), NOW)
        .await
        .unwrap();
    // 3 days of 40 logs, 50 per object at most: one object per day (4 days for the other
    // tenant, with its formerly pending logs).
    assert_eq!(report.objects_written, 3 + 4, "{report:?}");
    assert_eq!(report.logs_deleted, 120 + 15);
    assert_eq!(report.objects_superseded, 0);
    assert!(archivable(&db, tenant).await.is_empty());
    // Pending logs stay (they still need detection); so does the other tenant's data only
    // through its own objects.
    let (total_after, scored_after, threats_after) = db.counts(tenant).await.unwrap();
    assert_eq!(total_after, total_before - 120);
    assert_eq!(scored_after, 5, "the recent logs stay");
    let archived_threats = before.iter().filter(|l| l.threat.is_some()).count() as i64;
    assert_eq!(threats_after, threats_before - archived_threats);
    // The triaged threat's label survives the archival of its log.
    let labels = db.training_examples(Some(tenant), 10).await.unwrap();
    assert_eq!(labels.len(), 1);
    assert!(labels[0].malicious);

    let (objects, records) = archived_records(&store, tenant).await;
    assert_eq!(objects, 3);
    assert_eq!(records.values().cloned().collect::<Vec<_>>(), before);
    for key in store.list("agent_logs/").await.unwrap() {
        assert!(
            key.ends_with(".ndjson.gz") && key.contains("/part-"),
            "{key}"
        );
    }

    // Running again archives nothing.
    let again = archive::archive_old_logs(&db, &store, settings(50), NOW)
        .await
        .unwrap();
    assert_eq!(again, archive::ArchiveReport::default());

    // Restore everything of the tenant: exactly the original rows, ids and triage included.
    let r = archive::restore(&db, &store, &format!("agent_logs/{tenant}/"))
        .await
        .unwrap();
    assert_eq!((r.objects, r.records, r.logs_inserted), (3, 120, 120));
    assert_eq!(
        r.threats_inserted as usize,
        before.iter().filter(|l| l.threat.is_some()).count()
    );
    assert_eq!(archivable(&db, tenant).await, before);
    // Twice: nothing duplicated.
    let r = archive::restore(&db, &store, &format!("agent_logs/{tenant}/"))
        .await
        .unwrap();
    assert_eq!((r.logs_inserted, r.threats_inserted), (0, 0));
    assert_eq!(db.counts(tenant).await.unwrap().0, total_before);
    // The other tenant's rows came back only from its own prefix.
    assert!(archivable(&db, other).await.is_empty());
    archive::restore(&db, &store, &format!("agent_logs/{other}/"))
        .await
        .unwrap();
    assert_eq!(archivable(&db, other).await, other_before);

    // Restored rows are still older than the retention: archiving them again rewrites the
    // same objects (same names), nothing more.
    let keys_before = store.list("agent_logs/").await.unwrap();
    let report = archive::archive_old_logs(&db, &store, settings(50), NOW)
        .await
        .unwrap();
    assert_eq!(report.logs_deleted, 135);
    assert_eq!(store.list("agent_logs/").await.unwrap(), keys_before);
}

async fn crash_between_upload_and_delete_loses_and_duplicates_nothing(b: Backend) {
    let db = fresh_db(b).await.unwrap();
    let (tenant, before) = seed(&db, "acme", 90).await;
    let (store, _) = store();
    // The first part of the oldest day, uploaded and verified; then the process "dies"
    // before it deletes anything.
    let day = common::oldest_archive_day(&db, tenant, NOW - 30 * DAY).await;
    let rows = db
        .archivable_logs(tenant, day, day + DAY, 10)
        .await
        .unwrap();
    let uploaded = archive::upload_part(&db, &store, tenant, day, rows)
        .await
        .unwrap();
    assert_eq!(uploaded.records, 10);
    drop(uploaded);
    assert_eq!(archivable(&db, tenant).await, before, "nothing deleted");

    // The next run uses larger parts, so its first object of that day covers the crashed
    // object's rows and more: it must absorb the old object, not duplicate it.
    let report = archive::archive_old_logs(&db, &store, settings(25), NOW)
        .await
        .unwrap();
    assert_eq!(report.objects_superseded, 1, "{report:?}");
    assert_eq!(report.logs_deleted, 90);
    assert!(archivable(&db, tenant).await.is_empty());
    let (objects, records) = archived_records(&store, tenant).await;
    assert_eq!(records.len(), 90, "every log in exactly one object");
    assert_eq!(objects, report.objects_written);
    assert_eq!(records.values().cloned().collect::<Vec<_>>(), before);

    let r = archive::restore(&db, &store, &format!("agent_logs/{tenant}/"))
        .await
        .unwrap();
    assert_eq!(r.logs_inserted, 90);
    assert_eq!(archivable(&db, tenant).await, before);
}

async fn crash_after_superseding_before_delete_is_repaired(b: Backend) {
    let db = fresh_db(b).await.unwrap();
    let (tenant, before) = seed(&db, "acme", 30).await;
    let (store, _) = store();
    let day = common::oldest_archive_day(&db, tenant, NOW - 30 * DAY).await;
    // Crash 1: a 4-row object. Crash 2: the next attempt merged it into an 8-row object and
    // removed the old one, then died before deleting rows.
    let rows = db.archivable_logs(tenant, day, day + DAY, 4).await.unwrap();
    archive::upload_part(&db, &store, tenant, day, rows)
        .await
        .unwrap();
    let rows = db.archivable_logs(tenant, day, day + DAY, 8).await.unwrap();
    let second = archive::upload_part(&db, &store, tenant, day, rows)
        .await
        .unwrap();
    assert_eq!(second.superseded.len(), 1);
    for k in &second.superseded {
        store.delete(k).await.unwrap();
    }
    let report = archive::archive_old_logs(&db, &store, settings(1000), NOW)
        .await
        .unwrap();
    assert_eq!(report.logs_deleted, 30);
    let (_, records) = archived_records(&store, tenant).await;
    assert_eq!(records.values().cloned().collect::<Vec<_>>(), before);
}

async fn failed_upload_deletes_nothing_and_next_run_succeeds(b: Backend) {
    let db = fresh_db(b).await.unwrap();
    let (tenant, before) = seed(&db, "acme", 40).await;
    let (store, dir) = store();
    // The store's directory replaced by a file: every write fails (a real I/O error).
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::write(&dir, b"not a directory").unwrap();
    let err = archive::archive_old_logs(&db, &store, settings(100), NOW)
        .await
        .unwrap_err();
    assert!(matches!(err, ArchiveError::Store(_)), "{err}");
    assert_eq!(archivable(&db, tenant).await, before, "nothing deleted");
    // The store is back: the next run archives everything.
    std::fs::remove_file(&dir).unwrap();
    let store = FsModelStore::new(&dir).unwrap();
    let report = archive::archive_old_logs(&db, &store, settings(100), NOW)
        .await
        .unwrap();
    assert_eq!(report.logs_deleted, 40);
}

async fn threat_triaged_during_archival_is_not_lost(b: Backend) {
    let db = fresh_db(b).await.unwrap();
    let (tenant, _) = seed(&db, "acme", 12).await;
    let (store, _) = store();
    let day = common::oldest_archive_day(&db, tenant, NOW - 30 * DAY).await;
    let rows = db
        .archivable_logs(tenant, day, day + DAY, 100)
        .await
        .unwrap();
    let uploaded = archive::upload_part(&db, &store, tenant, day, rows)
        .await
        .unwrap();
    let with_threat = uploaded
        .from_db
        .iter()
        .find(|l| l.threat.is_some())
        .expect("a threat in the part")
        .clone();
    let threat_id = with_threat.threat.as_ref().unwrap().id;
    // An analyst closes the threat after the upload, before the delete.
    std::thread::sleep(std::time::Duration::from_millis(5));
    let u = ThreatUpdate {
        status: Some("acknowledged".into()),
        note: Some("late triage".into()),
        ..Default::default()
    };
    db.update_threat(tenant, threat_id, &u)
        .await
        .unwrap()
        .unwrap();
    let deletion = db.delete_archived(tenant, &uploaded.from_db).await.unwrap();
    assert_eq!(deletion.changed, vec![with_threat.id]);
    assert_eq!(deletion.deleted as usize, uploaded.from_db.len() - 1);
    // The next run re-archives that log with the triage, in the same day's object.
    let report = archive::archive_old_logs(&db, &store, settings(100), NOW)
        .await
        .unwrap();
    assert!(report.logs_deleted >= 1);
    archive::restore(&db, &store, &format!("agent_logs/{tenant}/"))
        .await
        .unwrap();
    let t = db.threat(tenant, threat_id).await.unwrap().unwrap();
    assert_eq!(t.status, "acknowledged");
    assert_eq!(t.note.as_deref(), Some("late triage"));
    let (_, records) = archived_records(&store, tenant).await;
    assert_eq!(records.len(), 12);
}

async fn corrupt_or_missing_archive_is_refused(b: Backend) {
    let db = fresh_db(b).await.unwrap();
    let (tenant, _) = seed(&db, "acme", 20).await;
    let (store, _) = store();
    archive::archive_old_logs(&db, &store, settings(100), NOW)
        .await
        .unwrap();
    let keys = store.list(&format!("agent_logs/{tenant}/")).await.unwrap();
    let key = &keys[0];
    let mut bytes = store.get(key).await.unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    store.put(key, bytes).await.unwrap();
    let (total, ..) = db.counts(tenant).await.unwrap();
    let err = archive::restore(&db, &store, key).await.unwrap_err();
    assert!(matches!(err, ArchiveError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains(key.as_str()), "{err}");
    assert_eq!(
        db.counts(tenant).await.unwrap().0,
        total,
        "nothing restored"
    );

    // A wrong header checksum (valid gzip, tampered content) names the checksum.
    let other = &keys[1];
    let good = store.get(other).await.unwrap();
    let mut gz = flate2::read::GzDecoder::new(&good[..]);
    let mut text = String::new();
    std::io::Read::read_to_string(&mut gz, &mut text).unwrap();
    let comment = String::from_utf8(gz.header().unwrap().comment().unwrap().to_vec()).unwrap();
    let tampered = text.replacen("line", "LINE", 1);
    let mut w = flate2::GzBuilder::new()
        .comment(comment.as_bytes())
        .write(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut w, tampered.as_bytes()).unwrap();
    store.put(other, w.finish().unwrap()).await.unwrap();
    let err = archive::restore(&db, &store, other).await.unwrap_err();
    assert!(err.to_string().contains("checksum mismatch"), "{err}");

    let missing = format!("agent_logs/{tenant}/1999/01/01/");
    assert!(matches!(
        archive::restore(&db, &store, &missing).await.unwrap_err(),
        ArchiveError::NotFound(_)
    ));
    assert!(matches!(
        archive::restore(&db, &store, "ml_models/global/x.cgsoc")
            .await
            .unwrap_err(),
        ArchiveError::InvalidKey(_)
    ));
}

async fn periodic_archival_runs_in_the_background(b: Backend) {
    let db = fresh_db(b).await.unwrap();
    let t = db.create_tenant("acme").await.unwrap().unwrap();
    let info = AgentInfo {
        hostname: "h".into(),
        ..Default::default()
    };
    let Registered::Created(a) = db.register_agent(t.id, &info, 10).await.unwrap() else {
        panic!()
    };
    let now = soc_server::db::now_ms();
    let logs: Vec<NewLog> = (0..7)
        .map(|i| NewLog {
            agent_id: a.id,
            timestamp: now - 100 * DAY + i,
            source: None,
            level: None,
            message: format!("old line {i}"),
        })
        .collect();
    db.insert_logs(t.id, &logs).await.unwrap();
    db.score_pending(100, &mut |_: &[PendingLog]| Vec::new())
        .await
        .unwrap();
    let dir = temp_dir().join("archive");
    let store: std::sync::Arc<dyn ModelStore> =
        std::sync::Arc::new(FsModelStore::new(&dir).unwrap());
    let task = archive::spawn_periodic(
        db.clone(),
        store.clone(),
        settings(1000),
        std::time::Duration::from_millis(50),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while db.counts(t.id).await.unwrap().0 > 0 {
        assert!(std::time::Instant::now() < deadline, "not archived in time");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    task.abort();
    assert_eq!(
        store
            .list(&format!("agent_logs/{}/", t.id))
            .await
            .unwrap()
            .len(),
        1
    );
}

both_backends!(
    archive_deletes_only_after_verified_upload_and_restores_exactly,
    crash_between_upload_and_delete_loses_and_duplicates_nothing,
    crash_after_superseding_before_delete_is_repaired,
    failed_upload_deletes_nothing_and_next_run_succeeds,
    threat_triaged_during_archival_is_not_lost,
    corrupt_or_missing_archive_is_refused,
    periodic_archival_runs_in_the_background,
);
