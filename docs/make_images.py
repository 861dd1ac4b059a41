"""Draw the guide's and README's images from the bundled CDNOW data:
``python docs/make_images.py`` (writes docs/images/*.png)."""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import clvrs  # noqa: E402
from clvrs import plotting  # noqa: E402

OUT = Path(__file__).resolve().parent / "images"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    log = clvrs.datasets.load_cdnow_transactions()
    data = clvrs.datasets.load_cdnow_summary()
    model = clvrs.BetaGeoModel().fit(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        track = clvrs.tracking(
            model, log, "customer_id", "date", calibration_period_end="1997-09-30",
            freq="D", freq_multiplier=7,
        )  # fmt: skip
    drawings = {
        "period_transactions": lambda ax: plotting.plot_period_transactions(model, data, ax=ax),
        "cumulative_transactions": lambda ax: plotting.plot_cumulative_transactions(track, ax=ax),
        "probability_alive_matrix": lambda ax: plotting.plot_probability_alive_matrix(
            model, T=39, ax=ax
        ),
    }
    for name, draw in drawings.items():
        fig, ax = plt.subplots(figsize=(6, 4), dpi=80)
        draw(ax)
        fig.tight_layout()
        fig.savefig(OUT / f"{name}.png")
        plt.close(fig)


if __name__ == "__main__":
    main()
