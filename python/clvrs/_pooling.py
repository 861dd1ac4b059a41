"""Pooling across segments for :func:`clvrs.fit_segments`: separate fits, one pooled model, or
partial pooling (a hierarchical model sampled by NUTS in the core).

With ``pooling="partial"`` each segment's log-parameters are ``mu + sigma * z`` with ``z ~
Normal(0, 1)`` (the non-centred parameterisation), ``mu ~ Normal(m, 2)`` around the largest
segment's data-derived start and ``sigma ~ HalfNormal(1)``; see :mod:`clvrs.segments` and the
core's ``bayes::hierarchical`` for the reasons. This module turns the joint draws into one
fitted model per segment (its slice of the draws) and the population's draws, and lays the
whole out in ArviZ's layout with a ``segment`` dimension.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from . import _bayes

__all__ = ["POOLINGS", "check_pooling", "segment_result", "population_names", "container"]

#: How segments share information: separately, fully, or through a population distribution.
POOLINGS = ("none", "partial", "complete")


def check_pooling(pooling: Any, method: str) -> str:
    from ._base import _bad_parameter

    if not (isinstance(pooling, str) and pooling in POOLINGS):
        raise _bad_parameter("pooling", f"must be one of {POOLINGS}, got {pooling!r}")
    if pooling == "partial" and method != "nuts":
        raise _bad_parameter(
            "pooling",
            '"partial" pools segments through a population distribution sampled by NUTS: '
            'use method="nuts" (method="mle" fits segments separately or pooled)',
        )
    return pooling


def population_names(param_names: list[str]) -> list[str]:
    """Names of the population parameters: the mean and spread of each log-parameter."""
    return [f"mu_log_{p}" for p in param_names] + [f"sigma_log_{p}" for p in param_names]


def segment_result(result: dict[str, Any], s: int) -> dict[str, Any]:
    """Segment ``s``'s slice of the core's joint draws, in the layout of a single model's
    sample (so that a model of the segment stores it like its own posterior)."""
    k = int(result["k"])
    values = np.asarray(result["values"], dtype=float)
    start = 2 * k + s * k
    names = [name.split("[")[0] for name in result["names"][start : start + k]]
    out = dict(result)
    out["names"] = names
    out["values"] = values[:, start : start + k]
    out["initial_point"] = list(result["initial_point"][s * k : (s + 1) * k])
    # The segment's priors are the population's (summarised on the collection).
    out["priors"] = "[]"
    out["n_rows"] = int(result["segment_rows"][s])
    out["n_observations"] = float(result["segment_customers"][s])
    return out


def population_draws(result: dict[str, Any]) -> dict[str, np.ndarray]:
    """The population means and spreads as ``(chain, draw)`` arrays."""
    k = int(result["k"])
    chains, draws = int(result["chains"]), int(result["draws"])
    values = np.asarray(result["values"], dtype=float)
    return {
        name: values[:, j].reshape(chains, draws) for j, name in enumerate(result["names"][: 2 * k])
    }


def stacked(
    segment_draws: dict[Any, dict[str, Any]],
    population: dict[str, np.ndarray] | None,
    shared_stats: dict[str, np.ndarray] | None,
) -> tuple[dict[str, Any], list[Any]]:
    """Per-segment ``(chain, draw)`` draws stacked along a last ``segment`` axis, the
    population's variables (no segment axis), and the sampler statistics (shared by every
    segment in a joint run, else per segment)."""
    keys = list(segment_draws)
    first = segment_draws[keys[0]]
    posterior: dict[str, Any] = {
        name: np.stack([segment_draws[key]["posterior"][name] for key in keys], axis=-1)
        for name in first["posterior"]
    }
    if population:
        posterior.update(population)
    if shared_stats is not None:
        stats = dict(shared_stats)
    else:
        stats = {
            name: np.stack([segment_draws[key]["sample_stats"][name] for key in keys], axis=-1)
            for name in first["sample_stats"]
        }
    return {"posterior": posterior, "sample_stats": stats}, keys


def container(by_chain: dict[str, Any], keys: list[Any]) -> Any:
    """The draws in ArviZ's layout with a ``segment`` dimension (coordinates: the segments),
    as :func:`clvrs._bayes.posterior_container` lays out one model's; without xarray, the
    dict of arrays with the segments under ``"segment"``."""
    try:
        import arviz
    except ImportError:
        arviz = None  # type: ignore[assignment, unused-ignore]

    def dims(group: dict[str, np.ndarray]) -> dict[str, list[str]]:
        return {name: ["segment"] for name, array in group.items() if array.ndim == 3}

    segment_coords = np.asarray(keys)
    if arviz is not None and int(str(arviz.__version__).split(".")[0]) < 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return arviz.from_dict(
                posterior=by_chain["posterior"],
                sample_stats=by_chain["sample_stats"],
                coords={"segment": segment_coords},
                dims={**dims(by_chain["posterior"]), **dims(by_chain["sample_stats"])},
            )
    try:
        import xarray
    except ImportError:
        return {**by_chain, "segment": segment_coords}
    if not hasattr(xarray, "DataTree"):
        return {**by_chain, "segment": segment_coords}

    def dataset(group: dict[str, np.ndarray]) -> Any:
        first = next(iter(group.values()))
        coords: dict[str, Any] = {
            "chain": np.arange(first.shape[0]),
            "draw": np.arange(first.shape[1]),
        }
        if any(array.ndim == 3 for array in group.values()):
            coords["segment"] = segment_coords
        return xarray.Dataset(
            {
                name: (("chain", "draw", "segment")[: array.ndim], array)
                for name, array in group.items()
            },
            coords=coords,
        )

    return xarray.DataTree.from_dict(
        {
            "posterior": dataset(by_chain["posterior"]),
            "sample_stats": dataset(by_chain["sample_stats"]),
        }
    )


def population_summary(population: dict[str, np.ndarray], level: float) -> pd.DataFrame:
    """Posterior mean, sd, credible interval, R-hat and ESS of the population parameters."""
    return pd.DataFrame(_bayes.posterior_summary({"posterior": population}, level))
