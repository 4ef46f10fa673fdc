"""The scikit-learn-shaped estimators: same results as scikit-learn where the semantics are
shared, scikit-learn's signs and attributes, dense and sparse input, n_jobs, the GIL."""

from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer as SkTfidf
from sklearn.metrics import roc_auc_score

import codegrey_soc as cs


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"ngram_range": (1, 2), "min_df": 2, "max_df": 0.5, "sublinear_tf": True},
        # max_features is left out: ties at the cut-off are broken differently (see soc-core text docs).
        {"analyzer": "char_wb", "ngram_range": (2, 3), "min_df": 3, "norm": None},
    ],
)
def test_tfidf_equals_scikit_learn(httpparams, params):
    ours = cs.TfidfVectorizer(**params)
    theirs = SkTfidf(**params)
    x_ours = ours.fit_transform(httpparams["train_x"])
    x_theirs = theirs.fit_transform(httpparams["train_x"])
    assert isinstance(x_ours, sp.csr_matrix) and x_ours.dtype == np.float64
    assert ours.vocabulary_ == theirs.vocabulary_
    np.testing.assert_allclose(ours.idf_, theirs.idf_, rtol=0, atol=1e-12)
    assert abs(x_ours - x_theirs).max() <= 1e-12
    test_ours, test_theirs = ours.transform(httpparams["test_x"]), theirs.transform(httpparams["test_x"])
    assert test_ours.shape == test_theirs.shape and abs(test_ours - test_theirs).max() <= 1e-12
    assert list(ours.get_feature_names_out()) == list(theirs.get_feature_names_out())


def test_tfidf_fit_returns_self_and_matches_fit_transform():
    docs = ["GET /a", "POST /b c", "GET /a a"]
    v = cs.TfidfVectorizer()
    assert v.fit(docs) is v
    assert abs(v.transform(docs) - cs.TfidfVectorizer().fit_transform(docs)).max() == 0
    assert v.transform([]).shape == (0, len(v.vocabulary_))


def test_isolation_forest_signs_and_attributes():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 4))
    outliers = rng.normal(loc=6.0, size=(10, 4))
    iso = cs.IsolationForest(random_state=0, contamination=0.05)
    assert iso.fit(x) is iso
    assert iso.n_features_in_ == 4 and iso.max_samples_ == 256
    inlier, outlier = iso.score_samples(x).mean(), iso.score_samples(outliers).mean()
    assert outlier < inlier < 0  # scikit-learn's sign: lower = more abnormal
    np.testing.assert_allclose(iso.decision_function(x), iso.score_samples(x) - iso.offset_, atol=1e-12)
    assert set(np.unique(iso.predict(x))) <= {-1, 1}
    assert (iso.predict(outliers) == -1).all()
    assert abs((iso.predict(x) == -1).mean() - 0.05) < 0.01


def test_forests_give_the_same_model_on_dense_and_sparse_input(httpparams):
    x = cs.TfidfVectorizer(max_features=200).fit_transform(httpparams["train_x"])
    dense = x.toarray()
    y = np.array(httpparams["train_y"])
    iso_sparse = cs.IsolationForest(n_estimators=30, random_state=3).fit(x)
    iso_dense = cs.IsolationForest(n_estimators=30, random_state=3).fit(dense)
    np.testing.assert_array_equal(iso_sparse.score_samples(x), iso_dense.score_samples(dense))
    np.testing.assert_array_equal(iso_sparse.score_samples(sp.csc_matrix(x)), iso_dense.score_samples(x))
    rf_sparse = cs.RandomForestClassifier(n_estimators=20, random_state=3).fit(x, y)
    rf_dense = cs.RandomForestClassifier(n_estimators=20, random_state=3).fit(dense, y)
    np.testing.assert_array_equal(rf_sparse.predict_proba(x), rf_dense.predict_proba(dense))


def test_random_forest_learns_and_exposes_scikit_learn_attributes(httpparams):
    vec = cs.TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 3), max_features=2000)
    x = vec.fit_transform(httpparams["train_x"])
    rf = cs.RandomForestClassifier(n_estimators=50, random_state=0).fit(x, httpparams["train_y"])
    proba = rf.predict_proba(vec.transform(httpparams["test_x"]))
    assert proba.shape == (600, 2) and np.allclose(proba.sum(axis=1), 1)
    assert roc_auc_score(httpparams["test_y"], proba[:, 1]) > 0.95
    assert list(rf.classes_) == [0, 1] and rf.n_classes_ == 2 and rf.n_features_in_ == x.shape[1]
    assert rf.feature_importances_.shape == (x.shape[1],)
    assert abs(rf.feature_importances_.sum() - 1) < 1e-9


def test_random_forest_keeps_string_labels():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 3))
    y = np.where(x[:, 0] > 0, "attack", "normal")
    rf = cs.RandomForestClassifier(n_estimators=10, random_state=0).fit(x, y)
    assert list(rf.classes_) == ["attack", "normal"]
    assert set(rf.predict(x)) <= {"attack", "normal"}
    assert rf.score(x, y) > 0.95
    with pytest.raises(ValueError, match="integer class labels"):
        rf.to_bytes()


def test_n_jobs_does_not_change_the_model(httpparams):
    x = cs.TfidfVectorizer(max_features=300).fit_transform(httpparams["train_x"])
    y = httpparams["train_y"]
    one = cs.RandomForestClassifier(n_estimators=20, random_state=5, n_jobs=1).fit(x, y)
    all_cores = cs.RandomForestClassifier(n_estimators=20, random_state=5, n_jobs=-1).fit(x, y)
    np.testing.assert_array_equal(one.predict_proba(x), all_cores.predict_proba(x))
    with pytest.raises(ValueError, match="n_jobs"):
        cs.RandomForestClassifier(n_jobs=0).fit(x, y)


def test_random_state_makes_fits_reproducible():
    x = np.random.default_rng(2).normal(size=(300, 3))
    a = cs.IsolationForest(random_state=11).fit(x).score_samples(x)
    b = cs.IsolationForest(random_state=11).fit(x).score_samples(x)
    c = cs.IsolationForest(random_state=12).fit(x).score_samples(x)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_detector_scores_as_a_dataframe(detector):
    from conftest import LOG_LINES

    scores = detector.score(LOG_LINES)
    assert set(scores) == {"risk", "severity", "anomaly", "malicious_probability"}
    frame = pd.DataFrame(scores)
    assert len(frame) == len(LOG_LINES)
    assert frame["risk"].between(0, 10).all() and frame["anomaly"].between(0, 1).all()
    assert set(frame["severity"]) <= {"low", "medium", "high", "critical"}
    attack = detector.score(["GET /catalog/item?id=9 UNION SELECT card FROM users--"])
    normal = detector.score(["GET /catalog/item?id=3 HTTP/1.1 200 950"])
    assert attack["risk"][0] >= 7 and attack["severity"][0] in ("high", "critical")
    assert normal["risk"][0] < 4 and normal["severity"][0] == "low"
    assert detector.predict(["GET /catalog/item?id=9 UNION SELECT card FROM users--"]).tolist() == [True]
    # One line (scored on the calling thread) and a batch (in parallel) agree.
    batch = detector.score(LOG_LINES[-5:])
    for i, line in enumerate(LOG_LINES[-5:]):
        assert detector.score([line])["risk"][0] == batch["risk"][i]


def test_detector_explain_names_the_attack_terms(detector):
    why = detector.explain("GET /catalog/item?id=9 UNION SELECT card FROM users--")
    assert why["fired"] in ("classifier", "both")
    assert {"union", "select"} & {t["term"] for t in why["top_terms"]}
    assert why["score"]["severity"] in ("high", "critical")


def test_detector_without_labels_is_anomaly_only():
    from conftest import LOG_LINES

    det = cs.Detector(random_state=0, n_estimators=30).fit(LOG_LINES[:300])
    scores = det.score(LOG_LINES)
    assert not det.has_classifier_ and (scores["malicious_probability"] == 0).all()
    assert scores["anomaly"][300:].mean() > scores["anomaly"][:300].mean()


def test_risk_scorer_combines_anomaly_and_probability():
    train = np.linspace(0.30, 0.40, 10_000)
    scorer = cs.RiskScorer().fit(train)
    out = scorer.score([0.31, 0.45, 0.31], malicious_probability=[0.0, 0.0, 0.95])
    assert out["risk"][0] < 4 and out["severity"][0] == "low"
    assert out["risk"][1] >= 8 and scorer.is_threat(out["risk"][1])
    assert out["risk"][2] >= 9.5 and out["severity"][2] == "critical"
    assert np.all(np.diff(scorer.calibrate(np.linspace(0.2, 0.6, 50))) >= 0)
    with pytest.raises(ValueError, match="malicious probabilities"):
        scorer.score([0.3, 0.4], malicious_probability=[0.1])


def test_gil_is_released_while_the_engine_computes():
    """Another Python thread keeps running during a long native call: with the GIL held it
    would stall for the whole call."""
    x = np.random.default_rng(0).normal(size=(400_000, 8))
    iso = cs.IsolationForest(n_estimators=100, random_state=0, n_jobs=1).fit(x[:2000])
    timings = {}

    def work():
        start = time.perf_counter()
        iso.score_samples(x)
        timings["score"] = time.perf_counter() - start

    worker = threading.Thread(target=work)
    ticks = []
    worker.start()
    while worker.is_alive():
        ticks.append(time.perf_counter())
        time.sleep(0.001)
    worker.join()
    gaps = np.diff(ticks)
    assert timings["score"] > 0.2, "the call is too quick to tell"
    assert len(ticks) > 20 and gaps.max() < timings["score"] / 2
