"""The clvrs estimators, one module per model."""

from .bgbb import BetaGeoBetaBinomModel
from .bgnbd import BetaGeoModel
from .gamma_gamma import GammaGammaModel
from .ggnbd import GammaGompertzNBDModel
from .mbgnbd import ModifiedBetaGeoModel
from .pnbd import ParetoNBDModel

__all__ = [
    "BetaGeoBetaBinomModel",
    "BetaGeoModel",
    "GammaGammaModel",
    "GammaGompertzNBDModel",
    "ModifiedBetaGeoModel",
    "ParetoNBDModel",
]
