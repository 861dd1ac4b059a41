"""The clvrs estimators, one module per model."""

from .bgnbd import BetaGeoModel
from .gamma_gamma import GammaGammaModel
from .ggnbd import GammaGompertzNBDModel
from .mbgnbd import ModifiedBetaGeoModel
from .pnbd import ParetoNBDModel

__all__ = [
    "BetaGeoModel",
    "GammaGammaModel",
    "GammaGompertzNBDModel",
    "ModifiedBetaGeoModel",
    "ParetoNBDModel",
]
