//! `codegrey_soc._native`: the compiled half of the `codegrey_soc` Python package.
//!
//! Thin on purpose: convert Python values to soc-core inputs, release the GIL while soc-core
//! computes, and map soc-core's errors once ([`errors`]). Parameters are validated by soc-core;
//! the scikit-learn-shaped classes (`get_params`, `NotFittedError`, pickling, sparse matrices)
//! are plain Python in `python/codegrey_soc`.

mod convert;
mod detector;
mod errors;
mod forest;
mod tfidf;

use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use soc_core::sklearn::{self, Imported};

pub use detector::{DetectorModel, RiskScorerModel};
pub use errors::{PySocError, SocError};
pub use forest::{IsolationForestModel, RandomForestModel};
pub use tfidf::TfidfModel;

use errors::{SocResult, core};

/// One imported step as `(kind, model)`.
fn step<'py>(py: Python<'py>, model: Imported) -> SocResult<Vec<Bound<'py, PyTuple>>> {
    let pair = |kind: &str, obj: Bound<'py, PyAny>| (kind, obj).into_pyobject(py);
    Ok(match model {
        Imported::Tfidf(m) => vec![pair(
            "tfidf_vectorizer",
            TfidfModel::new(m).into_pyobject(py)?.into_any(),
        )?],
        Imported::IsolationForest(m) => vec![pair(
            "isolation_forest",
            IsolationForestModel::new(m).into_pyobject(py)?.into_any(),
        )?],
        Imported::RandomForest(m) => vec![pair(
            "random_forest_classifier",
            RandomForestModel::new(m).into_pyobject(py)?.into_any(),
        )?],
        Imported::Pipeline(vectorizer, model) => {
            let mut steps = step(py, Imported::Tfidf(vectorizer))?;
            steps.extend(step(py, *model)?);
            steps
        }
    })
}

/// Loads a `codegrey-sklearn` JSON document (see `docs/sklearn-import.md`) and returns its
/// steps as a list of `(kind, model)` pairs: one pair, or two for a pipeline.
#[pyfunction]
fn import_sklearn<'py>(py: Python<'py>, json: &str) -> SocResult<Bound<'py, PyList>> {
    let imported = core(py.detach(|| sklearn::import(json)))?;
    PyList::new(py, step(py, imported)?)
}

/// The artifact header (kind, params, created_at, ...) as JSON, without decoding the model.
#[pyfunction]
fn read_header_json(bytes: &[u8]) -> SocResult<String> {
    let header = core(soc_core::read_header(bytes))?;
    Ok(serde_json::to_string(&header).unwrap_or_default())
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("SocError", m.py().get_type::<SocError>())?;
    m.add_class::<TfidfModel>()?;
    m.add_class::<IsolationForestModel>()?;
    m.add_class::<RandomForestModel>()?;
    m.add_class::<DetectorModel>()?;
    m.add_class::<RiskScorerModel>()?;
    m.add_function(wrap_pyfunction!(import_sklearn, m)?)?;
    m.add_function(wrap_pyfunction!(read_header_json, m)?)?;
    Ok(())
}
