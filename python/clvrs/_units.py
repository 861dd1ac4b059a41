"""Time units that travel with the data.

A customer summary made by :func:`clvrs.summarize_transactions` (or
:func:`clvrs.calibration_and_holdout`) from pandas records its period in
``DataFrame.attrs["time_unit"]``: ``freq`` with its ``freq_multiplier`` written before it
when that is not 1 (``"W"``, ``"D"``, ``"7D"`` for weeks counted from days, ``"24H"``,
``"M"``). A model fitted on such a summary keeps the unit (``time_unit_``) and refuses data
with another recorded unit; :func:`clvrs.customer_lifetime_value` uses it. Polars frames and
numpy arrays carry no unit: they are unit-free unless the user says the unit (``time_unit=`` on
``fit``, or ``frame.attrs["time_unit"] = "W"`` on a pandas frame made by hand).

Two units are the same when their lengths differ by at most 2% (so ``"W"`` and ``"7D"`` agree,
as do ``"M"`` and ``"30D"``: lifetimes' months of 30 days and of 4.345 weeks differ by 1.4%).
"""

from __future__ import annotations

import math
import re
from typing import Any

import pandas as pd

from .exceptions import InvalidParameterError, TimeUnitError

__all__ = [
    "ATTR",
    "check_same",
    "check_tracking_unit",
    "data_unit",
    "fit_unit",
    "parse_unit",
    "record_unit",
    "same",
    "same_per_month",
    "unit_name",
    "units_per_month",
]

#: The key of ``DataFrame.attrs`` holding a summary's time unit.
ATTR = "time_unit"

#: Length of each base period in days (a month is the mean Gregorian month).
_DAYS = {"H": 1 / 24, "D": 1.0, "W": 7.0, "M": 365.2425 / 12}
#: Base periods per month, the convention of ``lifetimes`` (see ``TIME_UNITS_PER_MONTH``).
_PER_MONTH = {"W": 4.345, "M": 1.0, "D": 30.0, "H": 720.0}
#: Relative difference of lengths beyond which two units differ.
_TOLERANCE = 0.02
_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)?\s*([HDWMhdwm])\s*$")


def unit_name(freq: str, freq_multiplier: float = 1.0) -> str:
    """The unit of a summary made with ``freq`` and ``freq_multiplier`` (e.g. ``"7D"``)."""
    code = str(freq).upper()
    multiplier = float(freq_multiplier)
    return code if multiplier == 1 else f"{multiplier:g}{code}"


def parse_unit(value: Any, name: str = "time_unit") -> tuple[str, float]:
    """``(freq, freq_multiplier)`` of a unit name such as ``"W"`` or ``"7D"``.

    Raises
    ------
    InvalidParameterError
        Naming ``name`` when ``value`` is not such a name.
    """
    match = _PATTERN.match(value) if isinstance(value, str) else None
    multiplier = float(match.group(1)) if match and match.group(1) else 1.0
    if match is None or not (math.isfinite(multiplier) and multiplier > 0):
        err = InvalidParameterError(
            f"{name}: must be a time unit: H, D, W or M, optionally after a multiplier "
            f'(e.g. "7D" for weeks counted in days), got {value!r}'
        )
        err.parameter = name
        raise err
    return match.group(2).upper(), multiplier


def _days(unit: str) -> float:
    freq, multiplier = parse_unit(unit)
    return _DAYS[freq] * multiplier


def units_per_month(unit: str) -> float:
    """How many ``unit`` make a month, in the convention of ``TIME_UNITS_PER_MONTH``.

    A unit is counted in the coarsest base period that divides it evenly, so units of the same
    length get the same months whatever they were counted in: ``"7D"`` and ``"168H"`` are weeks
    (4.345 a month, as ``"W"``), ``"24H"`` is a day (30 a month, as ``"D"``). lifetimes' months
    of 30 days and of 4.345 weeks differ by 1.4%; without this rule weeks counted in days would
    be valued with the days' month.
    """
    freq, multiplier = parse_unit(unit)
    if freq != "M":
        days = _DAYS[freq] * multiplier
        for base in ("W", "D"):
            whole = days / _DAYS[base]
            if whole >= 1 and abs(whole - round(whole)) <= 1e-9 * whole:
                return _PER_MONTH[base] / round(whole)
    return _PER_MONTH[freq] / multiplier


def same(a: str, b: str) -> bool:
    """Whether two unit names describe the same length of time (within 2%)."""
    return abs(_days(a) / _days(b) - 1.0) <= _TOLERANCE


def same_per_month(unit: str, per_month: float) -> bool:
    """Whether ``per_month`` units per month describe ``unit`` (within 2%)."""
    return abs(units_per_month(unit) / per_month - 1.0) <= _TOLERANCE


def record_unit(frame: Any, freq: str, freq_multiplier: float) -> Any:
    """Record the unit on a pandas summary (polars frames have no ``attrs``: unit-free)."""
    if isinstance(frame, pd.DataFrame):
        frame.attrs[ATTR] = unit_name(freq, freq_multiplier)
    return frame


def _how(unit: str) -> str:
    """The summarize_transactions arguments that give ``unit``."""
    freq, multiplier = parse_unit(unit)
    return f'freq="{freq}"' + (f", freq_multiplier={multiplier:g}" if multiplier != 1 else "")


def _attr_unit(obj: Any, where: str) -> str | None:
    attrs = getattr(obj, "attrs", None) if isinstance(obj, pd.DataFrame | pd.Series) else None
    if not attrs or attrs.get(ATTR) is None:
        return None
    value = attrs[ATTR]
    try:
        freq, multiplier = parse_unit(value, f'{where}.attrs["{ATTR}"]')
    except InvalidParameterError as exc:
        err = TimeUnitError(str(exc))
        err.column = f'attrs["{ATTR}"]'
        raise err from exc
    return unit_name(freq, multiplier)


def data_unit(data: Any, keywords: dict[str, Any] | None = None) -> str | None:
    """The time unit recorded on the input (a pandas frame, or pandas Series as keywords)."""
    if data is not None:
        return _attr_unit(data, "data")
    for key, value in (keywords or {}).items():
        found = _attr_unit(value, key)
        if found is not None:
            return found
    return None


def check_same(model_unit: str | None, found: str | None, model_name: str) -> None:
    """Refuse data whose recorded unit differs from the model's.

    Raises
    ------
    TimeUnitError
        Naming both units and the fix.
    """
    if model_unit is None or found is None or same(model_unit, found):
        return
    err = TimeUnitError(
        f'time unit: {model_name} was fitted on data in time unit "{model_unit}" but these '
        f'data are in "{found}" (their attrs["{ATTR}"]); summarise the transactions with '
        f"{_how(model_unit)}, or refit the model on these data"
    )
    err.column = f'attrs["{ATTR}"]'
    err.rule = "same time unit as the model"
    err.expected, err.found = model_unit, found
    raise err


def check_tracking_unit(model: Any, freq: str, freq_multiplier: float) -> None:
    """Refuse ``tracking`` periods (``freq`` x ``freq_multiplier``) in another unit than the
    model's: its expectations would be read in the wrong unit.

    Raises
    ------
    TimeUnitError
        Naming both units and the ``freq`` to pass.
    """
    model_unit = getattr(model, "__dict__", {}).get("time_unit_")
    found = unit_name(freq, freq_multiplier)
    if model_unit is None or same(model_unit, found):
        return
    err = TimeUnitError(
        f'freq: {type(model).__name__} was fitted in time unit "{model_unit}" but freq="{freq}"'
        f', freq_multiplier={float(freq_multiplier):g} count in "{found}"; pass '
        f"{_how(model_unit)}"
    )
    err.parameter = "freq"
    err.expected, err.found = model_unit, found
    raise err


def fit_unit(data: Any, keywords: dict[str, Any], time_unit: Any) -> str | None:
    """The unit a model fitted on this input remembers: the recorded one, or ``time_unit``.

    Raises
    ------
    TimeUnitError
        When ``time_unit`` contradicts the unit recorded on the data.
    InvalidParameterError
        When ``time_unit`` is not a unit name.
    """
    found = data_unit(data, keywords)
    if time_unit is None:
        return found
    freq, multiplier = parse_unit(time_unit)
    given = unit_name(freq, multiplier)
    if found is not None and not same(given, found):
        err = TimeUnitError(
            f'time_unit: "{given}" contradicts the data\'s recorded time unit "{found}" (their '
            f'attrs["{ATTR}"]); leave time_unit out to use the data\'s unit, or summarise the '
            f"transactions with {_how(given)}"
        )
        err.parameter = "time_unit"
        err.expected, err.found = given, found
        raise err
    return found if found is not None else given
