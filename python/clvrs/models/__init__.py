"""The clvrs estimators, one module per model."""

from .bgnbd import BetaGeoModel

__all__ = ["BetaGeoModel"]
