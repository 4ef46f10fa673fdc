//! The one mapping from soc-core's errors to Python exceptions.

use pyo3::exceptions::{PyException, PyValueError};
use pyo3::{PyErr, create_exception};

create_exception!(
    codegrey_soc,
    SocError,
    PyException,
    "An engine error that is not a bad argument: a corrupt or foreign model artifact, a failed import."
);

/// soc-core's error on its way to Python (the orphan rule forbids `From<soc_core::Error> for
/// PyErr` directly).
#[derive(Debug)]
pub struct PySocError(soc_core::Error);

impl From<soc_core::Error> for PySocError {
    fn from(e: soc_core::Error) -> Self {
        PySocError(e)
    }
}

impl From<PySocError> for PyErr {
    /// Bad arguments and data are `ValueError` (scikit-learn's convention); the rest is
    /// `SocError`.
    fn from(PySocError(e): PySocError) -> PyErr {
        use soc_core::Error;
        match e {
            Error::InvalidParameter { .. }
            | Error::ShapeMismatch { .. }
            | Error::InvalidInput(_) => PyValueError::new_err(e.to_string()),
            other => SocError::new_err(other.to_string()),
        }
    }
}

/// `Result` of the binding functions: `?` works on soc-core results and on `PyErr`s.
pub(crate) type SocResult<T> = Result<T, PyErr>;

/// Converts a soc-core result, mapping its error once.
pub(crate) fn core<T>(r: soc_core::Result<T>) -> SocResult<T> {
    r.map_err(|e| PySocError(e).into())
}
