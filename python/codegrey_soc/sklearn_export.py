"""Export fitted scikit-learn models to CodeGrey SOC's import schema (JSON).

The schema is documented in ``docs/sklearn-import.md``; soc-core's ``sklearn`` module loads it
and reproduces scikit-learn's outputs exactly (max abs difference <= 1e-9).

Usable without the compiled package::

    python python/codegrey_soc/sklearn_export.py model.pkl model.json   # a pickled estimator

or from Python: ``export(estimator) -> dict`` and ``export_json(estimator) -> str``.
Supported: ``TfidfVectorizer``, ``IsolationForest``, ``RandomForestClassifier`` and a
``Pipeline`` of a ``TfidfVectorizer`` followed by one of the forests.
"""

from __future__ import annotations

import json
import numbers
import sys

SCHEMA = "codegrey-sklearn"
SCHEMA_VERSION = 1

__all__ = ["export", "export_json", "SCHEMA", "SCHEMA_VERSION"]


def _sklearn_version() -> str:
    import sklearn

    return sklearn.__version__


def _check_fitted(est, attr: str) -> None:
    if not hasattr(est, attr):
        raise ValueError(f"{type(est).__name__} is not fitted (no {attr}); fit it before exporting")


def _number(value):
    """An int stays a JSON integer (a count), a float a JSON float (a fraction)."""
    if isinstance(value, bool):
        raise TypeError(f"expected a number, got {value!r}")
    if isinstance(value, numbers.Integral):
        return int(value)
    return float(value)


def _tfidf(est) -> dict:
    _check_fitted(est, "vocabulary_")
    unsupported = {
        "input": ("content",),
        "encoding": ("utf-8",),
        "decode_error": ("strict",),
        "strip_accents": (None,),
        "preprocessor": (None,),
        "tokenizer": (None,),
        "stop_words": (None,),
        "binary": (False,),
    }
    for name, allowed in unsupported.items():
        value = getattr(est, name)
        if value not in allowed:
            raise ValueError(f"TfidfVectorizer({name}={value!r}) cannot be exported: only {allowed[0]!r} is supported")
    if est.analyzer not in ("word", "char", "char_wb"):
        raise ValueError("TfidfVectorizer with a callable analyzer cannot be exported")
    if est.norm not in ("l2", None):
        raise ValueError(f"TfidfVectorizer(norm={est.norm!r}) cannot be exported: use 'l2' or None")
    terms = [None] * len(est.vocabulary_)
    for term, column in est.vocabulary_.items():
        terms[column] = term
    return {
        "kind": "tfidf_vectorizer",
        "params": {
            "lowercase": bool(est.lowercase),
            "analyzer": est.analyzer,
            "token_pattern": est.token_pattern,
            "ngram_range": [int(est.ngram_range[0]), int(est.ngram_range[1])],
            "min_df": _number(est.min_df),
            "max_df": _number(est.max_df),
            "max_features": None if est.max_features is None else int(est.max_features),
            "use_idf": bool(est.use_idf),
            "smooth_idf": bool(est.smooth_idf),
            "sublinear_tf": bool(est.sublinear_tf),
            "norm": est.norm,
        },
        "vocabulary": terms,
        "idf": [float(v) for v in est.idf_] if est.use_idf else None,
    }


def _tree(tree, leaf_values) -> dict:
    t = tree.tree_
    return {
        "children_left": t.children_left.tolist(),
        "children_right": t.children_right.tolist(),
        "feature": t.feature.tolist(),
        "threshold": t.threshold.tolist(),
        "leaf_values": leaf_values,
    }


def _random_forest(est) -> dict:
    _check_fitted(est, "estimators_")
    if est.n_outputs_ != 1:
        raise ValueError("multi-output RandomForestClassifier cannot be exported")
    classes = [int(c) for c in est.classes_] if all(isinstance(c, numbers.Integral) for c in est.classes_) else None
    if classes is None:
        raise ValueError(f"RandomForestClassifier classes must be integers, got {list(est.classes_)!r}")
    trees = []
    for tree in est.estimators_:
        value = tree.tree_.value[:, 0, :]
        # scikit-learn normalizes each leaf's class weights to probabilities at predict time.
        proba = value / value.sum(axis=1, keepdims=True)
        trees.append(_tree(tree, proba.tolist()))
    return {
        "kind": "random_forest_classifier",
        "params": {
            "n_estimators": int(est.n_estimators),
            "max_depth": est.max_depth,
            "min_samples_split": _number(est.min_samples_split),
            "min_samples_leaf": _number(est.min_samples_leaf),
            "max_features": est.max_features if not isinstance(est.max_features, numbers.Number) else _number(est.max_features),
            "bootstrap": bool(est.bootstrap),
            "class_weight": est.class_weight if est.class_weight in (None, "balanced") else "custom",
            "random_state": est.random_state if isinstance(est.random_state, int) else None,
        },
        "n_features": int(est.n_features_in_),
        "classes": classes,
        "feature_importances": [float(v) for v in est.feature_importances_],
        "trees": trees,
    }


def _isolation_forest(est) -> dict:
    import numpy as np

    _check_fitted(est, "estimators_")
    trees = []
    for i, tree in enumerate(est.estimators_):
        # Exactly scikit-learn's per-leaf path length: depth + c(n_node_samples) - 1, computed
        # with the same float operations so that imported scores match to the last bit.
        depth_plus_one = est._decision_path_lengths[i]
        average = est._average_path_length_per_tree[i]
        leaf_values = (depth_plus_one + average - 1.0).reshape(-1, 1)
        exported = _tree(tree, leaf_values.tolist())
        features = np.asarray(est.estimators_features_[i])
        # Trees index the per-tree feature subset: map them back to the input's columns.
        exported["feature"] = [int(features[f]) if f >= 0 else int(f) for f in tree.tree_.feature]
        trees.append(exported)
    return {
        "kind": "isolation_forest",
        "params": {
            "n_estimators": int(est.n_estimators),
            "max_samples": est.max_samples if isinstance(est.max_samples, str) else _number(est.max_samples),
            "max_features": _number(est.max_features),
            "contamination": est.contamination if isinstance(est.contamination, str) else float(est.contamination),
            "bootstrap": bool(est.bootstrap),
            "random_state": est.random_state if isinstance(est.random_state, int) else None,
        },
        "n_features": int(est.n_features_in_),
        "max_samples": int(est.max_samples_),
        "offset": float(est.offset_),
        "trees": trees,
    }


def _export_step(est) -> dict:
    name = type(est).__name__
    if name == "TfidfVectorizer":
        return _tfidf(est)
    if name == "RandomForestClassifier":
        return _random_forest(est)
    if name == "IsolationForest":
        return _isolation_forest(est)
    raise TypeError(
        f"cannot export {name}: supported are TfidfVectorizer, IsolationForest, "
        "RandomForestClassifier and a Pipeline of them"
    )


def export(est) -> dict:
    """The import-schema document (a dict) for a fitted estimator or pipeline."""
    if type(est).__name__ == "Pipeline":
        steps = [_export_step(step) for _, step in est.steps if step not in (None, "passthrough")]
        kinds = [s["kind"] for s in steps]
        if len(steps) != 2 or kinds[0] != "tfidf_vectorizer" or kinds[1] == "tfidf_vectorizer":
            raise ValueError(f"a Pipeline must be a TfidfVectorizer then one forest, got {kinds}")
        body = {"kind": "pipeline", "steps": steps}
    else:
        body = _export_step(est)
    return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "sklearn_version": _sklearn_version(), **body}


def export_json(est) -> str:
    """:func:`export` as a JSON string (floats written with full precision)."""
    return json.dumps(export(est), allow_nan=False)


def _main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] in ("-h", "--help"):
        print("usage: sklearn_export.py MODEL.pkl OUT.json   (a pickled, fitted estimator)", file=sys.stderr)
        return 2
    import pickle

    with open(argv[1], "rb") as f:
        est = pickle.load(f)
    with open(argv[2], "w", encoding="utf-8") as f:
        f.write(export_json(est))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
