#!/usr/bin/env python3
"""scikit-learn side of the soc-core comparison (run by `benches/compare.rs`, or by hand).

Quality (averaged over seeds, default parameters, random_state=seed; n_jobs=2, which gives the
same models as n_jobs=1):
  httpparams / hdfs / bgl: TfidfVectorizer() + RandomForestClassifier ROC AUC and
  TfidfVectorizer() + IsolationForest ROC AUC. Anomaly models are fitted on the normal training
  rows (BGL: on all lines, unlabeled; AUC on all lines). Classifiers on all training rows.
  Unseen attacks: RF trained on httpparams train rows of type norm + sqli only, recall at 1% FPR
  on test rows norm + {xss, path-traversal, cmdi}.
Speed (synthetic corpus from --corpus, first 80% train / last 20% test):
  fit time of tfidf + IF + RF, batch lines/s (transform + IF score_samples + RF predict_proba)
  with n_jobs=1 and 2, single-line latency (median of 200 calls), pickled model size, peak RSS.

Splits use the same splitmix64 Fisher-Yates shuffle as benches/common/mod.rs, so both sides
evaluate on identical rows. See that module's docs for the protocol.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import pickle
import platform
import resource
import statistics
import sys
import time

import numpy as np
import sklearn
from sklearn.ensemble import IsolationForest, RandomForestClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import roc_auc_score

MASK64 = (1 << 64) - 1

# Threads for the (untimed) quality fits. A forest fitted with n_jobs=2 is identical to one fitted
# with n_jobs=1 (scikit-learn draws the per-tree seeds up front), so this only saves wall time.
QUALITY_JOBS = 2


def splitmix64(state: int) -> tuple[int, int]:
    state = (state + 0x9E3779B97F4A7C15) & MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return state, z ^ (z >> 31)


def shuffled_indices(n: int, seed: int) -> list[int]:
    """Same permutation as `shuffled_indices` in benches/common/mod.rs."""
    idx = list(range(n))
    state = seed & MASK64
    for i in range(n - 1, 0, -1):
        state, r = splitmix64(state)
        j = r % (i + 1)
        idx[i], idx[j] = idx[j], idx[i]
    return idx


def split(texts, labels, seed, train_fraction):
    n = len(texts)
    n_train = int(round(train_fraction * n))  # Rust's f64::round: half away from zero
    if train_fraction * n - int(train_fraction * n) == 0.5:
        n_train = int(train_fraction * n) + 1
    order = shuffled_indices(n, seed)
    tr, te = order[:n_train], order[n_train:]
    return ([texts[i] for i in tr], [labels[i] for i in tr], [texts[i] for i in te], [labels[i] for i in te])


def recall_at_fpr(scores, labels, max_fpr):
    """Same rule as soc_core::metrics::recall_at_fpr: at most floor(max_fpr * n_neg) negatives
    score at or above the threshold, which sits just above the first negative not allowed."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    neg = np.sort(scores[~labels])[::-1]
    if len(neg) == 0 or labels.all():
        return None
    allowed = int(np.floor(max_fpr * len(neg)))
    thr = np.nextafter(neg[allowed], np.inf) if allowed < len(neg) else -np.inf
    pos = scores[labels]
    return float(thr), float((pos >= thr).mean())


# ------------------------------------------------------------------------------------------------
# Data


def read_httpparams(path):
    texts, labels, types = [], [], []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            texts.append(row["payload"])
            labels.append(row["label"] == "anom")
            types.append(row["attack_type"])
    return texts, labels, types


def load_httpparams(data_dir):
    d = os.path.join(data_dir, "httpparams")
    return read_httpparams(os.path.join(d, "payload_train.csv")), read_httpparams(
        os.path.join(d, "payload_test.csv")
    )


def load_bgl(data_dir):
    texts, labels = [], []
    with open(os.path.join(data_dir, "loghub_bgl_2k", "BGL_2k.log"), encoding="utf-8", newline="") as f:
        for line in f.read().splitlines():
            line = line.rstrip("\r")
            if not line.strip():
                continue
            parts = line.lstrip().split(None, 1)
            texts.append(parts[1].lstrip() if len(parts) > 1 else "")
            labels.append(parts[0] != "-")
    return texts, labels


def load_hdfs(data_dir):
    texts, labels = [], []
    path = os.path.join(data_dir, "hdfs_100k_sessions", "hdfs_100k_sessions_train.jsonl")
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            s = json.loads(line)
            texts.append(" ".join(s["events"]))
            labels.append(s["label"] != 0)
    return texts, labels


def load_corpus(path):
    texts, labels = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            texts.append(r["text"])
            labels.append(bool(r["label"]))
    return texts, labels


# ------------------------------------------------------------------------------------------------
# Quality


def iforest_auc(train_texts, test_texts, test_labels, seed):
    vec = TfidfVectorizer()
    x_train = vec.fit_transform(train_texts)
    iso = IsolationForest(random_state=seed, n_jobs=QUALITY_JOBS).fit(x_train)
    # sklearn's score_samples: lower = more abnormal; negate for "higher = more anomalous".
    scores = -iso.score_samples(vec.transform(test_texts))
    return float(roc_auc_score(test_labels, scores))


def rf_scores(train_texts, train_labels, test_texts, seed):
    vec = TfidfVectorizer()
    x_train = vec.fit_transform(train_texts)
    rf = RandomForestClassifier(random_state=seed, n_jobs=QUALITY_JOBS).fit(
        x_train, np.asarray(train_labels, dtype=np.int64)
    )
    proba = rf.predict_proba(vec.transform(test_texts))
    return proba[:, list(rf.classes_).index(1)] if 1 in rf.classes_ else np.zeros(len(test_texts))


def quality(data_dir, seeds, quick):
    out = {}
    (tr_t, tr_l, tr_a), (te_t, te_l, te_a) = load_httpparams(data_dir)
    if quick:  # a fixed, seed-independent subset keeps --quick fast
        sub = shuffled_indices(len(tr_t), 12345)[:5000]
        tr_t, tr_l, tr_a = [tr_t[i] for i in sub], [tr_l[i] for i in sub], [tr_a[i] for i in sub]
    normal_train = [t for t, l in zip(tr_t, tr_l) if not l]

    def avg(f):
        vals = [f(s) for s in seeds]
        return {"mean": float(np.mean(vals)), "per_seed": vals}

    t0 = time.perf_counter()
    out["httpparams_iforest_auc"] = avg(lambda s: iforest_auc(normal_train, te_t, te_l, s))
    out["httpparams_rf_auc"] = avg(lambda s: float(roc_auc_score(te_l, rf_scores(tr_t, tr_l, te_t, s))))

    # Unseen attack types: train on norm + sqli, test on norm + the other types.
    known = {"norm", "sqli"}
    unseen = {"xss", "path-traversal", "cmdi"}
    k_t = [t for t, a in zip(tr_t, tr_a) if a in known]
    k_l = [l for l, a in zip(tr_l, tr_a) if a in known]
    u_idx = [i for i, a in enumerate(te_a) if a == "norm" or a in unseen]
    u_t, u_l, u_a = [te_t[i] for i in u_idx], [te_l[i] for i in u_idx], [te_a[i] for i in u_idx]

    def unseen_recall(s):
        scores = rf_scores(k_t, k_l, u_t, s)
        thr, rec = recall_at_fpr(scores, u_l, 0.01)
        per_type = {
            a: float(np.mean([sc >= thr for sc, aa in zip(scores, u_a) if aa == a])) for a in sorted(unseen)
        }
        return rec, per_type

    res = [unseen_recall(s) for s in seeds]
    out["httpparams_unseen_recall_at_1pct_fpr"] = {
        "mean": float(np.mean([r for r, _ in res])),
        "per_seed": [r for r, _ in res],
        "per_type_seed0": res[0][1],
        "n_test_attacks": int(sum(u_l)),
    }
    out["httpparams_seconds"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    h_t, h_l = load_hdfs(data_dir)

    def hdfs_if(s):
        a, b, c, d = split(h_t, h_l, s, 0.8)
        return iforest_auc([t for t, l in zip(a, b) if not l], c, d, s)

    def hdfs_rf(s):
        a, b, c, d = split(h_t, h_l, s, 0.8)
        return float(roc_auc_score(d, rf_scores(a, b, c, s)))

    out["hdfs_iforest_auc"] = avg(hdfs_if)
    out["hdfs_rf_auc"] = avg(hdfs_rf)
    out["hdfs_seconds"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    b_t, b_l = load_bgl(data_dir)
    out["bgl_iforest_auc"] = avg(lambda s: iforest_auc(b_t, b_t, b_l, s))

    def bgl_rf(s):
        a, b, c, d = split(b_t, b_l, s, 0.5)
        return float(roc_auc_score(d, rf_scores(a, b, c, s)))

    out["bgl_rf_auc"] = avg(bgl_rf)
    out["bgl_seconds"] = time.perf_counter() - t0
    return out


# ------------------------------------------------------------------------------------------------
# Speed


# Timed passes over the test lines in batch-speed runs; the fastest counts (as on the Rust side).
BATCH_PASSES = 5


def speed(corpus_path, seed, quick, max_train):
    texts, labels = load_corpus(corpus_path)
    n_train = int(0.8 * len(texts))
    tr_t, tr_l, te_t = texts[:n_train], labels[:n_train], texts[n_train:]
    if max_train and len(tr_t) > max_train:
        tr_t, tr_l = tr_t[:max_train], tr_l[:max_train]
    y = np.asarray(tr_l, dtype=np.int64)
    out = {"n_train": len(tr_t), "n_test": len(te_t)}

    c0 = time.process_time()  # CPU time as well: wall clock is noisy on a shared machine
    t0 = time.perf_counter()
    vec = TfidfVectorizer()
    x = vec.fit_transform(tr_t)
    t1 = time.perf_counter()
    iso = IsolationForest(random_state=seed, n_jobs=1).fit(x[~y.astype(bool)])
    t2 = time.perf_counter()
    rf = RandomForestClassifier(random_state=seed, n_jobs=1).fit(x, y)
    t3 = time.perf_counter()
    out["fit_cpu_seconds"] = time.process_time() - c0
    out.update(
        fit_seconds=t3 - t0, tfidf_fit_seconds=t1 - t0, iforest_fit_seconds=t2 - t1, rf_fit_seconds=t3 - t2,
        n_features=len(vec.vocabulary_),
    )

    def score(batch):
        xb = vec.transform(batch)
        return -iso.score_samples(xb), rf.predict_proba(xb)

    for n_jobs in (1, 2):
        iso.set_params(n_jobs=n_jobs)
        rf.set_params(n_jobs=n_jobs)
        score(te_t[:100])  # warm-up
        passes = []  # best of BATCH_PASSES (wall, cpu): shared machines are noisy
        for _ in range(BATCH_PASSES):
            c0, t0 = time.process_time(), time.perf_counter()
            score(te_t)
            passes.append((time.perf_counter() - t0, time.process_time() - c0))
        dt, cpu = min(passes)
        out[f"batch_lines_per_s_{n_jobs}"] = len(te_t) / dt
        out[f"batch_lines_per_cpu_s_{n_jobs}"] = len(te_t) / cpu
    anomaly, proba = score(te_t)
    te_l = labels[n_train:]
    out["test_iforest_auc"] = float(roc_auc_score(te_l, anomaly))
    out["test_rf_auc"] = float(roc_auc_score(te_l, proba[:, 1])) if proba.shape[1] > 1 else None

    iso.set_params(n_jobs=1)
    rf.set_params(n_jobs=1)
    n_calls = 50 if quick else 200
    lat = []
    for i in range(n_calls):
        line = [te_t[i % len(te_t)]]
        t0 = time.perf_counter()
        score(line)
        lat.append(time.perf_counter() - t0)
    out["single_line_latency_median_us"] = statistics.median(lat) * 1e6
    out["model_bytes_pickle"] = len(pickle.dumps((vec, iso, rf), protocol=pickle.HIGHEST_PROTOCOL))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=os.environ.get("SOC_DATA_DIR", "../shared/data"))
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (0..N) for quality runs")
    p.add_argument("--quick", action="store_true", help="1 seed, subsets (CI, < ~60 s)")
    p.add_argument("--corpus", help="JSONL {text,label} synthetic corpus for the speed runs")
    p.add_argument("--max-train", type=int, default=0, help="cap synthetic training rows (0 = all)")
    p.add_argument("--skip-quality", action="store_true")
    p.add_argument("--json", help="write results here (also printed to stdout)")
    a = p.parse_args()

    seeds = [0] if a.quick else list(range(a.seeds))
    result = {
        "sklearn_version": sklearn.__version__,
        "python_version": platform.python_version(),
        "seeds": seeds,
        "quick": a.quick,
    }
    t0 = time.perf_counter()
    if not a.skip_quality:
        result["quality"] = quality(a.data_dir, seeds, a.quick)
    if a.corpus:
        result["speed"] = speed(a.corpus, seeds[0], a.quick, a.max_train)
    result["total_seconds"] = time.perf_counter() - t0
    result["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    text = json.dumps(result, indent=2)
    if a.json:
        with open(a.json, "w") as f:
            f.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
