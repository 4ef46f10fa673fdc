"""Type stubs of the compiled module (soc-py). Use the classes of :mod:`codegrey_soc` instead:
these are the fitted models they wrap."""

from typing import Any, final

import numpy as np
import numpy.typing as npt

__all__ = [
    "DetectorModel",
    "IsolationForestModel",
    "RandomForestModel",
    "RiskScorerModel",
    "SocError",
    "TfidfModel",
    "__version__",
    "import_sklearn",
    "read_header_json",
]
__version__: str

class SocError(Exception):
    """An engine error that is not a bad argument: a corrupt or foreign model artifact, a failed import."""

_CsrParts = tuple[
    npt.NDArray[np.float64], npt.NDArray[np.int32], npt.NDArray[np.int64], tuple[int, int]
]
# A C-contiguous float64 2-D array, or CSR parts (data, indices int64, indptr int64, n_cols).
_Features = npt.NDArray[np.float64] | tuple[
    npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int64], int
]
_ScoreColumns = tuple[
    npt.NDArray[np.float64], npt.NDArray[np.uint8], npt.NDArray[np.float64], npt.NDArray[np.float64]
]

@final
class TfidfModel:
    @staticmethod
    def fit_transform(
        docs: list[str],
        *,
        lowercase: bool,
        analyzer: str,
        token_pattern: str,
        ngram_range: tuple[int, int],
        min_df: int | float,
        max_df: int | float,
        max_features: int | None,
        use_idf: bool,
        smooth_idf: bool,
        sublinear_tf: bool,
        norm: str | None,
        stem: bool,
    ) -> tuple[TfidfModel, _CsrParts]: ...
    def transform(self, docs: list[str]) -> _CsrParts: ...
    def feature_names(self) -> list[str]: ...
    def idf(self) -> npt.NDArray[np.float64]: ...
    @property
    def n_features(self) -> int: ...
    def to_bytes(self) -> bytes: ...
    @staticmethod
    def from_bytes(bytes: bytes) -> TfidfModel: ...

@final
class IsolationForestModel:
    @staticmethod
    def fit(
        x: _Features,
        *,
        n_estimators: int,
        max_samples: str | int | float,
        contamination: str | float,
        max_features: int | float | None,
        bootstrap: bool,
        random_state: int | None,
        n_jobs: int | None,
    ) -> IsolationForestModel: ...
    def score_samples(self, x: _Features) -> npt.NDArray[np.float64]: ...
    def decision_function(self, x: _Features) -> npt.NDArray[np.float64]: ...
    def predict(self, x: _Features) -> npt.NDArray[np.int64]: ...
    @property
    def offset(self) -> float: ...
    @property
    def max_samples(self) -> int: ...
    @property
    def n_features(self) -> int: ...
    @property
    def n_estimators(self) -> int: ...
    def to_bytes(self) -> bytes: ...
    @staticmethod
    def from_bytes(bytes: bytes) -> IsolationForestModel: ...

@final
class RandomForestModel:
    @staticmethod
    def fit(
        x: _Features,
        y: npt.NDArray[np.int64],
        *,
        n_estimators: int,
        max_depth: int | None,
        min_samples_split: int,
        min_samples_leaf: int,
        max_features: str | int | float | None,
        bootstrap: bool,
        class_weight: str | None,
        random_state: int | None,
        n_jobs: int | None,
    ) -> RandomForestModel: ...
    def predict_proba(self, x: _Features) -> npt.NDArray[np.float64]: ...
    def predict(self, x: _Features) -> npt.NDArray[np.int64]: ...
    def classes(self) -> npt.NDArray[np.int64]: ...
    def feature_importances(self) -> npt.NDArray[np.float64]: ...
    @property
    def n_features(self) -> int: ...
    @property
    def n_estimators(self) -> int: ...
    def to_bytes(self) -> bytes: ...
    @staticmethod
    def from_bytes(bytes: bytes) -> RandomForestModel: ...

@final
class DetectorModel:
    @staticmethod
    def fit(
        texts: list[str],
        labels: list[bool] | None,
        *,
        n_estimators: int,
        max_depth: int | None,
        threshold: float,
        expected_anomaly_rate: float,
        max_line_bytes: int,
        random_state: int | None,
        n_jobs: int | None,
    ) -> DetectorModel: ...
    def score(self, texts: list[str]) -> _ScoreColumns: ...
    def explain_json(self, text: str) -> str: ...
    def is_threat(self, risk: float) -> bool: ...
    def training_size(self) -> tuple[int, int]: ...
    @property
    def has_classifier(self) -> bool: ...
    def params_json(self) -> str: ...
    def to_bytes(self) -> bytes: ...
    @staticmethod
    def from_bytes(bytes: bytes) -> DetectorModel: ...

@final
class RiskScorerModel:
    @staticmethod
    def fit(
        training_scores: npt.NDArray[np.float64], *, expected_anomaly_rate: float, threshold: float
    ) -> RiskScorerModel: ...
    def score(
        self,
        raw_anomaly: npt.NDArray[np.float64],
        malicious_probability: npt.NDArray[np.float64] | None = None,
    ) -> _ScoreColumns: ...
    def calibrate(self, raw_anomaly: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]: ...
    def is_threat(self, risk: float) -> bool: ...
    def to_bytes(self) -> bytes: ...
    @staticmethod
    def from_bytes(bytes: bytes) -> RiskScorerModel: ...

def import_sklearn(json: str) -> list[tuple[str, Any]]: ...
def read_header_json(bytes: bytes) -> str: ...
