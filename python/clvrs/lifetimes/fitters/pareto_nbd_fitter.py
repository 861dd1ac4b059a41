"""lifetimes' import path for :class:`clvrs.lifetimes.ParetoNBDFitter`."""

from . import ParetoNBDFitter

__all__ = ["ParetoNBDFitter"]
