//! Exact parity with scikit-learn: models fitted by scikit-learn, exported with
//! `python/codegrey_soc/sklearn_export.py` and imported with `soc_core::sklearn::import`, give
//! identical TF-IDF matrices and `score_samples` / `decision_function` / `predict_proba`
//! within 1e-9. Needs a Python with scikit-learn (see `common::python`).

mod common;

use std::process::Command;

use common::floats;

use ndarray::Array2;
use serde_json::Value;
use soc_core::sklearn::{Imported, import};
use soc_core::{CsrMatrix, Matrix};

const TOLERANCE: f64 = 1e-9;

fn csr(v: &Value) -> CsrMatrix {
    let vec = |k: &str| v[k].as_array().unwrap().clone();
    CsrMatrix::try_new(
        v["n_cols"].as_u64().unwrap() as usize,
        vec("indptr")
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect(),
        vec("indices")
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect(),
        vec("data").iter().map(|x| x.as_f64().unwrap()).collect(),
    )
    .unwrap()
}

fn dense(v: &Value) -> Array2<f64> {
    let rows: Vec<Vec<f64>> = v.as_array().unwrap().iter().map(floats).collect();
    let n_cols = rows[0].len();
    Array2::from_shape_vec((rows.len(), n_cols), rows.concat()).unwrap()
}

fn texts(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn check_model(name: &str, model: &Imported, x: Matrix<'_>, case: &Value) {
    match model {
        Imported::IsolationForest(forest) => {
            // Our score_samples is the paper's a(x); scikit-learn's is -a(x).
            let ours: Vec<f64> = forest
                .score_samples(x)
                .unwrap()
                .iter()
                .map(|a| -a)
                .collect();
            let diff = max_diff(&ours, &floats(&case["score_samples"]));
            assert!(diff <= TOLERANCE, "{name}: score_samples differ by {diff}");
            let diff = max_diff(
                &forest.decision_function(x).unwrap(),
                &floats(&case["decision_function"]),
            );
            assert!(
                diff <= TOLERANCE,
                "{name}: decision_function differs by {diff}"
            );
        }
        Imported::RandomForest(forest) => {
            let ours = forest.predict_proba(x).unwrap();
            let theirs = dense(&case["predict_proba"]);
            assert_eq!(ours.dim(), theirs.dim(), "{name}");
            let diff = (&ours - &theirs).iter().fold(0.0f64, |m, d| m.max(d.abs()));
            assert!(diff <= TOLERANCE, "{name}: predict_proba differs by {diff}");
        }
        other => panic!("{name}: unexpected {other:?}"),
    }
}

#[test]
fn imported_models_reproduce_scikit_learn() {
    let out = common::temp_path("parity.json");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sklearn/parity.py");
    let status = Command::new(common::python())
        .args([
            script.as_ref(),
            common::data_dir().as_os_str(),
            out.as_os_str(),
        ])
        .status()
        .expect("run python");
    assert!(status.success(), "parity.py failed");
    let doc: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    std::fs::remove_file(&out).ok();

    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let model = import(&case["model"].to_string()).unwrap_or_else(|e| panic!("{name}: {e}"));
        match &model {
            Imported::Tfidf(vectorizer) => {
                let theirs = csr(&case["tfidf"]);
                let ours = vectorizer.transform(&texts(&case["texts"]));
                assert_eq!(ours.indptr(), theirs.indptr(), "{name}: row structure");
                assert_eq!(ours.indices(), theirs.indices(), "{name}: columns");
                let diff = max_diff(ours.data(), theirs.data());
                assert!(diff <= 1e-12, "{name}: values differ by {diff}");
            }
            Imported::Pipeline(vectorizer, forest) => {
                let x = vectorizer.transform(&texts(&case["texts"]));
                check_model(name, forest, Matrix::Sparse(&x), case);
            }
            _ if case.get("csr").is_some() => {
                let x = csr(&case["csr"]);
                check_model(name, &model, Matrix::Sparse(&x), case);
            }
            _ => {
                let x = dense(&case["dense"]);
                check_model(name, &model, Matrix::Dense(x.view()), case);
            }
        }
    }
}

#[test]
fn malformed_documents_are_rejected() {
    for doc in [
        "",
        "{}",
        r#"{"schema": "codegrey-sklearn", "schema_version": 99, "kind": "isolation_forest"}"#,
        r#"{"schema": "codegrey-sklearn", "schema_version": 1, "kind": "svm"}"#,
        r#"{"schema": "codegrey-sklearn", "schema_version": 1, "kind": "isolation_forest", "params": {}}"#,
        r#"{"schema": "codegrey-sklearn", "schema_version": 1, "kind": "random_forest_classifier",
            "params": {"max_depth": null, "max_features": "sqrt", "bootstrap": true, "class_weight": null, "random_state": 0},
            "n_features": 2, "classes": [0, 1], "feature_importances": [0.5, 0.5],
            "trees": [{"children_left": [1, -1, -1], "children_right": [2, -1, -1], "feature": [7, -2, -2],
                       "threshold": [0.5, -2, -2], "leaf_values": [[0.5, 0.5], [1, 0], [0, 1]]}]}"#,
        r#"{"schema": "codegrey-sklearn", "schema_version": 1, "kind": "random_forest_classifier",
            "params": {"max_depth": null, "max_features": "sqrt", "bootstrap": true, "class_weight": null, "random_state": 0},
            "n_features": 2, "classes": [0, 1], "feature_importances": [0.5, 0.5],
            "trees": [{"children_left": [1, 0, -1], "children_right": [2, -1, -1], "feature": [0, 0, -2],
                       "threshold": [0.5, 0.5, -2], "leaf_values": [[0.5, 0.5], [1, 0], [0, 1]]}]}"#,
    ] {
        assert!(import(doc).is_err(), "accepted {doc}");
    }
}
