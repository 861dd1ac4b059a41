"""lifetimes' import path for :class:`clvrs.lifetimes.ModifiedBetaGeoFitter`."""

from . import ModifiedBetaGeoFitter

__all__ = ["ModifiedBetaGeoFitter"]
