//! Tree ensembles with scikit-learn's semantics: [`IsolationForest`] and
//! [`RandomForestClassifier`], stored as flat pre-order node arrays.

mod isolation;
mod random;
pub(crate) mod tree;

pub(crate) use isolation::MAX_JOBS;

pub use isolation::{Contamination, IsolationForest, IsolationForestParams, MaxSamples};
pub(crate) use random::RowScratch;
pub use random::{ClassWeight, RandomForestClassifier, RandomForestParams};

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How many features to consider, as scikit-learn's `max_features`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum MaxFeatures {
    /// `max(1, floor(sqrt(n_features)))`.
    Sqrt,
    /// `max(1, floor(log2(n_features)))`.
    Log2,
    /// Exactly this many (at most `n_features`).
    Count(usize),
    /// `max(1, floor(fraction * n_features))`, with `0 < fraction <= 1`.
    Fraction(f64),
    /// Every feature.
    All,
}

impl MaxFeatures {
    /// The number of features this resolves to for `n_features` columns.
    pub(crate) fn resolve(self, n_features: usize) -> Result<usize> {
        let n = match self {
            MaxFeatures::Sqrt => (n_features as f64).sqrt().floor() as usize,
            MaxFeatures::Log2 => (n_features as f64).log2().floor() as usize,
            MaxFeatures::Count(0) => {
                return Err(Error::invalid_param("max_features", "must be at least 1"));
            }
            MaxFeatures::Count(c) => c.min(n_features),
            MaxFeatures::Fraction(f) if !(f > 0.0 && f <= 1.0) => {
                return Err(Error::invalid_param(
                    "max_features",
                    format!("a fraction must be in (0, 1], got {f}"),
                ));
            }
            MaxFeatures::Fraction(f) => (f * n_features as f64).floor() as usize,
            MaxFeatures::All => n_features,
        };
        Ok(n.clamp(1, n_features.max(1)))
    }
}

/// Average path length of an unsuccessful search in a binary search tree of `n` items,
/// c(n) = 2(ln(n−1)+γ) − 2(n−1)/n, with c(1) = 0 and c(2) = 1 (scikit-learn's
/// `_average_path_length`).
pub(crate) fn average_path_length(n: usize) -> f64 {
    match n {
        0 | 1 => 0.0,
        2 => 1.0,
        _ => {
            let n = n as f64;
            2.0 * ((n - 1.0).ln() + 0.577_215_664_901_532_9) - 2.0 * (n - 1.0) / n
        }
    }
}

/// Runs `f` on `n_jobs` threads: `None` or `Some(0)` means every core of the global rayon
/// pool, `Some(n)` a pool of `n` threads.
pub(crate) fn with_threads<R: Send>(n_jobs: Option<usize>, f: impl FnOnce() -> R + Send) -> R {
    match n_jobs {
        Some(n) if n > 0 && n != rayon::current_num_threads() => match pool_of(n) {
            Some(pool) => pool.install(f),
            // Cannot spawn threads: run on the current pool rather than fail.
            None => f(),
        },
        _ => f(),
    }
}

/// Pools kept for reuse; sizes beyond the first few get a pool per call, so a stream of
/// models with ever different `n_jobs` cannot pile up idle threads.
const MAX_KEPT_POOLS: usize = 4;

/// The pool of `n` threads, built on first use and kept: building one costs more than scoring
/// a line, and callers ask for the same few sizes again and again.
fn pool_of(n: usize) -> Option<Arc<rayon::ThreadPool>> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>> = OnceLock::new();
    let mut pools = POOLS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(pool) = pools.get(&n) {
        return Some(pool.clone());
    }
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .ok()?,
    );
    if pools.len() < MAX_KEPT_POOLS {
        pools.insert(n, pool.clone());
    }
    Some(pool)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn average_path_length_matches_sklearn() {
        // values from sklearn.ensemble._iforest._average_path_length
        assert_eq!(average_path_length(1), 0.0);
        assert_eq!(average_path_length(2), 1.0);
        assert!((average_path_length(256) - 10.244_770_920_119_917).abs() < 1e-12);
    }

    #[test]
    fn max_features_resolves_like_sklearn() {
        assert_eq!(MaxFeatures::Sqrt.resolve(50_000).unwrap(), 223);
        assert_eq!(MaxFeatures::Log2.resolve(1).unwrap(), 1);
        assert_eq!(MaxFeatures::Fraction(0.5).resolve(9).unwrap(), 4);
        assert_eq!(MaxFeatures::Count(20).resolve(9).unwrap(), 9);
        assert!(MaxFeatures::Count(0).resolve(9).is_err());
        assert!(MaxFeatures::Fraction(1.5).resolve(9).is_err());
    }
}
