//! Sanitized training export (also into a real S3 bucket under `scripts/with-moto.sh`): refuses
//! without a key, stable pseudonyms, different keys give different pseudonyms, nothing
//! identifying survives on realistic lines (the sample corpus and the public data sets in
//! ../shared/data), and a model trained on the export still flags the sanitized attacks.

mod common;

use std::collections::BTreeSet;
use std::io::Read;
use std::path::PathBuf;

use common::{Backend, fresh_db, temp_dir};
use regex::Regex;
use soc_core::store::{FsModelStore, ModelStore};
use soc_core::{DetectorParams, metrics};
use soc_server::Db;
use soc_server::db::{AgentInfo, Registered};
use soc_server::export::{self, ExportError, ExportedExample};
use soc_server::sample;
use soc_server::sanitize::Pseudonymizer;

const KEY: &str = "an-export-key-of-32-bytes-000000";

/// A tenant with the sample agents and `n` labeled sample lines.
async fn seed(db: &Db, name: &str, n: usize, seed: u64) -> i64 {
    let t = db.create_tenant(name).await.unwrap().unwrap();
    for a in &sample::AGENTS {
        let info = AgentInfo {
            hostname: a.hostname.into(),
            os: Some(a.os.into()),
            ip_address: Some(a.ip_address.into()),
            version: None,
        };
        assert!(matches!(
            db.register_agent(t.id, &info, 100).await.unwrap(),
            Registered::Created(_)
        ));
    }
    for l in sample::generate(n, 0.15, seed) {
        db.insert_label(t.id, &l.message, l.malicious)
            .await
            .unwrap();
    }
    t.id
}

async fn read_export(store: &dyn ModelStore, key: &str) -> Vec<ExportedExample> {
    let bytes = store.get(key).await.unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_string(&mut text)
        .unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn export_is_keyed_stable_and_refuses_without_a_key(b: Backend) {
    let db = fresh_db(b).await.unwrap();
    seed(&db, "acme", 300, 5).await;
    let store = FsModelStore::new(temp_dir().join("models")).unwrap();

    for (secret, want) in [
        (None, "not set"),
        (Some(""), "not set"),
        (Some("short"), "too short"),
    ] {
        let err = export::export_training_data(&db, &store, secret, "acme", 1)
            .await
            .unwrap_err();
        assert!(err.to_string().contains(want), "{err}");
    }
    assert!(matches!(
        export::export_training_data(&db, &store, Some(KEY), "nobody", 1)
            .await
            .unwrap_err(),
        ExportError::UnknownTenant(_)
    ));
    assert!(
        store.list("training_data/").await.unwrap().is_empty(),
        "nothing written"
    );

    let a = export::export_training_data(&db, &store, Some(KEY), "acme", 1000)
        .await
        .unwrap();
    let b2 = export::export_training_data(&db, &store, Some(KEY), "acme", 2000)
        .await
        .unwrap();
    let other_key = "another-export-key-of-32-bytes-1";
    let c = export::export_training_data(&db, &store, Some(other_key), "acme", 3000)
        .await
        .unwrap();
    assert!(
        a.key.starts_with("training_data/") && a.key.ends_with(".ndjson.gz"),
        "{}",
        a.key
    );
    assert_eq!(a.examples, 300);
    assert_eq!(a.sha256, b2.sha256, "same key and labels: identical export");
    let (ea, eb, ec) = (
        read_export(&store, &a.key).await,
        read_export(&store, &b2.key).await,
        read_export(&store, &c.key).await,
    );
    assert_eq!(ea, eb);
    assert_eq!(ea.iter().filter(|e| e.malicious).count(), a.malicious);
    assert!(ea.iter().all(|e| e.source == "import"));
    // Another key: the lines that held identifiers differ, the others are identical.
    let differing = ea
        .iter()
        .zip(&ec)
        .filter(|(x, y)| x.message != y.message)
        .count();
    let with_pseudonyms = ea
        .iter()
        .filter(|e| {
            e.message.contains("u_") || e.message.contains("h-") || has_reserved_ip(&e.message)
        })
        .count();
    assert!(with_pseudonyms > 200, "{with_pseudonyms}");
    assert_eq!(differing, with_pseudonyms);
}

fn has_reserved_ip(line: &str) -> bool {
    ipv4_tokens(line).iter().any(|ip| ip.octets()[0] >= 240)
}

/// IPv4 addresses of a line found independently of the sanitizer: maximal runs of digits and
/// dots that are exactly four octets.
fn ipv4_tokens(line: &str) -> Vec<std::net::Ipv4Addr> {
    line.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|run| {
            let run = run.trim_matches('.');
            let parts: Vec<&str> = run.split('.').collect();
            (parts.len() == 4 && parts.iter().all(|p| !p.is_empty() && p.len() <= 3))
                .then(|| {
                    let o: Vec<u8> = parts.iter().filter_map(|p| p.parse().ok()).collect();
                    (o.len() == 4).then(|| std::net::Ipv4Addr::new(o[0], o[1], o[2], o[3]))
                })
                .flatten()
        })
        .collect()
}

fn data_dir() -> PathBuf {
    std::env::var_os("SOC_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"))
}

/// Lines of a data set file, if it is there.
fn data_lines(rel: &str, limit: usize) -> Vec<String> {
    let path = data_dir().join(rel);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (set SOC_DATA_DIR)", path.display()));
    text.lines().take(limit).map(str::to_owned).collect()
}

#[test]
fn nothing_identifying_survives_on_realistic_lines() {
    let hosts: Vec<String> = sample::AGENTS
        .iter()
        .map(|a| a.hostname.to_owned())
        .collect();
    let p = Pseudonymizer::new(KEY.as_bytes(), &hosts);
    let email =
        Regex::new(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}").unwrap();
    let mut lines: Vec<String> = sample::generate(5000, 0.3, 11)
        .into_iter()
        .map(|l| l.message)
        .collect();
    let n_sample = lines.len();
    lines.extend(data_lines("fwaf_badqueries/badqueries.txt", 48_126));
    lines.extend(data_lines("httpparams/payload_full.csv", 40_000));
    lines.extend(data_lines("loghub_bgl_2k/BGL_2k.log", 2000));
    // User names of the sample corpus in their contexts, host names and domains.
    let users_alt = "alice|bob|carol|deploy|backup|jenkins|svc_web|dave|root|admin|test|oracle|ubnt|pi|guest|postgres";
    let user_context = Regex::new(&
        r"(?:(?:for (?:invalid user )?|Invalid user |USER=|sudo: |of user |Account Name: |User=CORP\\|/home/)(?:USERS)\b)|\((?:USERS)\) CMD"
            .replace("USERS", users_alt),
    )
    .unwrap();
    let hostname = Regex::new(
        r"(?i)\b(?:web-01|db-01|dc-01|laptop-42)\b|example\.com|minexmr\.com|sqlmap\.org",
    )
    .unwrap();
    let (mut ips, mut emails, mut users, mut host_hits) = (0, 0, 0, 0);
    let mut bgl_changed = 0;
    for (i, line) in lines.iter().enumerate() {
        let out = p.sanitize(line);
        let before: BTreeSet<_> = ipv4_tokens(line)
            .into_iter()
            .filter(|ip| ip.octets()[0] < 240)
            .collect();
        ips += before.len();
        for ip in ipv4_tokens(&out) {
            assert!(!before.contains(&ip), "{ip} survived: {line} -> {out}");
            assert!(ip.octets()[0] >= 240, "not a pseudonym: {ip} in {out}");
        }
        emails += email.find_iter(line).count();
        for m in email.find_iter(&out) {
            assert!(m.as_str().ends_with("@example.invalid"), "{line} -> {out}");
        }
        users += user_context.find_iter(line).count();
        assert!(
            !user_context.is_match(&out),
            "user survived: {line} -> {out}"
        );
        if i < n_sample {
            host_hits += hostname.find_iter(line).count();
            assert!(!hostname.is_match(&out), "host survived: {line} -> {out}");
        }
        if i >= n_sample && line.contains(" RAS ") {
            // BGL: node names and timestamps (`R02-M1-N0-C:J12-U11`, `15.42.50.675872`) stay;
            // what changes are IP addresses and the user names of home directories.
            let head = |l: &str| l.split_whitespace().take(6).collect::<Vec<_>>().join(" ");
            assert_eq!(head(&out), head(line));
            if out != *line {
                bgl_changed += 1;
                assert!(
                    out.contains("/home/u_") || has_reserved_ip(&out),
                    "{line} -> {out}"
                );
            }
        }
    }
    eprintln!(
        "checked {} lines: {ips} IPv4 addresses, {emails} e-mail addresses, {users} user names in context, {host_hits} host names; {bgl_changed} BGL lines changed",
        lines.len()
    );
    assert!(ips > 3000 && emails > 1500 && users > 1000 && host_hits > 500);
    assert!(bgl_changed > 0, "{bgl_changed}");
}

async fn model_trained_on_export_flags_sanitized_attacks(b: Backend) {
    let db = fresh_db(b).await.unwrap();
    seed(&db, "acme", 4000, 21).await;
    let store = FsModelStore::new(temp_dir().join("models")).unwrap();
    let report = export::export_training_data(&db, &store, Some(KEY), "acme", 1)
        .await
        .unwrap();
    let train = read_export(&store, &report.key).await;
    let texts: Vec<&str> = train.iter().map(|e| e.message.as_str()).collect();
    let labels: Vec<bool> = train.iter().map(|e| e.malicious).collect();
    let params = DetectorParams {
        random_state: Some(7),
        ..DetectorParams::default()
    };
    let detector = params.fit(&texts, Some(&labels)).unwrap();
    // Held-out lines, sanitized with the same key (as production logs would be before
    // scoring them with a model trained on the export).
    let hosts: Vec<String> = sample::AGENTS
        .iter()
        .map(|a| a.hostname.to_owned())
        .collect();
    let p = Pseudonymizer::new(KEY.as_bytes(), &hosts);
    let test = sample::generate(2000, 0.15, 99);
    let sanitized: Vec<String> = test.iter().map(|l| p.sanitize(&l.message)).collect();
    let y: Vec<bool> = test.iter().map(|l| l.malicious).collect();
    let risks: Vec<f64> = detector.score(&sanitized).iter().map(|s| s.risk).collect();
    let threshold = 10.0 * detector.risk_scorer().params().threshold;
    let at = metrics::at_threshold(&risks, &y, threshold);
    let auc = metrics::roc_auc(&risks, &y).expect("both classes in the test set");
    eprintln!(
        "model trained on the sanitized export, held-out sanitized sample: ROC AUC {auc:.4}, recall {:.4}, precision {:.4}",
        at.recall, at.precision
    );
    assert!(auc >= 0.95, "{auc}");
    assert!(at.recall >= 0.9, "{}", at.recall);
}

/// With `S3_BUCKET` set the export goes to the bucket: against a real S3 server (moto) it lands
/// under `training_data/` and reads back identical to a filesystem export.
async fn export_to_s3_reads_back_like_the_filesystem(b: Backend) {
    let endpoint = require_s3!();
    let db = fresh_db(b).await.unwrap();
    seed(&db, "acme", 120, 9).await;
    let s3 = common::s3::fresh_bucket(&endpoint).await;
    let fs = FsModelStore::new(temp_dir().join("models")).unwrap();
    let to_s3 = export::export_training_data(&db, &s3, Some(KEY), "acme", 1000)
        .await
        .unwrap();
    let to_fs = export::export_training_data(&db, &fs, Some(KEY), "acme", 1000)
        .await
        .unwrap();
    assert_eq!((&to_s3.key, &to_s3.sha256), (&to_fs.key, &to_fs.sha256));
    assert_eq!(
        s3.list("training_data/").await.unwrap(),
        vec![to_s3.key.clone()]
    );
    let exported = read_export(&s3, &to_s3.key).await;
    assert_eq!(exported.len(), 120);
    assert_eq!(exported, read_export(&fs, &to_fs.key).await);
}

both_backends!(
    export_is_keyed_stable_and_refuses_without_a_key,
    model_trained_on_export_flags_sanitized_attacks,
    export_to_s3_reads_back_like_the_filesystem,
);
