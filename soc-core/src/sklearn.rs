//! Import of fitted scikit-learn models.
//!
//! `python/codegrey_soc/sklearn_export.py` writes a fitted `TfidfVectorizer`,
//! `IsolationForest`, `RandomForestClassifier` or a `Pipeline` of them as a JSON document (the
//! schema is in `docs/sklearn-import.md`); [`import`] turns it into soc-core models whose
//! outputs equal scikit-learn's (identical TF-IDF matrices, `score_samples` and
//! `predict_proba` within 1e-9: the exact-parity tests in `tests/sklearn_parity.rs`).
//!
//! The isolation forest's trees carry scikit-learn's per-leaf path length
//! (`depth + c(n_node_samples)`), computed by the exporter with scikit-learn's own float
//! operations, and the random forest's leaves its normalized class fractions.

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::forest::tree::Tree;
use crate::forest::{
    ClassWeight, Contamination, IsolationForest, IsolationForestParams, MaxFeatures, MaxSamples,
    RandomForestClassifier, RandomForestParams,
};
use crate::text::{Analyzer, DocFreq, Norm, TfidfParams, TfidfVectorizer};

/// Name of the schema in the document's `schema` field.
pub const SCHEMA: &str = "codegrey-sklearn";
/// Version of the schema this build reads.
pub const SCHEMA_VERSION: u64 = 1;

/// A model imported from scikit-learn.
#[derive(Debug, Clone, PartialEq)]
pub enum Imported {
    /// A `TfidfVectorizer`.
    Tfidf(TfidfVectorizer),
    /// An `IsolationForest`.
    IsolationForest(IsolationForest),
    /// A `RandomForestClassifier`.
    RandomForest(RandomForestClassifier),
    /// A `Pipeline`: a vectorizer then a forest.
    Pipeline(TfidfVectorizer, Box<Imported>),
}

fn bad(what: impl std::fmt::Display) -> Error {
    Error::invalid_model(format!("scikit-learn import: {what}"))
}

#[derive(Deserialize)]
struct ExportedTree {
    children_left: Vec<i64>,
    children_right: Vec<i64>,
    feature: Vec<i64>,
    threshold: Vec<f64>,
    leaf_values: Vec<Vec<f64>>,
}

impl ExportedTree {
    fn into_tree(self, n_features: usize) -> Result<Tree> {
        let tree = Tree::from_children(
            &self.children_left,
            &self.children_right,
            &self.feature,
            &self.threshold,
            &self.leaf_values,
        )?;
        tree.validate(n_features)?;
        Ok(tree)
    }
}

/// Imports any supported document.
pub fn import(json: &str) -> Result<Imported> {
    let doc: Value = serde_json::from_str(json).map_err(|e| bad(format!("not JSON: {e}")))?;
    if doc.get("schema").and_then(Value::as_str) != Some(SCHEMA) {
        return Err(bad(format!(
            "not a {SCHEMA} document (missing or wrong \"schema\")"
        )));
    }
    let version = doc.get("schema_version").and_then(Value::as_u64);
    if version != Some(SCHEMA_VERSION) {
        return Err(bad(format!(
            "schema_version {version:?} is not supported (this build reads {SCHEMA_VERSION})"
        )));
    }
    import_step(&doc)
}

fn import_step(doc: &Value) -> Result<Imported> {
    match doc.get("kind").and_then(Value::as_str) {
        Some("tfidf_vectorizer") => tfidf(doc).map(Imported::Tfidf),
        Some("isolation_forest") => isolation_forest(doc).map(Imported::IsolationForest),
        Some("random_forest_classifier") => random_forest(doc).map(Imported::RandomForest),
        Some("pipeline") => {
            let steps = doc["steps"]
                .as_array()
                .ok_or_else(|| bad("pipeline without steps"))?;
            let [first, second] = steps.as_slice() else {
                return Err(bad("a pipeline must have exactly two steps"));
            };
            let vectorizer = tfidf(first)?;
            let model = import_step(second)?;
            let n_features = match &model {
                Imported::IsolationForest(m) => m.n_features(),
                Imported::RandomForest(m) => m.n_features(),
                _ => return Err(bad("a pipeline's second step must be a forest")),
            };
            if n_features != vectorizer.n_features() {
                return Err(bad(format!(
                    "the forest expects {n_features} features, the vectorizer makes {}",
                    vectorizer.n_features()
                )));
            }
            Ok(Imported::Pipeline(vectorizer, Box::new(model)))
        }
        other => Err(bad(format!("unknown kind {other:?}"))),
    }
}

fn field<'a, T: Deserialize<'a>>(doc: &'a Value, name: &str) -> Result<T> {
    let value = doc
        .get(name)
        .ok_or_else(|| bad(format!("missing field \"{name}\"")))?;
    T::deserialize(value).map_err(|e| bad(format!("field \"{name}\": {e}")))
}

/// A JSON integer is a count, a JSON float a fraction (scikit-learn's int / float convention).
fn doc_freq(value: &Value, name: &str) -> Result<DocFreq> {
    match value {
        Value::Number(n) if n.is_u64() => Ok(DocFreq::Count(n.as_u64().unwrap_or(0) as usize)),
        Value::Number(n) => Ok(DocFreq::Fraction(n.as_f64().unwrap_or(f64::NAN))),
        _ => Err(bad(format!("{name} must be a number"))),
    }
}

/// Imports a `TfidfVectorizer` document.
pub fn tfidf(doc: &Value) -> Result<TfidfVectorizer> {
    let p = doc.get("params").ok_or_else(|| bad("missing params"))?;
    let analyzer = match field::<String>(p, "analyzer")?.as_str() {
        "word" => Analyzer::Word,
        "char" => Analyzer::Char,
        "char_wb" => Analyzer::CharWb,
        other => return Err(bad(format!("analyzer {other:?}"))),
    };
    let norm = match field::<Option<String>>(p, "norm")?.as_deref() {
        Some("l2") => Norm::L2,
        None => Norm::None,
        Some(other) => return Err(bad(format!("norm {other:?} (only l2 or none)"))),
    };
    let (lo, hi): (usize, usize) = field(p, "ngram_range")?;
    let params = TfidfParams {
        lowercase: field(p, "lowercase")?,
        analyzer,
        token_pattern: field(p, "token_pattern")?,
        ngram_range: (lo, hi),
        min_df: doc_freq(&p["min_df"], "min_df")?,
        max_df: doc_freq(&p["max_df"], "max_df")?,
        max_features: field(p, "max_features")?,
        use_idf: field(p, "use_idf")?,
        smooth_idf: field(p, "smooth_idf")?,
        sublinear_tf: field(p, "sublinear_tf")?,
        norm,
        stem: false,
    };
    let vocabulary: Vec<String> = field(doc, "vocabulary")?;
    let idf: Option<Vec<f64>> = field(doc, "idf")?;
    let idf = idf.unwrap_or_else(|| vec![1.0; vocabulary.len()]);
    TfidfVectorizer::from_parts(params, vocabulary, idf)
}

fn max_features(value: &Value) -> Result<MaxFeatures> {
    Ok(match value {
        Value::String(s) if s == "sqrt" => MaxFeatures::Sqrt,
        Value::String(s) if s == "log2" => MaxFeatures::Log2,
        Value::Null => MaxFeatures::All,
        Value::Number(n) if n.is_u64() => MaxFeatures::Count(n.as_u64().unwrap_or(0) as usize),
        Value::Number(n) => MaxFeatures::Fraction(n.as_f64().unwrap_or(f64::NAN)),
        other => return Err(bad(format!("max_features {other}"))),
    })
}

/// Imports a `RandomForestClassifier` document.
pub fn random_forest(doc: &Value) -> Result<RandomForestClassifier> {
    let p = doc.get("params").ok_or_else(|| bad("missing params"))?;
    let n_features: usize = field(doc, "n_features")?;
    let classes: Vec<i64> = field(doc, "classes")?;
    let importances: Vec<f64> = field(doc, "feature_importances")?;
    let trees: Vec<ExportedTree> = field(doc, "trees")?;
    let trees = trees
        .into_iter()
        .map(|t| t.into_tree(n_features))
        .collect::<Result<Vec<_>>>()?;
    let defaults = RandomForestParams::default();
    let params = RandomForestParams {
        n_estimators: trees.len(),
        max_depth: field(p, "max_depth")?,
        max_features: max_features(&p["max_features"])?,
        bootstrap: field(p, "bootstrap")?,
        class_weight: match p["class_weight"].as_str() {
            Some("balanced") => Some(ClassWeight::Balanced),
            _ => None,
        },
        random_state: field(p, "random_state")?,
        ..defaults
    };
    RandomForestClassifier::from_parts(trees, classes, n_features, importances, params)
}

/// Imports an `IsolationForest` document.
pub fn isolation_forest(doc: &Value) -> Result<IsolationForest> {
    let p = doc.get("params").ok_or_else(|| bad("missing params"))?;
    let n_features: usize = field(doc, "n_features")?;
    let max_samples: usize = field(doc, "max_samples")?;
    let offset: f64 = field(doc, "offset")?;
    let trees: Vec<ExportedTree> = field(doc, "trees")?;
    let trees = trees
        .into_iter()
        .map(|t| t.into_tree(n_features))
        .collect::<Result<Vec<_>>>()?;
    let params = IsolationForestParams {
        n_estimators: trees.len(),
        max_samples: match &p["max_samples"] {
            Value::String(s) if s == "auto" => MaxSamples::Auto,
            Value::Number(n) if n.is_u64() => MaxSamples::Count(n.as_u64().unwrap_or(0) as usize),
            Value::Number(n) => MaxSamples::Fraction(n.as_f64().unwrap_or(f64::NAN)),
            other => return Err(bad(format!("max_samples {other}"))),
        },
        max_features: max_features(&p["max_features"])?,
        contamination: match &p["contamination"] {
            Value::String(s) if s == "auto" => Contamination::Auto,
            Value::Number(n) => Contamination::Fraction(n.as_f64().unwrap_or(f64::NAN)),
            other => return Err(bad(format!("contamination {other}"))),
        },
        bootstrap: field(p, "bootstrap")?,
        random_state: field(p, "random_state")?,
        n_jobs: None,
    };
    IsolationForest::from_parts(trees, n_features, max_samples, offset, params)
}
