//! Random forest classifier with scikit-learn's semantics (`RandomForestClassifier` with the
//! gini criterion and its best splitter), grown sparse-aware.
//!
//! # What is reproduced
//!
//! Bootstrap samples are integer sample weights from `n` draws with replacement (samples drawn
//! zero times take no part in the tree); `class_weight = Balanced` multiplies them by
//! `n / (n_classes * count(class))`. Inputs are rounded to `f32`. At each node the splitter
//! visits random features without replacement until it has visited `max_features` features
//! *and* found at least one that is not constant in the node (a feature is constant when
//! `max - min <= 1e-7` over the node's samples); for every non-constant visited feature it
//! scans all thresholds between consecutive sorted values that differ by more than `1e-7`, at
//! the midpoint (computed in `f64`), keeping the split of largest weighted gini decrease (the
//! first one on ties), subject to `min_samples_leaf`. A node is a leaf when it is pure
//! (impurity `<= f64::EPSILON`), has fewer than `min_samples_split` or `2 * min_samples_leaf`
//! samples, reached `max_depth`, or has no valid split. Leaves store weighted class fractions;
//! `predict_proba` is their mean over trees. The random number streams differ from numpy's, so
//! the trees are not the same as scikit-learn's, but they are drawn from the same distribution.
//!
//! # Sparse-aware feature visiting
//!
//! On TF-IDF input almost every feature is zero on all of a node's samples, and trees are
//! thousands of levels deep (most splits peel a few samples off a large node). Visiting features
//! one by one as scikit-learn does costs `O(max_features)` column look-ups per node; gathering
//! a node's non-zeros costs `O(nnz(node))`. Each node uses whichever is cheaper, and both give
//! the same distribution of evaluated features:
//!
//! * **Draw** (large nodes): draw `max_features` distinct features uniformly (partial
//!   Fisher–Yates), and for each extract its values in the node from the shared CSC copy
//!   (a sample is in the node when its position lies in the node's range); evaluate those that
//!   are non-constant. If none was, scikit-learn keeps drawing until it meets a non-constant
//!   feature, which is a uniform pick among the node's non-constant features: gather them (next
//!   point) and pick one.
//! * **Gather** (small nodes): bucket the node's non-zeros by feature (`O(nnz(node))`), which
//!   gives the set `K` of the node's non-constant features (every other feature is all-zero or
//!   constant). Out of `F` features, visiting `max_features` without replacement meets a
//!   hypergeometric number of members of `K`, a uniform subset of `K`: we draw it directly
//!   (selection sampling over `K` when `|K| <= max_features`, otherwise `max_features`
//!   sequential draws that decide how many members are met, then a partial Fisher–Yates over
//!   `K`). When no member is met, one uniform member is evaluated, as above. The evaluated
//!   features are visited in random order, so ties are broken as randomly as scikit-learn's.
//!
//! Node statistics (class counts and weights, number of non-zeros) are passed from parent to
//! child, and a split moves only the samples whose value differs from the implicit zeros'
//! side (found through the split feature's non-zeros), so a node costs roughly the size of its
//! evaluated features, not of its samples. Trees are grown with an explicit stack (no
//! recursion), in pre-order, straight into the flat [`Tree`] layout.
//!
//! # Prediction
//!
//! Most forests are walked from a compact copy ([`CompactForest`]): 8-byte nodes, leaf values
//! inline, features renumbered to those the splits use, so that a detector's trees stay in a
//! core's cache. Trees grown on text can instead hold chains of thousands of splits that send
//! zeros left (the large node keeps going left while a few samples are peeled off to the
//! right); such forests are walked over their original nodes with a [`ChainIndex`], which
//! crosses a chain by looking at the row's own non-zero features only. Both give exactly the
//! plain walk's result.

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::tree::{Node, Tree, TreeBuilder};
use super::{MAX_JOBS, MaxFeatures, with_threads};
use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::model::{Artifact, impl_artifact_methods};

/// scikit-learn's `FEATURE_THRESHOLD`: values closer than this are not split apart, and a
/// feature whose range in a node is within it is constant there.
const FEATURE_THRESHOLD: f32 = 1e-7;
/// scikit-learn's `EPSILON` (`np.finfo('double').eps`): a node this pure is a leaf.
const EPSILON: f64 = f64::EPSILON;
/// Position marker of a training row that is not in the tree being grown.
const ABSENT: u32 = u32::MAX;

/// How classes are weighted, as scikit-learn's `class_weight`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClassWeight {
    /// `n_samples / (n_classes * count(class))`, computed on the whole training set
    /// (scikit-learn's `"balanced"`).
    Balanced,
}

/// Hyperparameters of [`RandomForestClassifier`], with scikit-learn's names and defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RandomForestParams {
    /// Number of trees (default 100).
    pub n_estimators: usize,
    /// Maximum tree depth; `None` grows until leaves are pure (default).
    pub max_depth: Option<usize>,
    /// Minimum number of samples a node needs to be split (default 2, at least 2).
    pub min_samples_split: usize,
    /// Minimum number of samples in each leaf (default 1).
    pub min_samples_leaf: usize,
    /// Features considered per split (default [`MaxFeatures::Sqrt`]).
    pub max_features: MaxFeatures,
    /// Grow each tree on a bootstrap sample (default `true`).
    pub bootstrap: bool,
    /// Class weighting (default `None`).
    pub class_weight: Option<ClassWeight>,
    /// Seed; `None` draws a fresh one, as scikit-learn does.
    pub random_state: Option<u64>,
    /// Threads: `None` = all cores, `Some(n)` = `n` threads. Does not change the model.
    pub n_jobs: Option<usize>,
}

impl Default for RandomForestParams {
    fn default() -> Self {
        RandomForestParams {
            n_estimators: 100,
            max_depth: None,
            min_samples_split: 2,
            min_samples_leaf: 1,
            max_features: MaxFeatures::Sqrt,
            bootstrap: true,
            class_weight: None,
            random_state: None,
            n_jobs: None,
        }
    }
}

impl RandomForestParams {
    fn validate(&self) -> Result<()> {
        if self.n_estimators == 0 {
            return Err(Error::invalid_param("n_estimators", "must be at least 1"));
        }
        if self.max_depth == Some(0) {
            return Err(Error::invalid_param("max_depth", "must be at least 1"));
        }
        if self.min_samples_split < 2 {
            return Err(Error::invalid_param(
                "min_samples_split",
                format!("must be at least 2, got {}", self.min_samples_split),
            ));
        }
        if self.min_samples_leaf == 0 {
            return Err(Error::invalid_param(
                "min_samples_leaf",
                "must be at least 1",
            ));
        }
        self.max_features.resolve(1)?;
        // Scoring a loaded model uses its stored thread count: a hostile file must not make
        // every call spawn tens of thousands of threads.
        if matches!(self.n_jobs, Some(n) if n > MAX_JOBS) {
            return Err(Error::invalid_param(
                "n_jobs",
                format!("must be at most {MAX_JOBS}"),
            ));
        }
        Ok(())
    }

    /// Fits a forest on `x` (`n_samples × n_features`, dense or CSR) and labels `y` (any
    /// integers; the classes are their sorted distinct values, a single class is allowed).
    pub fn fit(&self, x: Matrix<'_>, y: &[i64]) -> Result<RandomForestClassifier> {
        self.validate()?;
        x.validate()?;
        let (n_rows, n_features) = (x.n_rows(), x.n_cols());
        if y.len() != n_rows {
            return Err(Error::ShapeMismatch {
                what: "labels",
                expected: n_rows,
                got: y.len(),
            });
        }
        if n_features == 0 {
            return Err(Error::invalid_input("the input has no features"));
        }
        let nnz = match x {
            Matrix::Dense(_) => n_rows.saturating_mul(n_features),
            Matrix::Sparse(s) => s.nnz(),
        };
        if n_rows >= ABSENT as usize || n_features > u32::MAX as usize || nnz > u32::MAX as usize {
            return Err(Error::invalid_input(format!(
                "{n_rows} × {n_features} with {nnz} non-zeros is larger than supported \
                 (2^32 - 1 rows, columns and non-zeros)"
            )));
        }
        let max_features = self.max_features.resolve(n_features)?;

        let mut classes = y.to_vec();
        classes.sort_unstable();
        classes.dedup();
        let n_classes = classes.len();
        // binary_search cannot fail: every label is in `classes`.
        let y_idx: Vec<u32> = y
            .iter()
            .map(|v| classes.binary_search(v).unwrap_or(0) as u32)
            .collect();
        let mut class_counts = vec![0usize; n_classes];
        for &c in &y_idx {
            class_counts[c as usize] += 1;
        }
        let class_w: Vec<f64> = match self.class_weight {
            None => vec![1.0; n_classes],
            Some(ClassWeight::Balanced) => class_counts
                .iter()
                .map(|&k| n_rows as f64 / (n_classes as f64 * k as f64))
                .collect(),
        };

        let data = TrainData::new(x, y_idx, n_classes, class_w);
        let cfg = GrowConfig {
            max_depth: self.max_depth.unwrap_or(usize::MAX),
            min_samples_split: self.min_samples_split,
            min_samples_leaf: self.min_samples_leaf,
            max_features,
            bootstrap: self.bootstrap,
            // Expected cost of visiting `max_features` columns of the CSC copy.
            draw_cost: max_features as f64 * data.col_entries.len() as f64 / n_features as f64,
        };

        let seed = self.random_state.unwrap_or_else(rand::random::<u64>);
        let mut master = ChaCha8Rng::seed_from_u64(seed);
        let seeds: Vec<u64> = (0..self.n_estimators).map(|_| master.random()).collect();
        let grown: Vec<(Tree, Vec<(u32, f64)>)> = with_threads(self.n_jobs, || {
            seeds
                .par_iter()
                .map(|&s| Grower::new(&data, &cfg, s).grow())
                .collect()
        });

        let mut importances = vec![0.0f64; n_features];
        let mut trees = Vec::with_capacity(grown.len());
        for (tree, contributions) in grown {
            if tree.nodes().len() > 1 {
                let total: f64 = contributions.iter().map(|c| c.1).sum();
                if total > 0.0 {
                    for (f, v) in contributions {
                        importances[f as usize] += v / total;
                    }
                }
            }
            trees.push(tree);
        }
        let total: f64 = importances.iter().sum();
        if total > 0.0 {
            importances.iter_mut().for_each(|v| *v /= total);
        }
        Ok(RandomForestClassifier {
            params: self.clone(),
            classes,
            n_features,
            trees,
            feature_importances: importances,
            walk: Walk::default(),
        }
        .indexed())
    }
}

/// A fitted random forest classifier. Build it with [`RandomForestParams::fit`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RandomForestClassifier {
    params: RandomForestParams,
    classes: Vec<i64>,
    n_features: usize,
    trees: Vec<Tree>,
    feature_importances: Vec<f64>,
    /// How rows walk the trees (derived from `trees`, rebuilt after loading).
    #[serde(skip)]
    walk: Walk,
}

/// Rows per parallel prediction task.
const PREDICT_CHUNK: usize = 256;

impl RandomForestClassifier {
    /// Assembles a forest from trees (each with `classes.len()` values per leaf, class
    /// fractions), checking that everything is consistent. Used by the scikit-learn importer.
    #[allow(dead_code)] // called by the importer, written in parallel
    pub(crate) fn from_parts(
        trees: Vec<Tree>,
        classes: Vec<i64>,
        n_features: usize,
        feature_importances: Vec<f64>,
        params: RandomForestParams,
    ) -> Result<Self> {
        let mut model = RandomForestClassifier {
            params,
            classes,
            n_features,
            trees,
            feature_importances,
            walk: Walk::default(),
        };
        model.check()?;
        Ok(model.indexed())
    }

    fn check(&mut self) -> Result<()> {
        self.params
            .validate()
            .map_err(|e| Error::invalid_model(format!("bad parameters: {e}")))?;
        if self.classes.is_empty() || self.classes.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Error::invalid_model(
                "classes must be non-empty, sorted and distinct",
            ));
        }
        if self.n_features == 0 || self.n_features > u32::MAX as usize {
            return Err(Error::invalid_model(format!(
                "unsupported number of features {}",
                self.n_features
            )));
        }
        if self.trees.is_empty() || self.trees.len() != self.params.n_estimators {
            return Err(Error::invalid_model(format!(
                "{} trees for n_estimators = {}",
                self.trees.len(),
                self.params.n_estimators
            )));
        }
        for (i, tree) in self.trees.iter().enumerate() {
            tree.validate(self.n_features)
                .map_err(|e| Error::invalid_model(format!("tree {i}: {e}")))?;
            if tree.n_outputs() != self.classes.len() {
                return Err(Error::invalid_model(format!(
                    "tree {i} has {} values per leaf for {} classes",
                    tree.n_outputs(),
                    self.classes.len()
                )));
            }
            if (0..tree.n_leaves()).any(|l| tree.leaf_values(l).iter().any(|v| !v.is_finite())) {
                return Err(Error::invalid_model(format!(
                    "tree {i} has a non-finite leaf value"
                )));
            }
        }
        if self.feature_importances.len() != self.n_features
            || self.feature_importances.iter().any(|v| !v.is_finite())
        {
            return Err(Error::invalid_model(
                "feature importances must be n_features finite numbers",
            ));
        }
        Ok(())
    }

    /// Class probabilities, `(n_samples, n_classes)`, columns in [`classes`](Self::classes)
    /// order: the mean over trees of the leaf's weighted class fractions.
    pub fn predict_proba(&self, x: Matrix<'_>) -> Result<Array2<f64>> {
        x.validate_for(self.n_features)?;
        let (n, c) = (x.n_rows(), self.classes.len());
        let mut out = vec![0.0f64; n * c];
        with_threads(self.params.n_jobs, || {
            out.par_chunks_mut(c * PREDICT_CHUNK)
                .enumerate()
                .for_each(|(chunk, block)| {
                    let mut scratch = RowScratch::default();
                    for (j, row_out) in block.chunks_mut(c).enumerate() {
                        let r = chunk * PREDICT_CHUNK + j;
                        match x {
                            Matrix::Sparse(s) => {
                                let (cols, vals) = s.row(r);
                                let row = cols.iter().zip(vals).map(|(&f, &v)| (f, v as f32));
                                self.proba_sparse(row, &mut scratch, row_out);
                            }
                            Matrix::Dense(d) => {
                                let row = d.row(r);
                                let row =
                                    row.iter().enumerate().map(|(f, &v)| (f as u32, v as f32));
                                self.proba_sparse(row, &mut scratch, row_out);
                            }
                        }
                    }
                });
        });
        Array2::from_shape_vec((n, c), out)
            .map_err(|e| Error::invalid_input(format!("cannot shape the output: {e}")))
    }

    /// The most probable class of each sample (the first one on ties, as numpy's argmax).
    pub fn predict(&self, x: Matrix<'_>) -> Result<Vec<i64>> {
        let proba = self.predict_proba(x)?;
        Ok(proba
            .rows()
            .into_iter()
            .map(|row| {
                let mut best = 0;
                for (k, &p) in row.iter().enumerate() {
                    if p > row[best] {
                        best = k;
                    }
                }
                self.classes[best]
            })
            .collect())
    }

    /// Class probabilities of one dense row by walking every tree node by node: the
    /// reference the chain walk is tested against.
    #[cfg(test)]
    pub(crate) fn proba_row(&self, x: &[f32], out: &mut [f64]) {
        out.fill(0.0);
        for tree in &self.trees {
            for (o, v) in out.iter_mut().zip(tree.predict(x)) {
                *o += v;
            }
        }
        let n = self.trees.len() as f64;
        out.iter_mut().for_each(|o| *o /= n);
    }

    /// Class probabilities of one row given by its `(feature, value)` pairs (any order; every
    /// other feature is zero), into `out` (one per class). Same result as walking every tree
    /// node by node.
    pub(crate) fn proba_sparse(
        &self,
        row: impl Iterator<Item = (u32, f32)>,
        scratch: &mut RowScratch,
        out: &mut [f64],
    ) {
        out.fill(0.0);
        match &self.walk {
            Walk::Compact(forest) => {
                scratch.reset(forest.n_local);
                for (f, v) in row {
                    let l = forest.local[f as usize];
                    if l != UNUSED && v != 0.0 {
                        scratch.values[l as usize] = v;
                        scratch.set.push(u32::from(l));
                    }
                }
                forest.sum_leaves(&scratch.values, out);
            }
            Walk::Chains(chains) => {
                scratch.reset(self.n_features);
                for (f, v) in row {
                    if v != 0.0 {
                        scratch.values[f as usize] = v;
                        scratch.set.push(f);
                    }
                }
                self.sum_leaves(
                    chains,
                    &scratch.values,
                    &scratch.set,
                    &mut scratch.cursors,
                    out,
                );
            }
        }
        for &f in &scratch.set {
            scratch.values[f as usize] = 0.0;
        }
        scratch.set.clear();
        let n = self.trees.len() as f64;
        out.iter_mut().for_each(|o| *o /= n);
    }

    fn indexed(mut self) -> Self {
        self.walk = Walk::new(&self.trees, self.n_features);
        self
    }

    /// The classes, sorted: column order of [`predict_proba`](Self::predict_proba).
    pub fn classes(&self) -> &[i64] {
        &self.classes
    }

    /// Number of input features.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Impurity-based feature importances (mean decrease in impurity, normalized to sum 1 per
    /// tree and overall), as scikit-learn's `feature_importances_`.
    pub fn feature_importances(&self) -> &[f64] {
        &self.feature_importances
    }

    /// Number of trees.
    pub fn n_estimators(&self) -> usize {
        self.trees.len()
    }

    /// The hyperparameters the forest was fitted with.
    pub fn params(&self) -> &RandomForestParams {
        &self.params
    }

    /// Depth of the deepest tree (a lone leaf has depth 0).
    pub fn max_tree_depth(&self) -> usize {
        self.trees
            .iter()
            .map(|t| t.max_depth() as usize)
            .max()
            .unwrap_or(0)
    }

    /// Total number of nodes over all trees.
    pub fn n_nodes(&self) -> usize {
        self.trees.iter().map(|t| t.nodes().len()).sum()
    }

    #[allow(dead_code)] // read by the exporter, written in parallel
    pub(crate) fn trees(&self) -> &[Tree] {
        &self.trees
    }
}

/// How rows walk a fitted forest. Both give exactly the leaves of a plain walk.
#[derive(Clone, Debug, PartialEq)]
enum Walk {
    /// Compact nodes: for forests of moderately sized trees (the usual case).
    Compact(CompactForest),
    /// The original nodes plus a chain index: for forests with chains of thousands of nodes,
    /// or too large for compact nodes.
    Chains(ChainIndex),
}

impl Default for Walk {
    fn default() -> Self {
        Walk::Chains(ChainIndex::default())
    }
}

impl Walk {
    fn new(trees: &[Tree], n_features: usize) -> Self {
        let chains = ChainIndex::new(trees, n_features, MIN_CHAIN);
        if chains.has_chain.iter().any(|&c| c) {
            return Walk::Chains(chains);
        }
        match CompactForest::new(trees, n_features) {
            Some(compact) => Walk::Compact(compact),
            None => Walk::Chains(chains),
        }
    }
}

/// Compact feature id of an input feature no split tests; the feature of a leaf slot.
const UNUSED: u16 = u16::MAX;
/// Marks a pure leaf's slot (see [`CompactForest::slots`]).
const PURE: u32 = 1 << 31;

/// The whole forest in 8-byte slots, so that the trees of a typical detector fit in a core's
/// second-level cache: a walk of deep trees is a chain of dependent loads, and each one that
/// misses the cache costs tens of cycles. A leaf's values follow it, so reaching a leaf
/// brings them into the cache too. Features are renumbered to those the splits use (a text
/// forest uses a fraction of its vocabulary), so a row's values also sit in a small array.
#[derive(Clone, Debug, PartialEq)]
struct CompactForest {
    /// Every tree in pre-order, one after the other. A split is one slot: threshold (`f32`
    /// bits) in bits 0–31, compact feature id in 32–47, distance to its right child in 48–63
    /// (the left child is the next slot). A leaf is a slot with feature [`UNUSED`]: a pure
    /// leaf (value 1 for one class, 0 for the others, as most leaves of fully grown trees are)
    /// holds [`PURE`] plus the class in bits 0–31; any other is followed by one slot per
    /// class holding its value (`f64` bits).
    slots: Vec<u64>,
    /// First slot of each tree.
    roots: Vec<usize>,
    /// Compact id of each input feature, or [`UNUSED`].
    local: Vec<u16>,
    /// Number of compact ids.
    n_local: usize,
}

impl CompactForest {
    /// `None` when the forest does not fit: 65,535 features or more used, or a right child
    /// more than 65,535 slots away.
    fn new(trees: &[Tree], n_features: usize) -> Option<Self> {
        let mut local = vec![UNUSED; n_features];
        let mut n_local = 0usize;
        let mut slots = Vec::new();
        let mut roots = Vec::with_capacity(trees.len());
        let mut at = Vec::new();
        for tree in trees {
            let (nodes, c) = (tree.nodes(), tree.n_outputs());
            let root = slots.len();
            roots.push(root);
            // The class of a pure leaf (see `slots`).
            let pure_class = |n: &Node| {
                let values = tree.leaf_values(n.right as usize);
                let class = values.iter().position(|&v| v == 1.0)?;
                let others_zero = values.iter().filter(|&&v| v == 0.0).count() == c - 1;
                others_zero.then_some(class as u32)
            };
            // Slot of each node: a split or pure leaf takes one, another leaf one plus its
            // values.
            at.clear();
            let mut next = root;
            for n in nodes {
                at.push(next);
                next += match n.feature {
                    super::tree::LEAF if pure_class(n).is_none() => 1 + c,
                    _ => 1,
                };
            }
            for (i, n) in nodes.iter().enumerate() {
                if n.feature == super::tree::LEAF {
                    let leaf = u64::from(UNUSED) << 32;
                    match pure_class(n) {
                        Some(class) => slots.push(leaf | u64::from(PURE | class)),
                        None => {
                            slots.push(leaf);
                            let values = tree.leaf_values(n.right as usize);
                            slots.extend(values.iter().map(|v| v.to_bits()));
                        }
                    }
                    continue;
                }
                let id = &mut local[n.feature as usize];
                if *id == UNUSED {
                    *id = u16::try_from(n_local).ok().filter(|&l| l != UNUSED)?;
                    n_local += 1;
                }
                let right = u16::try_from(at[n.right as usize] - at[i]).ok()?;
                slots.push(
                    u64::from(n.threshold.to_bits())
                        | u64::from(*id) << 32
                        | u64::from(right) << 48,
                );
            }
        }
        Some(CompactForest {
            slots,
            roots,
            local,
            n_local,
        })
    }

    /// Adds the leaf values `x` (indexed by compact id) reaches in every tree to `out`.
    fn sum_leaves(&self, x: &[f32], out: &mut [f64]) {
        for &root in &self.roots {
            let mut i = root;
            loop {
                let slot = self.slots[i];
                let feature = (slot >> 32) as u16;
                if feature == UNUSED {
                    let leaf = slot as u32;
                    if leaf & PURE != 0 {
                        // Adding the zeros of the other classes would change nothing.
                        out[(leaf & !PURE) as usize] += 1.0;
                    } else {
                        let values = &self.slots[i + 1..i + 1 + out.len()];
                        for (o, &v) in out.iter_mut().zip(values) {
                            *o += f64::from_bits(v);
                        }
                    }
                    break;
                }
                i += if x[feature as usize] <= f32::from_bits(slot as u32) {
                    1
                } else {
                    (slot >> 48) as usize
                };
            }
        }
    }
}

/// Buffers of [`RandomForestClassifier::proba_sparse`], reused from row to row.
#[derive(Debug, Default)]
pub(crate) struct RowScratch {
    /// The row's values by (compact or input) feature; all zero between rows.
    values: Vec<f32>,
    /// Features set in `values`.
    set: Vec<u32>,
    cursors: Vec<(usize, usize)>,
}

impl RowScratch {
    /// Makes `values` all zeros of length `n` (it already is between rows of one forest).
    fn reset(&mut self, n: usize) {
        if self.values.len() != n {
            self.values = vec![0.0; n];
        }
    }
}

/// Shortest chain worth indexing: crossing a chain costs a lookup per non-zero feature of the
/// row, so shorter chains are faster to walk node by node.
const MIN_CHAIN: usize = 512;

/// Index of the forest's long chains. Trees grown on text are mostly chains of splits
/// `x[f] <= t` with `t >= 0` whose left child is the next node: a sparse row, zero on almost
/// every `f`, walks down thousands of them. For every chain of at least [`MIN_CHAIN`] such
/// nodes, a walk finds where the row leaves it from the row's own non-zero features: the
/// first chain node testing one of them with a value above the threshold (every other node
/// sends the row left). Chain nodes are listed per feature, sorted by (tree, node), so a row
/// reads only the lists of its own features, tree after tree.
#[derive(Clone, Debug, Default, PartialEq)]
struct ChainIndex {
    /// Per tree, per node: the node a row reaches by staying left through the chain that
    /// starts there, or `u32::MAX` when no long chain starts there.
    chain_end: Vec<Vec<u32>>,
    /// Whether a tree has any indexed chain (the others are walked node by node).
    has_chain: Vec<bool>,
    /// `occ[feat_ptr[f]..feat_ptr[f + 1]]`: the `(tree, node)` chain nodes testing `f`.
    feat_ptr: Vec<usize>,
    occ: Vec<(u32, u32)>,
}

impl ChainIndex {
    fn new(trees: &[Tree], n_features: usize, min_chain: usize) -> Self {
        let mut chain_end = Vec::with_capacity(trees.len());
        let mut has_chain = Vec::with_capacity(trees.len());
        let mut counts = vec![0usize; n_features + 1];
        let mut members: Vec<(u32, u32, u32)> = Vec::new();
        for (t, tree) in trees.iter().enumerate() {
            let nodes = tree.nodes();
            let zero_left =
                |i: usize| nodes[i].feature != super::tree::LEAF && nodes[i].threshold >= 0.0;
            let mut ends = vec![u32::MAX; nodes.len()];
            let mut i = 0;
            while i < nodes.len() {
                if !zero_left(i) {
                    i += 1;
                    continue;
                }
                let mut end = i;
                while end < nodes.len() && zero_left(end) {
                    end += 1;
                }
                if end - i >= min_chain {
                    ends[i] = end as u32;
                    for (k, node) in nodes.iter().enumerate().take(end).skip(i) {
                        let f = node.feature;
                        counts[f as usize + 1] += 1;
                        members.push((f, t as u32, k as u32));
                    }
                }
                i = end;
            }
            has_chain.push(ends.iter().any(|&e| e != u32::MAX));
            chain_end.push(ends);
        }
        for f in 0..n_features {
            counts[f + 1] += counts[f];
        }
        let mut cursor = counts.clone();
        let mut occ = vec![(0u32, 0u32); members.len()];
        // members are in (tree, node) order, so each feature's list comes out sorted.
        for (f, t, k) in members {
            occ[cursor[f as usize]] = (t, k);
            cursor[f as usize] += 1;
        }
        ChainIndex {
            chain_end,
            has_chain,
            feat_ptr: counts,
            occ,
        }
    }
}

impl RandomForestClassifier {
    /// Sum over trees of the leaf values `x` reaches (dense row, non-zeros among the sorted
    /// or unsorted `nz`), into `out`; `cursors` is scratch.
    fn sum_leaves(
        &self,
        index: &ChainIndex,
        x: &[f32],
        nz: &[u32],
        cursors: &mut Vec<(usize, usize)>,
        out: &mut [f64],
    ) {
        cursors.clear();
        cursors.extend(
            nz.iter()
                .map(|&f| (index.feat_ptr[f as usize], index.feat_ptr[f as usize + 1])),
        );
        for (t, tree) in self.trees.iter().enumerate() {
            if !index.has_chain[t] {
                for (o, v) in out.iter_mut().zip(tree.predict(x)) {
                    *o += v;
                }
                continue;
            }
            let t32 = t as u32;
            // The part of each feature's list that belongs to tree t.
            for c in cursors.iter_mut() {
                c.0 += index.occ[c.0..c.1].partition_point(|o| o.0 < t32);
            }
            let nodes = tree.nodes();
            let ends = &index.chain_end[t];
            let mut i = 0usize;
            let leaf = loop {
                let node = nodes[i];
                if node.feature == super::tree::LEAF {
                    break node.right as usize;
                }
                let end = ends[i];
                if end != u32::MAX {
                    let mut exit = end as usize;
                    for (c, &f) in cursors.iter().zip(nz) {
                        let v = x[f as usize];
                        let list = &index.occ[c.0..c.1];
                        let mut k = list.partition_point(|o| o.0 == t32 && (o.1 as usize) < i);
                        while k < list.len() && list[k].0 == t32 && (list[k].1 as usize) < exit {
                            let m = list[k].1 as usize;
                            if v > nodes[m].threshold {
                                exit = m;
                                break;
                            }
                            k += 1;
                        }
                    }
                    i = if exit == end as usize {
                        exit
                    } else {
                        nodes[exit].right as usize
                    };
                    continue;
                }
                i = if x[node.feature as usize] <= node.threshold {
                    i + 1
                } else {
                    node.right as usize
                };
            };
            for (o, v) in out.iter_mut().zip(tree.leaf_values(leaf)) {
                *o += v;
            }
        }
    }
}

impl Artifact for RandomForestClassifier {
    const KIND: &'static str = "random_forest_classifier";

    fn params_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or(serde_json::Value::Null)
    }

    fn metrics_json(&self) -> serde_json::Value {
        serde_json::json!({
            "n_classes": self.classes.len(),
            "n_nodes": self.n_nodes(),
        })
    }

    fn n_features(&self) -> usize {
        self.n_features
    }

    fn after_load(&mut self) -> Result<()> {
        self.check()?;
        self.walk = Walk::new(&self.trees, self.n_features);
        Ok(())
    }
}

impl_artifact_methods!(RandomForestClassifier);

/// The training set in the two layouts the growers read, shared by all trees.
struct TrainData {
    n_features: usize,
    n_classes: usize,
    /// CSR of the `f32`-rounded non-zeros.
    row_ptr: Vec<usize>,
    row_cols: Vec<u32>,
    row_vals: Vec<f32>,
    /// CSC of the same, `(row, value)`, sorted by value within a column (rows increasing
    /// among equal values), so that every tree's copy of a column comes out sorted.
    col_ptr: Vec<usize>,
    col_entries: Vec<(u32, f32)>,
    /// Class index of each row.
    y: Vec<u32>,
    /// Weight of each class.
    class_w: Vec<f64>,
}

impl TrainData {
    fn new(x: Matrix<'_>, y: Vec<u32>, n_classes: usize, class_w: Vec<f64>) -> Self {
        let (n_rows, n_features) = (x.n_rows(), x.n_cols());
        let mut row_ptr = Vec::with_capacity(n_rows + 1);
        let mut row_cols: Vec<u32> = Vec::new();
        let mut row_vals: Vec<f32> = Vec::new();
        row_ptr.push(0);
        for r in 0..n_rows {
            let mut push = |c: usize, v: f64| {
                let v = v as f32;
                if v != 0.0 {
                    row_cols.push(c as u32);
                    row_vals.push(v);
                }
            };
            match x {
                Matrix::Dense(d) => d.row(r).iter().enumerate().for_each(|(c, &v)| push(c, v)),
                Matrix::Sparse(s) => {
                    let (cols, vals) = s.row(r);
                    for (&c, &v) in cols.iter().zip(vals) {
                        push(c as usize, v);
                    }
                }
            }
            row_ptr.push(row_cols.len());
        }

        let mut col_ptr = vec![0usize; n_features + 1];
        for &c in &row_cols {
            col_ptr[c as usize + 1] += 1;
        }
        for i in 0..n_features {
            col_ptr[i + 1] += col_ptr[i];
        }
        let mut cursor = col_ptr.clone();
        let mut col_entries = vec![(0u32, 0.0f32); row_cols.len()];
        for r in 0..n_rows {
            for k in row_ptr[r]..row_ptr[r + 1] {
                let c = row_cols[k] as usize;
                col_entries[cursor[c]] = (r as u32, row_vals[k]);
                cursor[c] += 1;
            }
        }
        let mut columns = Vec::with_capacity(n_features);
        let mut rest = &mut col_entries[..];
        for f in 0..n_features {
            let (column, tail) = rest.split_at_mut(col_ptr[f + 1] - col_ptr[f]);
            columns.push(column);
            rest = tail;
        }
        // Stable: rows were filled in increasing order and stay so among equal values.
        columns
            .into_par_iter()
            .for_each(|column| column.sort_by(|a, b| a.1.total_cmp(&b.1)));
        TrainData {
            n_features,
            n_classes,
            row_ptr,
            row_cols,
            row_vals,
            col_ptr,
            col_entries,
            y,
            class_w,
        }
    }
}

/// What every grower of one fit shares.
struct GrowConfig {
    max_depth: usize,
    min_samples_split: usize,
    min_samples_leaf: usize,
    max_features: usize,
    bootstrap: bool,
    /// Expected number of CSC entries read when drawing `max_features` columns: nodes with
    /// fewer non-zeros than this gather their non-zeros instead.
    draw_cost: f64,
}

/// A node waiting on the stack; its class counts and weights are on parallel stacks.
struct Task {
    start: usize,
    end: usize,
    depth: usize,
    /// The split whose right child this node is.
    parent: Option<usize>,
    /// Number of non-zeros in the node's rows.
    nnz: usize,
}

/// The best split found so far at a node.
struct Best {
    proxy: f64,
    feature: u32,
    threshold: f64,
    /// The split feature's non-zeros in the node, `(value, row)`.
    entries: Vec<(f32, u32)>,
}

/// Class statistics of the node being split.
struct NodeStats<'s> {
    n: usize,
    n_c: &'s [usize],
    w_c: &'s [f64],
    w_total: f64,
}

/// Per-feature scan buffers.
struct ScanScratch {
    left_w: Vec<f64>,
    nz_w: Vec<f64>,
    nz_n: Vec<usize>,
}

/// Grows one tree.
struct Grower<'a> {
    data: &'a TrainData,
    cfg: &'a GrowConfig,
    rng: ChaCha8Rng,
    /// Sample weight of every training row (0 when not in this tree).
    weight: Vec<f64>,
    /// Rows in the tree; each node owns a contiguous range.
    samples: Vec<u32>,
    /// Position of each row in `samples`, [`ABSENT`] when not in the tree.
    pos: Vec<u32>,
    // Gathering a node's non-zeros by feature.
    slot: Vec<u32>,
    touched: Vec<u32>,
    offsets: Vec<usize>,
    entries: Vec<(f32, u32)>,
    candidates: Vec<u32>,
    selected: Vec<u32>,
    // Drawing features.
    /// `(feature, start, end)` of every column of `col`, permuted by the draws.
    perm: Vec<(u32, u32, u32)>,
    /// CSC of this tree's rows (built on the first drawing node).
    col: Vec<(u32, f32)>,
    /// `(feature, start, end)` of each drawn feature, ranges into `cur`.
    drawn: Vec<(u32, usize, usize)>,
    cur: Vec<(f32, u32)>,
    scan: ScanScratch,
    best: Best,
    /// `(feature, weighted impurity decrease)` of every split.
    contributions: Vec<(u32, f64)>,
}

fn gini(n_c: &[usize], w_c: &[f64], w_total: f64) -> f64 {
    if n_c.iter().filter(|&&k| k > 0).count() <= 1 {
        return 0.0;
    }
    let s: f64 = w_c.iter().map(|v| v * v).sum();
    1.0 - s / (w_total * w_total)
}

/// Whether a feature with non-zeros `vals` (the other samples of the `n` being zero) is
/// constant in the node, as scikit-learn decides it (`max <= min + FEATURE_THRESHOLD` in `f32`).
fn is_constant(vals: &[(f32, u32)], n: usize) -> bool {
    let Some(first) = vals.first() else {
        return true;
    };
    let (mut lo, mut hi) = if vals.len() < n {
        (0.0f32, 0.0f32)
    } else {
        (first.0, first.0)
    };
    for &(v, _) in vals {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    hi <= lo + FEATURE_THRESHOLD
}

/// scikit-learn's Gini "proxy improvement" of a split, `Σ l²/wl + Σ r²/wr`, from the left
/// child's class weights and the node's (larger is better; equal splits compare equal).
fn gini_proxy(left: impl Iterator<Item = f64>, totals: &[f64], wl: f64, wr: f64) -> f64 {
    let (mut sl, mut sr) = (0.0f64, 0.0f64);
    for (l, t) in left.zip(totals) {
        let r = t - l;
        sl += l * l;
        sr += r * r;
    }
    sl / wl + sr / wr
}

/// The threshold between two consecutive distinct `f32` values, as scikit-learn computes it
/// (the midpoint in `f64`, or the lower value when the midpoint rounds up to the upper one).
fn midpoint(lo: f32, hi: f32) -> f64 {
    let (lo, hi) = (f64::from(lo), f64::from(hi));
    let t = lo / 2.0 + hi / 2.0;
    if t >= hi { lo } else { t }
}

/// Scans every threshold of one non-constant feature (`vals`: its non-zeros in the node, sorted
/// here unless `sorted`; the node's other samples are zeros) and records it in `best` if it beats it.
#[allow(clippy::too_many_arguments)]
fn scan_feature(
    feature: u32,
    vals: &mut [(f32, u32)],
    node: &NodeStats<'_>,
    y: &[u32],
    weight: &[f64],
    min_samples_leaf: usize,
    s: &mut ScanScratch,
    best: &mut Best,
    sorted: bool,
) {
    if !sorted {
        vals.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    }
    debug_assert!(vals.windows(2).all(|w| w[0].0 <= w[1].0));
    let (n, len) = (node.n, vals.len());
    let n_zero = n - len;
    let has_zero = n_zero > 0;
    if len == 1 && has_zero {
        // The most common case on text: one sample has the feature. Same arithmetic as the
        // general scan below, without its set-up.
        let (v, row) = vals[0];
        let (class, w) = (y[row as usize] as usize, weight[row as usize]);
        let (lo, hi, nl) = if v < 0.0 {
            (v, 0.0, 1)
        } else {
            (0.0, v, n - 1)
        };
        if hi <= lo + FEATURE_THRESHOLD || nl < min_samples_leaf || n - nl < min_samples_leaf {
            return;
        }
        let left = |k: usize| -> f64 {
            let own = if k == class { w } else { 0.0 };
            if v < 0.0 {
                own
            } else if node.n_c[k] > usize::from(k == class) {
                node.w_c[k] - own
            } else {
                0.0
            }
        };
        let mut wl = 0.0f64;
        for k in 0..node.n_c.len() {
            wl += left(k);
        }
        let proxy = gini_proxy(
            (0..node.w_c.len()).map(left),
            node.w_c,
            wl,
            node.w_total - wl,
        );
        if proxy > best.proxy {
            best.proxy = proxy;
            best.feature = feature;
            best.threshold = midpoint(lo, hi);
            best.entries.clear();
            best.entries.push((v, row));
        }
        return;
    }
    let zero_at = vals.partition_point(|e| e.0 < 0.0);
    // Item i of the sorted sequence: the negatives, one block of zeros, the positives.
    let entry = |i: usize| -> usize { if has_zero && i > zero_at { i - 1 } else { i } };
    let value = |i: usize| -> f32 {
        if has_zero && i == zero_at {
            0.0
        } else {
            vals[entry(i)].0
        }
    };
    if has_zero {
        s.nz_w.fill(0.0);
        s.nz_n.fill(0);
        for &(_, r) in vals.iter() {
            let c = y[r as usize] as usize;
            s.nz_w[c] += weight[r as usize];
            s.nz_n[c] += 1;
        }
    }
    s.left_w.fill(0.0);
    let (mut wl, mut nl) = (0.0f64, 0usize);
    let n_items = len + usize::from(has_zero);
    let mut improved = false;
    for i in 0..n_items.saturating_sub(1) {
        if has_zero && i == zero_at {
            for c in 0..s.left_w.len() {
                if node.n_c[c] > s.nz_n[c] {
                    let zw = node.w_c[c] - s.nz_w[c];
                    s.left_w[c] += zw;
                    wl += zw;
                }
            }
            nl += n_zero;
        } else {
            let r = vals[entry(i)].1 as usize;
            let w = weight[r];
            s.left_w[y[r] as usize] += w;
            wl += w;
            nl += 1;
        }
        let (v, next) = (value(i), value(i + 1));
        if next <= v + FEATURE_THRESHOLD || nl < min_samples_leaf {
            continue;
        }
        if n - nl < min_samples_leaf {
            break;
        }
        let proxy = gini_proxy(s.left_w.iter().copied(), node.w_c, wl, node.w_total - wl);
        if proxy > best.proxy {
            best.proxy = proxy;
            best.feature = feature;
            best.threshold = midpoint(v, next);
            improved = true;
        }
    }
    if improved {
        best.entries.clear();
        best.entries.extend_from_slice(vals);
    }
}

impl<'a> Grower<'a> {
    fn new(data: &'a TrainData, cfg: &'a GrowConfig, seed: u64) -> Self {
        let n_rows = data.y.len();
        let c = data.n_classes;
        Grower {
            data,
            cfg,
            rng: ChaCha8Rng::seed_from_u64(seed),
            weight: vec![0.0; n_rows],
            samples: Vec::with_capacity(n_rows),
            pos: vec![ABSENT; n_rows],
            slot: vec![ABSENT; data.n_features],
            touched: Vec::new(),
            offsets: Vec::new(),
            entries: Vec::new(),
            candidates: Vec::new(),
            selected: Vec::new(),
            perm: Vec::new(),
            col: Vec::new(),
            drawn: Vec::new(),
            cur: Vec::new(),
            scan: ScanScratch {
                left_w: vec![0.0; c],
                nz_w: vec![0.0; c],
                nz_n: vec![0; c],
            },
            best: Best {
                proxy: f64::NEG_INFINITY,
                feature: 0,
                threshold: 0.0,
                entries: Vec::new(),
            },
            contributions: Vec::new(),
        }
    }

    fn row_len(&self, r: usize) -> usize {
        self.data.row_ptr[r + 1] - self.data.row_ptr[r]
    }

    fn grow(mut self) -> (Tree, Vec<(u32, f64)>) {
        let data = self.data;
        let n_rows = data.y.len();
        let c = data.n_classes;
        let mut draws = vec![0u32; n_rows];
        if self.cfg.bootstrap {
            for _ in 0..n_rows {
                draws[self.rng.random_range(0..n_rows)] += 1;
            }
        } else {
            draws.fill(1);
        }
        let mut root_n = vec![0usize; c];
        let mut root_w = vec![0.0f64; c];
        let mut root_nnz = 0usize;
        for (r, &k) in draws.iter().enumerate() {
            if k == 0 {
                continue;
            }
            let class = data.y[r] as usize;
            let w = f64::from(k) * data.class_w[class];
            self.weight[r] = w;
            self.pos[r] = self.samples.len() as u32;
            self.samples.push(r as u32);
            root_n[class] += 1;
            root_w[class] += w;
            root_nnz += self.row_len(r);
        }
        drop(draws);

        let mut builder = TreeBuilder::new(c);
        let mut tasks = vec![Task {
            start: 0,
            end: self.samples.len(),
            depth: 0,
            parent: None,
            nnz: root_nnz,
        }];
        let mut stack_n = root_n;
        let mut stack_w = root_w;
        let (mut node_n, mut node_w) = (vec![0usize; c], vec![0.0f64; c]);
        let (mut exc_n, mut exc_w) = (vec![0usize; c], vec![0.0f64; c]);
        let (mut oth_n, mut oth_w) = (vec![0usize; c], vec![0.0f64; c]);
        let mut leaf = vec![0.0f64; c];

        while let Some(task) = tasks.pop() {
            let base = stack_n.len() - c;
            node_n.copy_from_slice(&stack_n[base..]);
            node_w.copy_from_slice(&stack_w[base..]);
            stack_n.truncate(base);
            stack_w.truncate(base);
            if let Some(p) = task.parent {
                builder.set_right(p);
            }
            let (start, end) = (task.start, task.end);
            let n = end - start;
            let w_total: f64 = node_w.iter().sum();
            let impurity = gini(&node_n, &node_w, w_total);
            let is_leaf = task.depth >= self.cfg.max_depth
                || n < self.cfg.min_samples_split
                || n < 2 * self.cfg.min_samples_leaf
                || impurity <= EPSILON;
            let node = NodeStats {
                n,
                n_c: &node_n,
                w_c: &node_w,
                w_total,
            };
            if is_leaf || !self.find_split(start, end, task.nnz, &node) {
                for (l, w) in leaf.iter_mut().zip(&node_w) {
                    *l = w / w_total;
                }
                builder.push_leaf(&leaf);
                continue;
            }

            // Move the samples whose side differs from the zeros' side.
            let threshold = self.best.threshold;
            let zeros_left = 0.0 <= threshold;
            exc_n.fill(0);
            exc_w.fill(0.0);
            let mut exc_nnz = 0usize;
            let mut k = 0usize;
            for i in 0..self.best.entries.len() {
                let (v, r) = self.best.entries[i];
                if (f64::from(v) <= threshold) == zeros_left {
                    continue;
                }
                let r = r as usize;
                let target = if zeros_left { end - 1 - k } else { start + k };
                let p = self.pos[r] as usize;
                let other = self.samples[target];
                self.samples.swap(p, target);
                self.pos[other as usize] = p as u32;
                self.pos[r] = target as u32;
                k += 1;
                let class = data.y[r] as usize;
                exc_n[class] += 1;
                exc_w[class] += self.weight[r];
                exc_nnz += self.row_len(r);
            }
            for i in 0..c {
                oth_n[i] = node_n[i] - exc_n[i];
                oth_w[i] = if oth_n[i] == 0 {
                    0.0
                } else {
                    node_w[i] - exc_w[i]
                };
            }
            let oth_nnz = task.nnz - exc_nnz;
            let (n_left, l_n, l_w, r_n, r_w, l_nnz, r_nnz) = if zeros_left {
                (n - k, &oth_n, &oth_w, &exc_n, &exc_w, oth_nnz, exc_nnz)
            } else {
                (k, &exc_n, &exc_w, &oth_n, &oth_w, exc_nnz, oth_nnz)
            };
            debug_assert!(n_left > 0 && n_left < n);
            let wl: f64 = l_w.iter().sum();
            let wr: f64 = r_w.iter().sum();
            let decrease = w_total * impurity - wl * gini(l_n, l_w, wl) - wr * gini(r_n, r_w, wr);
            self.contributions.push((self.best.feature, decrease));

            let id = builder.push_split(self.best.feature, threshold);
            tasks.push(Task {
                start: start + n_left,
                end,
                depth: task.depth + 1,
                parent: Some(id),
                nnz: r_nnz,
            });
            stack_n.extend_from_slice(r_n);
            stack_w.extend_from_slice(r_w);
            tasks.push(Task {
                start,
                end: start + n_left,
                depth: task.depth + 1,
                parent: None,
                nnz: l_nnz,
            });
            stack_n.extend_from_slice(l_n);
            stack_w.extend_from_slice(l_w);
        }
        (builder.finish(), self.contributions)
    }

    /// Finds the best split of the node `samples[start..end]` into `self.best`; `false` when
    /// it has none.
    fn find_split(&mut self, start: usize, end: usize, nnz: usize, node: &NodeStats<'_>) -> bool {
        self.best.proxy = f64::NEG_INFINITY;
        self.best.entries.clear();
        let n_features = self.data.n_features;
        let max_features = self.cfg.max_features;
        if nnz as f64 <= self.cfg.draw_cost {
            self.gather(start, end, node.n);
            self.select(false);
            self.scan_selected(node);
            return self.best.proxy > f64::NEG_INFINITY;
        }

        if self.perm.is_empty() {
            self.build_local_csc();
        }
        let data = self.data;
        let n = node.n;
        // Draw first, then extract every drawn column, then evaluate: the independent memory
        // reads of the first two loops overlap.
        self.drawn.clear();
        for d in 0..max_features {
            let j = self.rng.random_range(d..n_features);
            self.perm.swap(d, j);
            let (f, a, b) = self.perm[d];
            self.drawn.push((f, a as usize, b as usize));
        }
        self.cur.clear();
        for slot in self.drawn.iter_mut() {
            let column = &self.col[slot.1..slot.2];
            let base = self.cur.len();
            self.cur.resize(base + column.len(), (0.0, 0));
            // Branch-free filter: about half the entries of a large node's column are in it.
            let mut len = base;
            for &(r, v) in column {
                self.cur[len] = (v, r);
                len += usize::from((self.pos[r as usize] as usize).wrapping_sub(start) < n);
            }
            self.cur.truncate(len);
            *slot = (slot.0, base, len);
        }
        let mut found = 0usize;
        for &(f, a, b) in &self.drawn {
            let vals = &mut self.cur[a..b];
            if is_constant(vals, node.n) {
                continue;
            }
            found += 1;
            scan_feature(
                f,
                vals,
                node,
                &data.y,
                &self.weight,
                self.cfg.min_samples_leaf,
                &mut self.scan,
                &mut self.best,
                true,
            );
        }
        if found == 0 {
            // scikit-learn keeps drawing until it meets a non-constant feature: a uniform
            // pick among them.
            self.gather(start, end, node.n);
            self.select(true);
            self.scan_selected(node);
        }
        self.best.proxy > f64::NEG_INFINITY
    }

    /// Copies the columns of the shared CSC restricted to this tree's rows (out-of-bag rows are
    /// about a third of the entries), `(row, value)` side by side, sorted by value (as the
    /// shared CSC is) so that the entries drawn at a node come out sorted.
    fn build_local_csc(&mut self) {
        let data = self.data;
        self.col.clear();
        self.perm.clear();
        for f in 0..data.n_features {
            let from = self.col.len();
            let column = &data.col_entries[data.col_ptr[f]..data.col_ptr[f + 1]];
            self.col
                .extend(column.iter().filter(|e| self.pos[e.0 as usize] != ABSENT));
            // fit() checked that the number of non-zeros fits in u32.
            self.perm
                .push((f as u32, from as u32, self.col.len() as u32));
        }
    }

    /// Buckets the non-zeros of the node's rows by feature into `entries` and lists the
    /// node's non-constant features (indices into `touched`) in `candidates`.
    fn gather(&mut self, start: usize, end: usize, n: usize) {
        let data = self.data;
        self.touched.clear();
        self.offsets.clear();
        for &r in &self.samples[start..end] {
            let r = r as usize;
            for &c in &data.row_cols[data.row_ptr[r]..data.row_ptr[r + 1]] {
                let s = &mut self.slot[c as usize];
                if *s == ABSENT {
                    *s = self.touched.len() as u32;
                    self.touched.push(c);
                    self.offsets.push(0);
                }
                self.offsets[*s as usize] += 1;
            }
        }
        // counts -> start offsets, then used as fill cursors; a final entry closes the last.
        let mut acc = 0usize;
        for o in self.offsets.iter_mut() {
            let k = *o;
            *o = acc;
            acc += k;
        }
        self.offsets.push(acc);
        self.entries.clear();
        self.entries.resize(acc, (0.0, 0));
        for &r in &self.samples[start..end] {
            let ru = r as usize;
            for k in data.row_ptr[ru]..data.row_ptr[ru + 1] {
                let s = self.slot[data.row_cols[k] as usize] as usize;
                self.entries[self.offsets[s]] = (data.row_vals[k], r);
                self.offsets[s] += 1;
            }
        }
        // Cursors now point at each bucket's end: shift back to starts.
        for j in (1..self.touched.len()).rev() {
            self.offsets[j] = self.offsets[j - 1];
        }
        if !self.touched.is_empty() {
            self.offsets[0] = 0;
        }
        self.candidates.clear();
        for (j, &f) in self.touched.iter().enumerate() {
            self.slot[f as usize] = ABSENT;
            if !is_constant(&self.entries[self.offsets[j]..self.offsets[j + 1]], n) {
                self.candidates.push(j as u32);
            }
        }
    }

    /// Picks which of the `candidates` are evaluated, in random order, as scikit-learn's
    /// feature visiting would (see the module docs); `force_one` picks a single uniform one.
    fn select(&mut self, force_one: bool) {
        self.selected.clear();
        let k = self.candidates.len();
        if k == 0 {
            return;
        }
        let (f, mf) = (self.data.n_features, self.cfg.max_features);
        if !force_one {
            if k <= mf {
                // Selection sampling: the i-th candidate is among the visited features with
                // probability (slots left) / (features left).
                for i in 0..k {
                    let taken = self.selected.len();
                    if self.rng.random_range(0..f - i) < mf - taken {
                        self.selected.push(self.candidates[i]);
                    }
                }
                for i in (1..self.selected.len()).rev() {
                    let j = self.rng.random_range(0..=i);
                    self.selected.swap(i, j);
                }
            } else {
                // How many candidates `mf` draws without replacement meet, then which ones.
                let mut m = 0usize;
                for d in 0..mf {
                    if self.rng.random_range(0..f - d) < k - m {
                        m += 1;
                    }
                }
                for i in 0..m {
                    let j = self.rng.random_range(i..k);
                    self.candidates.swap(i, j);
                    self.selected.push(self.candidates[i]);
                }
            }
        }
        if self.selected.is_empty() {
            let j = self.rng.random_range(0..k);
            self.selected.push(self.candidates[j]);
        }
    }

    fn scan_selected(&mut self, node: &NodeStats<'_>) {
        let data = self.data;
        for &j in &self.selected {
            let j = j as usize;
            let range = self.offsets[j]..self.offsets[j + 1];
            scan_feature(
                self.touched[j],
                &mut self.entries[range],
                node,
                &data.y,
                &self.weight,
                self.cfg.min_samples_leaf,
                &mut self.scan,
                &mut self.best,
                false,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{Array2, array};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::sparse::CsrMatrix;

    fn params(seed: u64) -> RandomForestParams {
        RandomForestParams {
            n_estimators: 10,
            random_state: Some(seed),
            n_jobs: Some(1),
            ..Default::default()
        }
    }

    /// Sparse-ish random data: label 1 when feature 0 + feature 1 > 0.8, plus noise features.
    fn synthetic(n: usize, f: usize, seed: u64) -> (Array2<f64>, Vec<i64>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut x = Array2::zeros((n, f));
        let mut y = vec![0i64; n];
        for i in 0..n {
            for j in 0..f {
                if rng.random::<f64>() < 0.3 {
                    x[[i, j]] = rng.random::<f64>() - 0.2;
                }
            }
            y[i] = i64::from(x[[i, 0]] + x[[i, 1]] > 0.4);
        }
        (x, y)
    }

    #[test]
    fn separable_data_gives_certain_probabilities() {
        let x = array![[0.0], [1.0], [2.0], [3.0], [10.0], [11.0]];
        let y = [7, 7, 7, 7, -3, -3];
        let m = RandomForestParams {
            bootstrap: false,
            ..params(0)
        }
        .fit((&x).into(), &y)
        .unwrap();
        assert_eq!(m.classes(), &[-3, 7]);
        let p = m.predict_proba((&x).into()).unwrap();
        for (i, row) in p.rows().into_iter().enumerate() {
            let want = if y[i] == 7 { [0.0, 1.0] } else { [1.0, 0.0] };
            assert_eq!(row.to_vec(), want);
        }
        assert_eq!(m.predict((&x).into()).unwrap(), y.to_vec());
        // every tree is one split at the midpoint 6.5
        let t = &m.trees()[0];
        assert_eq!(t.nodes().len(), 3);
        assert_eq!(t.nodes()[0].threshold, 6.5);
        assert_eq!(m.feature_importances(), &[1.0]);
    }

    #[test]
    fn xor_is_learned() {
        let mut rows = Vec::new();
        let mut y = Vec::new();
        for k in 0..40 {
            let (a, b) = ((k % 2) as f64, ((k / 2) % 2) as f64);
            rows.extend_from_slice(&[a, b, 0.5]);
            y.push(i64::from(a != b));
        }
        let x = Array2::from_shape_vec((40, 3), rows).unwrap();
        let m = RandomForestParams {
            max_features: MaxFeatures::All,
            ..params(3)
        }
        .fit((&x).into(), &y)
        .unwrap();
        assert_eq!(m.predict((&x).into()).unwrap(), y);
        let imp = m.feature_importances();
        assert!((imp.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert_eq!(imp[2], 0.0);
    }

    #[test]
    fn dense_and_sparse_give_the_same_forest() {
        let (x, y) = synthetic(300, 12, 1);
        let csr = CsrMatrix::from_dense(x.view());
        let a = params(5).fit((&x).into(), &y).unwrap();
        let b = params(5).fit((&csr).into(), &y).unwrap();
        assert_eq!(a, b);
        let pa = a.predict_proba((&x).into()).unwrap();
        let pb = a.predict_proba((&csr).into()).unwrap();
        assert_eq!(pa, pb);
        // the chain-skipping walk agrees with the plain one
        let mut plain = vec![0.0; 2];
        for (r, row) in x.rows().into_iter().enumerate() {
            let buf: Vec<f32> = row.iter().map(|&v| v as f32).collect();
            a.proba_row(&buf, &mut plain);
            assert_eq!(plain, pa.row(r).to_vec());
        }
        let acc = a
            .predict((&x).into())
            .unwrap()
            .iter()
            .zip(&y)
            .filter(|(p, t)| p == t)
            .count();
        assert!(acc > 290, "{acc}");
        let c = params(6).fit((&x).into(), &y).unwrap();
        assert_ne!(a, c);
    }

    #[test]
    fn thread_count_does_not_change_the_model() {
        let (x, y) = synthetic(200, 10, 2);
        let csr = CsrMatrix::from_dense(x.view());
        let a = params(9).fit((&csr).into(), &y).unwrap();
        let b = RandomForestParams {
            n_jobs: Some(2),
            ..params(9)
        }
        .fit((&csr).into(), &y)
        .unwrap();
        let mut b = b;
        b.params.n_jobs = Some(1);
        assert!(a == b);
    }

    #[test]
    fn generalizes_on_a_held_out_split() {
        let (train, y) = synthetic(400, 8, 3);
        let (test, y_test) = synthetic(200, 8, 33);
        let m = params(1).fit((&train).into(), &y).unwrap();
        let pred = m.predict((&test).into()).unwrap();
        let acc = pred.iter().zip(&y_test).filter(|(p, t)| p == t).count() as f64 / 200.0;
        assert!(acc >= 0.85, "{acc}");
        let imp = m.feature_importances();
        assert!(imp[0] > 0.2 && imp[1] > 0.2, "{imp:?}");
    }

    #[test]
    fn depth_and_leaf_size_limits_hold() {
        let (x, y) = synthetic(300, 6, 4);
        let m = RandomForestParams {
            max_depth: Some(3),
            ..params(0)
        }
        .fit((&x).into(), &y)
        .unwrap();
        assert_eq!(m.max_tree_depth(), 3);
        let m = RandomForestParams {
            min_samples_leaf: 7,
            bootstrap: false,
            ..params(0)
        }
        .fit((&x).into(), &y)
        .unwrap();
        let mut buf = vec![0f32; 6];
        for t in m.trees() {
            let mut per_leaf = vec![0usize; t.n_leaves()];
            for row in x.rows() {
                buf.iter_mut().zip(row).for_each(|(b, v)| *b = *v as f32);
                per_leaf[t.leaf(&buf)] += 1;
            }
            assert!(per_leaf.iter().all(|&k| k >= 7), "{per_leaf:?}");
        }
        let unlimited = RandomForestParams {
            bootstrap: false,
            ..params(0)
        }
        .fit((&x).into(), &y)
        .unwrap();
        assert!(unlimited.n_nodes() > m.n_nodes());
    }

    #[test]
    fn balanced_class_weight_favours_the_minority() {
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let n = 400;
        let mut x = Array2::zeros((n, 2));
        let mut y = vec![0i64; n];
        for i in 0..n {
            x[[i, 0]] = rng.random::<f64>();
            x[[i, 1]] = rng.random::<f64>();
            // 10% positives, overlapping the negatives
            y[i] = i64::from(x[[i, 0]] > 0.8 && rng.random::<f64>() < 0.5);
        }
        let plain = RandomForestParams {
            min_samples_leaf: 20,
            ..params(2)
        };
        let balanced = RandomForestParams {
            class_weight: Some(ClassWeight::Balanced),
            ..plain.clone()
        };
        let a = plain.fit((&x).into(), &y).unwrap();
        let b = balanced.fit((&x).into(), &y).unwrap();
        assert_ne!(a, b);
        let mean_pos = |m: &RandomForestClassifier| {
            let p = m.predict_proba((&x).into()).unwrap();
            p.column(1).mean().unwrap()
        };
        assert!(mean_pos(&b) > mean_pos(&a) + 0.1);
    }

    #[test]
    fn single_class_is_allowed() {
        let x = array![[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]];
        let m = params(0).fit((&x).into(), &[4, 4, 4]).unwrap();
        assert_eq!(m.classes(), &[4]);
        let p = m.predict_proba((&x).into()).unwrap();
        assert!(p.iter().all(|&v| v == 1.0));
        assert_eq!(m.n_nodes(), 10);
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        let x = array![[0.0, 1.0], [1.0, f64::NAN]];
        assert!(matches!(
            params(0).fit((&x).into(), &[0, 1]),
            Err(Error::InvalidInput(_))
        ));
        let x = array![[0.0, 1.0], [1.0, 0.0]];
        assert!(matches!(
            params(0).fit((&x).into(), &[0, 1, 1]),
            Err(Error::ShapeMismatch { .. })
        ));
        let empty = Array2::<f64>::zeros((0, 3));
        assert!(matches!(
            params(0).fit((&empty).into(), &[]),
            Err(Error::InvalidInput(_))
        ));
        let m = params(0).fit((&x).into(), &[0, 1]).unwrap();
        let wide = Array2::<f64>::zeros((1, 3));
        assert!(matches!(
            m.predict_proba((&wide).into()),
            Err(Error::ShapeMismatch { .. })
        ));
        let bad = [
            RandomForestParams {
                n_estimators: 0,
                ..params(0)
            },
            RandomForestParams {
                max_depth: Some(0),
                ..params(0)
            },
            RandomForestParams {
                min_samples_split: 1,
                ..params(0)
            },
            RandomForestParams {
                min_samples_leaf: 0,
                ..params(0)
            },
            RandomForestParams {
                max_features: MaxFeatures::Fraction(0.0),
                ..params(0)
            },
        ];
        for p in bad {
            assert!(matches!(
                p.fit((&x).into(), &[0, 1]),
                Err(Error::InvalidParameter { .. })
            ));
        }
    }

    /// Alternating labels on one feature: the best split peels one end sample at a time, so
    /// the tree is a chain `n - 1` levels deep.
    fn chain(n: usize) {
        let x = Array2::from_shape_fn((n, 1), |(i, _)| i as f64);
        let y: Vec<i64> = (0..n as i64).map(|i| i % 2).collect();
        let m = RandomForestParams {
            n_estimators: 1,
            bootstrap: false,
            ..params(0)
        }
        .fit((&x).into(), &y)
        .unwrap();
        assert_eq!(m.max_tree_depth(), n - 1);
        assert_eq!(m.predict((&x).into()).unwrap(), y);
        let back = RandomForestClassifier::from_bytes(&m.to_bytes()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn long_chains_do_not_overflow() {
        chain(1000);
    }

    #[test]
    #[ignore = "quadratic; run in release"]
    fn fifty_thousand_deep_chain() {
        chain(50_000);
    }

    #[test]
    fn artifact_round_trip_and_corruption() {
        let (x, y) = synthetic(150, 5, 6);
        let m = params(4).fit((&x).into(), &y).unwrap();
        let bytes = m.to_bytes();
        let back = RandomForestClassifier::from_bytes(&bytes).unwrap();
        assert_eq!(back, m);
        assert_eq!(
            back.predict_proba((&x).into()).unwrap(),
            m.predict_proba((&x).into()).unwrap()
        );
        for cut in [0, 10, bytes.len() / 2, bytes.len() - 1] {
            assert!(RandomForestClassifier::from_bytes(&bytes[..cut]).is_err());
        }
        for at in [3, 20, bytes.len() / 2, bytes.len() - 2] {
            let mut b = bytes.clone();
            b[at] ^= 0x5a;
            assert!(RandomForestClassifier::from_bytes(&b).is_err());
        }
        // Well-formed payloads describing a broken model (valid checksum).
        let mut bad = m.clone();
        bad.classes = vec![1, 0];
        assert!(RandomForestClassifier::from_bytes(&crate::model::to_bytes(&bad)).is_err());
        let mut bad = m.clone();
        bad.feature_importances.pop();
        assert!(RandomForestClassifier::from_bytes(&crate::model::to_bytes(&bad)).is_err());
        let mut bad = m.clone();
        bad.n_features = 2;
        assert!(RandomForestClassifier::from_bytes(&crate::model::to_bytes(&bad)).is_err());
        let mut bad = m.clone();
        bad.trees.pop();
        assert!(RandomForestClassifier::from_bytes(&crate::model::to_bytes(&bad)).is_err());
        let mut bad = m.clone();
        bad.classes = vec![0, 1, 2];
        assert!(RandomForestClassifier::from_bytes(&crate::model::to_bytes(&bad)).is_err());
        // from_parts validates the same way
        assert!(
            RandomForestClassifier::from_parts(
                m.trees.clone(),
                vec![0, 1],
                4,
                vec![0.0; 4],
                m.params.clone()
            )
            .is_err()
        );
        let ok = RandomForestClassifier::from_parts(
            m.trees.clone(),
            m.classes.clone(),
            m.n_features,
            m.feature_importances.clone(),
            m.params.clone(),
        )
        .unwrap();
        assert_eq!(ok, m);
    }

    #[test]
    fn public_types_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<RandomForestClassifier>();
        check::<RandomForestParams>();
    }
}

#[cfg(test)]
mod chain_tests {
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::sparse::CsrMatrix;

    #[test]
    fn chain_walk_matches_plain_walk_on_sparse_text_like_data() {
        // Many rare features, each mostly marking one class: trees become long chains.
        let (n, f) = (400, 300);
        let (csr, y) = text_like(n, f, 11);
        let mut m = RandomForestParams {
            n_estimators: 5,
            random_state: Some(1),
            n_jobs: Some(1),
            ..Default::default()
        }
        .fit((&csr).into(), &y)
        .unwrap();
        let chains = ChainIndex::new(&m.trees, f, 8);
        assert!(!chains.occ.is_empty());
        m.walk = Walk::Chains(chains);
        let p = m.predict_proba((&csr).into()).unwrap();
        let mut plain = vec![0.0; 2];
        let mut buf = vec![0f32; f];
        for r in 0..n {
            Matrix::Sparse(&csr).load_row(r, &mut buf);
            m.proba_row(&buf, &mut plain);
            assert_eq!(plain, p.row(r).to_vec(), "row {r}");
            Matrix::Sparse(&csr).clear_row(r, &mut buf);
        }
    }

    /// Sparse text-like rows: a few of many features set per row, some negative.
    fn text_like(n: usize, f: usize, seed: u64) -> (CsrMatrix, Vec<i64>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut x = Array2::zeros((n, f));
        let mut y = vec![0i64; n];
        for i in 0..n {
            y[i] = i64::from(rng.random::<f64>() < 0.4);
            for _ in 0..3 {
                let j = rng.random_range(0..f);
                x[[i, j]] = if rng.random::<f64>() < 0.1 {
                    -0.5
                } else {
                    rng.random()
                };
            }
        }
        (CsrMatrix::from_dense(x.view()), y)
    }

    #[test]
    fn compact_walk_matches_plain_walk() {
        let (f, n) = (300, 400);
        let (csr, y) = text_like(n, f, 12);
        let dense = csr.to_dense();
        // Fully grown trees have pure leaves; depth-limited ones mixed leaves too.
        for max_depth in [None, Some(4)] {
            let m = RandomForestParams {
                n_estimators: 7,
                max_depth,
                random_state: Some(2),
                n_jobs: Some(1),
                ..Default::default()
            }
            .fit((&csr).into(), &y)
            .unwrap();
            assert!(matches!(m.walk, Walk::Compact(_)));
            let p = m.predict_proba((&csr).into()).unwrap();
            assert_eq!(m.predict_proba((&dense).into()).unwrap(), p);
            let mut plain = vec![0.0; 2];
            let mut buf = vec![0f32; f];
            let mixed = m
                .trees
                .iter()
                .any(|t| (0..t.n_leaves()).any(|l| !t.leaf_values(l).contains(&1.0)));
            assert_eq!(mixed, max_depth.is_some());
            for r in 0..n {
                Matrix::Sparse(&csr).load_row(r, &mut buf);
                m.proba_row(&buf, &mut plain);
                assert_eq!(plain, p.row(r).to_vec(), "row {r}, max_depth {max_depth:?}");
                Matrix::Sparse(&csr).clear_row(r, &mut buf);
            }
        }
    }

    #[test]
    fn a_tree_too_large_for_compact_nodes_walks_the_original_nodes() {
        // The root's right child comes after a left subtree of 80,001 nodes: more than a
        // compact node can point across.
        let mut b = TreeBuilder::new(2);
        let root = b.push_split(0, 0.5);
        for k in 0..40_000 {
            let split = b.push_split(1, f64::from(k));
            b.push_leaf(&[1.0, 0.0]);
            b.set_right(split);
        }
        b.push_leaf(&[0.0, 1.0]);
        b.set_right(root);
        b.push_leaf(&[0.25, 0.75]);
        let tree = b.finish();
        assert!(CompactForest::new(std::slice::from_ref(&tree), 2).is_none());
        let m = RandomForestClassifier::from_parts(
            vec![tree],
            vec![0, 1],
            2,
            vec![0.5, 0.5],
            RandomForestParams {
                n_estimators: 1,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(matches!(m.walk, Walk::Chains(_)));
        let x = ndarray::array![[1.0, 0.0], [0.0, -1.0], [0.0, 50_000.0]];
        let p = m.predict_proba((&x).into()).unwrap();
        assert_eq!(p, ndarray::array![[0.25, 0.75], [1.0, 0.0], [0.0, 1.0]]);
    }
}
