//! # soc-core: the CodeGrey SOC detection engine
//!
//! Pure Rust, no I/O crates: TF-IDF text features, an isolation forest ("how unusual"), a random
//! forest ("how likely malicious") and a risk scorer, with scikit-learn's semantics and
//! parameter names, plus the artifact format and storage traits shared by the server and the
//! Python package.
#![warn(missing_docs)]

mod detector;
mod error;
pub mod forest;
#[cfg(feature = "linfa")]
mod linfa_interop;
mod matrix;
pub mod metrics;
pub mod model;
pub mod pipeline;
mod risk;
pub mod sklearn;
mod sparse;
pub mod store;
pub mod text;

pub use detector::{
    DEFAULT_MAX_LINE_BYTES, Detector, DetectorParams, Explanation, Fired, TermContribution,
    UnusualFeature,
};
pub use error::{Error, Result};
pub use forest::{
    ClassWeight, Contamination, IsolationForest, IsolationForestParams, MaxFeatures, MaxSamples,
    RandomForestClassifier, RandomForestParams,
};
pub use matrix::Matrix;
pub use model::{ArtifactHeader, read_header};
pub use risk::{RiskParams, RiskScorer, Score, Severity};
pub use sparse::CsrMatrix;
pub use text::{Analyzer, DocFreq, Norm, TfidfParams, TfidfVectorizer};
