"""save / load in the artifact format, pickle, and what a bad file gives."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import codegrey_soc as cs
from conftest import LOG_LINES


def _fitted():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4))
    y = (x[:, 0] > 0).astype(np.int64)
    return {
        "tfidf": (cs.TfidfVectorizer(ngram_range=(1, 2), min_df=2).fit(LOG_LINES), LOG_LINES),
        "iforest": (cs.IsolationForest(n_estimators=20, random_state=1).fit(x), x),
        "rforest": (cs.RandomForestClassifier(n_estimators=20, random_state=1, max_depth=5).fit(x, y), x),
        "detector": (cs.Detector(n_estimators=20, random_state=1).fit(LOG_LINES, [0] * 300 + [1] * 30), LOG_LINES),
        "risk": (cs.RiskScorer(threshold=0.6).fit(np.linspace(0.3, 0.4, 500)), np.linspace(0.25, 0.5, 40)),
    }


def _outputs(est, x):
    if isinstance(est, cs.TfidfVectorizer):
        return est.transform(x).toarray()
    if isinstance(est, cs.IsolationForest):
        return est.score_samples(x)
    if isinstance(est, cs.RandomForestClassifier):
        return est.predict_proba(x)
    if isinstance(est, cs.Detector):
        return np.column_stack([v for k, v in est.score(x).items() if k != "severity"])
    return est.score(x)["risk"]


@pytest.mark.parametrize("name", ["tfidf", "iforest", "rforest", "detector", "risk"])
def test_save_load_and_pickle_give_identical_outputs(tmp_path, name):
    est, x = _fitted()[name]
    path = tmp_path / f"{name}.cgsoc"
    est.save(path)
    assert path.read_bytes()[:8] == b"CGSOCMDL"
    for back in (type(est).load(path), cs.load(path), pickle.loads(pickle.dumps(est)), copy.deepcopy(est)):
        assert type(back) is type(est)
        assert back.get_params() == est.get_params()
        np.testing.assert_array_equal(_outputs(back, x), _outputs(est, x))


def test_loaded_models_keep_their_fitted_attributes(tmp_path):
    models = _fitted()
    tfidf, _ = models["tfidf"]
    tfidf.save(tmp_path / "t")
    back = cs.TfidfVectorizer.load(tmp_path / "t")
    assert back.vocabulary_ == tfidf.vocabulary_ and back.ngram_range == (1, 2) and back.min_df == 2
    iso, _ = models["iforest"]
    back = cs.IsolationForest.load(iso.to_bytes() and _write(tmp_path / "i", iso.to_bytes()))
    assert back.offset_ == iso.offset_ and back.n_features_in_ == 4 and back.random_state == 1
    rf, _ = models["rforest"]
    back = cs.RandomForestClassifier.from_bytes(rf.to_bytes())
    assert back.max_depth == 5 and list(back.classes_) == [0, 1]
    np.testing.assert_array_equal(back.feature_importances_, rf.feature_importances_)


def _write(path, data):
    path.write_bytes(data)
    return path


def test_a_corrupt_truncated_or_foreign_file_is_a_clear_error(tmp_path):
    det, _ = _fitted()["detector"]
    data = det.to_bytes()
    corrupt = bytearray(data)
    corrupt[-10] ^= 0xFF
    for bad, match in [
        (bytes(corrupt), "checksum"),
        (data[: len(data) // 2], "truncated"),
        (b"not a model at all, just text", "bad magic"),
        (b"", "too short"),
    ]:
        with pytest.raises(cs.SocError, match=match):
            cs.Detector.from_bytes(bad)
    with pytest.raises(cs.SocError, match="holds a detector"):
        cs.IsolationForest.from_bytes(data)
    with pytest.raises(FileNotFoundError):
        cs.Detector.load(tmp_path / "missing")


def test_unfitted_estimators_cannot_be_saved_and_pickle_unfitted():
    for est in (cs.TfidfVectorizer(), cs.IsolationForest(), cs.RandomForestClassifier(), cs.Detector(), cs.RiskScorer()):
        with pytest.raises(cs.NotFittedError):
            est.to_bytes()
        back = pickle.loads(pickle.dumps(est))
        assert back.get_params() == est.get_params() and not back.__sklearn_is_fitted__()
