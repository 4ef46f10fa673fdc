"""Text features: scikit-learn's ``TfidfVectorizer``, computed by the Rust engine."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from . import _native
from ._base import BaseEstimator, check_texts, from_serde

__all__ = ["TfidfVectorizer"]

_ANALYZERS = {"Word": "word", "Char": "char", "CharWb": "char_wb"}


class TfidfVectorizer(BaseEstimator):
    """Convert raw documents to a matrix of TF-IDF features, as scikit-learn's
    ``sklearn.feature_extraction.text.TfidfVectorizer`` with the same parameters does (same
    vocabulary, idf and matrix; see soc-core's ``text`` module for the rare differences).

    Parameters keep scikit-learn's names and defaults. Not supported: custom ``preprocessor``,
    ``tokenizer``, ``stop_words``, ``strip_accents``, ``vocabulary``, ``binary``, ``norm='l1'``.
    ``stem`` (English Snowball stemming of word tokens) is an extension.

    Fitted attributes: ``vocabulary_`` (term -> column), ``idf_``, and
    :meth:`get_feature_names_out`. :meth:`transform` returns a ``scipy.sparse.csr_matrix`` of
    float64.
    """

    _native_type = _native.TfidfModel
    _estimator_kind = "text_transformer"

    def __init__(
        self,
        *,
        lowercase: bool = True,
        analyzer: str = "word",
        token_pattern: str = r"(?u)\b\w\w+\b",
        ngram_range: tuple[int, int] = (1, 1),
        max_df: float | int = 1.0,
        min_df: float | int = 1,
        max_features: int | None = None,
        norm: str | None = "l2",
        use_idf: bool = True,
        smooth_idf: bool = True,
        sublinear_tf: bool = False,
        stem: bool = False,
    ) -> None:
        self.lowercase = lowercase
        self.analyzer = analyzer
        self.token_pattern = token_pattern
        self.ngram_range = ngram_range
        self.max_df = max_df
        self.min_df = min_df
        self.max_features = max_features
        self.norm = norm
        self.use_idf = use_idf
        self.smooth_idf = smooth_idf
        self.sublinear_tf = sublinear_tf
        self.stem = stem

    def fit(self, raw_documents: Any, y: Any = None) -> TfidfVectorizer:
        """Learns the vocabulary and idf of ``raw_documents``; returns ``self``."""
        self.fit_transform(raw_documents)
        return self

    def fit_transform(self, raw_documents: Any, y: Any = None) -> sp.csr_matrix:
        """Learns the vocabulary and idf and returns the TF-IDF matrix of ``raw_documents``."""
        docs = check_texts(raw_documents)
        ngram_range = tuple(self.ngram_range)
        if len(ngram_range) != 2:
            raise ValueError(f"ngram_range must be a pair (min_n, max_n), got {self.ngram_range!r}")
        model, parts = _native.TfidfModel.fit_transform(
            docs,
            lowercase=bool(self.lowercase),
            analyzer=self.analyzer,
            token_pattern=self.token_pattern,
            ngram_range=ngram_range,
            min_df=self.min_df,
            max_df=self.max_df,
            max_features=self.max_features,
            use_idf=bool(self.use_idf),
            smooth_idf=bool(self.smooth_idf),
            sublinear_tf=bool(self.sublinear_tf),
            norm=self.norm,
            stem=bool(self.stem),
        )
        self._set_model(model)
        return _csr(parts)

    def transform(self, raw_documents: Any) -> sp.csr_matrix:
        """The TF-IDF matrix of ``raw_documents`` with the fitted vocabulary and idf."""
        model = self._require_model()
        return _csr(model.transform(check_texts(raw_documents)))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The vocabulary terms in column order, as an object array (as scikit-learn)."""
        return np.asarray(self._require_model().feature_names(), dtype=object)

    def _sync_fitted_attributes(self) -> None:
        model = self._model
        names = model.feature_names()
        self.vocabulary_ = {term: i for i, term in enumerate(names)}
        self.idf_ = model.idf()

    @classmethod
    def _params_from_header(cls, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "lowercase": params["lowercase"],
            "analyzer": _ANALYZERS[params["analyzer"]],
            "token_pattern": params["token_pattern"],
            "ngram_range": tuple(params["ngram_range"]),
            "max_df": from_serde(params["max_df"]),
            "min_df": from_serde(params["min_df"]),
            "max_features": params["max_features"],
            "norm": "l2" if params["norm"] == "L2" else None,
            "use_idf": params["use_idf"],
            "smooth_idf": params["smooth_idf"],
            "sublinear_tf": params["sublinear_tf"],
            "stem": params["stem"],
        }


def _csr(parts: tuple[Any, Any, Any, tuple[int, int]]) -> sp.csr_matrix:
    data, indices, indptr, shape = parts
    return sp.csr_matrix((data, indices, indptr), shape=shape)
