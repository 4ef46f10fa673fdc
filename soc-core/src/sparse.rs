//! Compressed sparse row matrices: the output of the vectorizer and an input of the forests.

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A CSR matrix of `f64` in canonical form: within each row, column indices are strictly
/// increasing and every index is below `n_cols`. Explicit zeros are allowed.
///
/// The layout is scipy's (`indptr`, `indices`, `data`), so it converts to and from
/// `scipy.sparse.csr_matrix` without copying element by element.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CsrMatrix {
    n_cols: usize,
    indptr: Vec<usize>,
    indices: Vec<u32>,
    data: Vec<f64>,
}

impl CsrMatrix {
    /// Builds a matrix from scipy-style parts, checking that they form a canonical CSR matrix.
    pub fn try_new(
        n_cols: usize,
        indptr: Vec<usize>,
        indices: Vec<u32>,
        data: Vec<f64>,
    ) -> Result<Self> {
        if n_cols > u32::MAX as usize {
            return Err(Error::invalid_input(format!(
                "{n_cols} columns is more than the supported {}",
                u32::MAX
            )));
        }
        if indptr.first() != Some(&0) {
            return Err(Error::invalid_input("indptr must start with 0"));
        }
        if indices.len() != data.len() || indptr.last() != Some(&indices.len()) {
            return Err(Error::invalid_input(format!(
                "indptr ends at {:?} but there are {} indices and {} values",
                indptr.last(),
                indices.len(),
                data.len()
            )));
        }
        for (row, w) in indptr.windows(2).enumerate() {
            if w[0] > w[1] {
                return Err(Error::invalid_input(format!(
                    "indptr decreases at row {row}"
                )));
            }
            let cols = &indices[w[0]..w[1]];
            if cols.windows(2).any(|c| c[0] >= c[1]) {
                return Err(Error::invalid_input(format!(
                    "column indices of row {row} are not strictly increasing"
                )));
            }
            if let Some(&last) = cols.last()
                && last as usize >= n_cols
            {
                return Err(Error::invalid_input(format!(
                    "column index {last} in row {row} is out of range for {n_cols} columns"
                )));
            }
        }
        Ok(CsrMatrix {
            n_cols,
            indptr,
            indices,
            data,
        })
    }

    /// Builds a matrix row by row from `(column, value)` pairs that are already sorted by column
    /// and unique; used by the vectorizer, which guarantees both.
    pub(crate) fn from_sorted_rows(n_cols: usize, rows: Vec<Vec<(u32, f64)>>) -> Self {
        let nnz = rows.iter().map(Vec::len).sum();
        let mut indptr = Vec::with_capacity(rows.len() + 1);
        let mut indices = Vec::with_capacity(nnz);
        let mut data = Vec::with_capacity(nnz);
        indptr.push(0);
        for row in rows {
            for (c, v) in row {
                indices.push(c);
                data.push(v);
            }
            indptr.push(indices.len());
        }
        CsrMatrix {
            n_cols,
            indptr,
            indices,
            data,
        }
    }

    /// An empty matrix with `n_rows` rows of zeros.
    pub fn zeros(n_rows: usize, n_cols: usize) -> Self {
        CsrMatrix {
            n_cols,
            indptr: vec![0; n_rows + 1],
            indices: Vec::new(),
            data: Vec::new(),
        }
    }

    /// Converts a dense matrix, keeping only its non-zero entries.
    pub fn from_dense(dense: ArrayView2<'_, f64>) -> Self {
        let mut indptr = Vec::with_capacity(dense.nrows() + 1);
        let mut indices = Vec::new();
        let mut data = Vec::new();
        indptr.push(0);
        for row in dense.rows() {
            for (c, &v) in row.iter().enumerate() {
                if v != 0.0 {
                    indices.push(c as u32);
                    data.push(v);
                }
            }
            indptr.push(indices.len());
        }
        CsrMatrix {
            n_cols: dense.ncols(),
            indptr,
            indices,
            data,
        }
    }

    /// The dense equivalent.
    pub fn to_dense(&self) -> Array2<f64> {
        let mut out = Array2::zeros((self.n_rows(), self.n_cols));
        for r in 0..self.n_rows() {
            let (cols, vals) = self.row(r);
            for (&c, &v) in cols.iter().zip(vals) {
                out[[r, c as usize]] = v;
            }
        }
        out
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.indptr.len() - 1
    }

    /// Number of columns.
    pub fn n_cols(&self) -> usize {
        self.n_cols
    }

    /// Number of stored entries.
    pub fn nnz(&self) -> usize {
        self.data.len()
    }

    /// Column indices and values of row `r`. Panics if `r >= n_rows()`, like slice indexing.
    pub fn row(&self, r: usize) -> (&[u32], &[f64]) {
        let (a, b) = (self.indptr[r], self.indptr[r + 1]);
        (&self.indices[a..b], &self.data[a..b])
    }

    /// Row pointers (`n_rows + 1` entries).
    pub fn indptr(&self) -> &[usize] {
        &self.indptr
    }

    /// Column index of every stored entry.
    pub fn indices(&self) -> &[u32] {
        &self.indices
    }

    /// Value of every stored entry.
    pub fn data(&self) -> &[f64] {
        &self.data
    }

    /// Takes the matrix apart into `(n_cols, indptr, indices, data)`.
    pub fn into_parts(self) -> (usize, Vec<usize>, Vec<u32>, Vec<f64>) {
        (self.n_cols, self.indptr, self.indices, self.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn dense_round_trip() {
        let d = array![[0.0, 1.5, 0.0], [0.0, 0.0, 0.0], [2.0, 0.0, -3.0]];
        let m = CsrMatrix::from_dense(d.view());
        assert_eq!(m.nnz(), 3);
        assert_eq!(m.row(2), (&[0u32, 2][..], &[2.0, -3.0][..]));
        assert_eq!(m.to_dense(), d);
    }

    #[test]
    fn rejects_malformed_parts() {
        assert!(CsrMatrix::try_new(3, vec![0, 1], vec![3], vec![1.0]).is_err());
        assert!(CsrMatrix::try_new(3, vec![0, 2], vec![1, 1], vec![1.0, 1.0]).is_err());
        assert!(CsrMatrix::try_new(3, vec![0, 2], vec![1], vec![1.0]).is_err());
        assert!(CsrMatrix::try_new(3, vec![1, 1], vec![1], vec![1.0]).is_err());
        assert!(CsrMatrix::try_new(3, vec![0, 2, 1], vec![0, 1], vec![1.0, 1.0]).is_err());
        assert!(CsrMatrix::try_new(3, vec![0, 2], vec![0, 2], vec![1.0, 1.0]).is_ok());
    }
}
