//! The end-to-end detector: text → risk.
//!
//! A [`Detector`] holds a TF-IDF vectorizer, an isolation forest over the line's structural
//! statistics ("how unusual", see [`structural`]), an optional random forest over TF-IDF and
//! structural columns ("how likely malicious", trained only when labels are given) and a
//! [`RiskScorer`] calibrated on the isolation forest's training scores. Unlabeled background
//! lines (a sample of the traffic to score) can shape the anomaly side without reaching the
//! classifier: [`DetectorParams::fit_with_background`].
//!
//! ```
//! use soc_core::{DetectorParams, Severity};
//!
//! let mut lines = Vec::new();
//! let mut labels = Vec::new();
//! for i in 0..200 {
//!     lines.push(format!("GET /products?id={i}&page={} HTTP/1.1", i % 7));
//!     labels.push(false);
//! }
//! for i in 0..20 {
//!     lines.push(format!("GET /products?id={i}' UNION SELECT password FROM users-- HTTP/1.1"));
//!     labels.push(true);
//! }
//! let params = DetectorParams { random_state: Some(7), ..DetectorParams::default() };
//! let detector = params.fit(&lines, Some(&labels))?;
//! let score = detector.score_one("GET /products?id=3' UNION SELECT card FROM users-- HTTP/1.1");
//! assert!(score.malicious_probability > 0.5);
//! assert!(score.severity >= Severity::Medium);
//! let why = detector.explain("GET /products?id=3' UNION SELECT card FROM users--");
//! assert!(why.top_terms.iter().any(|t| t.term == "union" || t.term == "select"));
//! # Ok::<(), soc_core::Error>(())
//! ```

mod structural;

use std::cell::RefCell;

use ndarray::{Array2, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::Matrix;
use crate::error::{Error, Result};
use crate::forest::{
    IsolationForest, IsolationForestParams, MAX_JOBS, RandomForestClassifier, RandomForestParams,
    RowScratch, with_threads,
};
use crate::line;
use crate::model::{Artifact, impl_artifact_methods};
use crate::risk::{RiskParams, RiskScorer, Score};
use crate::signatures::{AttackClass, SignatureMatch, Signatures};
use crate::sparse::CsrMatrix;
use crate::text::{TfidfParams, TfidfVectorizer};

use structural::{N_STRUCTURAL, NAMES, structural_features};

/// Lines are cut to this many bytes by default before scoring (see
/// [`DetectorParams::max_line_bytes`]).
pub const DEFAULT_MAX_LINE_BYTES: usize = 64 * 1024;

/// Trees of the Detector's classifier by default. Fit and scoring time grow with the number
/// of trees, and 24 trees of a detector fitted on 80k lines fit in a core's second-level
/// cache, where 48 do not. On `../shared/data` (5 seeds) 24 trees keep the risk ROC AUC of 48
/// within 0.001 (synthetic corpus 0.9994 against 0.9997, BGL 0.9938 against 0.9928,
/// httpparams and HDFS equal) and unseen-attack recall at 1% false positives within seed
/// noise (0.893 against 0.889). The scikit-learn-shaped [`RandomForestParams`] keep
/// scikit-learn's 100.
pub const DEFAULT_DETECTOR_TREES: usize = 24;

/// Rows scored per parallel task.
const CHUNK: usize = 512;
/// Lines whose anomaly is scored together (the isolation forest walks each tree once per
/// block).
const ANOMALY_BLOCK: usize = 64;

/// Settings of a [`Detector`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DetectorParams {
    /// Text features of the classifier (default: scikit-learn's defaults).
    pub tfidf: TfidfParams,
    /// The anomaly model over structural features (default: scikit-learn's defaults).
    pub isolation: IsolationForestParams,
    /// The classifier, trained when labels are given (default: [`DEFAULT_DETECTOR_TREES`]
    /// trees, otherwise scikit-learn's defaults).
    pub forest: RandomForestParams,
    /// Calibration and threat threshold.
    pub risk: RiskParams,
    /// Lines longer than this are cut (at a character boundary) before scoring, so a
    /// multi-megabyte line costs no more than this. Default 64 KiB.
    pub max_line_bytes: usize,
    /// Whether features see each line with its attack-carrying parts decoded (percent and
    /// HTML encodings, escapes; see [`crate::line`]) rather than as written. Default `true`;
    /// detectors saved before this setting existed read as `false` and score as they were
    /// trained.
    // Kept in the artifact's header, not its payload, so older payloads still decode.
    #[serde(skip)]
    pub decode: bool,
    /// Whether attack signatures (see [`crate::signatures`]) join the models in the risk.
    /// Default `true`, also for detectors saved before this setting existed.
    #[serde(skip)]
    pub signatures: bool,
    /// Seed of both forests (overrides theirs when set); `None` = a fresh seed.
    pub random_state: Option<u64>,
    /// Threads for fitting and batch scoring; `None` = all cores.
    pub n_jobs: Option<usize>,
}

impl Default for DetectorParams {
    fn default() -> Self {
        DetectorParams {
            tfidf: TfidfParams::default(),
            isolation: IsolationForestParams::default(),
            forest: RandomForestParams {
                n_estimators: DEFAULT_DETECTOR_TREES,
                ..RandomForestParams::default()
            },
            risk: RiskParams::default(),
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            decode: true,
            signatures: true,
            random_state: None,
            n_jobs: None,
        }
    }
}

/// Which model made a line a threat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fired {
    /// Neither model alone reached the threat threshold.
    None,
    /// The line is unusual (calibrated anomaly ≥ threshold).
    Anomaly,
    /// The classifier says malicious (probability ≥ threshold).
    Classifier,
    /// Both.
    Both,
}

/// A term of the line and how much it pushed the classifier towards "malicious".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TermContribution {
    /// The vocabulary term.
    pub term: String,
    /// Its TF-IDF weight in the line.
    pub weight: f64,
    /// Malicious probability with the term minus without it (0 without a classifier).
    pub contribution: f64,
}

/// A structural statistic of the line far from the training data's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnusualFeature {
    /// Feature name (e.g. `quotes`, `symbol_ratio`).
    pub feature: String,
    /// The line's value.
    pub value: f64,
    /// Median over the training lines.
    pub typical: f64,
    /// Distance from the median in units of the training spread (interquartile range).
    pub deviation: f64,
}

/// Why a line scored as it did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// The line's score.
    pub score: Score,
    /// Which model crossed the threat threshold.
    pub fired: Fired,
    /// The line's terms, most incriminating first (at most 10).
    pub top_terms: Vec<TermContribution>,
    /// Structural statistics furthest from training (at most 5, deviation ≥ 2).
    pub unusual_features: Vec<UnusualFeature>,
    /// The attack signatures the line matched, strongest first, with the original and
    /// decoded fragment and the evidence.
    #[serde(default)]
    pub signatures: Vec<SignatureMatch>,
}

/// Median and spread of one structural feature over the training lines.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
struct FeatureStats {
    median: f64,
    spread: f64,
}

/// A fitted detector. Build one with [`DetectorParams::fit`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Detector {
    params: DetectorParams,
    tfidf: TfidfVectorizer,
    isolation: IsolationForest,
    forest: Option<RandomForestClassifier>,
    risk: RiskScorer,
    stats: Vec<FeatureStats>,
    /// Rarity given to a line without any known word.
    unknown_idf: f64,
    /// Whether each vocabulary term is a word, whose rarity (idf) counts in the structural
    /// features; terms with digits (timestamps, ids, sizes) are rare without being unusual.
    #[serde(skip)]
    is_word: Vec<bool>,
    n_samples: usize,
    n_malicious: usize,
}

/// Per-thread buffers for scoring one line.
#[derive(Default)]
struct Scratch {
    terms: Vec<(u32, f64)>,
    decoded: String,
    structural: [f64; N_STRUCTURAL],
    structural_f32: [f32; N_STRUCTURAL],
    row: RowScratch,
    block: BlockScratch,
}

/// Per-thread buffers for scoring a block of lines.
#[derive(Default)]
struct BlockScratch {
    /// Every line's terms, back to back; line `r`'s end at `term_ends[r]`.
    terms: Vec<(u32, f32)>,
    term_ends: Vec<usize>,
    /// Every line's structural features, row-major.
    structural: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Runs `f` with this thread's scoring buffers (fresh ones if a caller up the stack is already
/// using them).
fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => f(&mut scratch),
        Err(_) => f(&mut Scratch::default()),
    })
}

/// Cuts `text` to at most `max` bytes at a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl DetectorParams {
    fn validate(&self) -> Result<()> {
        self.risk.validate()?;
        if self.max_line_bytes == 0 {
            return Err(Error::invalid_param("max_line_bytes", "must be at least 1"));
        }
        // Batch scoring of a loaded detector uses this: a hostile file must not make every
        // call spawn tens of thousands of threads.
        if matches!(self.n_jobs, Some(n) if n > MAX_JOBS) {
            return Err(Error::invalid_param(
                "n_jobs",
                format!("must be at most {MAX_JOBS}"),
            ));
        }
        Ok(())
    }

    /// Fits a detector on `texts`.
    ///
    /// Without labels the detector is unsupervised: the isolation forest learns what the lines
    /// look like and risk comes from anomaly alone. With labels (`true` = malicious, one per
    /// text, both classes present) the random forest is trained on all lines and the isolation
    /// forest on the benign ones only, so that attacks in the training data do not teach it
    /// that attacks are normal.
    ///
    /// The anomaly side needs variety: on a corpus of one distinct line every line scores the
    /// same anomaly (there is nothing to contrast with), so risk then comes from the classifier
    /// alone.
    ///
    /// Same as [`DetectorParams::fit_with_background`] without background lines.
    pub fn fit<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
        labels: Option<&[bool]>,
    ) -> Result<Detector> {
        self.fit_with_background(texts, labels, &[] as &[&str])
    }

    /// Fits a detector on `texts` (and `labels`, as [`DetectorParams::fit`] does) plus
    /// unlabeled `background` lines that only shape "normal": typically a recent sample of the
    /// traffic the detector will score.
    ///
    /// What sees the background lines: the anomaly side. The isolation forest, the
    /// calibration of the risk scorer and the median / spread of each structural statistic
    /// (shown by [`Detector::explain`]) are fitted on the benign labeled lines (all lines
    /// without labels) plus the background.
    ///
    /// What does not: the classifier and, when there are labels, the vectorizer. The
    /// background is unlabeled (some lines may be attacks), so it is never given to the random
    /// forest as benign; and since the forest's inputs are TF-IDF weights and structural
    /// statistics that depend on the vocabulary and idf (word rarity), fitting those on the
    /// background would shift the classifier's view of every line too. Keeping them on the
    /// labeled lines makes the classifier exactly the one [`DetectorParams::fit`] trains:
    /// unlabeled traffic can change how unusual a line looks, never how malicious, so a
    /// retrain on new traffic cannot move the classifier's verdicts. The price: words only the
    /// background has count as unknown (maximally rare). That is consistent in training and
    /// scoring, so the anomaly model still learns the background's lines as normal, but it
    /// cannot tell a word new to the traffic from one merely absent from the labels. Without
    /// labels there is no classifier, and the vectorizer is fitted on `texts` and
    /// `background` together. [`Detector::training_size`] counts `texts` only.
    ///
    /// An empty background is [`DetectorParams::fit`]. Without labels, `texts` may be empty
    /// when `background` is not (an anomaly-only detector of the background); with labels the
    /// rules of [`DetectorParams::fit`] apply to `texts`. The same seed and data give the same
    /// detector whatever the number of threads.
    pub fn fit_with_background<S: AsRef<str> + Sync, B: AsRef<str> + Sync>(
        &self,
        texts: &[S],
        labels: Option<&[bool]>,
        background: &[B],
    ) -> Result<Detector> {
        self.validate()?;
        if texts.is_empty() && (labels.is_some() || background.is_empty()) {
            return Err(Error::invalid_input(
                "cannot fit a detector on an empty corpus",
            ));
        }
        if let Some(labels) = labels {
            if labels.len() != texts.len() {
                return Err(Error::ShapeMismatch {
                    what: "labels",
                    expected: texts.len(),
                    got: labels.len(),
                });
            }
            let n_malicious = labels.iter().filter(|&&l| l).count();
            if n_malicious == 0 || n_malicious == labels.len() {
                return Err(Error::invalid_input(format!(
                    "labels must contain both benign and malicious lines (got {} of {}); \
                     fit without labels for an anomaly-only detector",
                    if n_malicious == 0 {
                        "no malicious line"
                    } else {
                        "only malicious lines"
                    },
                    labels.len()
                )));
            }
        }
        with_threads(self.n_jobs, || self.fit_inner(texts, labels, background))
    }

    fn fit_inner<S: AsRef<str> + Sync, B: AsRef<str> + Sync>(
        &self,
        texts: &[S],
        labels: Option<&[bool]>,
        background: &[B],
    ) -> Result<Detector> {
        let max = self.max_line_bytes;
        let n_texts = texts.len();
        // The labeled lines first, then the background: rows `..n_texts` are the classifier's.
        let texts: Vec<&str> = texts
            .par_iter()
            .map(|t| truncate(t.as_ref(), max))
            .chain(background.par_iter().map(|t| truncate(t.as_ref(), max)))
            .collect();
        let decoded: Vec<String> = if self.decode {
            texts
                .par_iter()
                .map(|t| {
                    let mut out = String::new();
                    line::decode_line(t, &mut out);
                    out
                })
                .collect()
        } else {
            Vec::new()
        };
        let texts: Vec<&str> = if self.decode {
            decoded.iter().map(String::as_str).collect()
        } else {
            texts
        };
        // With a classifier, its features stay those of the labeled lines (see
        // `fit_with_background`).
        let vocabulary_lines = if labels.is_some() {
            &texts[..n_texts]
        } else {
            &texts[..]
        };
        let tfidf = self.tfidf.fit(vocabulary_lines)?;
        let tfidf_rows = tfidf.transform(&texts);
        let unknown_idf = tfidf.idf().iter().copied().fold(1.0, f64::max) + 1.0;
        let is_word = is_word(&tfidf);

        let structural: Vec<[f64; N_STRUCTURAL]> = (0..texts.len())
            .into_par_iter()
            .map(|r| {
                let terms = tfidf_rows.row(r).0.iter().copied();
                line_structure(texts[r], terms, &tfidf, &is_word, unknown_idf)
            })
            .collect();

        let normal: Vec<usize> = match labels {
            Some(labels) => (0..n_texts)
                .filter(|&r| !labels[r])
                .chain(n_texts..texts.len())
                .collect(),
            None => (0..texts.len()).collect(),
        };
        let all_rows = Array2::from_shape_vec((texts.len(), N_STRUCTURAL), structural.concat())
            .map_err(|e| Error::invalid_input(format!("cannot shape the features: {e}")))?;
        let anomaly_rows = all_rows.select(Axis(0), &normal);
        let seed = |offset: u64| self.random_state.map(|s| s.wrapping_add(offset));
        let isolation_params = IsolationForestParams {
            random_state: seed(0).or(self.isolation.random_state),
            n_jobs: self.n_jobs,
            ..self.isolation.clone()
        };
        let isolation = isolation_params.fit(Matrix::Dense(anomaly_rows.view()))?;
        let training_scores = isolation.score_samples(Matrix::Dense(anomaly_rows.view()))?;
        let mut risk = RiskScorer::fit(self.risk, &training_scores)?;
        let stats = (0..N_STRUCTURAL)
            .into_par_iter()
            .map(|f| feature_stats(anomaly_rows.column(f).to_vec()))
            .collect();

        let forest = match labels {
            Some(labels) => {
                // How well anomaly alone separates the labeled lines (out of sample for the
                // malicious ones) decides its weight in risk.
                let labeled_rows = all_rows.slice_axis(Axis(0), (..n_texts).into());
                let scores = isolation.score_samples(Matrix::Dense(labeled_rows))?;
                let auc = crate::metrics::roc_auc(&scores, labels).unwrap_or(0.5);
                risk = risk.with_anomaly_weight(auc);

                let x = combined_matrix(&tfidf_rows, &structural[..n_texts]);
                let y: Vec<i64> = labels.iter().map(|&l| i64::from(l)).collect();
                let forest_params = RandomForestParams {
                    random_state: seed(1).or(self.forest.random_state),
                    n_jobs: self.n_jobs,
                    ..self.forest.clone()
                };
                Some(forest_params.fit(Matrix::Sparse(&x), &y)?)
            }
            None => None,
        };
        Ok(Detector {
            params: self.clone(),
            tfidf,
            isolation,
            forest,
            risk,
            stats,
            unknown_idf,
            is_word,
            n_samples: n_texts,
            n_malicious: labels.map_or(0, |l| l.iter().filter(|&&m| m).count()),
        })
    }
}

/// The structural features of `text`, whose vocabulary terms are `terms`: one definition for
/// fitting and scoring.
fn line_structure(
    text: &str,
    terms: impl Iterator<Item = u32>,
    tfidf: &TfidfVectorizer,
    is_word: &[bool],
    unknown_idf: f64,
) -> [f64; N_STRUCTURAL] {
    let rarities = terms
        .filter(|&c| is_word[c as usize])
        .map(|c| tfidf.idf()[c as usize]);
    let mut structural = [0.0; N_STRUCTURAL];
    structural_features(text, rarities, unknown_idf, &mut structural);
    structural
}

fn is_word(tfidf: &TfidfVectorizer) -> Vec<bool> {
    tfidf
        .feature_names()
        .iter()
        .map(|term| !term.chars().any(|c| c.is_ascii_digit()))
        .collect()
}

fn feature_stats(mut values: Vec<f64>) -> FeatureStats {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    let spread = (at(0.75) - at(0.25)).max(at(0.95) - at(0.05)).max(1e-3);
    FeatureStats {
        median: at(0.5),
        spread,
    }
}

/// TF-IDF columns followed by the structural columns.
fn combined_matrix(tfidf_rows: &CsrMatrix, structural: &[[f64; N_STRUCTURAL]]) -> CsrMatrix {
    let n_terms = tfidf_rows.n_cols();
    let rows = structural
        .iter()
        .enumerate()
        .map(|(r, s)| {
            let (cols, vals) = tfidf_rows.row(r);
            let mut row: Vec<(u32, f64)> = cols.iter().copied().zip(vals.iter().copied()).collect();
            row.extend(
                s.iter()
                    .enumerate()
                    .filter(|(_, v)| **v != 0.0)
                    .map(|(f, &v)| ((n_terms + f) as u32, v)),
            );
            row
        })
        .collect();
    CsrMatrix::from_sorted_rows(n_terms + N_STRUCTURAL, rows)
}

impl Detector {
    /// Number of classifier columns: vocabulary terms then structural features.
    fn n_columns(&self) -> usize {
        self.tfidf.n_features() + N_STRUCTURAL
    }

    /// The settings it was fitted with.
    pub fn params(&self) -> &DetectorParams {
        &self.params
    }

    /// Sets the number of threads [`Detector::score`] uses (`None`: the current rayon pool).
    /// Where a model runs decides this, not the settings it was trained with.
    pub fn set_n_jobs(&mut self, n_jobs: Option<usize>) {
        self.params.n_jobs = n_jobs;
    }

    /// The fitted vectorizer.
    pub fn vectorizer(&self) -> &TfidfVectorizer {
        &self.tfidf
    }

    /// The anomaly model (over structural features).
    pub fn isolation_forest(&self) -> &IsolationForest {
        &self.isolation
    }

    /// The classifier, when the detector was fitted with labels.
    pub fn classifier(&self) -> Option<&RandomForestClassifier> {
        self.forest.as_ref()
    }

    /// The risk scorer.
    pub fn risk_scorer(&self) -> &RiskScorer {
        &self.risk
    }

    /// Whether a risk makes a threat (`risk >= 10 * threshold`).
    pub fn is_threat(&self, risk: f64) -> bool {
        self.risk.is_threat(risk)
    }

    /// Number of training lines (the `texts` of the fit, not its background lines) and how
    /// many of them were labeled malicious.
    pub fn training_size(&self) -> (usize, usize) {
        (self.n_samples, self.n_malicious)
    }

    /// Scores `texts` in parallel (on the current rayon pool, or `n_jobs` threads when set).
    ///
    /// Lines are scored in blocks: each model walks its trees once per block rather than once
    /// per line, which keeps the trees in cache. Same scores as [`Detector::score_one`].
    pub fn score<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Vec<Score> {
        with_threads(self.params.n_jobs, || {
            texts
                .par_chunks(CHUNK)
                .flat_map_iter(|chunk| {
                    with_scratch(|scratch| {
                        let mut out = Vec::with_capacity(chunk.len());
                        for block in chunk.chunks(ANOMALY_BLOCK) {
                            self.score_block(block, scratch, &mut out);
                        }
                        out
                    })
                })
                .collect()
        })
    }

    /// Scores up to [`ANOMALY_BLOCK`] lines into `out`.
    fn score_block<S: AsRef<str>>(&self, texts: &[S], scratch: &mut Scratch, out: &mut Vec<Score>) {
        let b = &mut scratch.block;
        b.structural.clear();
        b.term_ends.clear();
        b.terms.clear();
        let mut signatures = [None; ANOMALY_BLOCK];
        for (r, text) in texts.iter().enumerate() {
            let (structural, signature) =
                self.line_features(text.as_ref(), &mut scratch.decoded, &mut scratch.terms);
            signatures[r] = signature;
            b.structural.extend(structural.map(|v| v as f32));
            b.terms
                .extend(scratch.terms.iter().map(|&(c, v)| (c, v as f32)));
            b.term_ends.push(b.terms.len());
        }
        let n = texts.len();
        let mut raw_anomaly = [0.0; ANOMALY_BLOCK];
        self.isolation
            .score_rows(&b.structural, &mut raw_anomaly[..n]);
        let mut start = 0;
        for (r, &end) in b.term_ends.iter().enumerate() {
            let p = self.forest.as_ref().map(|forest| {
                let structural = &b.structural[r * N_STRUCTURAL..(r + 1) * N_STRUCTURAL];
                let terms = b.terms[start..end].iter().copied();
                self.classify(forest, terms, structural, &mut scratch.row)
            });
            start = end;
            out.push(
                self.risk
                    .score(raw_anomaly[r], p)
                    .with_signature(signatures[r]),
            );
        }
    }

    /// Scores one line on the calling thread, reusing per-thread buffers (no allocation once
    /// warm).
    pub fn score_one(&self, text: &str) -> Score {
        with_scratch(|scratch| self.score_with(text, scratch))
    }

    /// The line's terms (into `terms`), structural features and strongest signature; the
    /// features see the line decoded (into `decoded`) when the detector decodes.
    fn line_features(
        &self,
        text: &str,
        decoded: &mut String,
        terms: &mut Vec<(u32, f64)>,
    ) -> ([f64; N_STRUCTURAL], Option<AttackClass>) {
        let text = truncate(text, self.params.max_line_bytes);
        let signatures = Signatures::shared();
        let (text, signature) = match (self.params.decode, self.params.signatures) {
            (false, false) => (text, None),
            (false, true) => (text, signatures.strongest(text)),
            (true, with_signatures) => {
                let signature = signatures.scan(text, Some(decoded));
                (decoded.as_str(), signature.filter(|_| with_signatures))
            }
        };
        self.tfidf.transform_into(text, terms);
        let terms = terms.iter().map(|&(c, _)| c);
        let structural = line_structure(text, terms, &self.tfidf, &self.is_word, self.unknown_idf);
        (structural, signature)
    }

    /// The classifier's malicious probability of a line from its terms and structural
    /// features.
    fn classify(
        &self,
        forest: &RandomForestClassifier,
        terms: impl Iterator<Item = (u32, f32)>,
        structural: &[f32],
        scratch: &mut RowScratch,
    ) -> f64 {
        let n_terms = self.tfidf.n_features() as u32;
        let row = terms.chain((n_terms..).zip(structural.iter().copied()));
        let mut proba = [0.0; 2];
        forest.proba_sparse(row, scratch, &mut proba);
        proba[1]
    }

    /// Fills `scratch` with the line's features; returns the raw anomaly score and the
    /// strongest signature.
    fn featurize(&self, text: &str, scratch: &mut Scratch) -> (f64, Option<AttackClass>) {
        let (structural, signature) =
            self.line_features(text, &mut scratch.decoded, &mut scratch.terms);
        scratch.structural = structural;
        scratch.structural_f32 = scratch.structural.map(|v| v as f32);
        (self.isolation.score_row(&scratch.structural_f32), signature)
    }

    /// The classifier's malicious probability for the featurized line in `scratch` (`None`
    /// without a classifier).
    fn malicious_probability(&self, scratch: &mut Scratch) -> Option<f64> {
        let forest = self.forest.as_ref()?;
        let terms = scratch.terms.iter().map(|&(c, v)| (c, v as f32));
        Some(self.classify(forest, terms, &scratch.structural_f32, &mut scratch.row))
    }

    fn score_with(&self, text: &str, scratch: &mut Scratch) -> Score {
        let (raw_anomaly, signature) = self.featurize(text, scratch);
        let p = self.malicious_probability(scratch);
        self.risk.score(raw_anomaly, p).with_signature(signature)
    }

    /// Explains a line's score: its terms ranked by how much each raises the malicious
    /// probability (the probability drop when the term is removed), the structural statistics
    /// furthest from the training data, and which model fired.
    pub fn explain(&self, text: &str) -> Explanation {
        let mut scratch = Scratch::default();
        let score = self.score_with(text, &mut scratch);
        let threshold = self.risk.params().threshold;
        let fired = match (
            score.anomaly >= threshold,
            score.malicious_probability >= threshold,
        ) {
            (true, true) => Fired::Both,
            (true, false) => Fired::Anomaly,
            (false, true) => Fired::Classifier,
            (false, false) => Fired::None,
        };

        let terms = scratch.terms.clone();
        let mut top_terms: Vec<TermContribution> = terms
            .iter()
            .map(|&(c, weight)| {
                let contribution = if self.forest.is_some() {
                    scratch.terms.retain(|&(t, _)| t != c);
                    let without = self.malicious_probability(&mut scratch).unwrap_or(0.0);
                    scratch.terms.clone_from(&terms);
                    score.malicious_probability - without
                } else {
                    0.0
                };
                TermContribution {
                    term: self.tfidf.feature_names()[c as usize].clone(),
                    weight,
                    contribution,
                }
            })
            .collect();
        top_terms.sort_by(|a, b| {
            b.contribution
                .total_cmp(&a.contribution)
                .then(b.weight.total_cmp(&a.weight))
        });
        top_terms.truncate(10);

        let mut unusual_features: Vec<UnusualFeature> = self
            .stats
            .iter()
            .zip(scratch.structural)
            .zip(NAMES)
            .map(|((stats, value), name)| UnusualFeature {
                feature: name.to_string(),
                value,
                typical: stats.median,
                deviation: (value - stats.median).abs() / stats.spread,
            })
            .filter(|f| f.deviation >= 2.0)
            .collect();
        unusual_features.sort_by(|a, b| b.deviation.total_cmp(&a.deviation));
        unusual_features.truncate(5);

        let signatures = if self.params.signatures {
            let text = truncate(text, self.params.max_line_bytes);
            Signatures::shared().matches(text)
        } else {
            Vec::new()
        };
        Explanation {
            score,
            fired,
            top_terms,
            unusual_features,
            signatures,
        }
    }
}

impl Artifact for Detector {
    const KIND: &'static str = "detector";

    fn params_json(&self) -> serde_json::Value {
        let mut params = serde_json::to_value(&self.params).unwrap_or_default();
        params["decode"] = self.params.decode.into();
        params["signatures"] = self.params.signatures.into();
        params
    }

    fn read_header_settings(&mut self, header: &crate::ArtifactHeader) {
        let setting = |name: &str| header.params.get(name).and_then(serde_json::Value::as_bool);
        self.params.decode = setting("decode").unwrap_or(false);
        self.params.signatures = setting("signatures").unwrap_or(true);
    }

    fn metrics_json(&self) -> serde_json::Value {
        serde_json::json!({ "n_samples": self.n_samples, "n_malicious": self.n_malicious })
    }

    fn n_features(&self) -> usize {
        self.n_columns()
    }

    fn after_load(&mut self) -> Result<()> {
        self.params
            .validate()
            .map_err(|e| Error::invalid_model(e.to_string()))?;
        self.tfidf.after_load()?;
        self.is_word = is_word(&self.tfidf);
        self.isolation.after_load()?;
        self.risk.after_load()?;
        if self.isolation.n_features() != N_STRUCTURAL {
            return Err(Error::invalid_model(format!(
                "the anomaly model has {} structural features but this build computes \
                 {N_STRUCTURAL}: the detector was saved by another soc-core version; retrain it",
                self.isolation.n_features()
            )));
        }
        if self.stats.len() != N_STRUCTURAL
            || self
                .stats
                .iter()
                .any(|s| !s.median.is_finite() || s.spread.is_nan() || s.spread <= 0.0)
            || !self.unknown_idf.is_finite()
        {
            return Err(Error::invalid_model("inconsistent structural statistics"));
        }
        if let Some(forest) = &mut self.forest {
            forest.after_load()?;
            if forest.n_features() != self.tfidf.n_features() + N_STRUCTURAL
                || forest.classes() != [0, 1]
            {
                return Err(Error::invalid_model(
                    "the classifier does not match the vectorizer (features or classes)",
                ));
            }
        }
        Ok(())
    }
}

impl_artifact_methods!(Detector);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoring_sees_the_structure_training_saw() {
        // Tokens with digits are left out of term rarity: in training as in scoring.
        let lines: Vec<String> = (0..300)
            .map(|i| format!("session {i} opened for user u{} port {}", i % 7, 1000 + i))
            .collect();
        let params = DetectorParams {
            random_state: Some(1),
            ..Default::default()
        };
        let d = params.fit(&lines, None).unwrap();
        let mut terms = Vec::new();
        let mut decoded = String::new();
        let scored: Vec<[f64; N_STRUCTURAL]> = lines
            .iter()
            .map(|l| d.line_features(l, &mut decoded, &mut terms).0)
            .collect();
        for (f, stats) in d.stats.iter().enumerate() {
            let values = scored.iter().map(|s| s[f]).collect();
            assert_eq!(feature_stats(values), *stats, "{}", NAMES[f]);
        }
    }
}
