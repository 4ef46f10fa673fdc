"""scikit-learn's estimator conventions, checked with scikit-learn's own tools."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.utils.validation import check_is_fitted

import codegrey_soc as cs

ESTIMATORS = [cs.TfidfVectorizer, cs.IsolationForest, cs.RandomForestClassifier, cs.Detector, cs.RiskScorer]


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_get_params_set_params_and_clone(cls):
    est = cls()
    params = est.get_params()
    assert params and all(hasattr(est, k) for k in params)
    name = "n_estimators" if "n_estimators" in params else sorted(params)[0]
    value = 7 if name == "n_estimators" else params[name]
    assert est.set_params(**{name: value}) is est and est.get_params()[name] == value
    twin = clone(est)
    assert type(twin) is cls and twin is not est and twin.get_params() == est.get_params()
    assert repr(est).startswith(cls.__name__ + "(")


def test_clone_of_a_fitted_estimator_is_unfitted():
    x = np.random.default_rng(0).normal(size=(60, 2))
    iso = cs.IsolationForest(n_estimators=5, random_state=0).fit(x)
    check_is_fitted(iso)
    with pytest.raises(cs.NotFittedError):
        clone(iso).predict(x)


def test_pipeline_grid_search_and_cross_validation(httpparams):
    x, y = httpparams["train_x"], np.array(httpparams["train_y"])
    folds = StratifiedKFold(3, shuffle=True, random_state=0)
    pipe = Pipeline(
        [
            ("tfidf", cs.TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 3))),
            ("forest", cs.RandomForestClassifier(n_estimators=20, random_state=0)),
        ]
    )
    scores = cross_val_score(pipe, x, y, cv=folds, scoring="roc_auc")
    assert scores.shape == (3,) and scores.min() > 0.9
    accuracy = cross_val_score(pipe, x, y, cv=folds)  # the classifier's own score (accuracy)
    assert accuracy.min() > 0.85
    grid = GridSearchCV(pipe, {"forest__max_depth": [2, None], "tfidf__min_df": [1, 3]}, cv=folds, scoring="roc_auc")
    grid.fit(x, y)
    assert set(grid.best_params_) == {"forest__max_depth", "tfidf__min_df"}
    assert grid.best_params_["forest__max_depth"] is None  # depth 2 underfits
    assert grid.predict_proba(httpparams["test_x"][:10]).shape == (10, 2)


def test_make_pipeline_with_isolation_forest(httpparams):
    pipe = make_pipeline(cs.TfidfVectorizer(), cs.IsolationForest(n_estimators=20, random_state=0))
    pipe.fit(httpparams["train_x"])
    assert pipe.score_samples(httpparams["test_x"]).shape == (600,)
    assert set(np.unique(pipe.predict(httpparams["test_x"]))) <= {-1, 1}
