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
