//! Parity with scikit-learn's `TfidfVectorizer`: same vocabulary, idf and matrix on real data.
//!
//! Needs a Python with scikit-learn: `SOC_PYTHON`, else the workspace's `.venv/bin/python`
//! (which `scripts/test.sh` sets up). Without one the test fails.

mod common;

use std::process::Command;

use serde_json::{Value, json};
use soc_core::{Analyzer, DocFreq, Norm, TfidfParams, TfidfVectorizer};

const SCRIPT: &str = r#"
import json, sys
import numpy as np
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
with open(sys.argv[1], encoding="utf-8") as f:
    req = json.load(f)
out = []
for docs in req["corpora"]:
  for kw in req["configs"]:
    kw = dict(kw)
    if "ngram_range" in kw:
        kw["ngram_range"] = tuple(kw["ngram_range"])
    extra = {}
    try:
        if "max_features" in kw:
            # numpy's argsort is unstable, so terms tied at the cut-off may differ: check that
            # scikit-learn's pick differs from a stable one only by such ties, then compare
            # with the stable pick (a fixed vocabulary keeps the same idf).
            k = kw.pop("max_features")
            real = TfidfVectorizer(**kw, max_features=k).fit(docs)
            tfidf_only = ("norm", "use_idf", "smooth_idf", "sublinear_tf")
            cv = CountVectorizer(**{a: b for a, b in kw.items() if a not in tfidf_only})
            tf = np.asarray(cv.fit_transform(docs).sum(axis=0)).ravel()
            names = cv.get_feature_names_out()
            keep = np.argsort(-tf, kind="stable")[:k]
            stable = sorted(names[keep].tolist())
            cut = int(tf[keep].min())
            vocab = cv.vocabulary_
            diff = set(stable) ^ set(real.get_feature_names_out().tolist())
            extra = {"tie_tfs": sorted({int(tf[vocab[t]]) for t in diff}), "cut": cut}
            v = TfidfVectorizer(**kw, vocabulary=stable).fit(docs)
        else:
            v = TfidfVectorizer(**kw).fit(docs)
    except ValueError as e:
        out.append({"error": str(e)})
        continue
    X = v.transform(docs).tocsr()
    X.sort_indices()
    out.append({
        "names": v.get_feature_names_out().tolist(),
        "idf": v.idf_.tolist() if v.use_idf else None,
        "indptr": X.indptr.tolist(),
        "indices": X.indices.tolist(),
        "data": X.data.tolist(),
        **extra,
    })
json.dump(out, sys.stdout)
"#;

use common::{data_dir, floats, python};

/// Every 80th payload of the httpparams training set (259, benign and attacks).
fn http_payloads() -> Vec<String> {
    let path = data_dir().join("httpparams/payload_train.csv");
    let mut r = csv::Reader::from_path(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let mut docs = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let rec = rec.unwrap();
        if i % 80 == 0 {
            docs.push(rec[0].to_string());
        }
    }
    docs
}

/// Every 8th BGL line (250), without the label token.
fn bgl_lines() -> Vec<String> {
    let path = data_dir().join("loghub_bgl_2k/BGL_2k.log");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    text.lines()
        .step_by(8)
        .map(|l| {
            let l = l.trim_end_matches('\r');
            l.split_once(' ').map_or("", |(_, rest)| rest).to_string()
        })
        .collect()
}

/// Lines that exercise Unicode lowercasing, whitespace and tokenization.
fn unicode_lines() -> Vec<String> {
    [
        "Café ÉTÉ naïve Straße ΣΟΦΟΣ όσος ΟΔΟΣ",
        "日本語のテキスト 東京 2024年",
        "tab\there  two  spaces\u{3000}ideographic\u{a0}nbsp",
        "x\u{1f}y\u{1c}z  émoji 😀😀 ok_ok __init__",
        "Ünïcödé ÜNÏCÖDÉ ünïcödé",
        "",
        "a b c",
        "١٢٣ ٤٥ digits ² ³ ½",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Our parameters and scikit-learn's keyword arguments for the same vectorizer.
fn configs() -> Vec<(TfidfParams, Value)> {
    let d = TfidfParams::default;
    vec![
        (d(), json!({})),
        (
            TfidfParams {
                sublinear_tf: true,
                min_df: DocFreq::Count(2),
                ..d()
            },
            json!({"sublinear_tf": true, "min_df": 2}),
        ),
        (
            TfidfParams {
                analyzer: Analyzer::CharWb,
                ngram_range: (2, 4),
                ..d()
            },
            json!({"analyzer": "char_wb", "ngram_range": [2, 4]}),
        ),
        (
            TfidfParams {
                ngram_range: (1, 2),
                max_features: Some(500),
                ..d()
            },
            json!({"ngram_range": [1, 2], "max_features": 500}),
        ),
        (
            TfidfParams {
                norm: Norm::None,
                use_idf: false,
                ..d()
            },
            json!({"norm": null, "use_idf": false}),
        ),
        (
            TfidfParams {
                analyzer: Analyzer::Char,
                ngram_range: (1, 3),
                lowercase: false,
                smooth_idf: false,
                max_df: DocFreq::Fraction(0.5),
                ..d()
            },
            json!({"analyzer": "char", "ngram_range": [1, 3], "lowercase": false,
                   "smooth_idf": false, "max_df": 0.5}),
        ),
        (
            TfidfParams {
                // Not `\s`: the regex crate's lacks U+001C..U+001F (documented).
                token_pattern: r"[^ \t=&]+".into(),
                min_df: DocFreq::Fraction(0.01),
                ngram_range: (2, 3),
                ..d()
            },
            json!({"token_pattern": r"[^ \t=&]+", "min_df": 0.01, "ngram_range": [2, 3]}),
        ),
    ]
}

/// scikit-learn's results for every corpus × configuration, corpus-major.
fn run_sklearn(corpora: &[Vec<String>], configs: &[Value]) -> Vec<Value> {
    let python = python();
    let path = std::env::temp_dir().join(format!(
        "soc_tfidf_parity_{}_{}.json",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::write(
        &path,
        serde_json::to_vec(&json!({"corpora": corpora, "configs": configs})).unwrap(),
    )
    .unwrap();
    let out = Command::new(&python)
        .args(["-c", SCRIPT])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python:?}: {e}"));
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "scikit-learn failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ints(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

#[test]
fn matches_sklearn() {
    let names = ["httpparams", "bgl", "unicode"];
    let mut unicode = unicode_lines();
    unicode.extend(http_payloads().into_iter().take(40));
    let corpora = [http_payloads(), bgl_lines(), unicode];
    let configs = configs();
    let kwargs: Vec<Value> = configs.iter().map(|(_, k)| k.clone()).collect();
    // One Python process for everything: importing scikit-learn takes seconds.
    let expected = run_sklearn(&corpora, &kwargs);
    assert_eq!(expected.len(), corpora.len() * configs.len());
    let mut expected = expected.iter();
    for (name, docs) in names.iter().zip(&corpora) {
        for (params, kw) in &configs {
            let want = expected.next().unwrap();
            check_parity(&format!("{name} {kw}"), docs, params, want);
        }
    }
}

fn check_parity(ctx: &str, docs: &[String], params: &TfidfParams, want: &Value) {
    if let Some(err) = want.get("error") {
        let ours = params.fit(docs);
        assert!(
            ours.is_err(),
            "{ctx}: scikit-learn failed ({err}), we did not"
        );
        eprintln!("{ctx}: both fail: {err} / {}", ours.unwrap_err());
        return;
    }
    if let Some(ties) = want.get("tie_tfs") {
        assert!(
            ties.as_array().unwrap().iter().all(|t| *t == want["cut"]),
            "{ctx}: scikit-learn's max_features pick differs from the stable one beyond ties"
        );
    }
    let (v, x): (TfidfVectorizer, _) = params
        .fit_transform(docs)
        .unwrap_or_else(|e| panic!("{ctx}: {e}"));
    let names: Vec<String> = want["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    if v.feature_names() != names.as_slice() {
        let ours: std::collections::BTreeSet<_> = v.feature_names().iter().collect();
        let theirs: std::collections::BTreeSet<_> = names.iter().collect();
        panic!(
            "{ctx}: vocabularies differ; only ours: {:?}; only sklearn: {:?}",
            ours.difference(&theirs).take(20).collect::<Vec<_>>(),
            theirs.difference(&ours).take(20).collect::<Vec<_>>()
        );
    }
    if params.use_idf {
        let idf = floats(&want["idf"]);
        for (j, (a, b)) in v.idf().iter().zip(&idf).enumerate() {
            assert!(
                (a - b).abs() <= 1e-12,
                "{ctx}: idf of {:?}: {a} vs {b}",
                names[j]
            );
        }
    }
    let indptr = ints(&want["indptr"]);
    let indices = ints(&want["indices"]);
    let data = floats(&want["data"]);
    let ours_indptr: Vec<u64> = x.indptr().iter().map(|&i| i as u64).collect();
    assert_eq!(ours_indptr, indptr, "{ctx}: row lengths differ");
    let ours_indices: Vec<u64> = x.indices().iter().map(|&i| u64::from(i)).collect();
    assert_eq!(ours_indices, indices, "{ctx}: column indices differ");
    let mut worst = 0.0f64;
    for (a, b) in x.data().iter().zip(&data) {
        worst = worst.max((a - b).abs());
    }
    assert!(worst <= 1e-12, "{ctx}: matrix differs by {worst}");
    eprintln!(
        "{ctx}: {} features, {} non-zeros, max |diff| {worst:e}",
        v.n_features(),
        x.nnz()
    );
}
