//! Storage conformance suite, run on SQLite and (with `SOC_TEST_PG_URL`) on PostgreSQL:
//! exactly-once scoring with concurrent scorers, failures leave logs pending, labels.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use common::{Backend, fresh_db};
use soc_core::store::{NewDetection, PendingLog, Storage};
use soc_server::Db;
use soc_server::db::{AgentInfo, Ingested, NewLog, Registered, ThreatUpdate};

/// A tenant with one agent and `n` logs; returns (tenant, agent).
async fn seed(db: &Db, name: &str, n: usize) -> (i64, i64) {
    let t = db.create_tenant(name).await.unwrap().unwrap();
    let info = AgentInfo {
        hostname: "host-1".into(),
        ..Default::default()
    };
    let Registered::Created(a) = db.register_agent(t.id, &info, 10).await.unwrap() else {
        panic!("not created")
    };
    let logs: Vec<NewLog> = (0..n)
        .map(|i| NewLog {
            agent_id: a.id,
            timestamp: i as i64,
            source: None,
            level: None,
            message: format!("line {i} of {name}"),
        })
        .collect();
    for chunk in logs.chunks(5000) {
        assert!(matches!(
            db.insert_logs(t.id, chunk).await.unwrap(),
            Ingested::Committed { .. }
        ));
    }
    (t.id, a.id)
}

fn detection(l: &PendingLog) -> NewDetection {
    NewDetection {
        tenant_id: l.tenant_id,
        log_id: l.log_id,
        agent_id: l.agent_id,
        risk: 8.5,
        severity: "high".into(),
        anomaly: 0.9,
        malicious_probability: 0.8,
        model_version: "test".into(),
        explanation: serde_json::json!({"terms": ["x"]}),
    }
}

async fn empty_queue_scores_nothing(b: Backend) {
    let db = fresh_db(b).await.unwrap();
    let mut calls = 0;
    let n = db
        .score_pending(10, &mut |_: &[PendingLog]| {
            calls += 1;
            vec![]
        })
        .await
        .unwrap();
    assert_eq!((n, calls), (0, 0));
    assert_eq!(db.pending_count().await.unwrap(), 0);
}

async fn exactly_once_with_two_concurrent_scorers(b: Backend) {
    let db = fresh_db(b).await.unwrap();
    let total = 3000;
    let (t, _) = seed(&db, "a", total).await;
    assert_eq!(db.pending_count().await.unwrap(), total as u64);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let db = db.clone();
        let seen = seen.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let n = db
                    .score_pending(97, &mut |logs: &[PendingLog]| {
                        seen.lock().unwrap().extend(logs.iter().map(|l| l.log_id));
                        // Take a little time, so the two scorers overlap.
                        std::thread::sleep(std::time::Duration::from_millis(2));
                        logs.iter()
                            .filter(|l| l.log_id % 7 == 0)
                            .map(detection)
                            .collect()
                    })
                    .await
                    .unwrap();
                if n == 0 {
                    break;
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let seen = seen.lock().unwrap().clone();
    let unique: BTreeSet<i64> = seen.iter().copied().collect();
    assert_eq!(seen.len(), total, "a log was scored twice or missed");
    assert_eq!(unique.len(), total);
    assert_eq!(db.pending_count().await.unwrap(), 0);
    let (logs, scored, threats) = db.counts(t).await.unwrap();
    assert_eq!((logs, scored), (total as i64, total as i64));
    assert_eq!(
        threats,
        unique.iter().filter(|id| *id % 7 == 0).count() as i64
    );
}

async fn failed_commit_leaves_logs_pending(b: Backend) {
    let db = fresh_db(b).await.unwrap();
    let (t, a) = seed(&db, "a", 50).await;
    // A detection for a log that does not exist: the commit fails, nothing is written.
    let err = db
        .score_pending(20, &mut |logs: &[PendingLog]| {
            let mut d: Vec<NewDetection> = logs.iter().map(detection).collect();
            d.push(NewDetection {
                log_id: 9_999_999,
                agent_id: a,
                ..detection(&logs[0])
            });
            d
        })
        .await;
    assert!(err.is_err());
    assert_eq!(db.pending_count().await.unwrap(), 50);
    assert_eq!(db.counts(t).await.unwrap(), (50, 0, 0));
    // The same logs are claimed again and scored.
    let n = db
        .score_pending(20, &mut |logs: &[PendingLog]| {
            logs.iter().map(detection).collect()
        })
        .await
        .unwrap();
    assert_eq!(n, 20);
    assert_eq!(db.counts(t).await.unwrap(), (50, 20, 20));
}

async fn panicking_scorer_leaves_logs_pending(b: Backend) {
    let db = fresh_db(b).await.unwrap();
    let (t, _) = seed(&db, "a", 30).await;
    let db2 = db.clone();
    let r = tokio::spawn(async move {
        db2.score_pending(10, &mut |_: &[PendingLog]| -> Vec<NewDetection> {
            panic!("scorer bug")
        })
        .await
    })
    .await;
    assert!(r.is_err(), "the panic propagates");
    assert_eq!(db.pending_count().await.unwrap(), 30);
    // The aborted transaction is rolled back when its connection is next used; until then
    // SKIP LOCKED passes over its rows. Every log is scored exactly once in the end.
    let mut total = 0;
    let t0 = std::time::Instant::now();
    while total < 30 {
        total += db
            .score_pending(100, &mut |_: &[PendingLog]| vec![])
            .await
            .unwrap();
        assert!(t0.elapsed() < std::time::Duration::from_secs(10), "{total}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(total, 30);
    assert_eq!(db.counts(t).await.unwrap(), (30, 30, 0));
}

async fn verdicts_become_training_examples(b: Backend) {
    let db = fresh_db(b).await.unwrap();
    let (ta, _) = seed(&db, "a", 3).await;
    let (tb, _) = seed(&db, "b", 3).await;
    db.score_pending(100, &mut |logs: &[PendingLog]| {
        logs.iter().map(detection).collect()
    })
    .await
    .unwrap();
    let threat = |t| {
        let db = db.clone();
        async move {
            let f = soc_server::db::ThreatFilter {
                limit: 10,
                ..Default::default()
            };
            db.list_threats(t, &f).await.unwrap()
        }
    };
    let a = threat(ta).await;
    let bt = threat(tb).await;
    assert_eq!((a.len(), bt.len()), (3, 3));
    let tp = ThreatUpdate {
        verdict: Some("true_positive".into()),
        status: Some("resolved".into()),
        ..Default::default()
    };
    let fp = ThreatUpdate {
        verdict: Some("false_positive".into()),
        ..Default::default()
    };
    db.update_threat(ta, a[0].id, &tp).await.unwrap().unwrap();
    db.update_threat(ta, a[1].id, &fp).await.unwrap().unwrap();
    // Changing the verdict replaces the label.
    db.update_threat(ta, a[1].id, &tp).await.unwrap().unwrap();
    // Tenant b cannot change tenant a's threat.
    assert!(db.update_threat(tb, a[2].id, &tp).await.unwrap().is_none());
    db.update_threat(tb, bt[0].id, &fp).await.unwrap().unwrap();
    let ex_a = db.training_examples(Some(ta), 100).await.unwrap();
    assert_eq!(ex_a.len(), 2);
    assert!(
        ex_a.iter()
            .all(|e| e.malicious && e.tenant_id == ta && e.message.ends_with("of a"))
    );
    let all = db.training_examples(None, 100).await.unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(db.training_examples(None, 1).await.unwrap().len(), 1);
    let t = db.threat(ta, a[0].id).await.unwrap().unwrap();
    assert_eq!(
        (t.status.as_str(), t.verdict.as_deref()),
        ("resolved", Some("true_positive"))
    );
}

async fn agent_limit_and_idempotent_registration(b: Backend) {
    let db = fresh_db(b).await.unwrap();
    let t = db.create_tenant("a").await.unwrap().unwrap();
    assert!(
        db.create_tenant("a").await.unwrap().is_none(),
        "names are unique"
    );
    let info = |h: &str| AgentInfo {
        hostname: h.into(),
        os: Some("linux".into()),
        ..Default::default()
    };
    let Registered::Created(a1) = db.register_agent(t.id, &info("h1"), 2).await.unwrap() else {
        panic!()
    };
    let Registered::Existing(again) = db.register_agent(t.id, &info("h1"), 2).await.unwrap() else {
        panic!()
    };
    assert_eq!(a1.id, again.id);
    assert!(matches!(
        db.register_agent(t.id, &info("h2"), 2).await.unwrap(),
        Registered::Created(_)
    ));
    assert!(matches!(
        db.register_agent(t.id, &info("h3"), 2).await.unwrap(),
        Registered::LimitReached(2)
    ));
    // A tenant override wins over the default.
    db.set_tenant_max_agents(t.id, Some(3)).await.unwrap();
    assert!(matches!(
        db.register_agent(t.id, &info("h3"), 2).await.unwrap(),
        Registered::Created(_)
    ));
}

async fn unknown_agent_writes_nothing(b: Backend) {
    let db = fresh_db(b).await.unwrap();
    let (ta, a) = seed(&db, "a", 0).await;
    let (tb, b_agent) = seed(&db, "b", 0).await;
    let log = |agent_id| NewLog {
        agent_id,
        timestamp: 0,
        source: None,
        level: None,
        message: "x".into(),
    };
    // Tenant a shipping a log for tenant b's agent: rejected, and the valid log is not written.
    let r = db.insert_logs(ta, &[log(a), log(b_agent)]).await.unwrap();
    assert!(
        matches!(r, Ingested::UnknownAgents(ref ids) if ids == &vec![b_agent]),
        "{r:?}"
    );
    assert_eq!(db.counts(ta).await.unwrap().0, 0);
    assert_eq!(db.counts(tb).await.unwrap().0, 0);
}

both_backends!(
    empty_queue_scores_nothing,
    exactly_once_with_two_concurrent_scorers,
    failed_commit_leaves_logs_pending,
    panicking_scorer_leaves_logs_pending,
    verdicts_become_training_examples,
    agent_limit_and_idempotent_registration,
    unknown_agent_writes_nothing,
);
