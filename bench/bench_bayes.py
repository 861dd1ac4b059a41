"""Time clvrs' Bayesian BG/NBD fit (NUTS, 4 chains x 1000 draws after 1000 tuning steps) on
CDNOW with PyMC-Marketing's default priors, and, given its python, PyMC-Marketing's own fit in
the same run (/work/shared/bench/peer_pymc_nuts.py, set up by setup_pymc.sh).

    python bench/bench_bayes.py [--repeats 5] [--threads 2] [--peer /path/to/venv-pymc/bin/python]

Prints one JSON line per configuration: wall seconds (median and all runs), leapfrog steps
(gradient evaluations of the sampler), seconds per draw and per gradient, posterior means.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time

import numpy as np

import clvrs
from clvrs import priors as P


def clvrs_runs(repeats: int, threads: int, default_priors: bool) -> dict:
    data = clvrs.datasets.load_cdnow_summary()
    times, steps, means = [], [], None
    for i in range(repeats):
        model = clvrs.BetaGeoModel(n_jobs=threads)
        priors = None if default_priors else P.pymc_marketing(model)
        t0 = time.perf_counter()
        model.fit(data, method="nuts", chains=4, draws=1000, tune=1000, seed=1 + i, priors=priors)
        times.append(time.perf_counter() - t0)
        steps.append(int(np.sum(model._draws["sample_stats"]["n_steps"])))
        means = {k: round(float(v), 4) for k, v in model.params_.items()}
    median = statistics.median(times)
    return {
        "lib": "clvrs",
        "version": clvrs.__version__,
        "priors": "clvrs defaults" if default_priors else "pymc-marketing defaults",
        "threads": threads,
        "wall_s_median": round(median, 4),
        "wall_s_runs": [round(t, 4) for t in times],
        # (Steps of the kept draws only; tuning takes about as many again.)
        "leapfrog_steps_kept_draws": steps[-1],
        "s_per_draw_all_chains": round(median / 8000, 7),
        "means": means,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--peer", help="python of the pymc-marketing environment")
    parser.add_argument("--peer-repeats", type=int, default=3)
    args = parser.parse_args()
    machine = {
        "machine": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
    }
    print(json.dumps(machine))
    for threads in sorted({1, args.threads}):
        print(json.dumps(clvrs_runs(args.repeats, threads, default_priors=False)), flush=True)
    print(json.dumps(clvrs_runs(args.repeats, args.threads, default_priors=True)), flush=True)
    if args.peer:
        script = "/work/shared/bench/peer_pymc_nuts.py"
        for sampler in ("pymc", "nutpie"):
            for _ in range(args.peer_repeats):
                out = subprocess.run([args.peer, script, sampler], capture_output=True, text=True)
                text = out.stdout.strip()
                print(text.splitlines()[-1] if text else out.stderr[-500:], flush=True)


if __name__ == "__main__":
    main()
