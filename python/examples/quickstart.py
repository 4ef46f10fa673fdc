"""CodeGrey SOC from Python, notebook style (each ``# %%`` is a cell; run the file as a
script, or open it in Jupyter / VS Code as a notebook).

    pip install .                       # from the repository root (or: maturin develop --release)
    python python/examples/quickstart.py [path/to/shared/data]

Loads labeled HTTP parameter values, fits a detector, evaluates it on held-out rows, explains a
verdict, saves the model and shows how to hand it to the server.
"""

# %% Load labeled data: httpparams (real HTTP parameter values, "anom" = attack).
import csv
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

import codegrey_soc as cs

data_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def read(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [r["payload"] for r in rows], np.array([r["label"] == "anom" for r in rows])


train_x, train_y = read(data_dir / "httpparams" / "payload_train.csv")
test_x, test_y = read(data_dir / "httpparams" / "payload_test.csv")
print(f"{len(train_x)} training rows ({train_y.sum()} attacks), {len(test_x)} test rows")

# %% Fit: TF-IDF + isolation forest ("unusual") + random forest ("malicious") + risk scorer.
# Labels are optional: Detector().fit(train_x) gives an anomaly-only detector.
detector = cs.Detector(random_state=0).fit(train_x, train_y)

# %% Score: a dict of equal-length arrays (pandas.DataFrame(scores) gives one row per line).
scores = detector.score(test_x)
try:
    import pandas as pd

    print(pd.DataFrame(scores).head())
except ImportError:
    print({k: v[:5] for k, v in scores.items()})

# %% Evaluate: ROC AUC of the risk (rank-based, no scikit-learn needed) and the threat decisions.


def roc_auc(labels, values):
    ranks = rankdata(values)  # ties get their average rank
    pos = labels.sum()
    return (ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * (len(labels) - pos))


threats = detector.predict(test_x)
print(f"risk ROC AUC {roc_auc(test_y, scores['risk']):.5f}; "
      f"threats: {threats.sum()} flagged, recall {threats[test_y].mean():.3f}, "
      f"false positive rate {threats[~test_y].mean():.4f}")

# %% Explain one verdict: the terms that drove the classifier, the unusual structure, which model fired.
line = "1' UNION SELECT username, password FROM users--"
why = detector.explain(line)
print(f"{line!r}: risk {why['score']['risk']:.1f} ({why['score']['severity']}), fired by {why['fired']}")
for term in why["top_terms"][:5]:
    print(f"  {term['term']:>12}  +{term['contribution']:.3f}")

# %% Save in the artifact format shared with soc-server and Rust, and load it back.
path = Path(tempfile.gettempdir()) / "detector.cgsoc"
detector.save(path)
same = cs.Detector.load(path)
assert (same.score(test_x[:100])["risk"] == scores["risk"][:100]).all()
print(f"saved {path} ({path.stat().st_size:,} bytes)")

# %% Hand it to the server: upload the file as the body of POST /api/models with an admin key
# (soc-server prints the tenant's first admin key on its first start and writes it to
# ./data/admin-api-key):
#
#   K=$(cat data/admin-api-key)
#   curl -X POST http://127.0.0.1:8443/api/models \
#        -H "Authorization: Bearer $K" -H "Content-Type: application/octet-stream" \
#        --data-binary @/tmp/detector.cgsoc
#
# The server scores incoming logs with it exactly as detector.score does here (same engine,
# same artifact; soc-py's tests check the scores bit for bit across Python and Rust).
