"""Exceptions raised by codegrey_soc."""

from __future__ import annotations

from ._native import SocError

__all__ = ["NotFittedError", "SocError"]


class NotFittedError(ValueError, AttributeError):
    """Raised when a model is used before ``fit`` (or ``load``).

    Like scikit-learn's exception of the same name it subclasses both ``ValueError`` and
    ``AttributeError``, so ``hasattr(est, "vocabulary_")`` is ``False`` on an unfitted estimator.
    """
