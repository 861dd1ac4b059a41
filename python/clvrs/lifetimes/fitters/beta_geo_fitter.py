"""lifetimes' import path for :class:`clvrs.lifetimes.BetaGeoFitter`."""

from . import BetaGeoFitter

__all__ = ["BetaGeoFitter"]
