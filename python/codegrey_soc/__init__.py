"""CodeGrey SOC for Python: the Rust detection engine, shaped like scikit-learn.

>>> from codegrey_soc import Detector
>>> det = Detector(random_state=0).fit(lines, labels)      # doctest: +SKIP
>>> det.score(["GET /?id=1 UNION SELECT pass FROM users--"])  # doctest: +SKIP

- :class:`TfidfVectorizer`, :class:`IsolationForest`, :class:`RandomForestClassifier`:
  scikit-learn's classes, parameters and attributes, computed in Rust.
- :class:`Detector`: log lines -> risk 0-10, severity, anomaly, malicious probability;
  :class:`RiskScorer`: the combination rule on its own.
- :func:`from_sklearn`: import fitted scikit-learn models with identical outputs.
- Every fitted model saves to CodeGrey SOC's one artifact format (``save`` / ``load``, the files
  soc-server and Rust read) and pickles.
"""

from __future__ import annotations

from ._native import __version__
from .detector import Detector, RiskScorer
from .ensemble import IsolationForest, RandomForestClassifier
from .exceptions import NotFittedError, SocError
from .pipeline import Pipeline, from_sklearn, load
from .text import TfidfVectorizer

__all__ = [
    "Detector",
    "IsolationForest",
    "NotFittedError",
    "Pipeline",
    "RandomForestClassifier",
    "RiskScorer",
    "SocError",
    "TfidfVectorizer",
    "__version__",
    "from_sklearn",
    "load",
]
