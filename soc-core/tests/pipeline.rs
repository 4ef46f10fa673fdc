//! The detection pipeline over the in-memory storage: every log scored exactly once, threats
//! recorded with their explanation, nothing lost when a commit fails.

use soc_core::pipeline::{drain, run_once};
use soc_core::store::{InMemoryStorage, Storage};
use soc_core::{Detector, DetectorParams};

fn detector() -> Detector {
    let mut lines = Vec::new();
    let mut labels = Vec::new();
    for i in 0..300 {
        lines.push(format!(
            "GET /shop/item.html?id={} HTTP/1.1 200 {}",
            i % 17,
            500 + i
        ));
        labels.push(false);
        lines.push(format!(
            "sshd: Accepted publickey for deploy from 10.1.0.{} port 22",
            i % 50
        ));
        labels.push(false);
    }
    for i in 0..40 {
        lines.push(format!(
            "GET /shop/item.html?id={i}' UNION SELECT password FROM users-- HTTP/1.1"
        ));
        labels.push(true);
    }
    let mut params = DetectorParams {
        random_state: Some(5),
        n_jobs: Some(2),
        ..DetectorParams::default()
    };
    params.forest.n_estimators = 20;
    params.fit(&lines, Some(&labels)).unwrap()
}

#[test]
fn scores_every_log_once_and_records_threats() {
    let detector = detector();
    let storage = InMemoryStorage::default();
    let mut attacks = Vec::new();
    for i in 0..500u32 {
        let message = if i % 50 == 7 {
            format!("GET /shop/item.html?id={i}' UNION SELECT card FROM users-- HTTP/1.1")
        } else {
            format!(
                "GET /shop/item.html?id={} HTTP/1.1 200 {}",
                i % 17,
                500 + i % 300
            )
        };
        let id = storage.insert_log(1 + i64::from(i % 2), 9, message.clone());
        if i % 50 == 7 {
            attacks.push(id);
        }
    }
    let first = pollster::block_on(run_once(&storage, &detector, "v1", 64)).unwrap();
    assert_eq!(first.scored, 64);
    let rest = pollster::block_on(drain(&storage, &detector, "v1", 64)).unwrap();
    assert_eq!(first.scored + rest.scored, 500);
    assert_eq!(pollster::block_on(storage.pending_count()).unwrap(), 0);

    let detections = storage.detections();
    let mut flagged: Vec<i64> = detections.iter().map(|d| d.log_id).collect();
    flagged.sort_unstable();
    // Every attack, and no more false alarms than the calibration's budget (the rarest 0.1% of
    // normal traffic reaches the threshold on anomaly alone; this corpus is tiny, so allow 1%).
    assert!(
        attacks.iter().all(|a| flagged.contains(a)),
        "{flagged:?} misses some of {attacks:?}"
    );
    assert!(
        flagged.len() - attacks.len() <= 5,
        "false alarms: {flagged:?}"
    );
    assert_eq!(first.threats + rest.threats, flagged.len());
    for d in &detections {
        assert!(d.risk >= 7.0 && d.model_version == "v1");
        assert!(
            d.explanation["top_terms"]
                .as_array()
                .is_some_and(|t| !t.is_empty())
        );
    }
    let mut scored = storage.scored_log_ids();
    scored.sort_unstable();
    scored.dedup();
    assert_eq!(scored.len(), 500);
}

#[test]
fn a_failed_commit_loses_nothing() {
    let detector = detector();
    let storage = InMemoryStorage::default();
    for i in 0..10 {
        storage.insert_log(
            1,
            1,
            format!("GET /shop/item.html?id={i}' OR '1'='1 HTTP/1.1"),
        );
    }
    storage.fail_next_commit();
    assert!(pollster::block_on(run_once(&storage, &detector, "v1", 100)).is_err());
    assert_eq!(pollster::block_on(storage.pending_count()).unwrap(), 10);
    assert!(storage.detections().is_empty());
    let report = pollster::block_on(run_once(&storage, &detector, "v1", 100)).unwrap();
    assert_eq!(report.scored, 10);
    assert_eq!(storage.detections().len(), report.threats);
    assert_eq!(pollster::block_on(storage.pending_count()).unwrap(), 0);
}
