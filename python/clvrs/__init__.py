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
from .models import (
    BetaGeoModel,
    GammaGompertzNBDModel,
    ModifiedBetaGeoModel,
    ParetoNBDModel,
)

__all__ = [
    "BetaGeoModel",
    "ClvError",
    "ConvergenceError",
    "ConvergenceWarning",
    "GammaGompertzNBDModel",
    "InvalidDataError",
    "InvalidParameterError",
    "ModelFileError",
    "ModifiedBetaGeoModel",
    "NotFittedError",
    "ParetoNBDModel",
    "__version__",
    "datasets",
    "exceptions",
    "load",
]
