//! linfa interop (cargo feature `linfa`): the forests implement linfa's [`Fit`] and
//! [`PredictInplace`] over dense `Dataset`s, so they drop into linfa pipelines.
//!
//! - `RandomForestParams` fits on a dataset with `usize` class labels; the classifier predicts
//!   labels.
//! - `IsolationForestParams` fits on any dataset (targets are ignored); the forest "predicts" the
//!   anomaly score a(x) (higher = more anomalous).
//!
//! Both types also have inherent `fit` methods taking a [`Matrix`]; call the trait's with
//! `Fit::fit(&params, &dataset)`. As linfa's own models do, `predict_inplace` panics when the
//! input's feature count differs from the model's or `y` has the wrong length (the trait cannot
//! return an error); check with `n_features()` first when the input is untrusted.

use linfa::dataset::{AsSingleTargets, DatasetBase};
use linfa::traits::{Fit, PredictInplace};
use ndarray::{Array1, ArrayBase, Data, Ix2};

use crate::error::Error;
use crate::forest::{
    IsolationForest, IsolationForestParams, RandomForestClassifier, RandomForestParams,
};
use crate::matrix::Matrix;

impl From<linfa::Error> for Error {
    fn from(e: linfa::Error) -> Self {
        Error::invalid_input(format!("linfa: {e}"))
    }
}

impl<D, T> Fit<ArrayBase<D, Ix2>, T, Error> for RandomForestParams
where
    D: Data<Elem = f64>,
    T: AsSingleTargets<Elem = usize>,
{
    type Object = RandomForestClassifier;

    fn fit(&self, dataset: &DatasetBase<ArrayBase<D, Ix2>, T>) -> Result<Self::Object, Error> {
        let y: Vec<i64> = dataset
            .as_single_targets()
            .iter()
            .map(|&label| label as i64)
            .collect();
        RandomForestParams::fit(self, Matrix::Dense(dataset.records().view()), &y)
    }
}

impl<D: Data<Elem = f64>> PredictInplace<ArrayBase<D, Ix2>, Array1<usize>>
    for RandomForestClassifier
{
    fn predict_inplace(&self, x: &ArrayBase<D, Ix2>, y: &mut Array1<usize>) {
        assert_eq!(x.nrows(), y.len(), "one target per row");
        let labels = self
            .predict(Matrix::Dense(x.view()))
            .expect("input matches the model's features");
        for (target, label) in y.iter_mut().zip(labels) {
            *target = label as usize;
        }
    }

    fn default_target(&self, x: &ArrayBase<D, Ix2>) -> Array1<usize> {
        Array1::zeros(x.nrows())
    }
}

impl<D: Data<Elem = f64>, T> Fit<ArrayBase<D, Ix2>, T, Error> for IsolationForestParams {
    type Object = IsolationForest;

    fn fit(&self, dataset: &DatasetBase<ArrayBase<D, Ix2>, T>) -> Result<Self::Object, Error> {
        IsolationForestParams::fit(self, Matrix::Dense(dataset.records().view()))
    }
}

impl<D: Data<Elem = f64>> PredictInplace<ArrayBase<D, Ix2>, Array1<f64>> for IsolationForest {
    fn predict_inplace(&self, x: &ArrayBase<D, Ix2>, y: &mut Array1<f64>) {
        assert_eq!(x.nrows(), y.len(), "one target per row");
        let scores = self
            .score_samples(Matrix::Dense(x.view()))
            .expect("input matches the model's features");
        y.assign(&Array1::from(scores));
    }

    fn default_target(&self, x: &ArrayBase<D, Ix2>) -> Array1<f64> {
        Array1::zeros(x.nrows())
    }
}
