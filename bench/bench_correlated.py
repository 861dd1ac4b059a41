#!/usr/bin/env python3
"""Time the correlated Pareto/NBD fit against the plain Pareto/NBD fit on the same customers.

Customers (``--n``, default 1,000,000; T uniform on 26..78 weeks, seed 1) are drawn from
``CorrelatedParetoNBDModel`` with r = 0.55, alpha = 10.6, s = 0.61, beta = 11.7 and a
correlation of 0.8 times the highest the Sarmanov family reaches with those margins. Times,
alternating, the median of ``--repeats`` runs (``time.perf_counter``, only the call):

  plain       ``ParetoNBDModel(n_jobs=...).fit(df)``
  correlated  ``CorrelatedParetoNBDModel(n_jobs=...).fit(df)`` (which fits the plain model
              first, for its start and the likelihood-ratio test, then the correlated one)

and prints the ratio, the estimate of the correlation with its standard error, and the LR test.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import clvrs
from clvrs.models.pnbd_correlated import correlation_bounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    margins = {"r": 0.55, "alpha": 10.6, "s": 0.61, "beta": 11.7}
    rho = 0.8 * correlation_bounds(*margins.values())[1]
    truth = clvrs.CorrelatedParetoNBDModel.from_params(**margins, correlation=rho)
    ages = np.random.default_rng(1).uniform(26, 78, args.n)
    start = time.perf_counter()
    df = truth.simulate(ages, seed=1)
    print(f"simulated {args.n:,} customers in {time.perf_counter() - start:.1f} s")
    times: dict[str, list[float]] = {"plain": [], "correlated": []}
    fits = {}
    for _ in range(args.repeats):
        for name, cls in (
            ("plain", clvrs.ParetoNBDModel),
            ("correlated", clvrs.CorrelatedParetoNBDModel),
        ):
            start = time.perf_counter()
            fits[name] = cls(n_jobs=args.threads).fit(df)
            times[name].append(time.perf_counter() - start)
    plain, cor = (statistics.median(times[k]) for k in ("plain", "correlated"))
    fit = fits["correlated"]
    test = fit.fit_info_["independence_test"]
    print(f"plain      {plain:7.2f} s  ({fits['plain'].n_iter_} iterations)")
    print(f"correlated {cor:7.2f} s  ({fit.n_iter_} iterations)  ratio {cor / plain:.2f}")
    print(
        f"correlation {fit.params_['correlation']:.5f}"
        f" (se {fit.standard_errors_['correlation']:.5f}),"
        f" truth {rho:.5f}; LR statistic {test['statistic']:.1f}, p {test['p']:.3g}"
    )


if __name__ == "__main__":
    main()
