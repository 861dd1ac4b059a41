"""clvrs: customer-lifetime-value models fitted by a parallel Rust core.

The estimators follow scikit-learn conventions: hyperparameters in ``__init__``, ``fit`` returns
the estimator, estimates end in ``_``. See :class:`BetaGeoModel` to start.
"""

from __future__ import annotations

from . import datasets, exceptions
from ._base import load
from ._core import __version__
from .exceptions import (
    ClvError,
    ConvergenceError,
    ConvergenceWarning,
    InvalidDataError,
    InvalidParameterError,
    ModelFileError,
    NotFittedError,
)
from .models import BetaGeoModel

__all__ = [
    "BetaGeoModel",
    "ClvError",
    "ConvergenceError",
    "ConvergenceWarning",
    "InvalidDataError",
    "InvalidParameterError",
    "ModelFileError",
    "NotFittedError",
    "__version__",
    "datasets",
    "exceptions",
    "load",
]
