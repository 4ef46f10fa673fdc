//! `TfidfModel`: a fitted soc-core `TfidfVectorizer`.

use numpy::{IntoPyArray, PyArray1};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use soc_core::{Analyzer, CsrMatrix, Norm, TfidfParams, TfidfVectorizer};

use crate::convert::{doc_freq, texts};
use crate::errors::{SocResult, core};

/// The four parts of a CSR matrix, as `scipy.sparse.csr_matrix((data, indices, indptr), shape)`
/// takes them: `(data, indices, indptr, (n_rows, n_cols))`.
type CsrParts<'py> = (
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<i32>>,
    Bound<'py, PyArray1<i64>>,
    (usize, usize),
);

fn csr_parts(py: Python<'_>, m: CsrMatrix) -> SocResult<CsrParts<'_>> {
    let n_rows = m.n_rows();
    let (n_cols, indptr, indices, data) = m.into_parts();
    // scipy's default index dtype is int32; the vocabulary is far below 2^31 terms.
    let indices: Vec<i32> = indices
        .into_iter()
        .map(|c| i32::try_from(c).map_err(|_| PyValueError::new_err("more than 2^31 features")))
        .collect::<SocResult<_>>()?;
    let indptr: Vec<i64> = indptr.into_iter().map(|p| p as i64).collect();
    Ok((
        data.into_pyarray(py),
        indices.into_pyarray(py),
        indptr.into_pyarray(py),
        (n_rows, n_cols),
    ))
}

/// A fitted TF-IDF vectorizer (scikit-learn semantics).
#[pyclass(module = "codegrey_soc._native", frozen)]
pub struct TfidfModel {
    inner: TfidfVectorizer,
}

#[pymethods]
impl TfidfModel {
    /// Learns the vocabulary and idf of `docs` (a list of str) and returns the fitted model and
    /// the TF-IDF matrix of `docs` as CSR parts.
    #[staticmethod]
    #[pyo3(signature = (docs, *, lowercase, analyzer, token_pattern, ngram_range, min_df, max_df,
        max_features, use_idf, smooth_idf, sublinear_tf, norm, stem))]
    #[allow(clippy::too_many_arguments)]
    fn fit_transform<'py>(
        py: Python<'py>,
        docs: &Bound<'py, PyList>,
        lowercase: bool,
        analyzer: &str,
        token_pattern: String,
        ngram_range: (usize, usize),
        min_df: &Bound<'py, PyAny>,
        max_df: &Bound<'py, PyAny>,
        max_features: Option<usize>,
        use_idf: bool,
        smooth_idf: bool,
        sublinear_tf: bool,
        norm: Option<&str>,
        stem: bool,
    ) -> SocResult<(Self, CsrParts<'py>)> {
        let analyzer = match analyzer {
            "word" => Analyzer::Word,
            "char" => Analyzer::Char,
            "char_wb" => Analyzer::CharWb,
            other => {
                return Err(PyValueError::new_err(format!(
                    "`analyzer` must be 'word', 'char' or 'char_wb', got {other:?}"
                )));
            }
        };
        let norm = match norm {
            Some("l2") => Norm::L2,
            None => Norm::None,
            Some(other) => {
                return Err(PyValueError::new_err(format!(
                    "`norm` must be 'l2' or None, got {other:?} ('l1' is not supported)"
                )));
            }
        };
        let params = TfidfParams {
            lowercase,
            analyzer,
            token_pattern,
            ngram_range,
            min_df: doc_freq("min_df", min_df)?,
            max_df: doc_freq("max_df", max_df)?,
            max_features,
            use_idf,
            smooth_idf,
            sublinear_tf,
            norm,
            stem,
        };
        let docs = texts(docs)?;
        let (inner, x) = core(py.detach(|| params.fit_transform(&docs)))?;
        Ok((TfidfModel { inner }, csr_parts(py, x)?))
    }

    /// TF-IDF matrix of `docs` (a list of str) as CSR parts.
    fn transform<'py>(
        &self,
        py: Python<'py>,
        docs: &Bound<'py, PyList>,
    ) -> SocResult<CsrParts<'py>> {
        let docs = texts(docs)?;
        let x = py.detach(|| self.inner.transform(&docs));
        csr_parts(py, x)
    }

    /// The vocabulary terms in column order.
    fn feature_names(&self) -> Vec<String> {
        self.inner.feature_names().to_vec()
    }

    /// The idf weight of each column.
    fn idf<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        self.inner.idf().to_vec().into_pyarray(py)
    }

    /// Number of columns.
    #[getter]
    fn n_features(&self) -> usize {
        self.inner.n_features()
    }

    /// The model in the artifact format.
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.to_bytes())
    }

    /// Reads an artifact written by `to_bytes` (here, by the server or by Rust).
    #[staticmethod]
    fn from_bytes(bytes: &[u8]) -> SocResult<Self> {
        Ok(TfidfModel {
            inner: core(TfidfVectorizer::from_bytes(bytes))?,
        })
    }
}

impl TfidfModel {
    pub fn new(inner: TfidfVectorizer) -> Self {
        TfidfModel { inner }
    }
}
