"""The clvrs estimators, one module per model."""

from .bdw import BetaDiscreteWeibullModel
from .bgbb import BetaGeoBetaBinomModel
from .bgcnbd import BetaGeoCNBDModel
from .bgnbd import BetaGeoModel
from .bgnbd_dynamic import BetaGeoDynamicModel
from .churn_dynamic import BetaDiscreteWeibullDynamicModel, ShiftedBetaGeoDynamicModel
from .gamma_gamma import GammaGammaModel
from .ggnbd import GammaGompertzNBDModel
from .mbgcnbd import ModifiedBetaGeoCNBDModel
from .mbgnbd import ModifiedBetaGeoModel
from .nbd import NBDModel
from .pggg import ParetoGGGModel
from .pnbd import ParetoNBDModel
from .pnbd_correlated import CorrelatedParetoNBDModel
from .pnbd_dynamic import ParetoNBDDynamicModel
from .pnbd_hb import ParetoNBDHierarchicalModel
from .sbg import ShiftedBetaGeoModel

__all__ = [
    "BetaDiscreteWeibullDynamicModel",
    "BetaDiscreteWeibullModel",
    "BetaGeoBetaBinomModel",
    "BetaGeoCNBDModel",
    "BetaGeoDynamicModel",
    "BetaGeoModel",
    "CorrelatedParetoNBDModel",
    "GammaGammaModel",
    "GammaGompertzNBDModel",
    "ModifiedBetaGeoCNBDModel",
    "ModifiedBetaGeoModel",
    "NBDModel",
    "ParetoGGGModel",
    "ParetoNBDDynamicModel",
    "ParetoNBDHierarchicalModel",
    "ParetoNBDModel",
    "ShiftedBetaGeoDynamicModel",
    "ShiftedBetaGeoModel",
]
