//! The one error type of soc-core.

use crate::store::StorageError;

/// Everything that can go wrong in soc-core. Every fallible public function returns it;
/// nothing in the crate panics on bad input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A hyperparameter is out of its valid range (checked once, in `fit`).
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParameter {
        /// The parameter's name, as in scikit-learn.
        name: &'static str,
        /// Why the value is rejected.
        reason: String,
    },
    /// The input does not fit the model: wrong number of features, label count, etc.
    #[error("shape mismatch: expected {expected} {what}, got {got}")]
    ShapeMismatch {
        /// What was counted (`features`, `labels`, ...).
        what: &'static str,
        /// What the model expects.
        expected: usize,
        /// What the input has.
        got: usize,
    },
    /// The input data cannot be used (empty, NaN / infinite values, a single class, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A model artifact or imported model could not be read.
    #[error("invalid model: {0}")]
    InvalidModel(String),
    /// A named thing does not exist.
    #[error("{kind} `{id}` not found")]
    NotFound {
        /// The kind of thing looked for.
        kind: &'static str,
        /// Its identifier.
        id: String,
    },
    /// A storage backend failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// `Result` with soc-core's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn invalid_param(name: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidParameter {
            name,
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid_input(reason: impl Into<String>) -> Self {
        Error::InvalidInput(reason.into())
    }

    pub(crate) fn invalid_model(reason: impl Into<String>) -> Self {
        Error::InvalidModel(reason.into())
    }
}
