//! `IsolationForestModel` and `RandomForestModel`: fitted soc-core forests.

use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use soc_core::{
    ClassWeight, Contamination, IsolationForest, IsolationForestParams, MaxSamples,
    RandomForestClassifier, RandomForestParams,
};

use crate::convert::{Features, auto_or, is_integer, max_features};
use crate::errors::{SocResult, core};

/// A fitted isolation forest. `score_samples` here is the paper's score (higher = more
/// anomalous); the Python wrapper negates it to scikit-learn's sign.
#[pyclass(module = "codegrey_soc._native", frozen)]
pub struct IsolationForestModel {
    inner: IsolationForest,
}

#[pymethods]
impl IsolationForestModel {
    /// Fits on `x` (a float64 2-D array or CSR parts).
    #[staticmethod]
    #[pyo3(signature = (x, *, n_estimators, max_samples, contamination, max_features, bootstrap,
        random_state, n_jobs))]
    #[allow(clippy::too_many_arguments)]
    fn fit<'py>(
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        n_estimators: usize,
        max_samples: &Bound<'py, PyAny>,
        contamination: &Bound<'py, PyAny>,
        max_features: &Bound<'py, PyAny>,
        bootstrap: bool,
        random_state: Option<u64>,
        n_jobs: Option<usize>,
    ) -> SocResult<Self> {
        let max_samples = match auto_or("max_samples", max_samples)? {
            None => MaxSamples::Auto,
            Some(v) if is_integer(&v) => MaxSamples::Count(v.extract()?),
            Some(v) => MaxSamples::Fraction(v.extract()?),
        };
        let contamination = match auto_or("contamination", contamination)? {
            None => Contamination::Auto,
            Some(v) => Contamination::Fraction(v.extract()?),
        };
        let params = IsolationForestParams {
            n_estimators,
            max_samples,
            max_features: self::max_features(max_features)?,
            contamination,
            bootstrap,
            random_state,
            n_jobs,
        };
        let x = Features::extract(x)?;
        let m = x.matrix();
        let inner = core(py.detach(|| params.fit(m)))?;
        Ok(IsolationForestModel { inner })
    }

    /// The paper's anomaly score a(x) in (0, 1], higher = more anomalous.
    fn score_samples<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> SocResult<Bound<'py, PyArray1<f64>>> {
        let x = Features::extract(x)?;
        let m = x.matrix();
        Ok(core(py.detach(|| self.inner.score_samples(m)))?.into_pyarray(py))
    }

    /// scikit-learn's `decision_function`: `-a(x) - offset_`, negative for outliers.
    fn decision_function<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> SocResult<Bound<'py, PyArray1<f64>>> {
        let x = Features::extract(x)?;
        let m = x.matrix();
        Ok(core(py.detach(|| self.inner.decision_function(m)))?.into_pyarray(py))
    }

    /// `-1` for outliers, `1` for inliers.
    fn predict<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> SocResult<Bound<'py, PyArray1<i64>>> {
        let x = Features::extract(x)?;
        let m = x.matrix();
        Ok(core(py.detach(|| self.inner.predict(m)))?.into_pyarray(py))
    }

    /// scikit-learn's `offset_`.
    #[getter]
    fn offset(&self) -> f64 {
        self.inner.offset()
    }

    /// Rows each tree was grown on (scikit-learn's `max_samples_`).
    #[getter]
    fn max_samples(&self) -> usize {
        self.inner.max_samples()
    }

    /// Number of input features.
    #[getter]
    fn n_features(&self) -> usize {
        self.inner.n_features()
    }

    /// Number of trees.
    #[getter]
    fn n_estimators(&self) -> usize {
        self.inner.n_estimators()
    }

    /// The model in the artifact format.
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.to_bytes())
    }

    /// Reads an artifact written by `to_bytes` (here, by the server or by Rust).
    #[staticmethod]
    fn from_bytes(bytes: &[u8]) -> SocResult<Self> {
        Ok(IsolationForestModel {
            inner: core(IsolationForest::from_bytes(bytes))?,
        })
    }
}

impl IsolationForestModel {
    pub fn new(inner: IsolationForest) -> Self {
        IsolationForestModel { inner }
    }
}

/// A fitted random forest classifier over integer class labels.
#[pyclass(module = "codegrey_soc._native", frozen)]
pub struct RandomForestModel {
    inner: RandomForestClassifier,
}

#[pymethods]
impl RandomForestModel {
    /// Fits on `x` (a float64 2-D array or CSR parts) and integer labels `y`.
    #[staticmethod]
    #[pyo3(signature = (x, y, *, n_estimators, max_depth, min_samples_split, min_samples_leaf,
        max_features, bootstrap, class_weight, random_state, n_jobs))]
    #[allow(clippy::too_many_arguments)]
    fn fit<'py>(
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        y: PyReadonlyArray1<'py, i64>,
        n_estimators: usize,
        max_depth: Option<usize>,
        min_samples_split: usize,
        min_samples_leaf: usize,
        max_features: &Bound<'py, PyAny>,
        bootstrap: bool,
        class_weight: Option<&str>,
        random_state: Option<u64>,
        n_jobs: Option<usize>,
    ) -> SocResult<Self> {
        let class_weight = match class_weight {
            None => None,
            Some("balanced") => Some(ClassWeight::Balanced),
            Some(other) => {
                return Err(PyValueError::new_err(format!(
                    "`class_weight` must be None or 'balanced', got {other:?}"
                )));
            }
        };
        let params = RandomForestParams {
            n_estimators,
            max_depth,
            min_samples_split,
            min_samples_leaf,
            max_features: self::max_features(max_features)?,
            bootstrap,
            class_weight,
            random_state,
            n_jobs,
        };
        let x = Features::extract(x)?;
        let m = x.matrix();
        let y = y.as_slice()?;
        let inner = core(py.detach(|| params.fit(m, y)))?;
        Ok(RandomForestModel { inner })
    }

    /// Mean of the trees' leaf class fractions, one column per class.
    fn predict_proba<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> SocResult<Bound<'py, PyArray2<f64>>> {
        let x = Features::extract(x)?;
        let m = x.matrix();
        Ok(core(py.detach(|| self.inner.predict_proba(m)))?.into_pyarray(py))
    }

    /// The most probable class of each row.
    fn predict<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> SocResult<Bound<'py, PyArray1<i64>>> {
        let x = Features::extract(x)?;
        let m = x.matrix();
        Ok(core(py.detach(|| self.inner.predict(m)))?.into_pyarray(py))
    }

    /// The sorted class labels.
    fn classes<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        self.inner.classes().to_vec().into_pyarray(py)
    }

    /// Mean decrease in impurity of each feature, normalized to sum to 1.
    fn feature_importances<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        self.inner.feature_importances().to_vec().into_pyarray(py)
    }

    /// Number of input features.
    #[getter]
    fn n_features(&self) -> usize {
        self.inner.n_features()
    }

    /// Number of trees.
    #[getter]
    fn n_estimators(&self) -> usize {
        self.inner.n_estimators()
    }

    /// The model in the artifact format.
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.to_bytes())
    }

    /// Reads an artifact written by `to_bytes` (here, by the server or by Rust).
    #[staticmethod]
    fn from_bytes(bytes: &[u8]) -> SocResult<Self> {
        Ok(RandomForestModel {
            inner: core(RandomForestClassifier::from_bytes(bytes))?,
        })
    }
}

impl RandomForestModel {
    pub fn new(inner: RandomForestClassifier) -> Self {
        RandomForestModel { inner }
    }
}
