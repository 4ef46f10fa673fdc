//! Python values to soc-core inputs: texts, feature matrices and the scikit-learn parameter
//! spellings (`"auto"`, int counts vs float fractions, `None`).

use numpy::{PyReadonlyArray1, PyReadonlyArray2};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyBool, PyFloat, PyInt, PyList, PyString, PyTuple};
use soc_core::{CsrMatrix, DocFreq, Matrix, MaxFeatures};

use crate::errors::{SocResult, core};

/// Borrows the strings of a Python list without copying them (they stay valid while the list's
/// items are alive, GIL or not). Every item must be a `str`; the error names the first that is
/// not.
pub(crate) fn texts(list: &Bound<'_, PyList>) -> SocResult<Vec<PyBackedStr>> {
    list.iter()
        .enumerate()
        .map(|(i, item)| match item.cast::<PyString>() {
            Ok(s) => Ok(PyBackedStr::try_from(s.clone())?),
            Err(_) => Err(PyTypeError::new_err(format!(
                "expected str documents, but item {i} is {} ({})",
                item.get_type().name()?,
                item.repr()?
            ))),
        })
        .collect()
}

/// A feature matrix from Python: a C-contiguous float64 array, or the parts of a canonical CSR
/// matrix `(data, indices, indptr, n_cols)` as the Python wrapper sends them.
pub(crate) enum Features<'py> {
    Dense(PyReadonlyArray2<'py, f64>),
    Sparse(CsrMatrix),
}

impl<'py> Features<'py> {
    pub(crate) fn extract(x: &Bound<'py, PyAny>) -> SocResult<Self> {
        if let Ok(parts) = x.cast::<PyTuple>() {
            let (data, indices, indptr, n_cols): (
                PyReadonlyArray1<'py, f64>,
                PyReadonlyArray1<'py, i64>,
                PyReadonlyArray1<'py, i64>,
                usize,
            ) = parts.extract()?;
            let to_usize = |v: &[i64], what: &str| -> SocResult<Vec<usize>> {
                v.iter()
                    .map(|&i| {
                        usize::try_from(i).map_err(|_| {
                            PyValueError::new_err(format!("negative {what} {i} in a CSR matrix"))
                        })
                    })
                    .collect()
            };
            let indices = to_usize(indices.as_slice()?, "column index")?
                .into_iter()
                .map(|c| u32::try_from(c).unwrap_or(u32::MAX))
                .collect();
            let indptr = to_usize(indptr.as_slice()?, "row pointer")?;
            let m = CsrMatrix::try_new(n_cols, indptr, indices, data.as_slice()?.to_vec());
            return Ok(Features::Sparse(core(m)?));
        }
        Ok(Features::Dense(x.extract()?))
    }

    pub(crate) fn matrix(&self) -> Matrix<'_> {
        match self {
            Features::Dense(d) => Matrix::Dense(d.as_array()),
            Features::Sparse(s) => Matrix::Sparse(s),
        }
    }
}

/// A Python int that is not a bool.
pub(crate) fn is_integer(v: &Bound<'_, PyAny>) -> bool {
    v.is_instance_of::<PyInt>() && !v.is_instance_of::<PyBool>()
}

fn type_error(name: &str, expected: &str, v: &Bound<'_, PyAny>) -> PyErr {
    let got = v.repr().map(|r| r.to_string()).unwrap_or_default();
    PyTypeError::new_err(format!("`{name}` must be {expected}, got {got}"))
}

/// scikit-learn's `min_df` / `max_df`: an int is a document count, a float a fraction.
pub(crate) fn doc_freq(name: &str, v: &Bound<'_, PyAny>) -> SocResult<DocFreq> {
    if is_integer(v) {
        let n: i64 = v.extract()?;
        return usize::try_from(n)
            .map(DocFreq::Count)
            .map_err(|_| PyValueError::new_err(format!("`{name}` must be >= 0, got {n}")));
    }
    if v.is_instance_of::<PyFloat>() {
        return Ok(DocFreq::Fraction(v.extract()?));
    }
    Err(type_error(
        name,
        "an int (documents) or a float (fraction)",
        v,
    ))
}

/// scikit-learn's `max_features` of the forests: `"sqrt"`, `"log2"`, `None` (all), an int or a
/// float fraction.
pub(crate) fn max_features(v: &Bound<'_, PyAny>) -> SocResult<MaxFeatures> {
    if v.is_none() {
        return Ok(MaxFeatures::All);
    }
    if let Ok(s) = v.extract::<String>() {
        return match s.as_str() {
            "sqrt" => Ok(MaxFeatures::Sqrt),
            "log2" => Ok(MaxFeatures::Log2),
            _ => Err(PyValueError::new_err(format!(
                "`max_features` must be 'sqrt', 'log2', None, an int or a float, got {s:?}"
            ))),
        };
    }
    if is_integer(v) {
        let n: i64 = v.extract()?;
        return usize::try_from(n)
            .map(MaxFeatures::Count)
            .map_err(|_| PyValueError::new_err(format!("`max_features` must be >= 1, got {n}")));
    }
    if v.is_instance_of::<PyFloat>() {
        return Ok(MaxFeatures::Fraction(v.extract()?));
    }
    Err(type_error(
        "max_features",
        "'sqrt', 'log2', None, an int or a float",
        v,
    ))
}

/// An `"auto"`-or-number parameter: `Ok(None)` for `"auto"`, else the number.
pub(crate) fn auto_or<'py>(
    name: &str,
    v: &Bound<'py, PyAny>,
) -> SocResult<Option<Bound<'py, PyAny>>> {
    match v.extract::<String>() {
        Ok(s) if s == "auto" => Ok(None),
        Ok(s) => Err(PyValueError::new_err(format!(
            "`{name}` must be 'auto' or a number, got {s:?}"
        ))),
        Err(_) if is_integer(v) || v.is_instance_of::<PyFloat>() => Ok(Some(v.clone())),
        Err(_) => Err(type_error(name, "'auto' or a number", v)),
    }
}
