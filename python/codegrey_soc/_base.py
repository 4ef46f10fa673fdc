"""What every estimator shares: scikit-learn's parameter protocol, fitted-state checks,
pickling through the artifact format, save / load, and input validation."""

from __future__ import annotations

import inspect
import json
import numbers
import os
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from . import _native
from .exceptions import NotFittedError

_TEXT_HINT = "an iterable of str documents (list, numpy array or pandas Series)"


class BaseEstimator:
    """scikit-learn's estimator protocol without depending on scikit-learn.

    ``__init__`` only stores its arguments; :meth:`get_params` / :meth:`set_params` read and
    write them, so ``sklearn.base.clone``, ``Pipeline`` and ``GridSearchCV`` work. The fitted
    model lives in ``_model`` (a ``codegrey_soc._native`` object), pickled as artifact bytes.
    """

    _native_type: ClassVar[Any]
    #: What scikit-learn should take the estimator for (see ``__sklearn_tags__``).
    _estimator_kind: ClassVar[str] = "other"

    @classmethod
    def _get_param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return sorted(
            name
            for name, p in sig.parameters.items()
            if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        )

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor parameters, by name (``deep`` is accepted for scikit-learn)."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params: Any) -> BaseEstimator:
        """Sets constructor parameters by name; takes effect at the next ``fit``."""
        valid = self._get_param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"invalid parameter {name!r} for {type(self).__name__}; valid parameters: {valid}"
                )
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {
            n: p.default for n, p in inspect.signature(type(self).__init__).parameters.items()
        }
        changed = [
            f"{n}={v!r}" for n, v in self.get_params().items() if not _same(v, defaults.get(n))
        ]
        return f"{type(self).__name__}({', '.join(changed)})"

    def __sklearn_tags__(self) -> Any:
        """scikit-learn's estimator tags (only scikit-learn calls this, so importing it here
        adds no runtime dependency)."""
        from sklearn.utils import ClassifierTags, InputTags, Tags, TargetTags, TransformerTags

        kind = self._estimator_kind
        return Tags(
            estimator_type=kind if kind in ("classifier", "outlier_detector") else None,
            target_tags=TargetTags(required=kind == "classifier"),
            transformer_tags=TransformerTags() if kind == "text_transformer" else None,
            classifier_tags=ClassifierTags() if kind == "classifier" else None,
            input_tags=InputTags(two_d_array=kind != "text_transformer", string=kind == "text_transformer"),
        )

    def __sklearn_is_fitted__(self) -> bool:
        return getattr(self, "_model", None) is not None

    def _require_model(self) -> Any:
        model = getattr(self, "_model", None)
        if model is None:
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                "appropriate arguments before using this estimator."
            )
        return model

    def _set_model(self, model: Any) -> None:
        """Stores a fitted native model and derives the fitted attributes from it."""
        self._model = model
        self._sync_fitted_attributes()

    def _sync_fitted_attributes(self) -> None:
        """Sets the scikit-learn fitted attributes (``n_features_in_`` ...) from ``_model``."""

    # Pickle through the artifact format: the native objects are not picklable themselves.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if state.get("_model") is not None:
            state["_model"] = bytes(state["_model"].to_bytes())
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        model = state.get("_model")
        if isinstance(model, (bytes, bytearray)):
            state = dict(state, _model=self._native_type.from_bytes(bytes(model)))
        self.__dict__.update(state)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes the fitted model to ``path`` in CodeGrey SOC's artifact format (the file
        soc-server and Rust load)."""
        data = self.to_bytes()
        with open(path, "wb") as f:
            f.write(data)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Any:
        """Reads a model written by :meth:`save` (or by soc-server / Rust).

        Raises :class:`~codegrey_soc.SocError` on a corrupt file or one holding another kind of
        model. The estimator's parameters are restored from the artifact's header.
        """
        with open(path, "rb") as f:
            data = f.read()
        return cls.from_bytes(data)

    def to_bytes(self) -> bytes:
        """The fitted model in the artifact format (what :meth:`save` writes, and what
        soc-server's ``POST /api/models`` takes as its body)."""
        return bytes(self._require_model().to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> Any:
        """Reads a model from artifact bytes (see :meth:`load`)."""
        model = cls._native_type.from_bytes(bytes(data))
        header = json.loads(_native.read_header_json(bytes(data)))
        return cls._from_native(model, cls._params_from_header(header.get("params") or {}))

    @classmethod
    def _from_native(cls, model: Any, params: dict[str, Any]) -> Any:
        est = cls(**params)
        est._set_model(model)
        return est

    @classmethod
    def _params_from_header(cls, params: dict[str, Any]) -> dict[str, Any]:
        """Constructor parameters from the artifact header's ``params`` (soc-core's names)."""
        return {}


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) and type(a) is type(b)
    except Exception:
        return a is b


def check_texts(raw_documents: Any, name: str = "raw_documents") -> list[Any]:
    """A list of documents from a list, tuple, 1-D numpy array, pandas Series or iterable.

    Items are checked (str only) by the native side, which names the first bad one.
    """
    if raw_documents is None:
        raise TypeError(f"{name} must be {_TEXT_HINT}, got None")
    if isinstance(raw_documents, (str, bytes)):
        raise ValueError(
            f"{name} must be {_TEXT_HINT}, got a single {type(raw_documents).__name__}; "
            "wrap it in a list"
        )
    if isinstance(raw_documents, list):
        return raw_documents
    ndim = getattr(raw_documents, "ndim", 1)
    if ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got {ndim} dimensions")
    if hasattr(raw_documents, "tolist"):
        return raw_documents.tolist()
    try:
        return list(raw_documents)
    except TypeError:
        raise TypeError(
            f"{name} must be {_TEXT_HINT}, got {type(raw_documents).__name__}"
        ) from None


def check_matrix(X: Any) -> Any:
    """A feature matrix for the native forests: a C-contiguous float64 2-D array, or the parts
    ``(data, indices, indptr, n_cols)`` of a canonical CSR matrix for scipy sparse input."""
    if X is None:
        raise TypeError("X must be a 2-D array-like or a scipy.sparse matrix, got None")
    if sp.issparse(X):
        X = sp.csr_matrix(X)
        if not X.has_canonical_format:
            X = X.copy()
            X.sum_duplicates()
        return (
            np.ascontiguousarray(X.data, dtype=np.float64),
            np.ascontiguousarray(X.indices, dtype=np.int64),
            np.ascontiguousarray(X.indptr, dtype=np.int64),
            int(X.shape[1]),
        )
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"X must be numeric: {e}") from None
    if arr.ndim != 2:
        raise ValueError(
            f"Expected a 2-D array, got a {arr.ndim}-D array of shape {arr.shape}. Reshape your "
            "data with array.reshape(-1, 1) for a single feature or array.reshape(1, -1) for a "
            "single sample."
        )
    return np.ascontiguousarray(arr)


def n_rows(X: Any) -> int:
    """Rows of the value :func:`check_matrix` returned."""
    if isinstance(X, tuple):
        return len(X[2]) - 1
    return int(X.shape[0])


def threads(n_jobs: Any) -> int | None:
    """scikit-learn's ``n_jobs`` as the engine's thread count (``None`` = all cores).

    ``None`` and ``-1`` use every core (unlike scikit-learn, where ``None`` means one job: the
    engine's threads are cheap), ``n`` uses ``n`` threads, ``-2`` all but one, and so on.
    """
    if n_jobs is None:
        return None
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral):
        raise TypeError(f"n_jobs must be an int or None, got {n_jobs!r}")
    n_jobs = int(n_jobs)
    if n_jobs == 0:
        raise ValueError("n_jobs == 0 has no meaning; use None, -1 or a positive count")
    if n_jobs > 0:
        return n_jobs
    return max(1, (os.cpu_count() or 1) + 1 + n_jobs)


def seed(random_state: Any) -> int | None:
    """``random_state`` as the engine's seed: ``None`` or a non-negative int."""
    if random_state is None:
        return None
    if isinstance(random_state, bool) or not isinstance(random_state, numbers.Integral):
        raise TypeError(
            "random_state must be None or an int (numpy RandomState objects are not supported), "
            f"got {random_state!r}"
        )
    if not 0 <= int(random_state) < 2**64:
        raise ValueError(f"random_state must be in [0, 2**64), got {random_state}")
    return int(random_state)


def from_serde(value: Any, all_value: Any = None) -> Any:
    """A soc-core parameter as serde wrote it in an artifact header, in scikit-learn's spelling:
    ``{"Count": 5}`` -> 5, ``{"Fraction": 0.5}`` -> 0.5, ``"Auto"`` -> "auto",
    ``"Sqrt"`` -> "sqrt", ``"All"`` -> ``all_value``."""
    if isinstance(value, dict) and len(value) == 1:
        ((kind, inner),) = value.items()
        if kind == "Count":
            return int(inner)
        if kind == "Fraction":
            return float(inner)
    if value == "All":
        return all_value
    if isinstance(value, str):
        return value.lower()
    return value
