"""Fits scikit-learn models on ../shared/data, exports them and their outputs for the Rust
exact-parity test (tests/sklearn_parity.rs). Usage: parity.py DATA_DIR OUT.json"""

import csv
import json
import os
import sys

import numpy as np
from sklearn.ensemble import IsolationForest, RandomForestClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import Pipeline

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "python", "codegrey_soc"))
from sklearn_export import export  # noqa: E402


def httpparams(data_dir, name, limit):
    with open(os.path.join(data_dir, "httpparams", name), newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))[:limit]
    return [r["payload"] for r in rows], np.array([r["label"] == "anom" for r in rows], dtype=int)


def bgl(data_dir):
    texts, labels = [], []
    with open(os.path.join(data_dir, "loghub_bgl_2k", "BGL_2k.log"), encoding="utf-8", errors="replace") as f:
        for line in f:
            label, _, rest = line.rstrip("\n").partition(" ")
            texts.append(rest)
            labels.append(int(label != "-"))
    return texts, np.array(labels)


def csr(m):
    m = m.tocsr()
    m.sort_indices()
    return {"indptr": m.indptr.tolist(), "indices": m.indices.tolist(), "data": m.data.tolist(), "n_cols": m.shape[1]}


def main(data_dir, out):
    cases = []
    train, y_train = httpparams(data_dir, "payload_train.csv", 3000)
    test, _ = httpparams(data_dir, "payload_test.csv", 1000)
    logs, y_logs = bgl(data_dir)

    for name, params, fit_docs, docs in [
        ("tfidf default / httpparams", {}, train, test),
        ("tfidf sublinear min_df=2 max_df=0.5 / bgl", {"sublinear_tf": True, "min_df": 2, "max_df": 0.5}, logs[:1000], logs[1000:]),
        ("tfidf char_wb 2-4 / httpparams", {"analyzer": "char_wb", "ngram_range": (2, 4)}, train[:1000], test[:300]),
        ("tfidf word 1-2 max_features=500 / bgl", {"ngram_range": (1, 2), "max_features": 500}, logs[:1000], logs[1000:]),
        ("tfidf no idf, no norm, no lowercase / bgl", {"use_idf": False, "norm": None, "lowercase": False}, logs, logs[:200]),
        ("tfidf char 1-3 min_df=0.01 / httpparams", {"analyzer": "char", "ngram_range": (1, 3), "min_df": 0.01}, train, test[:300]),
    ]:
        v = TfidfVectorizer(**params).fit(fit_docs)
        cases.append({"name": name, "model": export(v), "texts": docs, "tfidf": csr(v.transform(docs))})

    v = TfidfVectorizer().fit(train)
    x_train, x_test = v.transform(train), v.transform(test)
    rf = RandomForestClassifier(n_estimators=25, random_state=0, n_jobs=1).fit(x_train, y_train)
    cases.append({"name": "random forest / httpparams tfidf", "model": export(rf), "csr": csr(x_test),
                  "predict_proba": rf.predict_proba(x_test).tolist()})
    iso = IsolationForest(n_estimators=60, random_state=0).fit(x_train[y_train == 0])
    cases.append({"name": "isolation forest / httpparams tfidf", "model": export(iso), "csr": csr(x_test),
                  "score_samples": iso.score_samples(x_test).tolist(),
                  "decision_function": iso.decision_function(x_test).tolist()})

    rng = np.random.RandomState(0)
    dense_train = rng.normal(size=(500, 8))
    dense_test = np.vstack([rng.normal(size=(150, 8)), rng.normal(loc=4.0, size=(50, 8))])
    iso = IsolationForest(n_estimators=40, max_samples=0.5, max_features=0.5, contamination=0.1, random_state=3).fit(dense_train)
    cases.append({"name": "isolation forest / dense, feature subsets, contamination", "model": export(iso),
                  "dense": dense_test.tolist(), "score_samples": iso.score_samples(dense_test).tolist(),
                  "decision_function": iso.decision_function(dense_test).tolist()})
    labels3 = (dense_train[:, 0] > 0.5).astype(int) + (dense_train[:, 1] > 0).astype(int)
    rf = RandomForestClassifier(n_estimators=30, max_depth=6, max_features=0.5, class_weight="balanced",
                                random_state=1).fit(dense_train, labels3)
    cases.append({"name": "random forest / dense, three classes, balanced", "model": export(rf),
                  "dense": dense_test.tolist(), "predict_proba": rf.predict_proba(dense_test).tolist()})

    pipe = Pipeline([("tfidf", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4))),
                     ("rf", RandomForestClassifier(n_estimators=20, random_state=2))]).fit(logs[::2], y_logs[::2])
    cases.append({"name": "pipeline char_wb + random forest / bgl", "model": export(pipe), "texts": logs[1::2],
                  "predict_proba": pipe.predict_proba(logs[1::2]).tolist()})

    with open(out, "w", encoding="utf-8") as f:
        json.dump({"cases": cases}, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
