"""codegrey_soc.from_sklearn: imported models reproduce scikit-learn's outputs exactly
(max abs difference <= 1e-9), on real data, dense and sparse."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.ensemble import IsolationForest, RandomForestClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import Pipeline

import codegrey_soc as cs

TOLERANCE = 1e-9


def _max_diff(a, b) -> float:
    a = a.toarray() if sp.issparse(a) else np.asarray(a)
    b = b.toarray() if sp.issparse(b) else np.asarray(b)
    assert a.shape == b.shape
    return float(np.abs(a - b).max()) if a.size else 0.0


@pytest.mark.parametrize(
    "params",
    [{}, {"ngram_range": (1, 2), "min_df": 2, "sublinear_tf": True}, {"analyzer": "char_wb", "ngram_range": (2, 4), "max_df": 0.8}],
)
def test_tfidf(httpparams, params):
    sk = TfidfVectorizer(**params).fit(httpparams["train_x"])
    ours = cs.from_sklearn(sk)
    assert isinstance(ours, cs.TfidfVectorizer) and ours.vocabulary_ == sk.vocabulary_
    assert _max_diff(ours.transform(httpparams["test_x"]), sk.transform(httpparams["test_x"])) <= TOLERANCE
    assert ours.ngram_range == sk.ngram_range


@pytest.fixture(scope="module")
def features(httpparams):
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 3), min_df=3).fit(httpparams["train_x"])
    return vec.transform(httpparams["train_x"]), vec.transform(httpparams["test_x"])


@pytest.mark.parametrize("params", [{}, {"max_features": 0.5, "max_samples": 300, "contamination": 0.02}])
def test_isolation_forest(features, params):
    train, test = features
    sk = IsolationForest(n_estimators=60, random_state=0, **params).fit(train)
    ours = cs.from_sklearn(sk)
    assert isinstance(ours, cs.IsolationForest) and ours.offset_ == sk.offset_
    for x in (test, test.toarray()):
        assert _max_diff(ours.score_samples(x), sk.score_samples(x)) <= TOLERANCE
        assert _max_diff(ours.decision_function(x), sk.decision_function(x)) <= TOLERANCE
        np.testing.assert_array_equal(ours.predict(x), sk.predict(x))


@pytest.mark.parametrize("params", [{}, {"max_depth": 6, "min_samples_leaf": 3, "class_weight": "balanced"}])
def test_random_forest(features, httpparams, params):
    train, test = features
    sk = RandomForestClassifier(n_estimators=40, random_state=0, **params).fit(train, httpparams["train_y"])
    ours = cs.from_sklearn(sk)
    assert isinstance(ours, cs.RandomForestClassifier)
    np.testing.assert_array_equal(ours.classes_, sk.classes_)
    assert _max_diff(ours.feature_importances_, sk.feature_importances_) <= TOLERANCE
    for x in (test, test.toarray()):
        assert _max_diff(ours.predict_proba(x), sk.predict_proba(x)) <= TOLERANCE
        np.testing.assert_array_equal(ours.predict(x), sk.predict(x))


@pytest.mark.parametrize("forest", ["isolation", "random"])
def test_pipeline(httpparams, forest):
    last = (
        IsolationForest(n_estimators=40, random_state=1)
        if forest == "isolation"
        else RandomForestClassifier(n_estimators=40, random_state=1)
    )
    sk = Pipeline([("tfidf", TfidfVectorizer(ngram_range=(1, 2))), ("model", last)])
    sk.fit(httpparams["train_x"], httpparams["train_y"])
    ours = cs.from_sklearn(sk)
    assert isinstance(ours, cs.Pipeline) and list(ours.named_steps) == ["tfidf", "model"]
    test = httpparams["test_x"]
    if forest == "isolation":
        assert _max_diff(ours.score_samples(test), sk.score_samples(test)) <= TOLERANCE
    else:
        assert _max_diff(ours.predict_proba(test), sk.predict_proba(test)) <= TOLERANCE
    np.testing.assert_array_equal(ours.predict(test), sk.predict(test))


def test_imported_models_save_and_load_with_the_same_outputs(tmp_path, features, httpparams):
    train, test = features
    sk = RandomForestClassifier(n_estimators=10, random_state=0).fit(train, httpparams["train_y"])
    ours = cs.from_sklearn(sk)
    ours.save(tmp_path / "rf")
    back = cs.load(tmp_path / "rf")
    assert _max_diff(back.predict_proba(test), sk.predict_proba(test)) <= TOLERANCE


def test_unfitted_or_unsupported_estimators_are_refused():
    with pytest.raises(ValueError, match="not fitted"):
        cs.from_sklearn(TfidfVectorizer())
    from sklearn.linear_model import LogisticRegression

    with pytest.raises(TypeError, match="cannot export LogisticRegression"):
        cs.from_sklearn(LogisticRegression())
    with pytest.raises(ValueError, match="integers"):
        x = np.random.default_rng(0).normal(size=(30, 2))
        cs.from_sklearn(RandomForestClassifier(n_estimators=2).fit(x, np.where(x[:, 0] > 0, "a", "b")))
