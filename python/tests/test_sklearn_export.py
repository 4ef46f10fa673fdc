"""The scikit-learn exporter: what it writes and what it refuses."""

import json
import os
import sys

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest, RandomForestClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import Pipeline

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "codegrey_soc"))
from sklearn_export import SCHEMA, export, export_json  # noqa: E402

DOCS = ["GET /index.html", "GET /admin.php?id=1 OR 1=1", "POST /login user=admin", "GET /img/logo.png"]


def test_tfidf_vocabulary_is_in_column_order():
    v = TfidfVectorizer(min_df=1, max_df=0.9).fit(DOCS)
    doc = export(v)
    assert doc["schema"] == SCHEMA and doc["kind"] == "tfidf_vectorizer"
    for term, column in v.vocabulary_.items():
        assert doc["vocabulary"][column] == term
    assert doc["params"]["min_df"] == 1 and isinstance(doc["params"]["min_df"], int)
    assert doc["params"]["max_df"] == 0.9 and isinstance(doc["params"]["max_df"], float)
    assert json.loads(export_json(v))["idf"] == pytest.approx(list(v.idf_), abs=0)


def test_forest_leaves_carry_what_predictions_use():
    x = np.random.RandomState(0).normal(size=(60, 3))
    y = (x[:, 0] > 0).astype(int)
    rf = RandomForestClassifier(n_estimators=3, random_state=0).fit(x, y)
    tree = export(rf)["trees"][0]
    leaves = [i for i, left in enumerate(tree["children_left"]) if left == -1]
    assert all(abs(sum(tree["leaf_values"][i]) - 1) < 1e-12 for i in leaves)
    iso = IsolationForest(n_estimators=3, max_features=2, random_state=0).fit(x)
    doc = export(iso)
    assert doc["max_samples"] == 60 and doc["offset"] == iso.offset_
    used = {f for t in doc["trees"] for f in t["feature"] if f >= 0}
    assert used <= {0, 1, 2}


@pytest.mark.parametrize(
    "estimator, message",
    [
        (TfidfVectorizer(), "not fitted"),
        (TfidfVectorizer(stop_words="english").fit(DOCS), "stop_words"),
        (TfidfVectorizer(binary=True).fit(DOCS), "binary"),
        (TfidfVectorizer(norm="l1").fit(DOCS), "norm"),
        (RandomForestClassifier(), "not fitted"),
    ],
)
def test_unsupported_estimators_are_refused(estimator, message):
    with pytest.raises(ValueError, match=message):
        export(estimator)


def test_pipeline_and_unknown_types():
    y = [0, 1, 1, 0]
    pipe = Pipeline([("tfidf", TfidfVectorizer()), ("rf", RandomForestClassifier(n_estimators=2))]).fit(DOCS, y)
    doc = export(pipe)
    assert [s["kind"] for s in doc["steps"]] == ["tfidf_vectorizer", "random_forest_classifier"]
    with pytest.raises(TypeError, match="cannot export"):
        export(object())
    rf = RandomForestClassifier(n_estimators=2).fit([[0.0], [1.0]], ["a", "b"])
    with pytest.raises(ValueError, match="integers"):
        export(rf)
