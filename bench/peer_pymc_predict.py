"""PyMC-Marketing's posterior predictions for many customers, the peer of
``bench_bayes_predict.py purchases``: fits BG/NBD on CDNOW (4 chains x 1000 draws after 200
tuning steps, nutpie; not timed), then times ``expected_purchases(data, future_t=52)`` (a
chain x draw x customer array) and its mean over chains and draws on the first ``n`` customers
of a summary file, each ``n`` in a fresh process, and reports the peak RSS growth.
Run with the python of the environment made by /work/shared/bench/setup_pymc.sh:

    python bench/peer_pymc_predict.py /tmp/s1m.parquet 10000 100000
"""

import json
import os
import resource
import subprocess
import sys
import time
import warnings
from importlib.metadata import version


def one(path: str, n: int) -> None:
    import pandas as pd

    warnings.simplefilter("ignore")
    from pymc_marketing.clv import BetaGeoModel

    cdnow = pd.read_csv("/work/shared/data/cdnow_customers_summary.csv").rename(
        columns={"ID": "customer_id"}
    )
    model = BetaGeoModel(data=cdnow[["customer_id", "frequency", "recency", "T"]])
    model.fit(
        method="mcmc",
        chains=4,
        draws=1000,
        tune=200,
        random_seed=1,
        progressbar=False,
        nuts_sampler="nutpie",
    )
    data = pd.read_parquet(path, columns=["frequency", "recency", "T"]).iloc[:n].copy()
    data.insert(0, "customer_id", range(len(data)))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    mean = model.expected_purchases(data=data, future_t=52).mean(("chain", "draw")).values
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "lib": "pymc-marketing",
                "version": version("pymc-marketing"),
                "what": "posterior mean expected_purchases(t=52)",
                "customers": n,
                "draws": 4000,
                "wall_s": round(wall, 3),
                "peak_rss_mb_growth": round(after - before, 1),
                "sum_of_means": round(float(mean.sum()), 2),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    if len(sys.argv) > 3 or os.environ.get("PEER_PREDICT_CHILD") is None:
        for n in sys.argv[2:]:
            env = {**os.environ, "PEER_PREDICT_CHILD": "1"}
            subprocess.run([sys.executable, __file__, sys.argv[1], n], env=env, check=False)
    else:
        one(sys.argv[1], int(sys.argv[2]))
