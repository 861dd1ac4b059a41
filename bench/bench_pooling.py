"""Partial pooling across segments: 100 segments x 1,000 customers (BG/NBD), one joint NUTS run
(4 chains x (1000 tune + 1000 draws) unless told otherwise), against separate posteriors.

    python bench/bench_pooling.py [--segments 100] [--size 1000] [--draws 1000] [--tune 1000]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

import clvrs
from clvrs import _core


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--segments", type=int, default=100)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--separate", action="store_true", help="also time pooling='none'")
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    frames = []
    for s in range(args.segments):
        params = [c * float(np.exp(0.3 * rng.normal())) for c in (0.5, 5.0, 0.8, 2.5)]
        # Weekly data as CDNOW's: recency and T in whole days / 7.
        T = np.round(rng.uniform(26, 78, args.size) * 7) / 7
        x, t_x = _core.rfm_simulate("bgnbd", params, T, 1000 + s)
        frames.append(
            pd.DataFrame({"frequency": x, "recency": np.round(t_x * 7) / 7, "T": T, "seg": s})
        )
    data = pd.concat(frames, ignore_index=True)
    runs = ["partial"] + (["none"] if args.separate else [])
    for pooling in runs:
        start, cpu = time.perf_counter(), time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", clvrs.ConvergenceWarning)
            fits = clvrs.fit_segments(
                clvrs.BetaGeoModel(), data, "seg", method="nuts", pooling=pooling,
                chains=4, draws=args.draws, tune=args.tune, seed=1, min_customers=0,
            )  # fmt: skip
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu
        model = next(iter(fits.models_.values()))
        stats = model._draws["sample_stats"]
        info = model.fit_info_
        print(
            f"{pooling}: {args.segments} x {args.size} customers, 4 x ({args.tune} + "
            f"{args.draws}): {wall:.1f} s ({cpu:.1f} s processor time); mean leapfrog steps "
            f"per draw {stats['n_steps'].mean():.1f}, divergences {info['divergences']}, "
            f"max R-hat {info['r_hat_max']:.3f}, max tree depth {stats['tree_depth'].max()}, "
            f"started at the posterior mode: {info.get('initial_point_is_mode')}"
        )
        if fits._population is not None:
            print(
                "population posterior mean (sd): "
                + ", ".join(
                    f"{name} {np.mean(v):.4f} ({np.std(v):.4f})"
                    for name, v in fits._population.items()
                )
            )


if __name__ == "__main__":
    main()
