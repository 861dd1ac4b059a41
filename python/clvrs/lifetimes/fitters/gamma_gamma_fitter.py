"""lifetimes' import path for :class:`clvrs.lifetimes.GammaGammaFitter`."""

from . import GammaGammaFitter

__all__ = ["GammaGammaFitter"]
