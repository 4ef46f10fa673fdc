//! A decision tree as one flat array of nodes in pre-order, shared by both forests.
//!
//! Node `i`'s left child is `i + 1`; its right child is stored. Every walk (scoring, depth,
//! validation, conversion) is a loop, never a recursion: trees grown on text can be thousands of
//! levels deep.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// `feature` value that marks a leaf.
pub(crate) const LEAF: u32 = u32::MAX;

/// One node: 12 bytes, so a cache line holds five.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Node {
    /// Feature compared at a split node, or [`LEAF`].
    pub(crate) feature: u32,
    /// A sample goes left when its feature value (as `f32`) is `<= threshold`.
    pub(crate) threshold: f32,
    /// Right child of a split node; index of the leaf's value row for a leaf.
    pub(crate) right: u32,
}

/// A fitted tree: nodes in pre-order plus `n_outputs` values per leaf, in leaf order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Tree {
    nodes: Vec<Node>,
    values: Vec<f64>,
    n_outputs: usize,
}

/// The largest `f32` that is `<= t`. For an `f32` value `x`, `x <= t` exactly when
/// `x <= threshold_to_f32(t)`, so storing thresholds this way keeps scikit-learn's decisions
/// (it compares `f32` features with `f64` thresholds) at half the memory.
pub(crate) fn threshold_to_f32(t: f64) -> f32 {
    let f = t as f32;
    if f64::from(f) > t { f.next_down() } else { f }
}

impl Tree {
    /// Index of the leaf value row that `x` (one dense row, `f32`) falls into.
    /// `x` must have at least as many entries as the tree's largest feature index + 1.
    #[inline]
    pub(crate) fn leaf(&self, x: &[f32]) -> usize {
        let nodes = &self.nodes[..];
        let mut i = 0usize;
        loop {
            let n = nodes[i];
            if n.feature == LEAF {
                return n.right as usize;
            }
            i = if x[n.feature as usize] <= n.threshold {
                i + 1
            } else {
                n.right as usize
            };
        }
    }

    /// The values of the leaf that `x` falls into.
    #[inline]
    pub(crate) fn predict(&self, x: &[f32]) -> &[f64] {
        let l = self.leaf(x);
        &self.values[l * self.n_outputs..(l + 1) * self.n_outputs]
    }

    /// Values of leaf `l`.
    pub(crate) fn leaf_values(&self, l: usize) -> &[f64] {
        &self.values[l * self.n_outputs..(l + 1) * self.n_outputs]
    }

    pub(crate) fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub(crate) fn n_outputs(&self) -> usize {
        self.n_outputs
    }

    pub(crate) fn n_leaves(&self) -> usize {
        self.values.len() / self.n_outputs.max(1)
    }

    /// Depth of every node (root = 0), computed in one pass thanks to pre-order.
    pub(crate) fn node_depths(&self) -> Vec<u32> {
        let mut depth = vec![0u32; self.nodes.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            if n.feature != LEAF {
                depth[i + 1] = depth[i] + 1;
                depth[n.right as usize] = depth[i] + 1;
            }
        }
        depth
    }

    /// Maximum depth (a lone leaf has depth 0).
    pub(crate) fn max_depth(&self) -> u32 {
        self.node_depths().into_iter().max().unwrap_or(0)
    }

    /// Checks that a tree read from outside (artifact, scikit-learn import) can be walked
    /// safely: children after their parent and in bounds, features and leaf rows in range,
    /// no NaN threshold. Walks then always terminate and never index out of bounds.
    pub(crate) fn validate(&self, n_features: usize) -> Result<()> {
        let n = self.nodes.len();
        if n == 0 {
            return Err(Error::invalid_model("a tree has no nodes"));
        }
        if self.n_outputs == 0 || !self.values.len().is_multiple_of(self.n_outputs) {
            return Err(Error::invalid_model(
                "tree leaf values do not match n_outputs",
            ));
        }
        let n_leaves = self.values.len() / self.n_outputs;
        let mut seen_leaves = 0usize;
        for (i, node) in self.nodes.iter().enumerate() {
            if node.feature == LEAF {
                if node.right as usize >= n_leaves {
                    return Err(Error::invalid_model(format!(
                        "node {i} points at leaf row {} of {n_leaves}",
                        node.right
                    )));
                }
                seen_leaves += 1;
                continue;
            }
            let right = node.right as usize;
            if node.feature as usize >= n_features {
                return Err(Error::invalid_model(format!(
                    "node {i} splits on feature {} but the model has {n_features}",
                    node.feature
                )));
            }
            if node.threshold.is_nan() {
                return Err(Error::invalid_model(format!(
                    "node {i} has a NaN threshold"
                )));
            }
            if right <= i + 1 || right >= n {
                return Err(Error::invalid_model(format!(
                    "node {i} has right child {right}, outside {}..{n}",
                    i + 2
                )));
            }
        }
        if seen_leaves == 0 {
            return Err(Error::invalid_model("a tree has no leaf"));
        }
        Ok(())
    }

    /// Builds a tree from scikit-learn's parallel arrays (`children_left`, `children_right`,
    /// `feature`, `threshold`, one `value` row per node; a leaf has `children_left == -1`),
    /// renumbering nodes into pre-order. Rejects cycles, shared children and unreachable nodes.
    pub(crate) fn from_children(
        children_left: &[i64],
        children_right: &[i64],
        feature: &[i64],
        threshold: &[f64],
        node_values: &[Vec<f64>],
    ) -> Result<Tree> {
        let n = children_left.len();
        if n == 0
            || children_right.len() != n
            || feature.len() != n
            || threshold.len() != n
            || node_values.len() != n
        {
            return Err(Error::invalid_model(
                "tree arrays are empty or of different lengths",
            ));
        }
        let n_outputs = node_values[0].len();
        let mut builder = TreeBuilder::new(n_outputs);
        let mut visited = vec![false; n];
        // (source node, builder node whose right child it is)
        let mut stack: Vec<(usize, Option<usize>)> = vec![(0, None)];
        while let Some((src, parent)) = stack.pop() {
            if visited[src] {
                return Err(Error::invalid_model(format!("node {src} is reached twice")));
            }
            visited[src] = true;
            if let Some(p) = parent {
                builder.set_right(p);
            }
            let (l, r) = (children_left[src], children_right[src]);
            if l == -1 {
                if node_values[src].len() != n_outputs {
                    return Err(Error::invalid_model(format!(
                        "node {src} has {} values, expected {n_outputs}",
                        node_values[src].len()
                    )));
                }
                builder.push_leaf(&node_values[src]);
                continue;
            }
            let in_range = |c: i64| c > 0 && (c as usize) < n;
            if !in_range(l) || !in_range(r) || feature[src] < 0 || feature[src] >= LEAF as i64 {
                return Err(Error::invalid_model(format!(
                    "node {src} has invalid children ({l}, {r}) or feature {}",
                    feature[src]
                )));
            }
            let me = builder.push_split(feature[src] as u32, threshold[src]);
            stack.push((r as usize, Some(me)));
            stack.push((l as usize, None));
        }
        if let Some(u) = visited.iter().position(|v| !v) {
            return Err(Error::invalid_model(format!("node {u} is unreachable")));
        }
        Ok(builder.finish())
    }
}

/// Appends nodes in pre-order: push a split, then its whole left subtree, then call
/// [`set_right`](Self::set_right) with the split's id just before pushing its right subtree.
#[derive(Debug)]
pub(crate) struct TreeBuilder {
    nodes: Vec<Node>,
    values: Vec<f64>,
    n_outputs: usize,
}

impl TreeBuilder {
    pub(crate) fn new(n_outputs: usize) -> Self {
        TreeBuilder {
            nodes: Vec::new(),
            values: Vec::new(),
            n_outputs,
        }
    }

    /// Pushes a split node; its right child is set later by [`set_right`](Self::set_right).
    pub(crate) fn push_split(&mut self, feature: u32, threshold: f64) -> usize {
        self.nodes.push(Node {
            feature,
            threshold: threshold_to_f32(threshold),
            right: 0,
        });
        self.nodes.len() - 1
    }

    /// Marks the next pushed node as the right child of split `parent`.
    pub(crate) fn set_right(&mut self, parent: usize) {
        self.nodes[parent].right = self.nodes.len() as u32;
    }

    /// Pushes a leaf with `n_outputs` values.
    pub(crate) fn push_leaf(&mut self, values: &[f64]) -> usize {
        debug_assert_eq!(values.len(), self.n_outputs);
        let leaf_row = (self.values.len() / self.n_outputs.max(1)) as u32;
        self.values.extend_from_slice(values);
        self.nodes.push(Node {
            feature: LEAF,
            threshold: 0.0,
            right: leaf_row,
        });
        self.nodes.len() - 1
    }

    pub(crate) fn finish(self) -> Tree {
        Tree {
            nodes: self.nodes,
            values: self.values,
            n_outputs: self.n_outputs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stump() -> Tree {
        let mut b = TreeBuilder::new(1);
        let root = b.push_split(0, 0.5);
        b.push_leaf(&[1.0]);
        b.set_right(root);
        b.push_leaf(&[2.0]);
        b.finish()
    }

    #[test]
    fn walks_left_on_equal_and_right_above() {
        let t = stump();
        assert_eq!(t.predict(&[0.5]), &[1.0]);
        assert_eq!(t.predict(&[0.6]), &[2.0]);
        assert_eq!(t.max_depth(), 1);
        t.validate(1).unwrap();
        assert!(t.validate(0).is_err());
    }

    #[test]
    fn f32_threshold_keeps_decisions() {
        for t in [0.1f64, 1.0 / 3.0, -2.5e-8, 1e30, 123456.789] {
            let f = threshold_to_f32(t);
            assert!(f64::from(f) <= t);
            let x = f.next_up();
            assert!(f64::from(x) > t, "{t}");
        }
    }

    #[test]
    fn from_children_renumbers_and_rejects_cycles() {
        // sklearn layout with the right subtree stored first.
        let t = Tree::from_children(
            &[2, -1, -1],
            &[1, -1, -1],
            &[0, -2, -2],
            &[0.5, 0.0, 0.0],
            &[vec![0.0], vec![2.0], vec![1.0]],
        )
        .unwrap();
        assert_eq!(t.predict(&[0.0]), &[1.0]);
        assert_eq!(t.predict(&[1.0]), &[2.0]);
        let cyc = Tree::from_children(
            &[1, 0],
            &[1, 0],
            &[0, 0],
            &[0.0, 0.0],
            &[vec![0.0], vec![0.0]],
        );
        assert!(cyc.is_err());
    }

    #[test]
    fn deep_chain_does_not_overflow() {
        let depth = 200_000;
        let mut b = TreeBuilder::new(1);
        let mut splits = Vec::new();
        for _ in 0..depth {
            splits.push(b.push_split(0, 0.0));
        }
        b.push_leaf(&[0.0]);
        for s in splits.into_iter().rev() {
            b.set_right(s);
            b.push_leaf(&[1.0]);
        }
        let t = b.finish();
        t.validate(1).unwrap();
        assert_eq!(t.max_depth(), depth as u32);
        assert_eq!(t.predict(&[-1.0]), &[0.0]);
    }
}
