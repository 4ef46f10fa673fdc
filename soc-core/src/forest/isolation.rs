//! Isolation forest (Liu, Ting & Zhou, 2008) with scikit-learn's semantics.
//!
//! Each tree is grown on `max_samples` rows drawn without replacement (with replacement when
//! `bootstrap`), optionally on a random subset of the features. At every node one feature is
//! picked uniformly among the features that are *not constant* on the node's samples, and a
//! threshold uniformly in `[min, max)` of its values there; samples with `x <= threshold` go
//! left. Growth stops at depth `ceil(log2(max_samples))`, at a single sample, or when every
//! feature is constant. A leaf stores `depth + c(n)`, `n` being its number of training samples
//! and `c` the average path length of an unsuccessful BST search
//! ([`average_path_length`]), so a sample's path length is the value of the leaf it reaches.
//!
//! Sparse input is handled without densifying: a node's non-constant features are found from
//! its rows' non-zero entries only (never by scanning every feature), and dense input goes
//! through the same code, so a dense matrix and its CSR form give the identical forest.
//!
//! **Sign convention.** [`IsolationForest::score_samples`] returns the paper's anomaly score
//! `a(x) = 2^(−E[h(x)] / c(max_samples))` in `(0, 1]`: HIGHER means MORE anomalous.
//! scikit-learn's `score_samples` returns `−a(x)`. [`IsolationForest::decision_function`] and
//! [`IsolationForest::predict`] keep scikit-learn's sign: `decision_function = −a(x) − offset`,
//! negative for outliers, and `predict` is `-1` for outliers, `1` for inliers.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::tree::{Tree, TreeBuilder};
use super::{MaxFeatures, average_path_length, with_threads};
use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::model::{Artifact, impl_artifact_methods};

/// scikit-learn's `FEATURE_THRESHOLD`: a feature whose range on a node is at most this (in
/// single precision) counts as constant there.
const FEATURE_THRESHOLD: f32 = 1e-7;

/// Largest `n_jobs` accepted (a hostile artifact must not make us spawn a million threads).
pub(crate) const MAX_JOBS: usize = 4096;

/// Rows scored per parallel task.
const SCORE_CHUNK: usize = 256;

/// Number of rows each tree is grown on, as scikit-learn's `max_samples`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum MaxSamples {
    /// `min(256, n_samples)`.
    Auto,
    /// Exactly this many rows (at least 1). More than `n_samples` is clamped to `n_samples`
    /// (scikit-learn does the same, with a warning).
    Count(usize),
    /// `floor(fraction * n_samples)` rows, `0 < fraction <= 1`; must come to at least 1.
    Fraction(f64),
}

/// Expected share of outliers in the training data, as scikit-learn's `contamination`; it sets
/// the [`offset`](IsolationForest::offset) that [`predict`](IsolationForest::predict) cuts at.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Contamination {
    /// The paper's cut: `offset = −0.5`, i.e. outlier when `a(x) > 0.5`.
    Auto,
    /// A fraction in `(0, 0.5]`: the offset is that percentile of the training scores
    /// (scikit-learn's sign, numpy's linear interpolation).
    Fraction(f64),
}

/// Hyperparameters of an [`IsolationForest`], with scikit-learn's names and defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IsolationForestParams {
    /// Number of trees (default 100).
    pub n_estimators: usize,
    /// Rows per tree (default [`MaxSamples::Auto`]).
    pub max_samples: MaxSamples,
    /// Features drawn (without replacement) for each tree (default [`MaxFeatures::All`]).
    pub max_features: MaxFeatures,
    /// Expected outlier share (default [`Contamination::Auto`]).
    pub contamination: Contamination,
    /// Draw each tree's rows with replacement (default `false`).
    pub bootstrap: bool,
    /// Seed; `None` draws a fresh random seed, as scikit-learn does.
    pub random_state: Option<u64>,
    /// Threads for fitting and scoring: `None` = all cores, `Some(n)` = `n` threads.
    pub n_jobs: Option<usize>,
}

impl Default for IsolationForestParams {
    fn default() -> Self {
        IsolationForestParams {
            n_estimators: 100,
            max_samples: MaxSamples::Auto,
            max_features: MaxFeatures::All,
            contamination: Contamination::Auto,
            bootstrap: false,
            random_state: None,
            n_jobs: None,
        }
    }
}

impl IsolationForestParams {
    fn validate(&self) -> Result<()> {
        if self.n_estimators == 0 {
            return Err(Error::invalid_param("n_estimators", "must be at least 1"));
        }
        match self.max_samples {
            MaxSamples::Count(0) => {
                return Err(Error::invalid_param("max_samples", "must be at least 1"));
            }
            MaxSamples::Fraction(f) if !(f > 0.0 && f <= 1.0) => {
                return Err(Error::invalid_param(
                    "max_samples",
                    format!("a fraction must be in (0, 1], got {f}"),
                ));
            }
            _ => {}
        }
        if let Contamination::Fraction(c) = self.contamination
            && !(c > 0.0 && c <= 0.5)
        {
            return Err(Error::invalid_param(
                "contamination",
                format!("must be in (0, 0.5], got {c}"),
            ));
        }
        // Checks Count(0) and fractions out of range.
        self.max_features.resolve(1)?;
        if matches!(self.n_jobs, Some(n) if n > MAX_JOBS) {
            return Err(Error::invalid_param(
                "n_jobs",
                format!("must be at most {MAX_JOBS}"),
            ));
        }
        Ok(())
    }

    /// Rows per tree for `n_samples` training rows.
    fn resolve_max_samples(&self, n_samples: usize) -> Result<usize> {
        let m = match self.max_samples {
            MaxSamples::Auto => n_samples.min(256),
            MaxSamples::Count(c) => c.min(n_samples),
            MaxSamples::Fraction(f) => (f * n_samples as f64) as usize,
        };
        if m == 0 {
            return Err(Error::invalid_param(
                "max_samples",
                format!("resolves to 0 rows for {n_samples} samples"),
            ));
        }
        Ok(m)
    }

    /// Fits a forest on `x` (dense or CSR, finite values, at least one row).
    pub fn fit(&self, x: Matrix<'_>) -> Result<IsolationForest> {
        self.validate()?;
        x.validate()?;
        let (n_samples, n_features) = (x.n_rows(), x.n_cols());
        if n_features == 0 {
            return Err(Error::invalid_input("the input has no features"));
        }
        if n_features >= u32::MAX as usize {
            return Err(Error::invalid_input(format!(
                "{n_features} features is more than the supported {}",
                u32::MAX - 1
            )));
        }
        let max_samples = self.resolve_max_samples(n_samples)?;
        let n_tree_features = self.max_features.resolve(n_features)?;
        let max_depth = (max_samples.max(2) as f64).log2().ceil() as usize;

        // Every random draw of a tree comes from its own seed, drawn here, sequentially.
        let seed = self.random_state.unwrap_or_else(rand::random::<u64>);
        let mut master = ChaCha8Rng::seed_from_u64(seed);
        let seeds: Vec<u64> = (0..self.n_estimators).map(|_| master.random()).collect();

        let spec = GrowSpec {
            x,
            n_samples,
            n_features,
            n_tree_features,
            max_samples,
            max_depth,
            bootstrap: self.bootstrap,
        };
        let trees: Vec<Tree> = with_threads(self.n_jobs, || {
            seeds
                .par_iter()
                .map_init(
                    || Scratch::new(n_features),
                    |scratch, &s| spec.grow(s, scratch),
                )
                .collect()
        });

        let mut forest = IsolationForest {
            params: self.clone(),
            trees,
            n_features,
            max_samples,
            offset: -0.5,
            scoring: Scoring::default(),
        };
        forest.scoring = Scoring::new(&forest.trees, forest.max_samples);
        if let Contamination::Fraction(c) = self.contamination {
            let mut s: Vec<f64> = forest.score_unchecked(x).into_iter().map(|a| -a).collect();
            forest.offset = numpy_percentile(&mut s, 100.0 * c);
        }
        Ok(forest)
    }
}

/// A fitted isolation forest.
///
/// [`score_samples`](Self::score_samples) is the paper's anomaly score, HIGHER = MORE
/// anomalous (scikit-learn's `score_samples` is its negative); `decision_function` and
/// `predict` keep scikit-learn's sign (negative / `-1` = outlier).
///
/// ```
/// use ndarray::array;
/// use soc_core::{IsolationForestParams, Matrix};
///
/// let x = array![[0.0, 0.1], [0.1, 0.0], [0.05, 0.05], [0.1, 0.1], [5.0, 5.0]];
/// let forest = IsolationForestParams { random_state: Some(0), ..Default::default() }
///     .fit(Matrix::from(&x))?;
/// let scores = forest.score_samples(Matrix::from(&x))?;
/// assert!(scores[4] > scores[0]); // the far point is the most anomalous
/// assert_eq!(forest.predict(Matrix::from(&x))?[4], -1);
/// # Ok::<(), soc_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IsolationForest {
    params: IsolationForestParams,
    trees: Vec<Tree>,
    n_features: usize,
    max_samples: usize,
    offset: f64,
    /// Scoring layout derived from `trees`, rebuilt after loading.
    #[serde(skip)]
    scoring: Scoring,
}

impl IsolationForest {
    /// Assembles a forest from trees whose single leaf value is the path length
    /// `depth + c(n_leaf_samples)` (as scikit-learn's decision-path score computes it), e.g.
    /// imported from scikit-learn. `trees.len()` must equal `params.n_estimators`.
    #[allow(dead_code)] // for the scikit-learn importer
    pub(crate) fn from_parts(
        trees: Vec<Tree>,
        n_features: usize,
        max_samples: usize,
        offset: f64,
        params: IsolationForestParams,
    ) -> Result<Self> {
        let mut f = IsolationForest {
            params,
            trees,
            n_features,
            max_samples,
            offset,
            scoring: Scoring::default(),
        };
        f.after_load()?;
        Ok(f)
    }

    /// The paper's anomaly score `a(x) = 2^(−E[h(x)] / c(max_samples))` of every row, in
    /// `(0, 1]`: HIGHER = MORE anomalous (scikit-learn's `score_samples` is `−a(x)`).
    pub fn score_samples(&self, x: Matrix<'_>) -> Result<Vec<f64>> {
        x.validate_for(self.n_features)?;
        Ok(self.score_unchecked(x))
    }

    /// scikit-learn's `decision_function`: `−a(x) − offset`; negative = outlier.
    pub fn decision_function(&self, x: Matrix<'_>) -> Result<Vec<f64>> {
        let mut s = self.score_samples(x)?;
        for v in &mut s {
            *v = -*v - self.offset;
        }
        Ok(s)
    }

    /// `-1` for outliers (`decision_function < 0`), `1` for inliers.
    pub fn predict(&self, x: Matrix<'_>) -> Result<Vec<i64>> {
        Ok(self
            .decision_function(x)?
            .into_iter()
            .map(|d| if d < 0.0 { -1 } else { 1 })
            .collect())
    }

    /// scikit-learn's `offset_`: `−0.5` for [`Contamination::Auto`], else the training-score
    /// percentile (scikit-learn's sign).
    pub fn offset(&self) -> f64 {
        self.offset
    }

    /// Rows each tree was grown on (scikit-learn's `max_samples_`).
    pub fn max_samples(&self) -> usize {
        self.max_samples
    }

    /// Number of input features.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Number of trees.
    pub fn n_estimators(&self) -> usize {
        self.trees.len()
    }

    /// The hyperparameters the forest was fitted with.
    pub fn params(&self) -> &IsolationForestParams {
        &self.params
    }

    /// The trees; each leaf holds one value, the path length `depth + c(n)`.
    #[allow(dead_code)] // for the scikit-learn exporter and the detector's explanations
    pub(crate) fn trees(&self) -> &[Tree] {
        &self.trees
    }

    /// Anomaly score `a(x)` of one dense `f32` row of length [`n_features`](Self::n_features).
    #[inline]
    pub(crate) fn score_row(&self, x: &[f32]) -> f64 {
        let sum = if self.scoring.flat_nodes.is_empty() {
            self.trees.iter().map(|t| t.leaf_values(t.leaf(x))[0]).sum()
        } else if self.n_features <= BLOCK_MAX_FEATURES {
            self.scoring.path_length_sum::<true>(x)
        } else {
            self.scoring.path_length_sum::<false>(x)
        };
        self.score_from_sum(sum)
    }

    /// Anomaly scores `a(x)` of `out.len()` dense `f32` rows laid end to end in `xs`, as
    /// [`score_row`](Self::score_row) gives them, walking each tree once for all rows when
    /// there are few features.
    pub(crate) fn score_rows(&self, xs: &[f32], out: &mut [f64]) {
        let p = self.n_features;
        if self.scoring.flat_nodes.is_empty() || p > BLOCK_MAX_FEATURES {
            for (s, x) in out.iter_mut().zip(xs.chunks_exact(p)) {
                *s = self.score_row(x);
            }
            return;
        }
        self.scoring.path_length_sums(&xs[..out.len() * p], p, out);
        for s in out.iter_mut() {
            *s = self.score_from_sum(*s);
        }
    }

    /// `a(x)` from the sum over the trees of the path lengths of `x`.
    #[inline]
    fn score_from_sum(&self, sum: f64) -> f64 {
        let norm = self.scoring.norm;
        if norm > 0.0 {
            (-sum / norm).exp2()
        } else {
            // max_samples = 1: c = 0 and every path is 0; scikit-learn takes the ratio as 1.
            0.5
        }
    }

    /// Scores validated input, in parallel over row chunks.
    fn score_unchecked(&self, x: Matrix<'_>) -> Vec<f64> {
        let mut out = vec![0.0; x.n_rows()];
        let p = self.n_features;
        // With few features, score a block of rows tree by tree: the tree stays in L1 while
        // all rows walk it, instead of every row pulling the whole forest through the cache.
        let by_tree = !self.scoring.flat_nodes.is_empty() && p <= BLOCK_MAX_FEATURES;
        with_threads(self.params.n_jobs, || {
            out.par_chunks_mut(SCORE_CHUNK)
                .enumerate()
                .for_each(|(chunk, scores)| {
                    let first = chunk * SCORE_CHUNK;
                    if by_tree {
                        let mut buf = vec![0f32; BLOCK_ROWS * p];
                        let mut sums = [0f64; BLOCK_ROWS];
                        for (b, block) in scores.chunks_mut(BLOCK_ROWS).enumerate() {
                            let start = first + b * BLOCK_ROWS;
                            let rows = block.len();
                            for (j, row) in buf.chunks_exact_mut(p).take(rows).enumerate() {
                                x.load_row(start + j, row);
                            }
                            self.scoring
                                .path_length_sums(&buf[..rows * p], p, &mut sums[..rows]);
                            for (j, (s, &sum)) in block.iter_mut().zip(&sums).enumerate() {
                                *s = self.score_from_sum(sum);
                                x.clear_row(start + j, &mut buf[j * p..(j + 1) * p]);
                            }
                        }
                    } else {
                        let mut buf = vec![0f32; p];
                        for (j, s) in scores.iter_mut().enumerate() {
                            let r = first + j;
                            x.load_row(r, &mut buf);
                            *s = self.score_row(&buf);
                            x.clear_row(r, &mut buf);
                        }
                    }
                });
        });
        out
    }
}

impl Artifact for IsolationForest {
    const KIND: &'static str = "isolation_forest";

    fn params_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or(serde_json::Value::Null)
    }

    fn metrics_json(&self) -> serde_json::Value {
        serde_json::json!({ "max_samples": self.max_samples, "offset": self.offset })
    }

    fn n_features(&self) -> usize {
        self.n_features
    }

    fn after_load(&mut self) -> Result<()> {
        self.params
            .validate()
            .map_err(|e| Error::invalid_model(format!("bad parameters: {e}")))?;
        if self.n_features == 0 || self.n_features >= u32::MAX as usize {
            return Err(Error::invalid_model(format!(
                "unsupported feature count {}",
                self.n_features
            )));
        }
        if self.max_samples == 0 {
            return Err(Error::invalid_model("max_samples must be at least 1"));
        }
        if !self.offset.is_finite() {
            return Err(Error::invalid_model("the offset is not finite"));
        }
        if self.trees.len() != self.params.n_estimators {
            return Err(Error::invalid_model(format!(
                "{} trees but n_estimators is {}",
                self.trees.len(),
                self.params.n_estimators
            )));
        }
        for (i, t) in self.trees.iter().enumerate() {
            t.validate(self.n_features)
                .map_err(|e| Error::invalid_model(format!("tree {i}: {e}")))?;
            if t.n_outputs() != 1 {
                return Err(Error::invalid_model(format!(
                    "tree {i} has {} values per leaf, expected 1",
                    t.n_outputs()
                )));
            }
            if (0..t.n_leaves()).any(|l| !t.leaf_values(l)[0].is_finite()) {
                return Err(Error::invalid_model(format!(
                    "tree {i} has a non-finite leaf value"
                )));
            }
        }
        self.scoring = Scoring::new(&self.trees, self.max_samples);
        Ok(())
    }
}

impl_artifact_methods!(IsolationForest);

/// Trees walked together, in lockstep, so that their independent walks overlap in the CPU.
const GROUP: usize = 8;

/// Rows scored together, tree by tree, when there are at most `BLOCK_MAX_FEATURES` features.
const BLOCK_ROWS: usize = 64;
const BLOCK_MAX_FEATURES: usize = 256;

/// Deepest tree scored branch-free; a forest with a deeper tree (only possible by import)
/// is scored with ordinary walks.
const MAX_FLAT_DEPTH: u32 = 64;

/// A node of the branch-free layout. A leaf loops on itself: its threshold is NaN, so every
/// comparison fails and the walk "goes right" to the leaf again. A walk can then take a fixed
/// number of steps (the tree's depth) with a conditional move instead of a branch per level:
/// the branches of isolation trees on dense data are unpredictable and cost more than the
/// extra steps.
#[derive(Clone, Copy, Debug)]
struct FlatNode {
    feature: u32,
    threshold: f32,
    right: u32,
}

/// Bitwise, so that leaves (NaN thresholds) compare equal to themselves.
impl PartialEq for FlatNode {
    fn eq(&self, o: &Self) -> bool {
        self.feature == o.feature
            && self.threshold.to_bits() == o.threshold.to_bits()
            && self.right == o.right
    }
}

/// Everything scoring derives from the trees: never serialized, rebuilt by
/// [`Scoring::new`].
#[derive(Clone, Debug, Default, PartialEq)]
struct Scoring {
    /// `n_trees * c(max_samples)`.
    norm: f64,
    /// All trees' nodes, indices absolute; empty when the trees are too deep to walk this way.
    flat_nodes: Vec<FlatNode>,
    /// Path length at each leaf of `flat_nodes` (0 at splits).
    flat_values: Vec<f64>,
    /// Root of each tree in `flat_nodes`.
    roots: Vec<u32>,
    /// Steps that bring every tree of a group (or a lone tree after the last full group) to
    /// its leaf: the largest depth among them.
    steps: Vec<u32>,
    /// Depth of each tree.
    depths: Vec<u32>,
}

impl Scoring {
    fn new(trees: &[Tree], max_samples: usize) -> Self {
        let mut s = Scoring {
            norm: trees.len() as f64 * average_path_length(max_samples),
            ..Default::default()
        };
        let depths: Vec<u32> = trees.iter().map(Tree::max_depth).collect();
        let total: usize = trees.iter().map(|t| t.nodes().len()).sum();
        if depths.iter().any(|&d| d > MAX_FLAT_DEPTH) || total >= u32::MAX as usize {
            return s;
        }
        s.flat_nodes.reserve(total);
        s.flat_values.reserve(total);
        for t in trees {
            let base = s.flat_nodes.len() as u32;
            s.roots.push(base);
            for (i, n) in t.nodes().iter().enumerate() {
                let me = base + i as u32;
                if n.feature == super::tree::LEAF {
                    s.flat_nodes.push(FlatNode {
                        feature: 0,
                        threshold: f32::NAN,
                        right: me,
                    });
                    s.flat_values.push(t.leaf_values(n.right as usize)[0]);
                } else {
                    s.flat_nodes.push(FlatNode {
                        feature: n.feature,
                        threshold: n.threshold,
                        right: base + n.right,
                    });
                    s.flat_values.push(0.0);
                }
            }
        }
        let full = trees.len() / GROUP * GROUP;
        for g in depths[..full].chunks(GROUP) {
            s.steps.push(g.iter().copied().max().unwrap_or(0));
        }
        s.steps.extend_from_slice(&depths[full..]);
        s.depths = depths;
        s
    }

    /// One step of a walk from node `i`: to the child `x` goes to, or from a leaf to itself.
    #[inline(always)]
    fn step(&self, x: &[f32], i: u32) -> u32 {
        let n = self.flat_nodes[i as usize];
        // A conditional move, not a branch: dense data would mispredict every other level.
        std::hint::select_unpredictable(
            x[n.feature as usize] <= n.threshold,
            i.wrapping_add(1),
            n.right,
        )
    }

    /// For each row of `xs` (`sums.len()` rows of `p` features), the sum over the trees, in
    /// tree order, of its path lengths (the same numbers as [`path_length_sum`](Self::path_length_sum)).
    fn path_length_sums(&self, xs: &[f32], p: usize, sums: &mut [f64]) {
        sums.fill(0.0);
        for (&root, &depth) in self.roots.iter().zip(&self.depths) {
            // GROUP rows in lockstep: independent walks that the CPU overlaps.
            let mut rows = xs.chunks_exact(GROUP * p);
            let mut row_sums = sums.chunks_exact_mut(GROUP);
            for (xg, sg) in (&mut rows).zip(&mut row_sums) {
                let mut at = [root; GROUP];
                for _ in 0..depth {
                    for (k, a) in at.iter_mut().enumerate() {
                        *a = self.step(&xg[k * p..(k + 1) * p], *a);
                    }
                }
                for (sum, a) in sg.iter_mut().zip(at) {
                    *sum += self.flat_values[a as usize];
                }
            }
            let rest = row_sums.into_remainder();
            for (sum, x) in rest.iter_mut().zip(rows.remainder().chunks_exact(p)) {
                let mut a = root;
                for _ in 0..depth {
                    a = self.step(x, a);
                }
                *sum += self.flat_values[a as usize];
            }
        }
    }

    /// Sum over the trees, in tree order, of the path length of `x`.
    ///
    /// `CMOV` picks the step: a conditional move for dense rows of few features, whose
    /// branches are unpredictable; a plain branch for wide sparse rows (mostly zeros), where
    /// it is well predicted and lets the CPU run ahead of the chain of loads.
    #[inline]
    fn path_length_sum<const CMOV: bool>(&self, x: &[f32]) -> f64 {
        let nodes = &self.flat_nodes[..];
        let step = |i: u32| {
            if CMOV {
                return self.step(x, i);
            }
            let n = nodes[i as usize];
            if x[n.feature as usize] <= n.threshold {
                i.wrapping_add(1)
            } else {
                n.right
            }
        };
        let n_groups = self.roots.len() / GROUP;
        let mut sum = 0.0;
        for (roots, &steps) in self.roots.chunks_exact(GROUP).zip(&self.steps) {
            let mut at = [0u32; GROUP];
            at.copy_from_slice(roots);
            for _ in 0..steps {
                for a in &mut at {
                    *a = step(*a);
                }
            }
            for a in at {
                sum += self.flat_values[a as usize];
            }
        }
        let rest = &self.roots[n_groups * GROUP..];
        for (&root, &steps) in rest.iter().zip(&self.steps[n_groups..]) {
            let mut a = root;
            for _ in 0..steps {
                a = step(a);
            }
            sum += self.flat_values[a as usize];
        }
        sum
    }
}

/// What every tree of one fit shares.
struct GrowSpec<'a> {
    x: Matrix<'a>,
    n_samples: usize,
    n_features: usize,
    n_tree_features: usize,
    max_samples: usize,
    max_depth: usize,
    bootstrap: bool,
}

/// Per-thread work arrays of length `n_features`, all zero between nodes.
struct Scratch {
    count: Vec<u32>,
    min: Vec<f32>,
    max: Vec<f32>,
    /// Feature mask of the current tree when features are subsampled.
    allowed: Vec<bool>,
    touched: Vec<u32>,
}

impl Scratch {
    fn new(n_features: usize) -> Self {
        Scratch {
            count: vec![0; n_features],
            min: vec![0.0; n_features],
            max: vec![0.0; n_features],
            allowed: Vec::new(),
            touched: Vec::new(),
        }
    }
}

/// The tree's training rows as a small CSR matrix of `f32` non-zeros (allowed features only).
struct LocalRows {
    indptr: Vec<usize>,
    cols: Vec<u32>,
    vals: Vec<f32>,
}

impl LocalRows {
    #[inline]
    fn row(&self, r: u32) -> (&[u32], &[f32]) {
        let (a, b) = (self.indptr[r as usize], self.indptr[r as usize + 1]);
        (&self.cols[a..b], &self.vals[a..b])
    }

    /// Value of feature `f` in local row `r` (0 when absent).
    #[inline]
    fn value(&self, r: u32, f: u32) -> f32 {
        let (cols, vals) = self.row(r);
        match cols.binary_search(&f) {
            Ok(k) => vals[k],
            Err(_) => 0.0,
        }
    }
}

impl GrowSpec<'_> {
    /// Copies the chosen rows, keeping the non-zero `f32` values of allowed features.
    fn local_rows(&self, rows: &[usize], allowed: Option<&[bool]>) -> LocalRows {
        let mut out = LocalRows {
            indptr: Vec::with_capacity(rows.len() + 1),
            cols: Vec::new(),
            vals: Vec::new(),
        };
        out.indptr.push(0);
        let ok = |c: usize| allowed.is_none_or(|a| a[c]);
        for &r in rows {
            match self.x {
                Matrix::Dense(d) => {
                    for (c, &v) in d.row(r).iter().enumerate() {
                        let v = v as f32;
                        if v != 0.0 && ok(c) {
                            out.cols.push(c as u32);
                            out.vals.push(v);
                        }
                    }
                }
                Matrix::Sparse(s) => {
                    let (cols, vals) = s.row(r);
                    for (&c, &v) in cols.iter().zip(vals) {
                        let v = v as f32;
                        if v != 0.0 && ok(c as usize) {
                            out.cols.push(c);
                            out.vals.push(v);
                        }
                    }
                }
            }
            out.indptr.push(out.cols.len());
        }
        out
    }

    /// Grows one tree from its seed.
    fn grow(&self, seed: u64, scratch: &mut Scratch) -> Tree {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Feature subset, as bagging draws it (without replacement).
        let subsample_features = self.n_tree_features < self.n_features;
        if subsample_features {
            scratch.allowed.clear();
            scratch.allowed.resize(self.n_features, false);
            for f in rand::seq::index::sample(&mut rng, self.n_features, self.n_tree_features) {
                scratch.allowed[f] = true;
            }
        }
        // Row subsample; with replacement, a row drawn twice is one sample of the tree (as
        // scikit-learn's sample weights make it).
        let mut rows: Vec<usize> = if self.bootstrap {
            (0..self.max_samples)
                .map(|_| rng.random_range(0..self.n_samples))
                .collect()
        } else {
            rand::seq::index::sample(&mut rng, self.n_samples, self.max_samples).into_vec()
        };
        rows.sort_unstable();
        rows.dedup();
        let allowed = subsample_features.then_some(&scratch.allowed[..]);
        let local = self.local_rows(&rows, allowed);
        build_tree(&local, rows.len(), self.max_depth, &mut rng, scratch)
    }
}

/// A node's candidate split feature with its value range on the node.
#[derive(Clone, Copy)]
struct Candidate {
    feature: u32,
    min: f32,
    max: f32,
}

/// Features that are not constant on the samples `idx` (sorted by feature), found from their
/// non-zero entries; a feature absent from some sample also takes the value 0 there.
fn non_constant(local: &LocalRows, idx: &[u32], scratch: &mut Scratch, out: &mut Vec<Candidate>) {
    out.clear();
    scratch.touched.clear();
    for &r in idx {
        let (cols, vals) = local.row(r);
        for (&c, &v) in cols.iter().zip(vals) {
            let k = c as usize;
            if scratch.count[k] == 0 {
                scratch.touched.push(c);
                scratch.min[k] = v;
                scratch.max[k] = v;
            } else {
                scratch.min[k] = scratch.min[k].min(v);
                scratch.max[k] = scratch.max[k].max(v);
            }
            scratch.count[k] += 1;
        }
    }
    scratch.touched.sort_unstable();
    let n = idx.len() as u32;
    for &c in &scratch.touched {
        let k = c as usize;
        let (mut lo, mut hi) = (scratch.min[k], scratch.max[k]);
        if scratch.count[k] < n {
            lo = lo.min(0.0);
            hi = hi.max(0.0);
        }
        scratch.count[k] = 0;
        if hi > lo + FEATURE_THRESHOLD {
            out.push(Candidate {
                feature: c,
                min: lo,
                max: hi,
            });
        }
    }
}

/// Grows one isolation tree on the `n` rows of `local`, depth-first with an explicit stack.
fn build_tree(
    local: &LocalRows,
    n: usize,
    max_depth: usize,
    rng: &mut ChaCha8Rng,
    scratch: &mut Scratch,
) -> Tree {
    let mut idx: Vec<u32> = (0..n as u32).collect();
    let mut builder = TreeBuilder::new(1);
    let mut candidates = Vec::new();
    // (start, end, depth, split whose right child this node is)
    let mut stack: Vec<(usize, usize, usize, Option<usize>)> = vec![(0, n, 0, None)];
    while let Some((start, end, depth, parent)) = stack.pop() {
        if let Some(p) = parent {
            builder.set_right(p);
        }
        let size = end - start;
        let leaf_value = || depth as f64 + average_path_length(size);
        if depth >= max_depth || size < 2 {
            builder.push_leaf(&[leaf_value()]);
            continue;
        }
        non_constant(local, &idx[start..end], scratch, &mut candidates);
        if candidates.is_empty() {
            builder.push_leaf(&[leaf_value()]);
            continue;
        }
        let c = candidates[rng.random_range(0..candidates.len())];
        let (lo, hi) = (f64::from(c.min), f64::from(c.max));
        let mut threshold = (hi - lo) * rng.random::<f64>() + lo;
        if threshold == hi {
            threshold = lo;
        }
        // Partition: values <= threshold first. `lo <= threshold < hi` keeps both sides
        // non-empty.
        let node = &mut idx[start..end];
        let mut mid = 0;
        for k in 0..node.len() {
            if f64::from(local.value(node[k], c.feature)) <= threshold {
                node.swap(mid, k);
                mid += 1;
            }
        }
        let me = builder.push_split(c.feature, threshold);
        stack.push((start + mid, end, depth + 1, Some(me)));
        stack.push((start, start + mid, depth + 1, None));
    }
    builder.finish()
}

/// `numpy.percentile(values, q)` with the default linear interpolation (sorts `values`).
fn numpy_percentile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    let q = q / 100.0;
    // numpy: n*q + (alpha + q*(1 - alpha - beta)) - 1 with alpha = beta = 1.
    let virtual_index = n as f64 * q + (1.0 - q) - 1.0;
    let (lo, hi) = if virtual_index >= (n - 1) as f64 {
        (n - 1, n - 1)
    } else if virtual_index < 0.0 {
        (0, 0)
    } else {
        let f = virtual_index.floor() as usize;
        (f, f + 1)
    };
    let gamma = virtual_index - virtual_index.floor();
    let (a, b) = (values[lo], values[hi]);
    let diff = b - a;
    if gamma >= 0.5 {
        b - diff * (1.0 - gamma)
    } else {
        a + diff * gamma
    }
}

#[cfg(test)]
mod tests {
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::sparse::CsrMatrix;

    fn params(seed: u64) -> IsolationForestParams {
        IsolationForestParams {
            random_state: Some(seed),
            n_jobs: Some(1),
            ..Default::default()
        }
    }

    /// A Gaussian-ish cluster of `n` rows around the origin plus, in the last row, a far point.
    fn cluster_with_outlier(n: usize, p: usize, seed: u64) -> Array2<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut x = Array2::from_shape_fn((n, p), |_| {
            (0..4).map(|_| rng.random::<f64>()).sum::<f64>() - 2.0
        });
        x.row_mut(n - 1).fill(8.0);
        x
    }

    /// Mostly-zero data (about `density` non-zeros), like TF-IDF.
    fn sparse_like(n: usize, p: usize, density: f64, seed: u64) -> Array2<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Array2::from_shape_fn((n, p), |_| {
            if rng.random::<f64>() < density {
                rng.random_range(1..5) as f64 * 0.25
            } else {
                0.0
            }
        })
    }

    #[test]
    fn obvious_outlier_scores_highest() {
        let x = cluster_with_outlier(300, 3, 1);
        let f = params(7).fit((&x).into()).unwrap();
        let s = f.score_samples((&x).into()).unwrap();
        assert!(s.iter().all(|&v| v > 0.0 && v <= 1.0));
        let top = s.iter().copied().fold(f64::MIN, f64::max);
        assert_eq!(s[299], top);
        assert!(s[299] > 0.6, "{}", s[299]);
        let mean_inlier = s[..299].iter().sum::<f64>() / 299.0;
        assert!(mean_inlier < 0.5, "{mean_inlier}");
        assert_eq!(f.max_samples(), 256);
        assert_eq!(f.n_estimators(), 100);
        assert_eq!(f.n_features(), 3);
        assert_eq!(f.offset(), -0.5);
        // decision_function and predict keep scikit-learn's sign.
        let d = f.decision_function((&x).into()).unwrap();
        assert!((d[299] - (-s[299] + 0.5)).abs() < 1e-15);
        let p = f.predict((&x).into()).unwrap();
        assert_eq!(p[299], -1);
    }

    #[test]
    fn leaves_hold_depth_plus_c_of_n() {
        // Identical rows: every feature is constant, each tree is one leaf holding c(psi).
        let x = Array2::from_elem((10, 2), 3.0);
        let f = params(0).fit((&x).into()).unwrap();
        for t in f.trees() {
            assert_eq!(t.nodes().len(), 1);
            assert_eq!(t.leaf_values(0)[0], average_path_length(10));
        }
        let s = f.score_samples((&x).into()).unwrap();
        assert!(s.iter().all(|&v| (v - 0.5).abs() < 1e-12)); // scikit-learn: -0.5

        // Two distinct points: depth limit 1, one split, leaves 1 + c(1) = 1 = c(2): score 0.5.
        let x = ndarray::array![[0.0], [1.0]];
        let f = params(0).fit((&x).into()).unwrap();
        for t in f.trees() {
            assert_eq!(t.nodes().len(), 3);
            assert_eq!(t.leaf_values(0)[0], 1.0);
            assert_eq!(t.leaf_values(1)[0], 1.0);
        }
        assert_eq!(f.score_samples((&x).into()).unwrap(), vec![0.5, 0.5]);

        // In general a leaf at depth d holds d + c(k) for a k in 1..=psi, and d <= ceil(log2 psi).
        let x = cluster_with_outlier(40, 2, 3);
        let f = params(1).fit((&x).into()).unwrap();
        let cs: Vec<f64> = (1..=40).map(average_path_length).collect();
        for t in f.trees() {
            let depths = t.node_depths();
            assert!(t.max_depth() <= 6);
            for (i, n) in t.nodes().iter().enumerate() {
                if n.feature == crate::forest::tree::LEAF {
                    let rest = t.leaf_values(n.right as usize)[0] - f64::from(depths[i]);
                    assert!(cs.iter().any(|&c| (c - rest).abs() < 1e-12), "{rest}");
                }
            }
        }
    }

    #[test]
    fn one_sample_scores_half() {
        let x = ndarray::array![[1.0, 2.0]];
        let f = params(0).fit((&x).into()).unwrap();
        assert_eq!(f.max_samples(), 1);
        assert_eq!(f.score_samples((&x).into()).unwrap(), vec![0.5]); // scikit-learn: -0.5
    }

    #[test]
    fn contamination_sets_the_predicted_share() {
        let x = cluster_with_outlier(400, 4, 5);
        let p = IsolationForestParams {
            contamination: Contamination::Fraction(0.1),
            ..params(3)
        };
        let f = p.fit((&x).into()).unwrap();
        let n_out = f
            .predict((&x).into())
            .unwrap()
            .iter()
            .filter(|&&v| v == -1)
            .count();
        assert!((38..=42).contains(&n_out), "{n_out}");
        let s = f.score_samples((&x).into()).unwrap();
        let mut neg: Vec<f64> = s.iter().map(|a| -a).collect();
        assert_eq!(f.offset(), numpy_percentile(&mut neg, 10.0));
    }

    #[test]
    fn percentile_matches_numpy() {
        let v = [0.3, 0.1, 0.7, 0.25, 0.9, 0.11, 0.5];
        // values from numpy.percentile
        assert_eq!(numpy_percentile(&mut v.clone(), 100.0 * 0.1), 0.106);
        assert_eq!(numpy_percentile(&mut v.clone(), 100.0 * 0.37), 0.261);
        assert_eq!(numpy_percentile(&mut v.clone(), 50.0), 0.3);
        assert_eq!(numpy_percentile(&mut v.clone(), 100.0), 0.9);
        assert_eq!(numpy_percentile(&mut [2.0], 30.0), 2.0);
    }

    #[test]
    fn dense_and_csr_give_the_same_forest() {
        let x = sparse_like(300, 40, 0.1, 9);
        let csr = CsrMatrix::from_dense(x.view());
        for p in [
            params(11),
            IsolationForestParams {
                max_features: MaxFeatures::Fraction(0.5),
                bootstrap: true,
                contamination: Contamination::Fraction(0.05),
                ..params(12)
            },
        ] {
            let a = p.fit((&x).into()).unwrap();
            let b = p.fit((&csr).into()).unwrap();
            assert_eq!(a, b);
            assert!(a.trees().iter().any(|t| t.nodes().len() > 3));
            assert_eq!(
                a.score_samples((&x).into()).unwrap(),
                a.score_samples((&csr).into()).unwrap()
            );
        }
    }

    #[test]
    fn sparse_splits_only_on_features_present_in_the_node() {
        // Feature 1 is 0.5 everywhere (constant), feature 2 is absent (0) everywhere: every
        // split must be on feature 0 or 3.
        let mut x = sparse_like(200, 4, 0.3, 2);
        x.column_mut(1).fill(0.5);
        x.column_mut(2).fill(0.0);
        let f = params(4)
            .fit((&CsrMatrix::from_dense(x.view())).into())
            .unwrap();
        for t in f.trees() {
            for n in t.nodes() {
                assert!(matches!(n.feature, 0 | 3 | crate::forest::tree::LEAF));
            }
        }
    }

    #[test]
    fn thread_count_does_not_change_the_model() {
        let x = sparse_like(500, 30, 0.2, 4);
        let csr = CsrMatrix::from_dense(x.view());
        let fit = |jobs| {
            IsolationForestParams {
                n_jobs: Some(jobs),
                max_features: MaxFeatures::Fraction(0.7),
                contamination: Contamination::Fraction(0.2),
                n_estimators: 40,
                ..params(21)
            }
            .fit((&csr).into())
            .unwrap()
        };
        let (a, b) = (fit(1), fit(2));
        assert_eq!(a.trees(), b.trees());
        assert_eq!(a.offset(), b.offset());
        assert_eq!(
            a.score_samples((&csr).into()).unwrap(),
            b.score_samples((&csr).into()).unwrap()
        );
        // Another seed gives another forest; no seed gives a fresh one.
        let c = IsolationForestParams {
            random_state: Some(22),
            ..a.params().clone()
        }
        .fit((&csr).into())
        .unwrap();
        assert_ne!(a.trees(), c.trees());
        let u = IsolationForestParams {
            n_estimators: 5,
            ..Default::default()
        };
        assert_ne!(
            u.fit((&csr).into()).unwrap().trees(),
            u.fit((&csr).into()).unwrap().trees()
        );
    }

    #[test]
    fn rejects_bad_input_and_parameters() {
        let x = cluster_with_outlier(20, 2, 0);
        let empty = Array2::<f64>::zeros((0, 2));
        assert!(matches!(
            params(0).fit((&empty).into()),
            Err(Error::InvalidInput(_))
        ));
        let mut nan = x.clone();
        nan[[3, 1]] = f64::NAN;
        assert!(matches!(
            params(0).fit((&nan).into()),
            Err(Error::InvalidInput(_))
        ));
        let f = params(0).fit((&x).into()).unwrap();
        let wide = Array2::<f64>::zeros((2, 3));
        assert!(matches!(
            f.score_samples((&wide).into()),
            Err(Error::ShapeMismatch { .. })
        ));
        assert!(f.predict((&nan).into()).is_err());
        let bad = [
            IsolationForestParams {
                n_estimators: 0,
                ..params(0)
            },
            IsolationForestParams {
                max_samples: MaxSamples::Count(0),
                ..params(0)
            },
            IsolationForestParams {
                max_samples: MaxSamples::Fraction(1.5),
                ..params(0)
            },
            IsolationForestParams {
                max_samples: MaxSamples::Fraction(0.01), // 0 rows of 20
                ..params(0)
            },
            IsolationForestParams {
                contamination: Contamination::Fraction(0.6),
                ..params(0)
            },
            IsolationForestParams {
                contamination: Contamination::Fraction(f64::NAN),
                ..params(0)
            },
            IsolationForestParams {
                max_features: MaxFeatures::Count(0),
                ..params(0)
            },
        ];
        for p in bad {
            assert!(
                matches!(p.fit((&x).into()), Err(Error::InvalidParameter { .. })),
                "{p:?}"
            );
        }
        // More rows than there are is clamped, as scikit-learn does.
        let f = IsolationForestParams {
            max_samples: MaxSamples::Count(1000),
            ..params(0)
        }
        .fit((&x).into())
        .unwrap();
        assert_eq!(f.max_samples(), 20);
    }

    #[test]
    fn artifact_round_trip_and_corruption() {
        let x = sparse_like(200, 12, 0.3, 8);
        let f = IsolationForestParams {
            n_estimators: 20,
            contamination: Contamination::Fraction(0.1),
            ..params(5)
        }
        .fit((&x).into())
        .unwrap();
        let bytes = f.to_bytes();
        let g = IsolationForest::from_bytes(&bytes).unwrap();
        assert_eq!(f, g);
        assert_eq!(
            f.score_samples((&x).into()).unwrap(),
            g.score_samples((&x).into()).unwrap()
        );
        assert!(IsolationForest::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        assert!(IsolationForest::from_bytes(&bytes[..10]).is_err());
        for at in [0, 9, 13, 40, bytes.len() / 2, bytes.len() - 3] {
            let mut b = bytes.clone();
            b[at] ^= 0x5a;
            assert!(IsolationForest::from_bytes(&b).is_err(), "flip at {at}");
        }

        // A well-formed file with a hostile tree (feature out of range) is rejected too.
        let mut bad = f.clone();
        let mut tb = TreeBuilder::new(1);
        let root = tb.push_split(99, 0.5);
        tb.push_leaf(&[1.0]);
        tb.set_right(root);
        tb.push_leaf(&[1.0]);
        bad.trees[3] = tb.finish();
        assert!(IsolationForest::from_bytes(&bad.to_bytes()).is_err());
        let mut bad = f.clone();
        bad.max_samples = 0;
        assert!(IsolationForest::from_bytes(&bad.to_bytes()).is_err());

        // from_parts validates the same way.
        let trees = f.trees().to_vec();
        let ok =
            IsolationForest::from_parts(trees.clone(), 12, 200, f.offset(), f.params().clone())
                .unwrap();
        assert_eq!(ok, f);
        assert!(
            IsolationForest::from_parts(trees.clone(), 3, 200, -0.5, f.params().clone()).is_err()
        );
        assert!(IsolationForest::from_parts(trees, 12, 200, f64::NAN, f.params().clone()).is_err());
    }

    /// The plain walk of every tree, for comparison with the branch-free layout.
    fn reference_score(f: &IsolationForest, x: &Array2<f64>) -> Vec<f64> {
        x.rows()
            .into_iter()
            .map(|r| {
                let row: Vec<f32> = r.iter().map(|&v| v as f32).collect();
                let sum: f64 = f.trees().iter().map(|t| t.predict(&row)[0]).sum();
                (-sum / (f.n_estimators() as f64 * average_path_length(f.max_samples()))).exp2()
            })
            .collect()
    }

    #[test]
    fn branch_free_walk_equals_tree_walk() {
        for (x, n_estimators) in [
            (cluster_with_outlier(300, 5, 2), 100),
            (sparse_like(300, 20, 0.2, 3), 13),
            (cluster_with_outlier(50, 2, 4), 3),
            // more than BLOCK_MAX_FEATURES: scored row by row
            (sparse_like(203, BLOCK_MAX_FEATURES + 40, 0.05, 5), 21),
        ] {
            let f = IsolationForestParams {
                n_estimators,
                ..params(6)
            }
            .fit((&x).into())
            .unwrap();
            assert!(!f.scoring.flat_nodes.is_empty());
            let expected = reference_score(&f, &x);
            assert_eq!(f.score_samples((&x).into()).unwrap(), expected);
            for (r, e) in x.rows().into_iter().zip(&expected) {
                let row: Vec<f32> = r.iter().map(|&v| v as f32).collect();
                assert_eq!(f.score_row(&row), *e);
            }
        }
        // A tree deeper than the branch-free limit (only possible by import) is walked plainly.
        let mut b = TreeBuilder::new(1);
        let splits: Vec<usize> = (0..100).map(|k| b.push_split(0, f64::from(k))).collect();
        b.push_leaf(&[100.0]);
        for (k, s) in splits.into_iter().enumerate().rev() {
            b.set_right(s);
            b.push_leaf(&[k as f64 + 1.0]);
        }
        let p = IsolationForestParams {
            n_estimators: 1,
            ..params(0)
        };
        let f = IsolationForest::from_parts(vec![b.finish()], 1, 256, -0.5, p).unwrap();
        assert!(f.scoring.flat_nodes.is_empty());
        let x = ndarray::array![[-1.0], [0.5], [50.5], [1000.0]];
        assert_eq!(
            f.score_samples((&x).into()).unwrap(),
            reference_score(&f, &x)
        );
    }

    #[test]
    fn public_types_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<IsolationForest>();
        check::<IsolationForestParams>();
    }
}
