//! Properties of the TF-IDF vectorizer on arbitrary Unicode text.

use proptest::prelude::*;
use soc_core::{Analyzer, DocFreq, Error, TfidfParams};

fn params() -> impl Strategy<Value = TfidfParams> {
    (
        prop_oneof![
            Just(Analyzer::Word),
            Just(Analyzer::Char),
            Just(Analyzer::CharWb)
        ],
        1usize..3,
        0usize..3,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop_oneof![Just(None), (1usize..20).prop_map(Some)],
    )
        .prop_map(
            |(analyzer, lo, extra, lowercase, sublinear_tf, stem, max_features)| TfidfParams {
                analyzer,
                ngram_range: (lo, lo + extra),
                lowercase,
                sublinear_tf,
                stem: stem && analyzer == Analyzer::Word,
                max_features,
                min_df: DocFreq::Count(1),
                ..TfidfParams::default()
            },
        )
}

/// Mostly words and log-ish punctuation, with arbitrary Unicode mixed in.
fn doc() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9_ /=&.:'-]{0,40}",
        any::<String>(),
        "[ \t\u{1c}\u{85}\u{a0}a-cÉéΣσς日本İ\u{300}]{0,20}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn fit_and_transform_never_panic(
        p in params(),
        train in prop::collection::vec(doc(), 1..12),
        test in prop::collection::vec(doc(), 0..12),
    ) {
        let v = match p.fit(&train) {
            Ok(v) => v,
            Err(e) => {
                prop_assert!(matches!(e, Error::InvalidInput(_)), "{e}");
                return Ok(());
            }
        };
        prop_assert!(v.feature_names().windows(2).all(|w| w[0] < w[1]));
        let x = v.transform(&test);
        prop_assert_eq!(x.n_rows(), test.len());
        prop_assert_eq!(x.n_cols(), v.n_features());
        let mut row = Vec::new();
        for (r, d) in test.iter().enumerate() {
            // Rows are L2-normalized or empty, and equal to transform_into's.
            let (cols, vals) = x.row(r);
            if !vals.is_empty() {
                let n: f64 = vals.iter().map(|v| v * v).sum();
                prop_assert!((n - 1.0).abs() < 1e-9, "norm {n}");
            }
            v.transform_into(d, &mut row);
            let (c2, v2): (Vec<u32>, Vec<f64>) = row.iter().copied().unzip();
            prop_assert_eq!(cols, &c2[..]);
            prop_assert_eq!(vals, &v2[..]);
        }
        // Training documents all have a term unless they have none in the vocabulary.
        let xt = v.transform(&train);
        prop_assert!(xt.nnz() > 0);
    }

    #[test]
    fn parallel_equals_sequential(
        p in params(),
        docs in prop::collection::vec(doc(), 1..40),
    ) {
        let Ok(v) = p.fit(&docs) else { return Ok(()) };
        // Enough documents for several parallel chunks (of 256).
        let many: Vec<&String> = docs.iter().cycle().take(700).collect();
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let two = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let a = one.install(|| v.transform(&many));
        let b = two.install(|| v.transform(&many));
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(a, v.transform(&many));
    }
}

#[test]
fn artifact_round_trip_keeps_transform() {
    let docs = ["GET /a", "POST /b?x=1", "kernel panic"];
    for p in [
        TfidfParams::default(),
        TfidfParams {
            analyzer: Analyzer::CharWb,
            ngram_range: (2, 3),
            ..TfidfParams::default()
        },
        TfidfParams {
            token_pattern: r"(\w+)=".into(),
            ..TfidfParams::default()
        },
        TfidfParams {
            stem: true,
            ..TfidfParams::default()
        },
    ] {
        let v = p.fit(&docs).unwrap();
        let back = soc_core::TfidfVectorizer::from_bytes(&v.to_bytes()).unwrap();
        assert_eq!(back, v);
        assert_eq!(back.transform(&docs), v.transform(&docs));
    }
}

/// CPU time of this thread in seconds (Linux; wall time elsewhere), so a loaded machine does
/// not inflate the figures.
fn cpu_seconds(wall: std::time::Instant) -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or_else(|| wall.elapsed().as_secs_f64(), |ns| ns * 1e-9)
}

/// Throughput of `transform_into` on BGL lines (run with
/// `cargo test -p soc-core --release --test tfidf_props -- --ignored --nocapture`).
#[test]
#[ignore]
fn transform_speed() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/loghub_bgl_2k/BGL_2k.log");
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .map(|l| l.split_once(' ').map_or("", |(_, r)| r.trim_end()))
        .collect();
    let bytes: usize = lines.iter().map(|l| l.len()).sum();
    eprintln!("{} lines, mean {} bytes", lines.len(), bytes / lines.len());
    for (name, p) in [
        ("word", TfidfParams::default()),
        (
            "word 1-2",
            TfidfParams {
                ngram_range: (1, 2),
                ..TfidfParams::default()
            },
        ),
        (
            "word stem",
            TfidfParams {
                stem: true,
                ..TfidfParams::default()
            },
        ),
        (
            "char_wb 2-4",
            TfidfParams {
                analyzer: Analyzer::CharWb,
                ngram_range: (2, 4),
                ..TfidfParams::default()
            },
        ),
    ] {
        if std::env::var("SOC_SPEED_ONLY").is_ok_and(|o| o != name) {
            continue;
        }
        let v = p.fit(&lines).unwrap();
        let w = std::time::Instant::now();
        let t = cpu_seconds(w);
        let _ = p.fit(&lines).unwrap();
        let fit = (cpu_seconds(w) - t) / lines.len() as f64;
        let mut row = Vec::new();
        let reps = 50;
        let w = std::time::Instant::now();
        let t = cpu_seconds(w);
        let mut nnz = 0;
        for _ in 0..reps {
            for l in &lines {
                v.transform_into(l, &mut row);
                nnz += row.len();
            }
        }
        let per = (cpu_seconds(w) - t) / (reps * lines.len()) as f64;
        eprintln!(
            "{name}: transform_into {:.0} ns/line ({:.0} lines/s), fit {:.0} ns/line, nnz {nnz}",
            per * 1e9,
            1.0 / per,
            fit * 1e9
        );
    }
}
