"""scikit-learn vs codegrey_soc from Python, side by side, in one process.

The same pipeline on the same rows: TF-IDF (word, scikit-learn defaults), an isolation forest
fitted on the normal training rows, a random forest fitted on all training rows; then
codegrey_soc's end-to-end Detector on the same rows. Prints quality (ROC AUC on the test rows)
and speed (fit, batch scoring on 1 and 2 threads, single-line latency) with ratios, measured in
this run (the machine is shared and noisy: compare ratios, not absolute figures).

    .venv/bin/python benches/python_compare.py                 # httpparams (real data), ~2 min
    .venv/bin/python benches/python_compare.py --quick         # 5,000 training rows, fewer calls
    .venv/bin/python benches/python_compare.py --corpus c.jsonl  # {"text", "label"} per line,
                                                               # first 80% train / last 20% test

Data: ``--data-dir``, else ``$SOC_DATA_DIR``, else ``<workspace>/../shared/data``. Needs
scikit-learn and codegrey_soc (``scripts/test.sh`` builds both into ``.venv``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.ensemble import IsolationForest as SkIsolationForest
from sklearn.ensemble import RandomForestClassifier as SkRandomForest
from sklearn.feature_extraction.text import TfidfVectorizer as SkTfidf
from sklearn.metrics import roc_auc_score

import codegrey_soc as cs

SEED = 0


def read_httpparams(path: Path) -> tuple[list[str], list[int]]:
    texts, labels = [], []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            texts.append(row["payload"])
            labels.append(int(row["label"] == "anom"))
    return texts, labels


def load(args) -> tuple[str, list[str], np.ndarray, list[str], np.ndarray]:
    if args.corpus:
        texts, labels = [], []
        with open(args.corpus, encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                texts.append(row["text"])
                labels.append(int(bool(row["label"])))
        n = int(0.8 * len(texts))
        train, test = (texts[:n], labels[:n]), (texts[n:], labels[n:])
        name = Path(args.corpus).name
    else:
        data = Path(args.data_dir or os.environ.get("SOC_DATA_DIR") or Path(__file__).resolve().parents[1] / ".." / "shared" / "data")
        train = read_httpparams(data / "httpparams" / "payload_train.csv")
        test = read_httpparams(data / "httpparams" / "payload_test.csv")
        name = "httpparams"
    train_x, train_y = train
    if args.quick and len(train_x) > 5000:
        # A fixed, spread-out subset (the file is grouped by attack type).
        step = len(train_x) // 5000
        train_x, train_y = train_x[::step][:5000], train_y[::step][:5000]
    return name, train_x, np.array(train_y), test[0], np.array(test[1])


class Side:
    """One implementation of the pipeline: classes come from scikit-learn or codegrey_soc."""

    def __init__(self, tfidf, iforest, rforest):
        self.classes = (tfidf, iforest, rforest)

    def fit(self, x, y, n_jobs):
        tfidf, iforest, rforest = self.classes
        self.vec = tfidf()
        features = self.vec.fit_transform(x)
        self.iso = iforest(random_state=SEED, n_jobs=n_jobs).fit(features[y == 0])
        self.rf = rforest(random_state=SEED, n_jobs=n_jobs).fit(features, y)
        return self

    def set_jobs(self, n_jobs):
        # scikit-learn only: codegrey_soc models keep the thread count they were fitted with,
        # so that side is refitted with the same seed (the model does not depend on n_jobs).
        self.iso.set_params(n_jobs=n_jobs)
        self.rf.set_params(n_jobs=n_jobs)

    def score(self, x):
        features = self.vec.transform(x)
        return -self.iso.score_samples(features), self.rf.predict_proba(features)[:, 1]


def timed(f, *args):
    c0, t0 = time.process_time(), time.perf_counter()
    out = f(*args)
    return out, time.perf_counter() - t0, time.process_time() - c0


def latency_us(f, lines, calls):
    f([lines[0]])  # warm-up
    samples = []
    for i in range(calls):
        line = [lines[i % len(lines)]]
        t0 = time.perf_counter()
        f(line)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e6


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir")
    p.add_argument("--corpus", help="JSONL {text,label} corpus instead of httpparams")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", help="also write the figures to this file")
    args = p.parse_args()
    name, train_x, train_y, test_x, test_y = load(args)
    print(f"# scikit-learn vs codegrey_soc on {name}: {len(train_x)} training rows "
          f"({int(train_y.sum())} attacks), {len(test_x)} test rows, {os.cpu_count()} cores")

    sk = Side(SkTfidf, SkIsolationForest, SkRandomForest)
    ours = Side(cs.TfidfVectorizer, cs.IsolationForest, cs.RandomForestClassifier)
    r = {}

    # Fit on one thread.
    _, r["fit_s_sklearn"], r["fit_cpu_s_sklearn"] = timed(sk.fit, train_x, train_y, 1)
    _, r["fit_s_ours"], r["fit_cpu_s_ours"] = timed(ours.fit, train_x, train_y, 1)
    det, r["fit_s_detector"], r["fit_cpu_s_detector"] = timed(
        cs.Detector(random_state=SEED, n_jobs=1).fit, train_x, train_y
    )

    # Quality on the test rows.
    (sk_a, sk_p), (our_a, our_p) = sk.score(test_x), ours.score(test_x)
    r["auc_iforest_sklearn"] = roc_auc_score(test_y, sk_a)
    r["auc_iforest_ours"] = roc_auc_score(test_y, our_a)
    r["auc_rf_sklearn"] = roc_auc_score(test_y, sk_p)
    r["auc_rf_ours"] = roc_auc_score(test_y, our_p)
    det_scores = det.score(test_x)
    r["auc_detector_risk"] = roc_auc_score(test_y, det_scores["risk"])
    r["auc_detector_anomaly"] = roc_auc_score(test_y, det_scores["anomaly"])

    # Batch scoring of the test rows, 1 and 2 threads.
    for jobs in (1, 2):
        sk.set_jobs(jobs)
        ours_j = Side(cs.TfidfVectorizer, cs.IsolationForest, cs.RandomForestClassifier).fit(train_x, train_y, jobs)
        det_j = cs.Detector(random_state=SEED, n_jobs=jobs).fit(train_x, train_y)
        sk.score(test_x[:100]), ours_j.score(test_x[:100]), det_j.score(test_x[:100])  # warm-up
        for key, f in (("sklearn", sk.score), ("ours", ours_j.score), ("detector", det_j.score)):
            _, wall, cpu = timed(f, test_x)
            r[f"batch_lines_per_s_{jobs}_{key}"] = len(test_x) / wall
            r[f"batch_lines_per_cpu_s_{jobs}_{key}"] = len(test_x) / max(cpu, 1e-9)

    # Single-line latency (one thread).
    sk.set_jobs(1)
    r["latency_us_sklearn"] = latency_us(sk.score, test_x, 50 if args.quick else 200)
    r["latency_us_ours"] = latency_us(ours.score, test_x, 2000)
    r["latency_us_detector"] = latency_us(det.score, test_x, 2000 if args.quick else 10_000)

    def row(label, a, b, better="higher", fmt="{:.4f}"):
        ratio = (b / a if better == "higher" else a / b) if a and b else float("nan")
        print(f"| {label} | {fmt.format(a)} | {fmt.format(b)} | {ratio:.2f}x |")

    print("\n| metric | scikit-learn | codegrey_soc | codegrey_soc / scikit-learn |")
    print("|---|---|---|---|")
    row("IsolationForest ROC AUC (same classes)", r["auc_iforest_sklearn"], r["auc_iforest_ours"])
    row("RandomForest ROC AUC (same classes)", r["auc_rf_sklearn"], r["auc_rf_ours"])
    row("RandomForest ROC AUC vs Detector risk", r["auc_rf_sklearn"], r["auc_detector_risk"])
    row("fit s, 1 thread (same classes)", r["fit_s_sklearn"], r["fit_s_ours"], "lower", "{:.2f}")
    row("fit CPU s (same classes)", r["fit_cpu_s_sklearn"], r["fit_cpu_s_ours"], "lower", "{:.2f}")
    row("fit s, 1 thread (Detector)", r["fit_s_sklearn"], r["fit_s_detector"], "lower", "{:.2f}")
    row("fit CPU s (Detector)", r["fit_cpu_s_sklearn"], r["fit_cpu_s_detector"], "lower", "{:.2f}")
    for jobs in (1, 2):
        for key, label in (("ours", "same classes"), ("detector", "Detector.score")):
            row(f"batch lines/s, {jobs} thread(s) ({label})", r[f"batch_lines_per_s_{jobs}_sklearn"],
                r[f"batch_lines_per_s_{jobs}_{key}"], "higher", "{:,.0f}")
        row(f"batch lines/CPU-s, {jobs} thread(s) (Detector.score)", r[f"batch_lines_per_cpu_s_{jobs}_sklearn"],
            r[f"batch_lines_per_cpu_s_{jobs}_detector"], "higher", "{:,.0f}")
    row("single line us, median (same classes)", r["latency_us_sklearn"], r["latency_us_ours"], "lower", "{:.1f}")
    row("single line us, median (Detector.score)", r["latency_us_sklearn"], r["latency_us_detector"], "lower", "{:.1f}")
    print(f"\nDetector anomaly-only ROC AUC: {r['auc_detector_anomaly']:.4f}; "
          f"Detector.score one line: {r['latency_us_detector']:.1f} us (target <= 50 us)")
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
