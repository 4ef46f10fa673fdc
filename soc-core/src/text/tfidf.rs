//! Fitting ([`TfidfParams::fit`]) and the fitted [`TfidfVectorizer`].

use std::cell::RefCell;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::analyze::{Analysis, FxHashMap, Scratch, TermIndex};
use super::{DocFreq, Norm, TfidfParams};
use crate::error::{Error, Result};
use crate::model::{Artifact, impl_artifact_methods};
use crate::sparse::CsrMatrix;

/// Documents per parallel task in [`TfidfVectorizer::transform`].
const CHUNK: usize = 256;
/// Documents per parallel task when [`TfidfParams::fit`] counts terms: each task's counts are
/// merged into the others', so tasks are larger than in `transform`.
const FIT_CHUNK: usize = 4096;

/// How often a term occurs in a corpus.
#[derive(Clone, Copy, Debug, Default)]
struct TermCount {
    /// Documents that contain it.
    docs: usize,
    /// Occurrences in all documents.
    occurrences: u64,
    /// Index (in the counted slice) of the last document it was seen in, plus one, so that a
    /// document counts once in `docs`.
    last_doc: usize,
}

/// The terms of `docs` and their counts.
fn count_terms<S: AsRef<str>>(analysis: &Analysis, docs: &[S]) -> FxHashMap<Box<str>, TermCount> {
    let mut counts: FxHashMap<Box<str>, TermCount> = FxHashMap::default();
    let mut scratch = Scratch::default();
    for (d, doc) in docs.iter().enumerate() {
        let doc_number = d + 1;
        analysis.run(doc.as_ref(), &mut scratch, |term| {
            let count = match counts.get_mut(term) {
                Some(count) => count,
                None => counts.entry(term.into()).or_default(),
            };
            if count.last_doc != doc_number {
                count.last_doc = doc_number;
                count.docs += 1;
            }
            count.occurrences += 1;
        });
    }
    counts
}

/// The counts of two disjoint sets of documents added up.
fn merge_counts(
    mut a: FxHashMap<Box<str>, TermCount>,
    mut b: FxHashMap<Box<str>, TermCount>,
) -> FxHashMap<Box<str>, TermCount> {
    if a.len() < b.len() {
        std::mem::swap(&mut a, &mut b);
    }
    for (term, count) in b {
        let total = a.entry(term).or_default();
        total.docs += count.docs;
        total.occurrences += count.occurrences;
    }
    a
}

thread_local! {
    static SCRATCH: RefCell<(Scratch, Vec<u32>)> = RefCell::new(Default::default());
}

/// Runs `f` with this thread's buffers (fresh ones if they are already in use).
fn with_scratch<R>(f: impl FnOnce(&mut Scratch, &mut Vec<u32>) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut s) => {
            let (scratch, ids) = &mut *s;
            let r = f(scratch, ids);
            scratch.trim();
            if ids.capacity() > 1 << 18 {
                *ids = Vec::new();
            }
            r
        }
        Err(_) => f(&mut Scratch::default(), &mut Vec::new()),
    })
}

fn check_df(name: &'static str, df: DocFreq) -> Result<()> {
    match df {
        DocFreq::Count(0) => Err(Error::invalid_param(
            name,
            "a document count must be at least 1",
        )),
        DocFreq::Fraction(f) if !(0.0..=1.0).contains(&f) => Err(Error::invalid_param(
            name,
            format!("a fraction of documents must be in [0, 1], got {f}"),
        )),
        _ => Ok(()),
    }
}

/// Validates every parameter and compiles the analyzer.
fn validate(p: &TfidfParams) -> Result<Analysis> {
    check_df("min_df", p.min_df)?;
    check_df("max_df", p.max_df)?;
    if p.max_features == Some(0) {
        return Err(Error::invalid_param("max_features", "must be at least 1"));
    }
    Analysis::new(p)
}

fn doc_count(df: DocFreq, n_docs: usize) -> f64 {
    match df {
        DocFreq::Count(c) => c as f64,
        DocFreq::Fraction(f) => f * n_docs as f64,
    }
}

impl TfidfParams {
    /// Learns the vocabulary and idf weights of `docs`.
    ///
    /// Errors: an invalid parameter, no documents, `max_df` below `min_df` in documents, or no
    /// term at all (or none left after the `min_df` / `max_df` pruning).
    pub fn fit<S: AsRef<str> + Sync>(&self, docs: &[S]) -> Result<TfidfVectorizer> {
        let analysis = validate(self)?;
        if docs.is_empty() {
            return Err(Error::invalid_input("no documents to fit"));
        }
        let n_docs = docs.len();
        let max_doc_count = doc_count(self.max_df, n_docs);
        let min_doc_count = doc_count(self.min_df, n_docs);

        // Counted in parallel chunks and merged: integer sums, so the counts (and the
        // vocabulary) do not depend on the number of threads.
        let counts = docs
            .par_chunks(FIT_CHUNK)
            .map(|chunk| count_terms(&analysis, chunk))
            .reduce(FxHashMap::default, merge_counts);
        if counts.is_empty() {
            return Err(Error::invalid_input(
                "empty vocabulary; perhaps the documents only contain stop words",
            ));
        }
        if max_doc_count < min_doc_count {
            return Err(Error::invalid_param(
                "max_df",
                "max_df corresponds to < documents than min_df",
            ));
        }

        // Terms in code point order (UTF-8 byte order is code point order).
        let mut terms: Vec<(Box<str>, TermCount)> = counts.into_iter().collect();
        terms.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut kept: Vec<usize> = (0..terms.len())
            .filter(|&k| {
                let d = terms[k].1.docs as f64;
                d <= max_doc_count && d >= min_doc_count
            })
            .collect();
        if let Some(limit) = self.max_features
            && kept.len() > limit
        {
            // Most frequent first; ties keep term order (stable sort).
            kept.sort_by(|&a, &b| terms[b].1.occurrences.cmp(&terms[a].1.occurrences));
            kept.truncate(limit);
            kept.sort_unstable();
        }
        if kept.is_empty() {
            return Err(Error::invalid_input(
                "after pruning, no terms remain; try a lower min_df or a higher max_df",
            ));
        }
        let smooth = if self.smooth_idf { 1.0 } else { 0.0 };
        let n = n_docs as f64 + smooth;
        let mut feature_names = Vec::with_capacity(kept.len());
        let mut idf = Vec::with_capacity(kept.len());
        for k in kept {
            let (term, count) = std::mem::take(&mut terms[k]);
            idf.push(if self.use_idf {
                (n / (count.docs as f64 + smooth)).ln() + 1.0
            } else {
                1.0
            });
            feature_names.push(String::from(term));
        }
        let mut v = TfidfVectorizer {
            params: self.clone(),
            feature_names,
            idf,
            index: TermIndex::default(),
            analysis: Some(analysis),
        };
        v.build_index();
        Ok(v)
    }

    /// [`fit`](Self::fit), then [`transform`](TfidfVectorizer::transform) of the same documents.
    pub fn fit_transform<S: AsRef<str> + Sync>(
        &self,
        docs: &[S],
    ) -> Result<(TfidfVectorizer, CsrMatrix)> {
        let v = self.fit(docs)?;
        let x = v.transform(docs);
        Ok((v, x))
    }
}

/// A fitted TF-IDF vectorizer: a vocabulary (terms sorted by code point, column `j` is
/// `feature_names()[j]`) and its idf weights. Built by [`TfidfParams::fit`] or
/// [`from_parts`](Self::from_parts) (e.g. from a fitted scikit-learn vectorizer).
#[derive(Clone, Serialize, Deserialize)]
pub struct TfidfVectorizer {
    params: TfidfParams,
    feature_names: Vec<String>,
    idf: Vec<f64>,
    #[serde(skip)]
    index: TermIndex,
    #[serde(skip)]
    analysis: Option<Analysis>,
}

impl std::fmt::Debug for TfidfVectorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TfidfVectorizer")
            .field("params", &self.params)
            .field("n_features", &self.feature_names.len())
            .finish_non_exhaustive()
    }
}

impl PartialEq for TfidfVectorizer {
    fn eq(&self, other: &Self) -> bool {
        self.params == other.params
            && self.feature_names == other.feature_names
            && self.idf == other.idf
    }
}

impl TfidfVectorizer {
    /// Builds a fitted vectorizer from its parts, e.g. scikit-learn's `vocabulary_` (as the
    /// list of terms ordered by column, `get_feature_names_out()`) and `idf_`.
    ///
    /// `feature_names` must be strictly increasing (code point order, as scikit-learn sorts
    /// them) and `idf` finite and positive, one per feature. With `use_idf` false, `idf` may be
    /// empty; it is ignored and stored as ones.
    pub fn from_parts(
        params: TfidfParams,
        feature_names: Vec<String>,
        idf: Vec<f64>,
    ) -> Result<Self> {
        let idf = if !params.use_idf && idf.is_empty() {
            vec![1.0; feature_names.len()]
        } else {
            idf
        };
        let mut v = TfidfVectorizer {
            params,
            feature_names,
            idf,
            index: TermIndex::default(),
            analysis: None,
        };
        v.check_and_index().map_err(|e| match e {
            Error::InvalidModel(m) => Error::InvalidInput(m),
            e => e,
        })?;
        if !v.params.use_idf {
            v.idf.iter_mut().for_each(|x| *x = 1.0);
        }
        Ok(v)
    }

    /// Validates the parts and rebuilds the analyzer and the term index.
    fn check_and_index(&mut self) -> Result<()> {
        let analysis = validate(&self.params)?;
        let n = self.feature_names.len();
        if n == 0 {
            return Err(Error::invalid_model(
                "a vectorizer needs at least one feature",
            ));
        }
        if n >= u32::MAX as usize {
            return Err(Error::invalid_model(format!("{n} features is too many")));
        }
        if self.idf.len() != n {
            return Err(Error::invalid_model(format!(
                "{n} feature names but {} idf weights",
                self.idf.len()
            )));
        }
        if let Some(w) = self.feature_names.windows(2).find(|w| w[0] >= w[1]) {
            return Err(Error::invalid_model(format!(
                "feature names must be sorted and unique: {:?} comes before {:?}",
                w[0], w[1]
            )));
        }
        if let Some(x) = self.idf.iter().find(|x| !(x.is_finite() && **x > 0.0)) {
            return Err(Error::invalid_model(format!(
                "idf weights must be finite and positive, found {x}"
            )));
        }
        self.analysis = Some(analysis);
        self.build_index();
        Ok(())
    }

    fn build_index(&mut self) {
        self.index = TermIndex::new(&self.feature_names);
    }

    /// Rebuilds the caches after deserialization and validates everything a hostile payload
    /// could break.
    pub(crate) fn after_load(&mut self) -> Result<()> {
        // A bad parameter inside a stored file means the file is broken, not the caller's
        // request.
        self.check_and_index().map_err(|e| match e {
            Error::InvalidParameter { .. } => Error::invalid_model(format!("bad parameters: {e}")),
            e => e,
        })
    }

    /// The TF-IDF matrix of `docs`: one row per document, one column per feature. Documents
    /// are processed in parallel; the result does not depend on the number of threads.
    pub fn transform<S: AsRef<str> + Sync>(&self, docs: &[S]) -> CsrMatrix {
        let rows: Vec<Vec<(u32, f64)>> = docs
            .par_chunks(CHUNK)
            .flat_map_iter(|chunk| {
                chunk.iter().map(|d| {
                    let mut row = Vec::new();
                    self.transform_into(d.as_ref(), &mut row);
                    row
                })
            })
            .collect();
        CsrMatrix::from_sorted_rows(self.n_features(), rows)
    }

    /// One document's row of the TF-IDF matrix as `(column, value)` pairs sorted by column,
    /// written into `out` (cleared first). Allocates nothing once this thread's buffers and
    /// `out` are warm (lowercasing non-ASCII text aside).
    pub fn transform_into(&self, doc: &str, out: &mut Vec<(u32, f64)>) {
        out.clear();
        let Some(analysis) = &self.analysis else {
            return;
        };
        with_scratch(|scratch, ids| {
            ids.clear();
            analysis.run(doc, scratch, |term| {
                if let Some(id) = self.index.get(term) {
                    ids.push(id);
                }
            });
            ids.sort_unstable();
            let mut i = 0;
            while i < ids.len() {
                let id = ids[i];
                let mut j = i + 1;
                while j < ids.len() && ids[j] == id {
                    j += 1;
                }
                out.push((id, (j - i) as f64));
                i = j;
            }
        });
        let p = &self.params;
        if p.sublinear_tf {
            out.iter_mut().for_each(|(_, v)| *v = v.ln() + 1.0);
        }
        if p.use_idf {
            out.iter_mut()
                .for_each(|(c, v)| *v *= self.idf[*c as usize]);
        }
        if p.norm == Norm::L2 {
            let mut sum = 0.0;
            for &(_, v) in out.iter() {
                sum += v * v;
            }
            if sum != 0.0 {
                let norm = sum.sqrt();
                out.iter_mut().for_each(|(_, v)| *v /= norm);
            }
        }
    }

    /// Number of features (columns).
    pub fn n_features(&self) -> usize {
        self.feature_names.len()
    }

    /// The terms, by column.
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// The column of `term`, if it is in the vocabulary.
    pub fn vocabulary(&self, term: &str) -> Option<u32> {
        self.index.get(term)
    }

    /// The idf weight of each column (all ones when `use_idf` is false).
    pub fn idf(&self) -> &[f64] {
        &self.idf
    }

    /// The hyperparameters it was fitted with.
    pub fn params(&self) -> &TfidfParams {
        &self.params
    }
}

impl Artifact for TfidfVectorizer {
    const KIND: &'static str = "tfidf_vectorizer";

    fn params_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or(serde_json::Value::Null)
    }

    fn n_features(&self) -> usize {
        self.feature_names.len()
    }

    fn after_load(&mut self) -> Result<()> {
        TfidfVectorizer::after_load(self)
    }
}

impl_artifact_methods!(TfidfVectorizer);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::Analyzer;

    const DOCS: [&str; 5] = [
        "GET /index.html HTTP/1.1",
        "GET /admin.php?id=1 OR 1=1 -- admin",
        "POST /login user=admin&pass=x",
        "GET /index.html?page=2",
        "kernel: EXT4 error on sda1, error code 5",
    ];

    fn fit(p: TfidfParams) -> Result<TfidfVectorizer> {
        p.fit(&DOCS)
    }

    fn param_err(r: Result<TfidfVectorizer>) -> &'static str {
        match r {
            Err(Error::InvalidParameter { name, .. }) => name,
            other => panic!("expected an invalid parameter, got {other:?}"),
        }
    }

    #[test]
    fn vocabulary_sorted_and_looked_up() {
        let v = fit(TfidfParams::default()).unwrap();
        let names = v.feature_names();
        assert!(names.windows(2).all(|w| w[0] < w[1]));
        for (i, t) in names.iter().enumerate() {
            assert_eq!(v.vocabulary(t), Some(i as u32));
        }
        assert_eq!(v.vocabulary("nope"), None);
        assert_eq!(v.n_features(), names.len());
        assert_eq!(v.idf().len(), names.len());
        assert_eq!(v.params(), &TfidfParams::default());
    }

    #[test]
    fn idf_formulas() {
        // "get" is in 3 of 5 documents, "admin" in 2.
        let v = fit(TfidfParams::default()).unwrap();
        let get = v.vocabulary("get").unwrap() as usize;
        assert_eq!(v.idf()[get], (6.0f64 / 4.0).ln() + 1.0);
        let v = fit(TfidfParams {
            smooth_idf: false,
            ..TfidfParams::default()
        })
        .unwrap();
        assert_eq!(v.idf()[get], (5.0f64 / 3.0).ln() + 1.0);
        let v = fit(TfidfParams {
            use_idf: false,
            ..TfidfParams::default()
        })
        .unwrap();
        assert!(v.idf().iter().all(|&x| x == 1.0));
    }

    #[test]
    fn rows_are_weighted_and_normalized() {
        let v = fit(TfidfParams::default()).unwrap();
        let x = v.transform(&DOCS);
        assert_eq!((x.n_rows(), x.n_cols()), (5, v.n_features()));
        for r in 0..5 {
            let (_, vals) = x.row(r);
            let n: f64 = vals.iter().map(|v| v * v).sum();
            assert!((n - 1.0).abs() < 1e-12);
        }
        // Row 4: "error" twice, the other terms once.
        let p = TfidfParams {
            norm: Norm::None,
            use_idf: false,
            ..TfidfParams::default()
        };
        let v = fit(p.clone()).unwrap();
        let mut row = Vec::new();
        v.transform_into(DOCS[4], &mut row);
        let err = v.vocabulary("error").unwrap();
        assert!(row.contains(&(err, 2.0)));
        let v = fit(TfidfParams {
            sublinear_tf: true,
            ..p
        })
        .unwrap();
        v.transform_into(DOCS[4], &mut row);
        assert!(row.contains(&(err, 2f64.ln() + 1.0)));
        assert!(row.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn unknown_terms_give_an_empty_row() {
        let v = fit(TfidfParams::default()).unwrap();
        let mut row = vec![(0, 1.0)];
        v.transform_into("zzz qqq", &mut row);
        assert!(row.is_empty());
        assert_eq!(v.transform(&["", "zzz"]).nnz(), 0);
    }

    #[test]
    fn counts_do_not_depend_on_the_thread_count() {
        // Enough documents for several counting chunks, with terms shared across chunks and
        // terms that repeat within a document.
        let docs: Vec<String> = (0..3 * FIT_CHUNK + 17)
            .map(|i| format!("user u{} port p{} user again{}", i % 97, i % 1013, i % 5))
            .collect();
        let params = TfidfParams {
            min_df: DocFreq::Count(2),
            max_features: Some(800),
            ..TfidfParams::default()
        };
        let fit_on = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| params.fit(&docs).unwrap())
        };
        let one = fit_on(1);
        let two = fit_on(2);
        assert_eq!(one, two);
        // Every term is counted: `user` is in every document, once per document.
        let user = one.vocabulary("user").unwrap() as usize;
        assert_eq!(one.idf()[user], 1.0);
        assert_eq!(one.n_features(), 800);
    }

    #[test]
    fn min_df_max_df_and_max_features() {
        let v = fit(TfidfParams {
            min_df: DocFreq::Count(2),
            ..TfidfParams::default()
        })
        .unwrap();
        assert_eq!(v.feature_names(), ["admin", "get", "html", "index"]);
        let v = fit(TfidfParams {
            min_df: DocFreq::Fraction(0.5),
            ..TfidfParams::default()
        })
        .unwrap();
        assert_eq!(v.feature_names(), ["get"]);
        let v = fit(TfidfParams {
            max_df: DocFreq::Count(1),
            ..TfidfParams::default()
        })
        .unwrap();
        assert!(v.vocabulary("get").is_none() && v.vocabulary("admin").is_none());
        assert!(v.vocabulary("kernel").is_some());
        let v = fit(TfidfParams {
            max_df: DocFreq::Fraction(0.5),
            ..TfidfParams::default()
        })
        .unwrap();
        assert!(v.vocabulary("get").is_none() && v.vocabulary("admin").is_some());
        // "admin" and "get" 3 times, "error", "html", "index" twice: ties by term order.
        let v = fit(TfidfParams {
            max_features: Some(4),
            ..TfidfParams::default()
        })
        .unwrap();
        assert_eq!(v.feature_names(), ["admin", "error", "get", "html"]);
    }

    #[test]
    fn parameter_errors() {
        let d = TfidfParams::default;
        assert_eq!(
            param_err(fit(TfidfParams {
                ngram_range: (0, 1),
                ..d()
            })),
            "ngram_range"
        );
        assert_eq!(
            param_err(fit(TfidfParams {
                ngram_range: (2, 1),
                ..d()
            })),
            "ngram_range"
        );
        assert_eq!(
            param_err(fit(TfidfParams {
                min_df: DocFreq::Count(0),
                ..d()
            })),
            "min_df"
        );
        assert_eq!(
            param_err(fit(TfidfParams {
                min_df: DocFreq::Fraction(1.5),
                ..d()
            })),
            "min_df"
        );
        assert_eq!(
            param_err(fit(TfidfParams {
                max_df: DocFreq::Fraction(f64::NAN),
                ..d()
            })),
            "max_df"
        );
        assert_eq!(
            param_err(fit(TfidfParams {
                max_df: DocFreq::Fraction(-0.1),
                ..d()
            })),
            "max_df"
        );
        assert_eq!(
            param_err(fit(TfidfParams {
                max_features: Some(0),
                ..d()
            })),
            "max_features"
        );
        assert_eq!(
            param_err(fit(TfidfParams {
                token_pattern: "(a)(b)".into(),
                ..d()
            })),
            "token_pattern"
        );
        assert_eq!(
            param_err(fit(TfidfParams {
                token_pattern: "(?<=a)b".into(),
                ..d()
            })),
            "token_pattern"
        );
        assert_eq!(
            param_err(fit(TfidfParams {
                stem: true,
                analyzer: Analyzer::Char,
                ..d()
            })),
            "stem"
        );
        let e = fit(TfidfParams {
            min_df: DocFreq::Count(3),
            max_df: DocFreq::Fraction(0.5),
            ..d()
        })
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("max_df corresponds to < documents than min_df")
        );
        // A pattern for another analyzer is not compiled (as in scikit-learn).
        assert!(
            fit(TfidfParams {
                token_pattern: "(".into(),
                analyzer: Analyzer::Char,
                ..d()
            })
            .is_ok()
        );
    }

    #[test]
    fn input_errors() {
        let empty: [&str; 0] = [];
        assert!(matches!(
            TfidfParams::default().fit(&empty),
            Err(Error::InvalidInput(_))
        ));
        let e = TfidfParams::default().fit(&["a", "! ?"]).unwrap_err();
        assert!(matches!(e, Error::InvalidInput(_)));
        assert!(e.to_string().contains("empty vocabulary"));
        let e = fit(TfidfParams {
            min_df: DocFreq::Count(5),
            ..TfidfParams::default()
        })
        .unwrap_err();
        assert!(matches!(e, Error::InvalidInput(_)), "{e}");
    }

    #[test]
    fn analyzers_and_lowercase() {
        let v = fit(TfidfParams {
            lowercase: false,
            ..TfidfParams::default()
        })
        .unwrap();
        assert!(v.vocabulary("GET").is_some() && v.vocabulary("get").is_none());
        let v = fit(TfidfParams {
            analyzer: Analyzer::Char,
            ngram_range: (1, 3),
            ..TfidfParams::default()
        })
        .unwrap();
        assert!(v.vocabulary("get").is_some() && v.vocabulary("/").is_some());
        let v = fit(TfidfParams {
            analyzer: Analyzer::CharWb,
            ngram_range: (2, 3),
            ..TfidfParams::default()
        })
        .unwrap();
        assert!(v.vocabulary(" ge").is_some() && v.vocabulary("x ").is_some());
        let v = fit(TfidfParams {
            stem: true,
            ..TfidfParams::default()
        })
        .unwrap();
        assert!(v.vocabulary("error").is_some());
        let mut row = Vec::new();
        v.transform_into("errors", &mut row);
        assert_eq!(row.len(), 1);
    }

    #[test]
    fn from_parts_validates() {
        let v = fit(TfidfParams::default()).unwrap();
        let again = TfidfVectorizer::from_parts(
            v.params().clone(),
            v.feature_names().to_vec(),
            v.idf().to_vec(),
        )
        .unwrap();
        assert_eq!(again, v);
        assert_eq!(again.transform(&DOCS), v.transform(&DOCS));
        let p = TfidfParams::default;
        let names = || vec!["a".to_string(), "b".to_string()];
        assert!(TfidfVectorizer::from_parts(p(), names(), vec![1.0]).is_err());
        assert!(TfidfVectorizer::from_parts(p(), names(), vec![1.0, f64::NAN]).is_err());
        assert!(TfidfVectorizer::from_parts(p(), names(), vec![1.0, 0.0]).is_err());
        assert!(
            TfidfVectorizer::from_parts(p(), vec!["b".into(), "a".into()], vec![1.0, 1.0]).is_err()
        );
        assert!(
            TfidfVectorizer::from_parts(p(), vec!["a".into(), "a".into()], vec![1.0, 1.0]).is_err()
        );
        assert!(TfidfVectorizer::from_parts(p(), vec![], vec![]).is_err());
        let bad = TfidfParams {
            ngram_range: (3, 1),
            ..p()
        };
        assert!(TfidfVectorizer::from_parts(bad, names(), vec![1.0, 1.0]).is_err());
        let no_idf = TfidfParams {
            use_idf: false,
            ..p()
        };
        let v = TfidfVectorizer::from_parts(no_idf, names(), vec![]).unwrap();
        assert_eq!(v.idf(), [1.0, 1.0]);
    }

    #[test]
    fn artifact_round_trip_and_corruption() {
        let v = fit(TfidfParams {
            ngram_range: (1, 2),
            ..TfidfParams::default()
        })
        .unwrap();
        let bytes = v.to_bytes();
        let back = TfidfVectorizer::from_bytes(&bytes).unwrap();
        assert_eq!(back, v);
        assert_eq!(back.transform(&DOCS), v.transform(&DOCS));
        for cut in [0, 10, bytes.len() / 2, bytes.len() - 1] {
            assert!(TfidfVectorizer::from_bytes(&bytes[..cut]).is_err());
        }
        for i in (0..bytes.len()).step_by(7) {
            let mut b = bytes.clone();
            b[i] ^= 0x5a;
            // A flip in the JSON header can leave it readable (e.g. a digit of created_at);
            // anywhere else it must be caught. Never a panic.
            if let Ok(m) = TfidfVectorizer::from_bytes(&b) {
                assert_eq!(m, v, "flip at {i} changed the model");
                assert!(i >= 16 && i < bytes.len() - postcard::to_allocvec(&v).unwrap().len());
            }
        }
        // A well-formed payload with unsorted names (checksum recomputed) is rejected too.
        let mut hostile = v.clone();
        hostile.feature_names.swap(0, 1);
        assert!(TfidfVectorizer::from_bytes(&hostile.to_bytes()).is_err());
        let mut hostile = v.clone();
        hostile.idf.pop();
        assert!(TfidfVectorizer::from_bytes(&hostile.to_bytes()).is_err());
    }

    #[test]
    fn send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<TfidfVectorizer>();
        check::<TfidfParams>();
    }
}
