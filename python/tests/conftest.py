"""Shared data for the codegrey_soc tests: real labeled HTTP parameters (../shared/data)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

DATA_DIR = Path(os.environ.get("SOC_DATA_DIR", Path(__file__).resolve().parents[2] / ".." / "shared" / "data"))


def _read(path: Path, limit: int) -> tuple[list[str], list[int]]:
    texts, labels = [], []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            texts.append(row["payload"])
            labels.append(int(row["label"] == "anom"))
    # Spread the subset over the whole file (it is grouped by attack type).
    step = max(1, len(texts) // limit)
    return texts[::step][:limit], labels[::step][:limit]


@pytest.fixture(scope="session")
def httpparams() -> dict[str, list]:
    """1,500 training and 600 test rows of httpparams (payload, 1 = attack)."""
    d = DATA_DIR / "httpparams"
    if not d.is_dir():
        pytest.skip(f"{d} not found (set SOC_DATA_DIR)")
    train_x, train_y = _read(d / "payload_train.csv", 1500)
    test_x, test_y = _read(d / "payload_test.csv", 600)
    assert 0 < sum(train_y) < len(train_y)
    return {"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y}


LOG_LINES = [f"GET /catalog/item?id={i % 40} HTTP/1.1 200 {900 + i % 97}" for i in range(300)] + [
    f"GET /catalog/item?id={i} UNION SELECT pass FROM users--" for i in range(30)
]
LOG_LABELS = [0] * 300 + [1] * 30


@pytest.fixture(scope="session")
def detector():
    """A detector fitted on a small labeled access log."""
    from codegrey_soc import Detector

    return Detector(random_state=1, n_estimators=50).fit(LOG_LINES, LOG_LABELS)
