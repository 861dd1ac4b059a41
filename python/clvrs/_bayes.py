"""Bayesian fits: the sampler's options, the posterior's containers and summary, the warnings.

The draws come from the core (NUTS of the nuts-rs crate over the model's likelihood pass); this
module checks the options, turns the draws into ArviZ's layout (an ``xarray.DataTree`` with
ArviZ >= 1.0, ``InferenceData`` with older ArviZ, a dict of numpy arrays without ArviZ), and
computes the diagnostics of :mod:`clvrs._diagnostics`.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import numbers
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from . import _diagnostics
from .exceptions import ConvergenceError, ConvergenceWarning

__all__ = ["METHODS", "sampler_settings", "posterior_container", "posterior_summary"]

#: The fitting methods: maximum likelihood, posterior draws by NUTS, or the posterior mode.
METHODS = ("mle", "nuts", "map")

#: Histogram bins per customer behind the credible intervals of predictions: an interval end
#: is within (largest - smallest prediction over the draws) / PREDICTION_BINS of the exact
#: quantile of the draws (see the core's ``bayes::predict``).
PREDICTION_BINS = 512

#: R-hat above this flags chains that have not mixed (Vehtari et al. 2021).
RHAT_LIMIT = 1.01

#: Names of the sampler statistics in ArviZ's ``sample_stats`` group, from the core's keys.
_STATS = {
    "log_density": "lp",
    "diverging": "diverging",
    "tree_depth": "tree_depth",
    "max_depth_reached": "reached_max_treedepth",
    "n_steps": "n_steps",
    "step_size": "step_size",
    "energy": "energy",
}


def _bad(name: str, message: str) -> Exception:
    from ._base import _bad_parameter

    return _bad_parameter(name, message)


def check_method(method: Any) -> str:
    if not (isinstance(method, str) and method in METHODS):
        raise _bad("method", f"must be one of {METHODS}, got {method!r}")
    return method


def sampler_settings(
    chains: Any, draws: Any, tune: Any, seed: Any, target_accept: Any, max_depth: Any
) -> tuple[int, int, int, int, float, int]:
    """The core's sampler settings ``(chains, draws, tune, seed, target_accept, max_depth)``;
    a ``seed`` of None is drawn from the operating system (and recorded in ``fit_info_``)."""
    from ._base import _check_seed

    def whole(value: Any, name: str, low: int, high: int) -> int:
        if (
            isinstance(value, bool)
            or not isinstance(value, numbers.Integral)
            or not low <= int(value) <= high
        ):
            raise _bad(name, f"must be a whole number from {low} to {high}, got {value!r}")
        return int(value)

    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1, np.uint64)[0])
    if (
        isinstance(target_accept, bool)
        or not isinstance(target_accept, numbers.Real)
        or not 0 < float(target_accept) < 1
    ):
        raise _bad("target_accept", f"must lie strictly between 0 and 1, got {target_accept!r}")
    return (
        whole(chains, "chains", 1, 1024),
        whole(draws, "draws", 1, 10**8),
        whole(tune, "tune", 0, 10**8),
        _check_seed(seed),
        float(target_accept),
        whole(max_depth, "max_depth", 1, 30),
    )


def draws_by_chain(result: dict[str, Any]) -> dict[str, Any]:
    """The core's draws as ``(chain, draw)`` arrays: each parameter, and each sampler
    statistic under its ArviZ name."""
    chains, draws = int(result["chains"]), int(result["draws"])
    values = np.asarray(result["values"], dtype=float).reshape(chains, draws, -1)
    out: dict[str, Any] = {
        "posterior": {name: values[:, :, j] for j, name in enumerate(result["names"])},
        "sample_stats": {},
    }
    for key, name in _STATS.items():
        array = np.asarray(result[key])
        if key in ("diverging", "max_depth_reached"):
            array = array.astype(bool)
        elif key in ("tree_depth", "n_steps"):
            array = array.astype(np.int64)
        else:
            array = array.astype(float)
        out["sample_stats"][name] = array.reshape(chains, draws)
    return out


def posterior_container(by_chain: dict[str, Any]) -> Any:
    """The draws in ArviZ's layout: groups ``posterior`` and ``sample_stats`` with ``chain``
    and ``draw`` dimensions, as an ``xarray.DataTree`` (ArviZ >= 1.0, or xarray alone),
    ``arviz.InferenceData`` (older ArviZ), or, without xarray, the same groups as a dict of
    dicts of numpy arrays."""
    try:
        import arviz
    except ImportError:
        arviz = None  # type: ignore[assignment, unused-ignore]
    if arviz is not None and int(str(arviz.__version__).split(".")[0]) < 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return arviz.from_dict(
                posterior=by_chain["posterior"], sample_stats=by_chain["sample_stats"] or None
            )
    try:
        import xarray
    except ImportError:
        return by_chain
    if not hasattr(xarray, "DataTree"):
        return by_chain

    def dataset(group: dict[str, np.ndarray]) -> Any:
        first = next(iter(group.values()))
        coords = {"chain": np.arange(first.shape[0]), "draw": np.arange(first.shape[1])}
        return xarray.Dataset(
            {name: (("chain", "draw"), array) for name, array in group.items()},
            coords=coords,
        )

    # (A sampler without per-draw statistics, such as a Gibbs sampler, has no sample_stats.)
    return xarray.DataTree.from_dict(
        {group: dataset(values) for group, values in by_chain.items() if values}
    )


class PosteriorSummary(pd.DataFrame):
    """The summary table of a Bayesian fit: a DataFrame that prints its sampler-health line
    (``attrs["sampler_health"]``) under the table. Operations on it give plain DataFrames,
    except ``round`` (the usual way to print it), which keeps the line."""

    @property
    def _constructor(self) -> Any:
        return pd.DataFrame

    def round(self, decimals: Any = 0, *args: Any, **kwargs: Any) -> PosteriorSummary:  # type: ignore[override]
        out = PosteriorSummary(pd.DataFrame(self).round(decimals, *args, **kwargs))
        out.attrs = dict(self.attrs)
        return out

    def __repr__(self) -> str:
        return f"{super().__repr__()}\n{self.attrs.get('sampler_health', '')}"

    def _repr_html_(self) -> str | None:
        import html

        table = super()._repr_html_() or ""  # type: ignore[misc]
        return f"{table}<p>{html.escape(str(self.attrs.get('sampler_health', '')))}</p>"


def posterior_summary(by_chain: dict[str, Any], level: float) -> pd.DataFrame:
    """Mean, sd, equal-tailed ``level`` credible interval, R-hat, bulk and tail ESS and the
    Monte Carlo error of the mean, one row per parameter."""
    rows = {}
    tail = (1.0 - level) / 2.0
    for name, x in by_chain["posterior"].items():
        flat = x.ravel()
        rows[name] = {
            "mean": float(flat.mean()),
            "sd": float(flat.std(ddof=1)) if flat.size > 1 else float("nan"),
            "lower": float(np.quantile(flat, tail)),
            "upper": float(np.quantile(flat, 1.0 - tail)),
            "r_hat": _diagnostics.rhat(x),
            "ess_bulk": _diagnostics.ess_bulk(x),
            "ess_tail": _diagnostics.ess_tail(x),
            "mcse_mean": _diagnostics.mcse_mean(x),
        }
    return PosteriorSummary(pd.DataFrame.from_dict(rows, orient="index"))


def health(info: dict[str, Any]) -> str:
    """The sampler-health line: chains and draws, divergences, maximum tree depth hits."""
    return (
        f"NUTS {info['chains']} chains x {info['draws']} draws (+{info['tune']} tuning), "
        f"{info['divergences']} divergences, {info['max_depth_hits']} draws at the maximum "
        f"tree depth {info['max_depth']}, max R-hat {info['r_hat_max']:.3f}"
    )


def fit_record(
    result: dict[str, Any], settings: dict[str, Any], by_chain: dict[str, Any]
) -> dict[str, Any]:
    """The ``fit_info_`` of a Bayesian fit."""
    stats = by_chain["sample_stats"]
    rhats = [_diagnostics.rhat(x) for x in by_chain["posterior"].values()]
    ess = [_diagnostics.ess_bulk(x) for x in by_chain["posterior"].values()]
    finite = [r for r in rhats if np.isfinite(r)]
    info = {
        "method": "nuts",
        "chains": int(result["chains"]),
        "draws": int(result["draws"]),
        "tune": int(settings["tune"]),
        "seed": int(settings["seed"]),
        "target_accept": float(settings["target_accept"]),
        "max_depth": int(result["max_depth"]),
        "divergences": int(np.sum(stats["diverging"])),
        "tuning_divergences": int(result["tuning_divergences"]),
        "max_depth_hits": int(np.sum(stats["reached_max_treedepth"])),
        "r_hat_max": float(max(finite)) if finite else float("nan"),
        "ess_bulk_min": float(np.nanmin(ess)) if np.any(np.isfinite(ess)) else float("nan"),
        "initial_point_is_mode": bool(result["initial_point_is_mode"]),
        "n_rows": int(result["n_rows"]),
        "priors": json.loads(result["priors"])
        if isinstance(result["priors"], str)
        else result["priors"],
    }
    info["termination"] = health(info)
    return info


def warn_or_raise(model_name: str, info: dict[str, Any], on_failure: str) -> bool:
    """Warn (or raise, or stay silent, per ``on_failure``) about chains that did not mix
    (R-hat > 1.01) and divergent transitions; returns whether the sample looks healthy."""
    problems = []
    rhat = info["r_hat_max"]
    if not (np.isfinite(rhat) and rhat <= RHAT_LIMIT):
        problems.append(
            f"R-hat up to {rhat:.3f} (> {RHAT_LIMIT}): the chains disagree; run more tuning "
            "and draws (tune=, draws=), or check summary for the parameters concerned"
        )
    if info["divergences"]:
        problems.append(
            f"{info['divergences']} divergent transitions after tuning: the sampler missed "
            "part of the posterior; raise target_accept (e.g. 0.95), or use tighter priors"
        )
    if not problems:
        return True
    message = f"{model_name} posterior sample: " + "; ".join(problems) + "."
    if on_failure == "raise":
        raise ConvergenceError(message)
    if on_failure == "warn":
        warnings.warn(message, ConvergenceWarning, stacklevel=4)
    return False


# -- predictions ------------------------------------------------------------------------------

#: What the prediction being computed should stream besides the posterior mean: set by
#: ``credible_request`` (``prediction_interval``, ``customer_lifetime_value``) around a call of
#: a model's prediction method, read by the method's core call.
_REQUEST: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "clvrs_posterior_request", default=None
)


@contextlib.contextmanager
def credible_request(level: float | None, **extra: Any) -> Iterator[dict[str, Any]]:
    """Within the block, a Bayesian model's per-customer prediction also computes the
    ``level`` credible interval (and applies ``extra``: ``scale``, ``spend_draws``,
    ``spend_frequency``, ``spend_monetary`` of a customer value); the core's result (``mean``,
    ``sd``, ``lower``, ``upper``) is left in the yielded dict under ``"result"``."""
    request: dict[str, Any] = {"level": level, **extra}
    token = _REQUEST.set(request)
    try:
        yield request
    finally:
        _REQUEST.reset(token)


def draws_matrix(model: Any) -> np.ndarray:
    """The posterior draws of a Bayesian fit as one C-contiguous ``(chains * draws) x k``
    matrix, columns in the order of ``params_``."""
    post = model._draws["posterior"]
    return np.ascontiguousarray(
        np.stack([np.asarray(post[name], dtype=float).ravel() for name in post], axis=-1)
    )


def posterior_prediction(call: Callable[..., dict[str, Any]]) -> np.ndarray:
    """The posterior mean of a per-customer prediction: ``call(**options)`` runs the core's
    streaming prediction with the options of the current ``credible_request`` (none outside
    one) and its result is recorded there."""
    request = _REQUEST.get()
    options: dict[str, Any] = {"level": None, "bins": PREDICTION_BINS}
    if request is not None:
        options.update({k: v for k, v in request.items() if k != "result"})
    out = call(**options)
    if request is not None:
        request["result"] = out
    return np.asarray(out["mean"])
