"""Exceptions and warnings raised by clvrs.

Every error subclasses :class:`ClvError` and the matching built-in (``ValueError`` for bad input,
``RuntimeError`` for a failed fit), so generic handlers keep working.
"""

from __future__ import annotations

__all__ = [
    "ClvError",
    "ConvergenceError",
    "ConvergenceWarning",
    "InvalidDataError",
    "InvalidParameterError",
    "ModelFileError",
    "ModelWarning",
    "NotFittedError",
    "TimeUnitError",
]


class ClvError(Exception):
    """Base class of every clvrs error."""


class InvalidDataError(ClvError, ValueError):
    """Input data broke a rule.

    Attributes
    ----------
    column : str or None
        The column holding the offending value.
    row : int or None
        The first offending row (0-based position in the input).
    rule : str or None
        The rule that was broken.
    label : object or None
        The pandas index label of that row, when the input had a pandas index.
    """

    column: str | None = None
    row: int | None = None
    rule: str | None = None
    label: object | None = None


class InvalidParameterError(ClvError, ValueError):
    """A model parameter or option is outside its domain.

    Attributes
    ----------
    parameter : str or None
        The parameter's name.
    """

    parameter: str | None = None


class TimeUnitError(InvalidDataError, InvalidParameterError):
    """Data, a model and an argument disagree about the time unit (e.g. a model fitted in weeks
    asked to score a summary in days).

    Attributes
    ----------
    expected : str or None
        The unit of the model (or of the argument), e.g. ``"W"``.
    found : str or None
        The unit recorded on the data, or given as an argument, e.g. ``"D"``.
    """

    expected: str | None = None
    found: str | None = None


class ConvergenceError(ClvError, RuntimeError):
    """The optimiser did not converge and the estimator was asked to raise."""


class ConvergenceWarning(UserWarning):
    """The optimiser did not converge; the estimates may be unreliable."""


class ModelWarning(UserWarning):
    """The fitted model has a property that limits its use (e.g. a spend distribution whose
    mean is infinite, so expected spend and value are undefined)."""


class NotFittedError(ClvError, AttributeError):
    """A fitted attribute or a prediction was requested from an unfitted model."""


class ModelFileError(ClvError, ValueError):
    """A saved model file is corrupt, truncated, foreign or from a newer clvrs."""
