"""Transaction logs drawn from a fitted or given model."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ._base import BaseModel, _bad_parameter, _check_seed
from ._input import as_float_array
from .data import _end, _in_unit
from .exceptions import InvalidDataError
from .value import _units_per_month

__all__ = ["simulate_transactions"]

#: Nanoseconds per unit of the model's time for the units of ``time_unit``.
_DAYS = {"H": 1 / 24, "D": 1.0, "W": 7.0, "M": 30.436875}
#: The last second before the end of int64 seconds (NaT is the smallest int64).
_LAST_SECOND = 2**63 - 2


def simulate_transactions(
    model: Any,
    T: Any,
    *,
    end: Any = "2020-01-01",
    time_unit: str = "W",
    spend_model: Any = None,
    seed: int = 0,
) -> pd.DataFrame:
    """A transaction log drawn from a purchase model (and a spend model).

    Customer ``i`` has age ``T[i]`` (in ``time_unit``) at ``end``; its history
    ``(x, t_x)`` is drawn by ``model.simulate`` (the model's exact process), its first purchase
    is at ``end - T``, its last repeat purchase at ``t_x`` after that, and the other ``x - 1``
    repeat purchases at times uniform on ``(0, t_x)`` -- their distribution given ``x`` and
    ``t_x`` for the Poisson models (purchases are a Poisson process while the customer is alive,
    and dropout does not depend on purchase times); for the regularity models (Erlang-k gaps)
    the ``x`` gaps are ``t_x`` times a Dirichlet(k, ..., k) split instead. With a Gamma-Gamma
    ``spend_model``, each customer draws ``nu ~ Gamma(q, gamma)`` and each transaction
    ``Gamma(p, nu)``.

    Summarising the log (``freq`` matching ``time_unit``) gives back the histories, up to the
    flooring of times to periods. Dates are nanosecond timestamps while they fall in the years
    1677-2262 and whole seconds (``datetime64[s]``) for longer horizons; ``T`` reaching before
    the earliest date a timestamp holds (about 292 billion years) is refused.

    Returns
    -------
    pandas.DataFrame
        Columns ``customer_id`` (0 ..), ``date`` and, with a spend model, ``amount``; sorted by
        date.
    """
    if not (isinstance(time_unit, str) and time_unit in _DAYS):
        raise _bad_parameter("time_unit", f"must be one of {sorted(_DAYS)}, got {time_unit!r}")
    _units_per_month(time_unit)
    seed = _check_seed(seed)
    if not callable(getattr(model, "simulate", None)):
        raise _bad_parameter(
            "model",
            f"must be a purchase model with a simulator (e.g. BetaGeoModel), got "
            f"{type(model).__name__}",
        )
    if spend_model is not None and not (
        isinstance(spend_model, BaseModel)
        and "params_" in vars(spend_model)
        and {"p", "q", "gamma"} <= set(spend_model.params_.index)
    ):
        raise _bad_parameter(
            "spend_model",
            f"must be a fitted GammaGammaModel or None, got {type(spend_model).__name__}",
        )
    ages = as_float_array(T, "T")
    if not ages.size:
        err = InvalidDataError("column `T`: at least one customer is required (T is empty)")
        err.column, err.rule = "T", "at least one customer"
        raise err
    stamp = _end(end, None, "end", formats=False)
    if stamp is None:
        raise _bad_parameter("end", "must be a date, got None")
    day_s = 86_400 * _DAYS[time_unit]
    end_s = _in_unit(stamp, 1_000_000_000)
    assert end_s is not None
    # The first purchases, T before the end, must be dates (int64 seconds: +-292 billion years).
    longest = (end_s + _LAST_SECOND) / day_s
    finite = ages[np.isfinite(ages)]
    if finite.size and finite.max() > longest:
        raise _bad_parameter(
            "T",
            f"must be at most {longest:.6g} ({time_unit}) with end={stamp}: the first purchases, "
            "T before the end, would fall before the earliest date a timestamp holds",
        )
    histories = model.simulate(ages, seed=seed)
    x = histories["frequency"].to_numpy().astype(np.int64)
    t_x = histories["recency"].to_numpy()
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    rows = x + 1
    customer = np.repeat(np.arange(len(ages)), rows)
    starts = np.concatenate(([0], np.cumsum(rows)[:-1]))
    position = np.arange(rows.sum()) - np.repeat(starts, rows)
    last = np.repeat(t_x, rows)
    k = int(getattr(model, "k_", 1))
    if k > 1:
        # Erlang-k gaps (the regularity models): given x gaps adding up to t_x, they are t_x
        # times a Dirichlet(k, ..., k) split, whatever the rate.
        gaps = rng.gamma(float(k), 1.0, size=len(customer))
        gaps[position == 0] = 0.0
        running = np.cumsum(gaps)
        within = running - np.repeat(running[starts], rows)
        total = np.repeat(within[starts + x], rows)
        with np.errstate(invalid="ignore", divide="ignore"):
            offsets = np.where(total > 0, within / total, 0.0) * last
    else:
        offsets = rng.uniform(0.0, 1.0, size=len(customer)) * last
    offsets[position == 0] = 0.0  # the first purchase
    is_last = position == np.repeat(x, rows)
    offsets[is_last & (np.repeat(x, rows) > 0)] = last[is_last & (np.repeat(x, rows) > 0)]
    before = np.repeat(ages, rows)
    end_ns = _in_unit(stamp, 1)
    if end_ns is not None and (not len(before) or end_ns - before.max() * day_s * 1e9 > -9e18):
        # Nanosecond dates (years 1677-2262).
        day_ns = 86_400_000_000_000 * _DAYS[time_unit]
        first_ns = end_ns - before * day_ns
        dates = pd.to_datetime((first_ns + offsets * day_ns).astype(np.int64))
    else:
        # Dates beyond the nanosecond range, to the second.
        seconds = np.floor(end_s - (before - offsets) * day_s).astype(np.int64)
        dates = pd.to_datetime(seconds.view("datetime64[s]"))
    log = pd.DataFrame({"customer_id": customer, "date": dates})
    if spend_model is not None:
        p, q, gamma = (float(spend_model.params_[k]) for k in ("p", "q", "gamma"))
        nu = rng.gamma(q, 1.0 / gamma, size=len(ages))
        log["amount"] = rng.gamma(p, 1.0 / np.repeat(nu, rows))
    return log.sort_values(["date", "customer_id"], kind="stable").reset_index(drop=True)
