"""The clvrs estimators, one module per model."""

from .bgnbd import BetaGeoModel
from .ggnbd import GammaGompertzNBDModel
from .mbgnbd import ModifiedBetaGeoModel
from .pnbd import ParetoNBDModel

__all__ = ["BetaGeoModel", "GammaGompertzNBDModel", "ModifiedBetaGeoModel", "ParetoNBDModel"]
