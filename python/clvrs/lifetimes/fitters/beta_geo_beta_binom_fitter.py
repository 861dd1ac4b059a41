"""lifetimes' import path for :class:`clvrs.lifetimes.BetaGeoBetaBinomFitter`."""

from . import BetaGeoBetaBinomFitter

__all__ = ["BetaGeoBetaBinomFitter"]
