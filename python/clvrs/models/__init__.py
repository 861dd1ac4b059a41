"""The clvrs estimators, one module per model."""

from .bdw import BetaDiscreteWeibullModel
from .bgbb import BetaGeoBetaBinomModel
from .bgnbd import BetaGeoModel
from .gamma_gamma import GammaGammaModel
from .ggnbd import GammaGompertzNBDModel
from .mbgnbd import ModifiedBetaGeoModel
from .pnbd import ParetoNBDModel
from .pnbd_dynamic import ParetoNBDDynamicModel
from .sbg import ShiftedBetaGeoModel

__all__ = [
    "BetaDiscreteWeibullModel",
    "BetaGeoBetaBinomModel",
    "BetaGeoModel",
    "GammaGammaModel",
    "GammaGompertzNBDModel",
    "ModifiedBetaGeoModel",
    "ParetoNBDDynamicModel",
    "ParetoNBDModel",
    "ShiftedBetaGeoModel",
]
