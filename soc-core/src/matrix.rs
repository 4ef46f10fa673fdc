//! The numeric input of the forests: a dense ndarray view or a CSR matrix.

use ndarray::{Array2, ArrayView2};

use crate::error::{Error, Result};
use crate::sparse::CsrMatrix;

/// Input of the forests. Build it with `.into()` from `ArrayView2<f64>`, `&Array2<f64>` or
/// `&CsrMatrix`; absent entries of a sparse matrix are zeros.
///
/// Like scikit-learn, trees compare features in single precision: every value is rounded to
/// `f32` before it is compared with a split threshold.
#[derive(Clone, Copy, Debug)]
pub enum Matrix<'a> {
    /// A dense `(n_samples, n_features)` matrix.
    Dense(ArrayView2<'a, f64>),
    /// A sparse `(n_samples, n_features)` matrix.
    Sparse(&'a CsrMatrix),
}

impl<'a> From<ArrayView2<'a, f64>> for Matrix<'a> {
    fn from(v: ArrayView2<'a, f64>) -> Self {
        Matrix::Dense(v)
    }
}

impl<'a> From<&'a Array2<f64>> for Matrix<'a> {
    fn from(v: &'a Array2<f64>) -> Self {
        Matrix::Dense(v.view())
    }
}

impl<'a> From<&'a CsrMatrix> for Matrix<'a> {
    fn from(v: &'a CsrMatrix) -> Self {
        Matrix::Sparse(v)
    }
}

impl Matrix<'_> {
    /// Number of samples (rows).
    pub fn n_rows(&self) -> usize {
        match self {
            Matrix::Dense(d) => d.nrows(),
            Matrix::Sparse(s) => s.n_rows(),
        }
    }

    /// Number of features (columns).
    pub fn n_cols(&self) -> usize {
        match self {
            Matrix::Dense(d) => d.ncols(),
            Matrix::Sparse(s) => s.n_cols(),
        }
    }

    /// Checks what every model needs of its input: at least one row, and only finite values.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.n_rows() == 0 {
            return Err(Error::invalid_input("the input has no samples"));
        }
        let bad = match self {
            Matrix::Dense(d) => d.iter().position(|v| !v.is_finite()),
            Matrix::Sparse(s) => s.data().iter().position(|v| !v.is_finite()),
        };
        match bad {
            Some(_) => Err(Error::invalid_input(
                "the input contains NaN or infinity; replace or drop those values first",
            )),
            None => Ok(()),
        }
    }

    /// [`validate`](Self::validate) plus a check of the feature count a fitted model expects.
    pub(crate) fn validate_for(&self, n_features: usize) -> Result<()> {
        if self.n_cols() != n_features {
            return Err(Error::ShapeMismatch {
                what: "features",
                expected: n_features,
                got: self.n_cols(),
            });
        }
        self.validate()
    }

    /// Writes row `r` into `buf` (length `n_cols`, all zeros on entry) as `f32`.
    /// Call [`clear_row`](Self::clear_row) afterwards to make `buf` all zeros again.
    #[inline]
    pub(crate) fn load_row(&self, r: usize, buf: &mut [f32]) {
        match self {
            Matrix::Dense(d) => {
                for (b, &v) in buf.iter_mut().zip(d.row(r)) {
                    *b = v as f32;
                }
            }
            Matrix::Sparse(s) => {
                let (cols, vals) = s.row(r);
                for (&c, &v) in cols.iter().zip(vals) {
                    buf[c as usize] = v as f32;
                }
            }
        }
    }

    /// Resets what [`load_row`](Self::load_row) wrote for row `r`.
    #[inline]
    pub(crate) fn clear_row(&self, r: usize, buf: &mut [f32]) {
        match self {
            Matrix::Dense(_) => buf.fill(0.0),
            Matrix::Sparse(s) => {
                for &c in s.row(r).0 {
                    buf[c as usize] = 0.0;
                }
            }
        }
    }
}
