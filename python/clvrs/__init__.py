"""clvrs: customer-lifetime-value models fitted by a parallel Rust core.

The estimators follow scikit-learn conventions: hyperparameters in ``__init__``, ``fit`` returns
the estimator, estimates end in ``_``. See :class:`BetaGeoModel` to start.
"""

from __future__ import annotations

from . import datasets, exceptions, priors
from ._base import load
from ._core import __version__
from .data import calibration_and_holdout, summarize_transactions, tracking
from .dynamic import DynamicCovariateData
from .evaluation import (
    HoldoutEvaluation,
    compare_models,
    holdout_evaluation,
    likelihood_ratio_test,
)
from .exceptions import (
    ClvError,
    ConvergenceError,
    ConvergenceWarning,
    InvalidDataError,
    InvalidParameterError,
    ModelFileError,
    ModelWarning,
    NotFittedError,
    TimeUnitError,
)
from .models import (
    BetaDiscreteWeibullDynamicModel,
    BetaDiscreteWeibullModel,
    BetaGeoBetaBinomModel,
    BetaGeoCNBDModel,
    BetaGeoDynamicModel,
    BetaGeoModel,
    CorrelatedParetoNBDModel,
    GammaGammaModel,
    GammaGompertzNBDModel,
    ModifiedBetaGeoCNBDModel,
    ModifiedBetaGeoModel,
    NBDModel,
    ParetoGGGModel,
    ParetoNBDDynamicModel,
    ParetoNBDHierarchicalModel,
    ParetoNBDModel,
    ShiftedBetaGeoDynamicModel,
    ShiftedBetaGeoModel,
)
from .prospects import prospect_value
from .regularity import RegularityEstimate, estimate_regularity
from .report import report
from .segments import SegmentedModel, fit_segments
from .simulate import simulate_transactions
from .uncertainty import BootstrapResult, bootstrap, delta_interval, prediction_interval
from .value import (
    Segmentation,
    acquisition_budget,
    clv_segments,
    customer_lifetime_value,
    historical_clv,
    rfm_segments,
)

__all__ = [
    "BetaDiscreteWeibullDynamicModel",
    "BetaDiscreteWeibullModel",
    "BootstrapResult",
    "BetaGeoBetaBinomModel",
    "BetaGeoCNBDModel",
    "BetaGeoDynamicModel",
    "BetaGeoModel",
    "ClvError",
    "ConvergenceError",
    "ConvergenceWarning",
    "CorrelatedParetoNBDModel",
    "GammaGammaModel",
    "HoldoutEvaluation",
    "GammaGompertzNBDModel",
    "InvalidDataError",
    "InvalidParameterError",
    "DynamicCovariateData",
    "ModelFileError",
    "ModelWarning",
    "ModifiedBetaGeoCNBDModel",
    "ModifiedBetaGeoModel",
    "NBDModel",
    "NotFittedError",
    "ParetoGGGModel",
    "ParetoNBDDynamicModel",
    "ParetoNBDHierarchicalModel",
    "ParetoNBDModel",
    "RegularityEstimate",
    "SegmentedModel",
    "Segmentation",
    "ShiftedBetaGeoDynamicModel",
    "ShiftedBetaGeoModel",
    "TimeUnitError",
    "__version__",
    "acquisition_budget",
    "bootstrap",
    "calibration_and_holdout",
    "clv_segments",
    "compare_models",
    "customer_lifetime_value",
    "delta_interval",
    "datasets",
    "estimate_regularity",
    "exceptions",
    "priors",
    "prospect_value",
    "fit_segments",
    "historical_clv",
    "holdout_evaluation",
    "likelihood_ratio_test",
    "load",
    "prediction_interval",
    "report",
    "rfm_segments",
    "simulate_transactions",
    "summarize_transactions",
    "tracking",
]
