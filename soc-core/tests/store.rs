//! The storage backends of soc-core: one conformance suite for both model stores, the
//! filesystem store's atomicity, and `InMemoryStorage`'s exactly-once scoring.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use pollster::block_on;
use soc_core::store::{
    FsModelStore, InMemoryModelStore, InMemoryStorage, ModelStore, NewDetection, PendingLog,
    Storage, StorageError, TrainingExample,
};

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "soc-core-store-test-{}-{n}-{name}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&path);
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Every file name below `dir`, walked iteratively.
fn all_file_names(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                names.push(entry.file_name().into_string().unwrap());
            }
        }
    }
    names
}

#[path = "conformance/model_store.rs"]
mod conformance;
use conformance::{is_invalid_key, model_store_conformance};

#[test]
fn in_memory_model_store_conforms() {
    block_on(model_store_conformance(&InMemoryModelStore::new()));
}

#[test]
fn fs_model_store_conforms() {
    let dir = TempDir::new("conformance");
    let store = FsModelStore::new(&dir.0).unwrap();
    block_on(model_store_conformance(&store));
    // Files are where the keys say, and nothing else (no temporary file) is left.
    assert_eq!(
        fs::read(dir.0.join("ml_models/global/1.cgsoc")).unwrap(),
        b"uno"
    );
    let names = all_file_names(&dir.0);
    assert_eq!(names.len(), 9, "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with(".tmp")), "{names:?}");
    // A new store on the same root sees the same keys.
    let again = FsModelStore::new(&dir.0).unwrap();
    assert_eq!(block_on(again.list("")).unwrap().len(), 9);
    assert_eq!(block_on(again.get("other")).unwrap(), b"other");
}

#[test]
fn model_stores_are_usable_as_trait_objects() {
    let dir = TempDir::new("dyn");
    let stores: Vec<Arc<dyn ModelStore>> = vec![
        Arc::new(InMemoryModelStore::new()),
        Arc::new(FsModelStore::new(&dir.0).unwrap()),
    ];
    for store in stores {
        block_on(store.put("a/b", b"ab".to_vec())).unwrap();
        assert_eq!(block_on(store.get("a/b")).unwrap(), b"ab");
    }
}

#[test]
fn autotraits() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<InMemoryModelStore>();
    send_sync::<FsModelStore>();
    send_sync::<InMemoryStorage>();
    send_sync::<StorageError>();
}

// ---------------------------------------------------------------------------------------------
// FsModelStore specifics
// ---------------------------------------------------------------------------------------------

#[test]
fn fs_overwrite_is_atomic_for_concurrent_readers() {
    let dir = TempDir::new("atomic");
    let store = Arc::new(FsModelStore::new(&dir.0).unwrap());
    let a = vec![b'a'; 200_000];
    let b = vec![b'b'; 150_000];
    block_on(store.put("m/model.cgsoc", a.clone())).unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (store, done, a, b) = (store.clone(), done.clone(), a.clone(), b.clone());
        thread::spawn(move || {
            let mut reads = 0u32;
            while !done.load(Ordering::Relaxed) || reads == 0 {
                let got = block_on(store.get("m/model.cgsoc")).unwrap();
                assert!(got == a || got == b, "torn read of {} bytes", got.len());
                reads += 1;
            }
            reads
        })
    };
    for i in 0..40 {
        let bytes = if i % 2 == 0 { b.clone() } else { a.clone() };
        block_on(store.put("m/model.cgsoc", bytes)).unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let reads = reader.join().unwrap();
    assert!(reads > 0);
    assert_eq!(block_on(store.get("m/model.cgsoc")).unwrap(), a);
    // No temporary file left behind.
    assert_eq!(all_file_names(&dir.0), ["model.cgsoc"]);
}

#[test]
fn fs_concurrent_puts_of_one_key_leave_one_whole_value() {
    let dir = TempDir::new("racing-puts");
    let store = Arc::new(FsModelStore::new(&dir.0).unwrap());
    let writers: Vec<_> = (0..4u8)
        .map(|w| {
            let store = store.clone();
            thread::spawn(move || {
                for _ in 0..10 {
                    block_on(store.put("x/y", vec![w; 50_000])).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let got = block_on(store.get("x/y")).unwrap();
    assert_eq!(got.len(), 50_000);
    assert!(got.iter().all(|&b| b == got[0]));
    assert_eq!(all_file_names(&dir.0), ["y"]);
}

#[test]
fn fs_list_skips_leftover_temporary_files_and_foreign_names() {
    let dir = TempDir::new("leftovers");
    let store = FsModelStore::new(&dir.0).unwrap();
    block_on(store.put("m/1.cgsoc", b"1".to_vec())).unwrap();
    // What a crash during `put` or a human could leave behind.
    fs::write(dir.0.join("m/.tmp-cgsoc-99-0"), b"half").unwrap();
    fs::write(dir.0.join(".tmp-cgsoc-99-1"), b"half").unwrap();
    fs::write(dir.0.join("m/with space"), b"?").unwrap();
    fs::create_dir_all(dir.0.join("m/.tmp-cgsoc-dir")).unwrap();
    fs::write(dir.0.join("m/.tmp-cgsoc-dir/2.cgsoc"), b"?").unwrap();
    fs::create_dir_all(dir.0.join("empty/dirs/only")).unwrap();
    assert_eq!(block_on(store.list("")).unwrap(), ["m/1.cgsoc"]);
    assert_eq!(block_on(store.list("m/")).unwrap(), ["m/1.cgsoc"]);
    assert_eq!(block_on(store.list("empty")).unwrap(), Vec::<String>::new());
    // Temporary names cannot be read or deleted as keys.
    assert!(is_invalid_key(block_on(store.get("m/.tmp-cgsoc-99-0"))));
    assert!(is_invalid_key(block_on(store.delete("m/.tmp-cgsoc-99-0"))));
}

#[test]
fn fs_key_and_directory_of_keys_conflict() {
    let dir = TempDir::new("conflict");
    let store = FsModelStore::new(&dir.0).unwrap();
    block_on(store.put("a/b", b"ab".to_vec())).unwrap();
    assert!(matches!(
        block_on(store.put("a", b"a".to_vec())),
        Err(StorageError::Conflict(_))
    ));
    assert_eq!(
        block_on(store.get("a")),
        Err(StorageError::NotFound("a".into()))
    );
    block_on(store.delete("a")).unwrap();
    assert_eq!(block_on(store.get("a/b")).unwrap(), b"ab");

    block_on(store.put("c", b"c".to_vec())).unwrap();
    assert!(matches!(
        block_on(store.put("c/d", b"cd".to_vec())),
        Err(StorageError::Conflict(_))
    ));
    assert_eq!(
        block_on(store.get("c/d")),
        Err(StorageError::NotFound("c/d".into()))
    );
    assert_eq!(block_on(store.list("")).unwrap(), ["a/b", "c"]);
    assert_eq!(block_on(store.list("c/")).unwrap(), Vec::<String>::new());
    assert!(!all_file_names(&dir.0).iter().any(|n| n.starts_with(".tmp")));
}

#[test]
fn fs_root_must_be_a_directory() {
    let dir = TempDir::new("root-file");
    fs::create_dir_all(&dir.0).unwrap();
    let file = dir.0.join("not-a-dir");
    fs::write(&file, b"").unwrap();
    assert!(matches!(
        FsModelStore::new(&file),
        Err(StorageError::Unavailable(_))
    ));
    // A missing root is created, with its parents.
    let nested = dir.0.join("x/y/z");
    let store = FsModelStore::new(&nested).unwrap();
    assert_eq!(store.root(), nested);
    assert!(nested.is_dir());
}

// ---------------------------------------------------------------------------------------------
// InMemoryStorage
// ---------------------------------------------------------------------------------------------

fn detection_for(log: &PendingLog) -> NewDetection {
    NewDetection {
        tenant_id: log.tenant_id,
        log_id: log.log_id,
        agent_id: log.agent_id,
        risk: 5.0,
        severity: "medium".into(),
        anomaly: 0.5,
        malicious_probability: 0.5,
        model_version: "test".into(),
        explanation: serde_json::json!({ "len": log.message.len() }),
    }
}

fn storage_with_logs(n: usize) -> InMemoryStorage {
    let storage = InMemoryStorage::new();
    for i in 0..n {
        let id = storage.insert_log(
            (i % 3) as i64,
            100 + (i % 5) as i64,
            format!("log line {i}"),
        );
        assert_eq!(id, i as i64 + 1);
    }
    storage
}

#[test]
fn score_pending_claims_oldest_first_and_records_detections() {
    let storage = storage_with_logs(5);
    assert_eq!(block_on(storage.pending_count()), Ok(5));

    let mut seen = Vec::new();
    let n = block_on(storage.score_pending(3, &mut |logs: &[PendingLog]| {
        seen.extend(logs.iter().map(|l| l.log_id));
        // A detection for some logs only.
        logs.iter()
            .filter(|l| l.log_id != 2)
            .map(detection_for)
            .collect()
    }))
    .unwrap();
    assert_eq!(n, 3);
    assert_eq!(seen, [1, 2, 3]);
    assert_eq!(storage.scored_log_ids(), [1, 2, 3]);
    let detections = storage.detections();
    assert_eq!(
        detections.iter().map(|d| d.log_id).collect::<Vec<_>>(),
        [1, 3]
    );
    assert_eq!(detections[1].tenant_id, 2);
    assert_eq!(detections[1].agent_id, 102);
    assert_eq!(block_on(storage.pending_count()), Ok(2));
    assert_eq!(storage.pending_len(), 2);

    // The rest, then nothing: the scorer is not called for an empty batch.
    let calls = AtomicU64::new(0);
    let mut scorer = |logs: &[PendingLog]| {
        calls.fetch_add(1, Ordering::Relaxed);
        logs.iter().map(detection_for).collect()
    };
    assert_eq!(block_on(storage.score_pending(10, &mut scorer)), Ok(2));
    assert_eq!(block_on(storage.score_pending(10, &mut scorer)), Ok(0));
    assert_eq!(block_on(storage.score_pending(0, &mut scorer)), Ok(0));
    assert_eq!(calls.load(Ordering::Relaxed), 1);
    assert_eq!(storage.scored_log_ids(), [1, 2, 3, 4, 5]);
    assert_eq!(storage.detections().len(), 4);
    assert_eq!(block_on(storage.pending_count()), Ok(0));

    // New logs are picked up later.
    let id = storage.insert_log(9, 1, "late");
    assert_eq!(id, 6);
    assert_eq!(block_on(storage.score_pending(10, &mut scorer)), Ok(1));
}

#[test]
fn exactly_once_scoring_across_two_threads() {
    const N: usize = 1000;
    let storage = Arc::new(storage_with_logs(N));
    let barrier = Arc::new(Barrier::new(2));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (storage, barrier) = (storage.clone(), barrier.clone());
            thread::spawn(move || {
                let mut seen = Vec::new();
                barrier.wait();
                loop {
                    let n = block_on(storage.score_pending(7, &mut |logs: &[PendingLog]| {
                        seen.extend(logs.iter().map(|l| l.log_id));
                        // Give the other thread a chance to claim while this batch is out.
                        thread::yield_now();
                        logs.iter().map(detection_for).collect()
                    }))
                    .unwrap();
                    if n == 0 {
                        break;
                    }
                }
                seen
            })
        })
        .collect();
    let seen: Vec<Vec<i64>> = workers.into_iter().map(|w| w.join().unwrap()).collect();

    // Each log was handed to a scorer exactly once, and each thread saw increasing ids.
    let all: Vec<i64> = seen.iter().flatten().copied().collect();
    assert_eq!(all.len(), N);
    let unique: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(unique, (1..=N as i64).collect());
    for s in &seen {
        assert!(s.windows(2).all(|w| w[0] < w[1]));
    }
    // ... marked scored exactly once, with exactly one detection.
    let mut scored = storage.scored_log_ids();
    assert_eq!(scored.len(), N);
    scored.sort_unstable();
    assert_eq!(scored, (1..=N as i64).collect::<Vec<_>>());
    let mut detected: Vec<i64> = storage.detections().iter().map(|d| d.log_id).collect();
    detected.sort_unstable();
    assert_eq!(detected, scored);
    assert_eq!(block_on(storage.pending_count()), Ok(0));
    eprintln!(
        "batches split between threads: {} / {} logs",
        seen[0].len(),
        seen[1].len()
    );
}

#[test]
fn exactly_once_scoring_with_injected_commit_failures() {
    const N: usize = 500;
    let storage = Arc::new(storage_with_logs(N));
    let failures = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..2u64)
        .map(|w| {
            let (storage, failures) = (storage.clone(), failures.clone());
            thread::spawn(move || {
                for round in 0u64.. {
                    if (round + w) % 4 == 0 {
                        storage.fail_next_commit();
                    }
                    match block_on(storage.score_pending(11, &mut |logs: &[PendingLog]| {
                        thread::yield_now();
                        logs.iter().map(detection_for).collect()
                    })) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(StorageError::Unavailable(_)) => {
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => panic!("unexpected error {e}"),
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    assert!(failures.load(Ordering::Relaxed) > 0);
    let mut scored = storage.scored_log_ids();
    assert_eq!(scored.len(), N);
    scored.sort_unstable();
    assert_eq!(scored, (1..=N as i64).collect::<Vec<_>>());
    let detected: BTreeSet<i64> = storage.detections().iter().map(|d| d.log_id).collect();
    assert_eq!(detected.len(), N);
    assert_eq!(storage.detections().len(), N);
    assert_eq!(block_on(storage.pending_count()), Ok(0));
}

#[test]
fn failed_commit_leaves_the_batch_pending() {
    let storage = storage_with_logs(10);
    storage.fail_next_commit();
    let mut scorer = |logs: &[PendingLog]| logs.iter().map(detection_for).collect();
    let err = block_on(storage.score_pending(4, &mut scorer)).unwrap_err();
    assert!(matches!(err, StorageError::Unavailable(_)), "{err}");
    assert!(storage.detections().is_empty());
    assert!(storage.scored_log_ids().is_empty());
    assert_eq!(block_on(storage.pending_count()), Ok(10));

    // The hook fires once; the same logs are claimed again, oldest first.
    let mut seen = Vec::new();
    let n = block_on(storage.score_pending(4, &mut |logs: &[PendingLog]| {
        seen.extend(logs.iter().map(|l| l.log_id));
        logs.iter().map(detection_for).collect()
    }))
    .unwrap();
    assert_eq!(n, 4);
    assert_eq!(seen, [1, 2, 3, 4]);
    assert_eq!(storage.scored_log_ids(), [1, 2, 3, 4]);
    assert_eq!(storage.detections().len(), 4);
    assert_eq!(block_on(storage.pending_count()), Ok(6));
}

#[test]
fn panicking_scorer_is_an_error_and_leaves_the_batch_pending() {
    let storage = storage_with_logs(6);
    let result =
        block_on(storage.score_pending(5, &mut |_logs: &[PendingLog]| panic!("scorer exploded")));
    let err = result.unwrap_err();
    match &err {
        StorageError::Unavailable(msg) => assert!(msg.contains("scorer exploded"), "{msg}"),
        other => panic!("unexpected error {other}"),
    }
    assert!(storage.detections().is_empty());
    assert!(storage.scored_log_ids().is_empty());
    assert_eq!(block_on(storage.pending_count()), Ok(6));

    // Still usable: the next call scores the same logs.
    let mut seen = Vec::new();
    let n = block_on(storage.score_pending(5, &mut |logs: &[PendingLog]| {
        seen.extend(logs.iter().map(|l| l.log_id));
        Vec::new()
    }))
    .unwrap();
    assert_eq!(n, 5);
    assert_eq!(seen, [1, 2, 3, 4, 5]);
    assert_eq!(block_on(storage.pending_count()), Ok(1));
}

#[test]
fn detection_for_a_log_outside_the_batch_is_rejected() {
    let storage = storage_with_logs(4);
    // Log 4 is not in a batch of 2; log 1 with the wrong tenant is not log 1.
    for bad in [(0, 4), (1, 1)] {
        let err = block_on(storage.score_pending(2, &mut |logs: &[PendingLog]| {
            let mut d = detection_for(&logs[0]);
            (d.tenant_id, d.log_id) = bad;
            vec![d]
        }))
        .unwrap_err();
        assert!(matches!(err, StorageError::Conflict(_)), "{err}");
        assert!(storage.detections().is_empty());
        assert_eq!(block_on(storage.pending_count()), Ok(4));
    }
}

#[test]
fn training_examples_newest_first_by_tenant() {
    let storage = InMemoryStorage::new();
    for i in 0..6 {
        storage.add_training_example(TrainingExample {
            tenant_id: i % 2,
            message: format!("example {i}"),
            malicious: i % 3 == 0,
        });
    }
    let messages = |v: Vec<TrainingExample>| v.into_iter().map(|e| e.message).collect::<Vec<_>>();
    assert_eq!(
        messages(block_on(storage.training_examples(None, 10)).unwrap()),
        [
            "example 5",
            "example 4",
            "example 3",
            "example 2",
            "example 1",
            "example 0"
        ]
    );
    assert_eq!(
        messages(block_on(storage.training_examples(Some(1), 2)).unwrap()),
        ["example 5", "example 3"]
    );
    assert_eq!(
        messages(block_on(storage.training_examples(Some(0), 10)).unwrap()),
        ["example 4", "example 2", "example 0"]
    );
    assert!(
        block_on(storage.training_examples(Some(7), 10))
            .unwrap()
            .is_empty()
    );
    assert!(
        block_on(storage.training_examples(None, 0))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn storage_is_usable_as_a_trait_object() {
    let storage: Arc<dyn Storage> = Arc::new(storage_with_logs(3));
    let mut scorer = |logs: &[PendingLog]| logs.iter().map(detection_for).collect();
    assert_eq!(block_on(storage.score_pending(10, &mut scorer)), Ok(3));
    assert_eq!(block_on(storage.pending_count()), Ok(0));
}
