//! # soc-core: the CodeGrey SOC detection engine
//!
//! Pure Rust, no I/O crates: TF-IDF text features, an isolation forest ("how unusual"), a random
//! forest ("how likely malicious") and a risk scorer, with scikit-learn's semantics and
//! parameter names, plus the artifact format and storage traits shared by the server and the
//! Python package.
//!
//! ```
//! use soc_core::{DetectorParams, Detector, Severity};
//!
//! // Normal traffic, and a few labeled attacks (labels are optional: without them the
//! // detector is anomaly-only).
//! let mut lines: Vec<String> = (0..300)
//!     .map(|i| format!("GET /catalog/item?id={} HTTP/1.1 200 {}", i % 40, 900 + i % 97))
//!     .collect();
//! lines.extend((0..30).map(|i| format!("GET /catalog/item?id={i} UNION SELECT pass FROM users--")));
//! let labels: Vec<bool> = (0..lines.len()).map(|i| i >= 300).collect();
//!
//! let detector = DetectorParams { random_state: Some(1), ..DetectorParams::default() }
//!     .fit(&lines, Some(&labels))?;
//! let score = detector.score_one("GET /catalog/item?id=9 UNION SELECT card FROM users--");
//! assert!(detector.is_threat(score.risk) && score.severity >= Severity::High);
//!
//! // Batch scoring runs in parallel; explanations name the terms that drove the verdict.
//! let scores = detector.score(&["GET /catalog/item?id=3 HTTP/1.1 200 950"]);
//! assert!(scores[0].risk < 4.0);
//! let why = detector.explain("GET /catalog/item?id=9 UNION SELECT card FROM users--");
//! assert!(why.top_terms.iter().any(|t| t.term == "union" || t.term == "select"));
//!
//! // One artifact format for every model: magic, version, JSON header, checksummed payload.
//! let bytes = detector.to_bytes();
//! assert_eq!(soc_core::read_header(&bytes)?.kind, "detector");
//! assert_eq!(Detector::from_bytes(&bytes)?, detector);
//! # Ok::<(), soc_core::Error>(())
//! ```
#![warn(missing_docs)]

mod detector;
mod error;
pub mod forest;
pub mod line;
#[cfg(feature = "linfa")]
mod linfa_interop;
mod matrix;
pub mod metrics;
pub mod model;
pub mod pipeline;
mod risk;
pub mod signatures;
pub mod sklearn;
mod sparse;
pub mod store;
pub mod text;

pub use detector::{
    DEFAULT_DETECTOR_TREES, DEFAULT_MAX_LINE_BYTES, Detector, DetectorParams, Explanation, Fired,
    TermContribution, UnusualFeature,
};
pub use error::{Error, Result};
pub use forest::{
    ClassWeight, Contamination, IsolationForest, IsolationForestParams, MaxFeatures, MaxSamples,
    RandomForestClassifier, RandomForestParams,
};
pub use matrix::Matrix;
pub use model::{ArtifactHeader, read_header};
pub use risk::{RiskParams, RiskScorer, Score, Severity};
pub use signatures::{AttackClass, SignatureMatch, Signatures, Technique};
pub use sparse::CsrMatrix;
pub use text::{Analyzer, DocFreq, Norm, TfidfParams, TfidfVectorizer};
