"""Tree ensembles: scikit-learn's ``IsolationForest`` and ``RandomForestClassifier``, computed
by the Rust engine. Both take dense numpy arrays and ``scipy.sparse`` matrices."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _native
from ._base import BaseEstimator, check_matrix, from_serde, n_rows, seed, threads

__all__ = ["IsolationForest", "RandomForestClassifier"]


class IsolationForest(BaseEstimator):
    """Isolation forest with scikit-learn's semantics, parameters and sign conventions.

    :meth:`score_samples` is scikit-learn's: the opposite of the paper's anomaly score, so LOWER
    means MORE abnormal. :meth:`decision_function` is ``score_samples - offset_`` (negative for
    outliers) and :meth:`predict` gives ``-1`` for outliers, ``1`` for inliers.

    ``n_jobs``: threads for fitting and scoring; ``None`` or ``-1`` = all cores (scikit-learn's
    ``None`` means one job). The model does not depend on it. ``random_state``: ``None`` or an
    int; the same int gives the same forest.

    Fitted attributes: ``offset_``, ``max_samples_``, ``n_features_in_``.
    """

    _native_type = _native.IsolationForestModel
    _estimator_kind = "outlier_detector"

    def __init__(
        self,
        *,
        n_estimators: int = 100,
        max_samples: str | int | float = "auto",
        contamination: str | float = "auto",
        max_features: int | float = 1.0,
        bootstrap: bool = False,
        n_jobs: int | None = None,
        random_state: int | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.contamination = contamination
        self.max_features = max_features
        self.bootstrap = bootstrap
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(self, X: Any, y: Any = None, sample_weight: None = None) -> IsolationForest:
        """Grows the forest on ``X`` (``y`` is ignored); returns ``self``."""
        if sample_weight is not None:
            raise ValueError("sample_weight is not supported")
        model = _native.IsolationForestModel.fit(
            check_matrix(X),
            n_estimators=self.n_estimators,
            max_samples=self.max_samples,
            contamination=self.contamination,
            max_features=self.max_features,
            bootstrap=bool(self.bootstrap),
            random_state=seed(self.random_state),
            n_jobs=threads(self.n_jobs),
        )
        self._set_model(model)
        return self

    def fit_predict(self, X: Any, y: Any = None) -> np.ndarray:
        """:meth:`fit` then :meth:`predict` on the same data."""
        return self.fit(X).predict(X)

    def score_samples(self, X: Any) -> np.ndarray:
        """scikit-learn's score: ``-a(x)``, lower = more abnormal."""
        return -self._require_model().score_samples(check_matrix(X))

    def decision_function(self, X: Any) -> np.ndarray:
        """``score_samples(X) - offset_``: negative for outliers."""
        return self._require_model().decision_function(check_matrix(X))

    def predict(self, X: Any) -> np.ndarray:
        """``-1`` for outliers, ``1`` for inliers."""
        return self._require_model().predict(check_matrix(X))

    def _sync_fitted_attributes(self) -> None:
        model = self._model
        self.offset_ = float(model.offset)
        self.max_samples_ = int(model.max_samples)
        self.n_features_in_ = int(model.n_features)

    @classmethod
    def _params_from_header(cls, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "n_estimators": params["n_estimators"],
            "max_samples": from_serde(params["max_samples"]),
            "contamination": from_serde(params["contamination"]),
            "max_features": from_serde(params["max_features"], all_value=1.0),
            "bootstrap": params["bootstrap"],
            "n_jobs": params.get("n_jobs"),
            "random_state": params.get("random_state"),
        }


class RandomForestClassifier(BaseEstimator):
    """Random forest classifier with scikit-learn's semantics, parameters and attributes
    (bootstrap, gini, ``max_features`` per split, ``predict_proba`` = mean of the leaves' class
    fractions).

    Labels may be of any type; the artifact format (:meth:`save`) stores integer labels, so a
    model fitted on non-integer labels is saved only through pickle.

    Fitted attributes: ``classes_``, ``n_classes_``, ``n_features_in_``,
    ``feature_importances_``.
    """

    _native_type = _native.RandomForestModel
    _estimator_kind = "classifier"

    def __init__(
        self,
        n_estimators: int = 100,
        *,
        max_depth: int | None = None,
        min_samples_split: int = 2,
        min_samples_leaf: int = 1,
        max_features: str | int | float | None = "sqrt",
        bootstrap: bool = True,
        n_jobs: int | None = None,
        random_state: int | None = None,
        class_weight: str | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.min_samples_split = min_samples_split
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.bootstrap = bootstrap
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.class_weight = class_weight

    def fit(self, X: Any, y: Any, sample_weight: None = None) -> RandomForestClassifier:
        """Grows the forest on ``X`` and labels ``y``; returns ``self``."""
        if sample_weight is not None:
            raise ValueError("sample_weight is not supported")
        X = check_matrix(X)
        if y is None:
            raise ValueError("RandomForestClassifier needs labels y")
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.ravel()
        if y.ndim != 1:
            raise ValueError(f"y must be one-dimensional, got shape {y.shape}")
        if len(y) != n_rows(X):
            raise ValueError(f"X has {n_rows(X)} samples but y has {len(y)} labels")
        if y.dtype.kind == "f" and np.isnan(y).any():
            raise ValueError("y contains NaN")
        classes, encoded = np.unique(y, return_inverse=True)
        # Integer labels go to the engine as they are, so that saved artifacts keep them.
        native_labels = y.dtype.kind in "iu"
        labels = y.astype(np.int64) if native_labels else encoded.astype(np.int64)
        model = _native.RandomForestModel.fit(
            X,
            labels,
            n_estimators=self.n_estimators,
            max_depth=self.max_depth,
            min_samples_split=self.min_samples_split,
            min_samples_leaf=self.min_samples_leaf,
            max_features=self.max_features,
            bootstrap=bool(self.bootstrap),
            class_weight=self.class_weight,
            random_state=seed(self.random_state),
            n_jobs=threads(self.n_jobs),
        )
        self._set_model(model)
        if not native_labels:
            self.classes_ = classes
            self._encoded_labels = True
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, one column per entry of ``classes_``."""
        return self._require_model().predict_proba(check_matrix(X))

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Logarithm of :meth:`predict_proba`."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row."""
        pred = self._require_model().predict(check_matrix(X))
        if getattr(self, "_encoded_labels", False):
            return self.classes_[pred]
        return pred

    def score(self, X: Any, y: Any, sample_weight: None = None) -> float:
        """Mean accuracy of :meth:`predict` on ``X`` against ``y`` (scikit-learn's default
        classifier score, used by ``cross_val_score`` and ``GridSearchCV``)."""
        return float(np.mean(self.predict(X) == np.asarray(y)))

    @property
    def feature_importances_(self) -> np.ndarray:
        """Mean decrease in impurity of each feature, normalized to sum to 1."""
        return self._require_model().feature_importances()

    def save(self, path: Any) -> None:
        """Writes the model in the artifact format (integer class labels only; see the class
        docs)."""
        self._check_artifact_labels()
        super().save(path)

    def to_bytes(self) -> bytes:
        """The model in the artifact format (integer class labels only)."""
        self._check_artifact_labels()
        return super().to_bytes()

    def _check_artifact_labels(self) -> None:
        self._require_model()
        if getattr(self, "_encoded_labels", False):
            raise ValueError(
                f"the artifact format stores integer class labels, and this model's classes are "
                f"{list(self.classes_)!r}: encode the labels as integers before fit, or use pickle"
            )

    def _sync_fitted_attributes(self) -> None:
        model = self._model
        self._encoded_labels = False
        self.classes_ = model.classes()
        self.n_classes_ = len(self.classes_)
        self.n_features_in_ = int(model.n_features)

    @classmethod
    def _params_from_header(cls, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "n_estimators": params["n_estimators"],
            "max_depth": params["max_depth"],
            "min_samples_split": params["min_samples_split"],
            "min_samples_leaf": params["min_samples_leaf"],
            "max_features": from_serde(params["max_features"], all_value=None),
            "bootstrap": params["bootstrap"],
            "n_jobs": params.get("n_jobs"),
            "random_state": params.get("random_state"),
            "class_weight": None if params.get("class_weight") is None else "balanced",
        }
