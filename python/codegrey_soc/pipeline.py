"""A minimal ``Pipeline`` (a vectorizer then a model) and :func:`from_sklearn`."""

from __future__ import annotations

from typing import Any

from . import _native
from .detector import Detector, RiskScorer
from .ensemble import IsolationForest, RandomForestClassifier
from .text import TfidfVectorizer

__all__ = ["Pipeline", "from_sklearn", "load"]

_BY_KIND: dict[str, Any] = {
    "tfidf_vectorizer": TfidfVectorizer,
    "isolation_forest": IsolationForest,
    "random_forest_classifier": RandomForestClassifier,
    "detector": Detector,
    "risk_scorer": RiskScorer,
}


class Pipeline:
    """Steps applied in order: every step but the last transforms, the last one predicts
    (the subset of ``sklearn.pipeline.Pipeline`` that :func:`from_sklearn` needs).

    ``steps`` is a list of ``(name, estimator)``; ``named_steps`` maps names to estimators.
    """

    def __init__(self, steps: list[tuple[str, Any]]) -> None:
        self.steps = steps

    @property
    def named_steps(self) -> dict[str, Any]:
        """The steps by name."""
        return dict(self.steps)

    def __getitem__(self, index: int | str) -> Any:
        if isinstance(index, str):
            return self.named_steps[index]
        return self.steps[index][1]

    def __len__(self) -> int:
        return len(self.steps)

    def __repr__(self) -> str:
        return f"Pipeline(steps={self.steps!r})"

    def _transform(self, X: Any) -> Any:
        for _, step in self.steps[:-1]:
            X = step.transform(X)
        return X

    def fit(self, X: Any, y: Any = None) -> Pipeline:
        """Fits each step on the output of the previous one; returns ``self``."""
        for _, step in self.steps[:-1]:
            X = step.fit_transform(X, y)
        last = self.steps[-1][1]
        if y is None:
            last.fit(X)
        else:
            last.fit(X, y)
        return self

    def predict(self, X: Any) -> Any:
        """The last step's ``predict`` on the transformed ``X``."""
        return self.steps[-1][1].predict(self._transform(X))

    def predict_proba(self, X: Any) -> Any:
        """The last step's ``predict_proba`` on the transformed ``X``."""
        return self.steps[-1][1].predict_proba(self._transform(X))

    def score_samples(self, X: Any) -> Any:
        """The last step's ``score_samples`` on the transformed ``X``."""
        return self.steps[-1][1].score_samples(self._transform(X))

    def decision_function(self, X: Any) -> Any:
        """The last step's ``decision_function`` on the transformed ``X``."""
        return self.steps[-1][1].decision_function(self._transform(X))

    def transform(self, X: Any) -> Any:
        """Every step's ``transform`` in order (the last step must be a transformer)."""
        return self.steps[-1][1].transform(self._transform(X))


def _wrap(kind: str, model: Any, source: Any) -> Any:
    cls = _BY_KIND[kind]
    wanted = set(cls._get_param_names())
    params = {k: v for k, v in source.get_params(deep=False).items() if k in wanted}
    if "random_state" in params and not isinstance(params["random_state"], (int, type(None))):
        params["random_state"] = None
    return cls._from_native(model, params)


def from_sklearn(estimator: Any) -> Any:
    """Converts a fitted scikit-learn ``TfidfVectorizer``, ``IsolationForest``,
    ``RandomForestClassifier`` or ``Pipeline`` of a vectorizer and a forest into the
    codegrey_soc equivalent, whose outputs equal scikit-learn's (max abs difference <= 1e-9).

    The model goes through the documented JSON schema (``docs/sklearn-import.md``, written by
    :mod:`codegrey_soc.sklearn_export`). Raises ``ValueError`` / ``TypeError`` for an unfitted
    or unsupported estimator.
    """
    from .sklearn_export import export_json

    steps = _native.import_sklearn(export_json(estimator))
    if type(estimator).__name__ == "Pipeline":
        sources = [
            (name, step) for name, step in estimator.steps if step not in (None, "passthrough")
        ]
        return Pipeline(
            [(name, _wrap(kind, model, src)) for (kind, model), (name, src) in zip(steps, sources)]
        )
    ((kind, model),) = steps
    return _wrap(kind, model, estimator)


def load(path: Any) -> Any:
    """Reads any artifact (a detector, vectorizer, forest or risk scorer) and returns the
    matching codegrey_soc estimator."""
    import json

    with open(path, "rb") as f:
        data = f.read()
    kind = json.loads(_native.read_header_json(data))["kind"]
    return _BY_KIND[kind].from_bytes(data)
