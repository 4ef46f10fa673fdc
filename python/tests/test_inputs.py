"""Inputs: lists, numpy arrays and pandas Series work; bad inputs give ValueError / TypeError
with a clear message (never a crash); NotFittedError before fit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import codegrey_soc as cs
from conftest import LOG_LINES


def test_texts_from_list_numpy_and_pandas_agree(detector):
    lines = LOG_LINES[290:310]
    expected = detector.score(lines)["risk"]
    for form in (np.array(lines), np.array(lines, dtype=object), pd.Series(lines), tuple(lines), iter(lines)):
        np.testing.assert_array_equal(detector.score(form)["risk"], expected)
    v = cs.TfidfVectorizer().fit(pd.Series(lines))
    assert abs(v.transform(np.array(lines)) - v.transform(lines)).max() == 0


def test_dense_inputs_from_lists_and_dataframes():
    x = np.random.default_rng(0).normal(size=(100, 3))
    iso = cs.IsolationForest(n_estimators=10, random_state=0).fit(pd.DataFrame(x))
    np.testing.assert_array_equal(iso.score_samples(x.tolist()), iso.score_samples(x))
    np.testing.assert_array_equal(iso.score_samples(x.astype(np.float32).astype(np.float64)), iso.score_samples(x))
    np.testing.assert_array_equal(iso.score_samples(np.asfortranarray(x)), iso.score_samples(x))
    y = pd.Series((x[:, 0] > 0).astype(int))
    rf = cs.RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y)
    assert rf.predict(x[:5]).shape == (5,)


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (None, TypeError, "got None"),
        ("one line", ValueError, "single str"),
        (b"bytes", ValueError, "single bytes"),
        (["ok", 3], TypeError, "item 1 is int"),
        (["ok", None], TypeError, "item 1 is NoneType"),
        ([b"GET /"], TypeError, "item 0 is bytes"),
        (np.array([["a", "b"]]), ValueError, "one-dimensional"),
        (42, TypeError, "got int"),
    ],
)
def test_bad_texts(detector, bad, error, match):
    with pytest.raises(error, match=match):
        detector.score(bad)
    with pytest.raises(error, match=match):
        cs.TfidfVectorizer().fit(bad)


def test_empty_inputs():
    with pytest.raises(ValueError, match="empty"):
        cs.Detector().fit([])
    with pytest.raises(ValueError):
        cs.TfidfVectorizer().fit([])
    with pytest.raises(ValueError, match="no samples"):
        cs.IsolationForest().fit(np.empty((0, 3)))
    det = cs.Detector(n_estimators=5, random_state=0).fit(LOG_LINES)
    assert {k: len(v) for k, v in det.score([]).items()} == dict.fromkeys(det.score([]), 0)


def test_bad_matrices_and_labels():
    x = np.random.default_rng(0).normal(size=(50, 3))
    iso = cs.IsolationForest(n_estimators=5, random_state=0).fit(x)
    with pytest.raises(ValueError, match="2-D"):
        iso.score_samples(x[0])
    with pytest.raises(ValueError, match="expected 3 features, got 2"):
        iso.score_samples(x[:, :2])
    with pytest.raises(ValueError, match="expected 3 features, got 4"):
        iso.predict(sp.csr_matrix(np.ones((2, 4))))
    with pytest.raises(ValueError, match="NaN"):
        iso.score_samples(np.full((2, 3), np.nan))
    with pytest.raises(ValueError, match="numeric"):
        iso.fit([["a", "b", "c"]])
    with pytest.raises(TypeError, match="got None"):
        iso.fit(None)
    rf = cs.RandomForestClassifier(n_estimators=5)
    with pytest.raises(ValueError, match="50 samples but y has 3"):
        rf.fit(x, [0, 1, 0])
    with pytest.raises(ValueError, match="labels y"):
        rf.fit(x, None)
    with pytest.raises(ValueError, match="0 / 1"):
        cs.Detector().fit(["a b", "c d"], [0, 2])
    with pytest.raises(ValueError, match="2 lines but y has 1"):
        cs.Detector().fit(["a b", "c d"], [1])


def test_bad_parameters_are_value_or_type_errors():
    x = np.random.default_rng(0).normal(size=(50, 3))
    y = (x[:, 0] > 0).astype(int)
    for est, match in [
        (cs.IsolationForest(n_estimators=0), "n_estimators"),
        (cs.IsolationForest(max_samples="all"), "max_samples"),
        (cs.IsolationForest(contamination=0.9), "contamination"),
        (cs.RandomForestClassifier(min_samples_split=1), "min_samples_split"),
        (cs.RandomForestClassifier(max_features="half"), "max_features"),
        (cs.RandomForestClassifier(class_weight="balanced_subsample"), "class_weight"),
    ]:
        with pytest.raises(ValueError, match=match):
            est.fit(x, y) if isinstance(est, cs.RandomForestClassifier) else est.fit(x)
    with pytest.raises(TypeError, match="random_state"):
        cs.IsolationForest(random_state=np.random.RandomState(0)).fit(x)
    with pytest.raises(ValueError, match="random_state"):
        cs.IsolationForest(random_state=-1).fit(x)
    with pytest.raises(ValueError, match="analyzer"):
        cs.TfidfVectorizer(analyzer="sentence").fit(["a b"])
    with pytest.raises(ValueError, match="norm"):
        cs.TfidfVectorizer(norm="l1").fit(["a b"])
    with pytest.raises(TypeError, match="min_df"):
        cs.TfidfVectorizer(min_df="2").fit(["a b"])
    with pytest.raises(ValueError, match="threshold"):
        cs.Detector(threshold=2.0).fit(LOG_LINES)
    with pytest.raises(ValueError, match="invalid parameter 'depth'"):
        cs.Detector().set_params(depth=3)


def test_not_fitted_error_is_value_and_attribute_error():
    assert issubclass(cs.NotFittedError, ValueError) and issubclass(cs.NotFittedError, AttributeError)
    with pytest.raises(cs.NotFittedError, match="not fitted yet"):
        cs.Detector().score(["x"])
    with pytest.raises(cs.NotFittedError):
        cs.TfidfVectorizer().transform(["x"])
    with pytest.raises(cs.NotFittedError):
        cs.IsolationForest().predict([[1.0]])
    with pytest.raises(cs.NotFittedError):
        cs.RiskScorer().score([0.3])
    assert not hasattr(cs.TfidfVectorizer(), "vocabulary_")
    assert not hasattr(cs.RandomForestClassifier(), "feature_importances_")


def test_explain_takes_one_line(detector):
    with pytest.raises(TypeError, match="one str line"):
        detector.explain(["a", "b"])
    assert detector.explain("")["score"]["risk"] >= 0
