"""The end-to-end detector (text -> risk) and its risk scorer."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from . import _native
from ._base import BaseEstimator, check_texts, seed, threads

__all__ = ["Detector", "RiskScorer", "SEVERITIES"]

#: Severity names by code, lowest first (the names stored in ``threat_detections``).
SEVERITIES = np.array(["low", "medium", "high", "critical"])


def _score_dict(columns: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> dict[str, np.ndarray]:
    risk, severity, anomaly, malicious = columns
    return {
        "risk": risk,
        "severity": SEVERITIES[severity],
        "anomaly": anomaly,
        "malicious_probability": malicious,
    }


class Detector(BaseEstimator):
    """Scores log lines: TF-IDF features, an isolation forest over the line's structural
    statistics ("how unusual"), a random forest ("how likely malicious", trained when labels
    are given) and a :class:`RiskScorer`, combined into a 0-10 risk and a severity.

    The same model runs in soc-server: :meth:`save` writes the artifact that
    ``POST /api/models`` uploads.

    Parameters
    ----------
    n_estimators : trees of each forest.
    max_depth : depth limit of the classifier's trees (``None`` = fully grown).
    threshold : a line is a threat when ``risk >= 10 * threshold`` (the server's
        ``THREAT_DETECTION_THRESHOLD``).
    expected_anomaly_rate : share of training-like lines whose anomaly alone reaches the
        threshold.
    max_line_bytes : lines are cut to this many bytes before scoring.
    random_state : seed of both forests (``None`` = fresh).
    n_jobs : threads for fitting and batch scoring (``None`` / ``-1`` = all cores).
    """

    _native_type = _native.DetectorModel

    def __init__(
        self,
        *,
        n_estimators: int = 100,
        max_depth: int | None = None,
        threshold: float = 0.7,
        expected_anomaly_rate: float = 0.001,
        max_line_bytes: int = 65536,
        random_state: int | None = None,
        n_jobs: int | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.threshold = threshold
        self.expected_anomaly_rate = expected_anomaly_rate
        self.max_line_bytes = max_line_bytes
        self.random_state = random_state
        self.n_jobs = n_jobs

    def fit(self, X: Any, y: Any = None) -> Detector:
        """Fits on log lines ``X`` and optional labels ``y`` (truthy = malicious, one per
        line, both classes present); returns ``self``. Without labels the detector is
        anomaly-only."""
        texts = check_texts(X, "X")
        labels = None
        if y is not None:
            y = np.asarray(y)
            if y.ndim != 1:
                raise ValueError(f"y must be one-dimensional, got shape {y.shape}")
            if len(y) != len(texts):
                raise ValueError(f"X has {len(texts)} lines but y has {len(y)} labels")
            if y.dtype.kind not in "biu" or not np.isin(y, (0, 1)).all():
                raise ValueError("y must hold booleans or 0 / 1 (1 = malicious)")
            labels = [bool(v) for v in y.tolist()]
        model = _native.DetectorModel.fit(
            texts,
            labels,
            n_estimators=self.n_estimators,
            max_depth=self.max_depth,
            threshold=float(self.threshold),
            expected_anomaly_rate=float(self.expected_anomaly_rate),
            max_line_bytes=self.max_line_bytes,
            random_state=seed(self.random_state),
            n_jobs=threads(self.n_jobs),
        )
        self._set_model(model)
        return self

    def score(self, X: Any) -> dict[str, np.ndarray]:
        """Scores log lines: a dict of equal-length arrays ``risk`` (0-10), ``severity``
        (``"low"`` ... ``"critical"``), ``anomaly`` (calibrated, 0-1) and
        ``malicious_probability`` (0 without a classifier). ``pandas.DataFrame(det.score(X))``
        gives one row per line."""
        model = self._require_model()
        return _score_dict(model.score(check_texts(X, "X")))

    def predict(self, X: Any) -> np.ndarray:
        """``True`` for lines whose risk reaches the threat threshold."""
        return self.score(X)["risk"] >= 10.0 * self.threshold_

    def explain(self, text: str) -> dict[str, Any]:
        """Why one line scored as it did: ``score`` (as in :meth:`score`), ``fired``
        (``"none"``, ``"anomaly"``, ``"classifier"`` or ``"both"``), ``top_terms`` (terms most
        pushing towards malicious, with ``term``, ``weight``, ``contribution``) and
        ``unusual_features`` (structural statistics far from training)."""
        if not isinstance(text, str):
            raise TypeError(f"explain takes one str line, got {type(text).__name__}")
        return json.loads(self._require_model().explain_json(text))

    def _sync_fitted_attributes(self) -> None:
        model = self._model
        params = json.loads(model.params_json())
        self.threshold_ = float(params["risk"]["threshold"])
        self.n_samples_fit_, self.n_malicious_fit_ = model.training_size()
        self.has_classifier_ = bool(model.has_classifier)

    @classmethod
    def _params_from_header(cls, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "n_estimators": params["forest"]["n_estimators"],
            "max_depth": params["forest"]["max_depth"],
            "threshold": params["risk"]["threshold"],
            "expected_anomaly_rate": params["risk"]["expected_anomaly_rate"],
            "max_line_bytes": params["max_line_bytes"],
            "random_state": params.get("random_state"),
            "n_jobs": params.get("n_jobs"),
        }


class RiskScorer(BaseEstimator):
    """Turns model outputs into risk: ``risk = 10 * (1 - (1 - p)(1 - a'))`` with ``p`` the
    malicious probability and ``a'`` the anomaly calibrated on training data, and a severity
    (critical >= 9, high >= 7, medium >= 4, else low).

    Anomaly scores here are the paper's ``a(x)`` (higher = more anomalous), i.e.
    ``-IsolationForest.score_samples(X)``.
    """

    _native_type = _native.RiskScorerModel

    def __init__(self, *, expected_anomaly_rate: float = 0.001, threshold: float = 0.7) -> None:
        self.expected_anomaly_rate = expected_anomaly_rate
        self.threshold = threshold

    def fit(self, anomaly: Any, y: Any = None) -> RiskScorer:
        """Calibrates on the anomaly scores ``a(x)`` of training lines; returns ``self``."""
        model = _native.RiskScorerModel.fit(
            _vector(anomaly, "anomaly"),
            expected_anomaly_rate=float(self.expected_anomaly_rate),
            threshold=float(self.threshold),
        )
        self._set_model(model)
        return self

    def score(self, anomaly: Any, malicious_probability: Any = None) -> dict[str, np.ndarray]:
        """Risk of each line from its anomaly score and optional malicious probability:
        the same dict of arrays as :meth:`Detector.score`."""
        model = self._require_model()
        p = None if malicious_probability is None else _vector(malicious_probability, "malicious_probability")
        return _score_dict(model.score(_vector(anomaly, "anomaly"), p))

    def calibrate(self, anomaly: Any) -> np.ndarray:
        """Calibrated anomaly ``a'`` in [0, 1] of each raw score."""
        return self._require_model().calibrate(_vector(anomaly, "anomaly"))

    def is_threat(self, risk: Any) -> Any:
        """Whether ``risk`` (a number or an array) reaches the threat threshold."""
        self._require_model()
        return np.asarray(risk) >= 10.0 * float(self.threshold_)

    def _sync_fitted_attributes(self) -> None:
        # The threshold the model was calibrated with (set_params after fit does not change it).
        self.threshold_ = float(self.threshold)

    @classmethod
    def _params_from_header(cls, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "expected_anomaly_rate": params["expected_anomaly_rate"],
            "threshold": params["threshold"],
        }


def _vector(values: Any, name: str) -> np.ndarray:
    if values is None:
        raise TypeError(f"{name} must be a 1-D array-like of numbers, got None")
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be numeric: {e}") from None
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return np.ascontiguousarray(arr)
