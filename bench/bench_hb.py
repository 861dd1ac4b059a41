"""Time the hierarchical Pareto/NBD (Abe 2009) Gibbs sampler: CDNOW (2,357 customers), 4 chains
x 2,000 draws after 1,000 burn-in iterations, and a simulated base of 100,000 customers
(2 chains x 1,000 draws after 500), with the posterior quantiles BTYDplus publishes for CDNOW.

    python bench/bench_hb.py [--repeats 3] [--threads 2] [--skip-large]

No peer is timed in the same run: the only other implementation is BTYDplus (R, GPL), which
is not installed here; its vignette's default run (2 chains x 2,500 iterations thinned by 50)
is quoted in BENCHMARKS.md only as what it computes, not as a time.
Prints one JSON line per configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np
import pandas as pd

import clvrs


def _quantiles(model: clvrs.ParetoNBDHierarchicalModel) -> dict[str, list[float]]:
    return {
        name: [round(float(np.quantile(np.ravel(x), p)), 3) for p in (0.025, 0.5, 0.975)]
        for name, x in model._draws["posterior"].items()
    }


def cdnow(repeats: int, threads: int) -> dict:
    data = clvrs.datasets.load_cdnow_summary()
    times = []
    model = None
    for i in range(repeats):
        model = clvrs.ParetoNBDHierarchicalModel(n_jobs=threads)
        t0 = time.perf_counter()
        model.fit(data, chains=4, draws=2000, tune=1000, seed=1 + i)
        times.append(time.perf_counter() - t0)
    assert model is not None
    t0 = time.perf_counter()
    model.expected_purchases(t=39, level=0.9)
    predict_s = time.perf_counter() - t0
    return {
        "data": "CDNOW 2,357 customers",
        "config": "4 chains x 2000 draws + 1000 burn-in",
        "threads": threads,
        "wall_s_median": round(statistics.median(times), 3),
        "wall_s_runs": [round(t, 3) for t in times],
        "customer_draws_kept": model.fit_info_["customer_draws"],
        "predict_with_interval_s": round(predict_s, 3),
        "r_hat_max": round(model.fit_info_["r_hat_max"], 4),
        "ess_bulk_min": round(model.fit_info_["ess_bulk_min"], 0),
        "quantiles": _quantiles(model),
    }


def large(threads: int, n: int = 100_000) -> dict:
    rng = np.random.default_rng(1)
    rates = np.exp(
        np.array([-2.5, -3.5])
        + rng.multivariate_normal(np.zeros(2), [[0.6, 0.1], [0.1, 0.5]], size=n)
    )
    T = rng.uniform(20, 40, size=n)
    active = np.minimum(rng.exponential(1 / rates[:, 1]), T)
    x = rng.poisson(rates[:, 0] * active)
    t_x = np.where(x > 0, active * rng.beta(np.maximum(x, 1), 1.0), 0.0)
    data = pd.DataFrame({"frequency": x.astype(float), "recency": t_x, "T": T})
    model = clvrs.ParetoNBDHierarchicalModel(n_jobs=threads)
    t0 = time.perf_counter()
    model.fit(data, chains=2, draws=1000, tune=500, seed=1)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.probability_alive(level=0.9)
    predict_s = time.perf_counter() - t0
    return {
        "data": f"simulated, {n:,} customers",
        "config": "2 chains x 1000 draws + 500 burn-in",
        "threads": threads,
        "wall_s": round(fit_s, 2),
        "customer_draws_kept": model.fit_info_["customer_draws"],
        "p_alive_with_interval_s": round(predict_s, 2),
        "r_hat_max": round(model.fit_info_["r_hat_max"], 4),
        "means": {k: round(float(v), 3) for k, v in model.params_.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-large", action="store_true")
    args = parser.parse_args()
    machine = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "clvrs": clvrs.__version__,
        "load_avg": [round(v, 2) for v in os.getloadavg()],
    }
    print(json.dumps({"machine": machine}))
    print(json.dumps(cdnow(args.repeats, args.threads)))
    if not args.skip_large:
        print(json.dumps(large(args.threads)))


if __name__ == "__main__":
    main()
