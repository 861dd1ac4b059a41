"""``python -m clvrs``: fit BG/NBD to the bundled CDNOW data and print the results."""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from . import BetaGeoModel, __version__, datasets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m clvrs",
        description="Fit BG/NBD to the bundled CDNOW sample (weeks) and list the customers "
        "with the most expected purchases.",
    )
    parser.add_argument("--horizon", type=float, default=52.0, help="weeks ahead (default 52)")
    parser.add_argument("--top", type=int, default=10, help="customers to list (default 10)")
    args = parser.parse_args(argv)

    data = datasets.load_cdnow_summary()
    model = BetaGeoModel().fit(data)
    pd.set_option("display.width", 120)
    print(f"clvrs {__version__}: BG/NBD on CDNOW ({len(data):,} customers, weeks)\n")
    print(model.summary.to_string(float_format=lambda v: f"{v:.4f}"))
    info = model.fit_info_
    print(
        f"\nlog-likelihood {model.log_likelihood_:.2f}   "
        f"AIC {model.aic_:.2f}   BIC {model.bic_:.2f}"
    )
    print(f"converged: {model.converged_} after {model.n_iter_} iterations ({info['termination']})")
    scores = pd.DataFrame(
        {
            "frequency": data["frequency"],
            "recency": data["recency"],
            "T": data["T"],
            f"expected_purchases_{args.horizon:g}w": model.expected_purchases(data, t=args.horizon),
            "probability_alive": model.probability_alive(data),
        }
    )
    top = scores.sort_values(scores.columns[3], ascending=False).head(args.top)
    print(f"\nTop {args.top} customers by expected purchases in the next {args.horizon:g} weeks:")
    print(top.to_string(float_format=lambda v: f"{v:.3f}"))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        sys.exit(0)
