"""Shared fixtures: the bundled CDNOW summary, its BG/NBD fit, and a BG/NBD data generator."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import clvrs

#: Published BG/NBD maximum-likelihood estimates on CDNOW (Fader, Hardie & Lee 2005).
PUBLISHED_PARAMS = {"r": 0.24259, "alpha": 4.41353, "a": 0.79289, "b": 2.42575}
PUBLISHED_LOG_LIKELIHOOD = -9582.43
CDNOW_CUSTOMERS = 2357


def bgnbd_synth(
    n: int,
    seed: int,
    r: float = 0.243,
    alpha: float = 4.414,
    a: float = 0.793,
    b: float = 2.426,
    t_min: float = 26.0,
    t_max: float = 78.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw (frequency, recency, T) for ``n`` customers from the BG/NBD generative process.

    Exact and vectorised: N ~ Poisson(lambda T) purchases while the Poisson clock runs, J ~
    Geometric(p) repeat purchases before dropping out, x = min(N, J); given N, purchase times are
    uniform order statistics, so t_x = T * Beta(x, N - x + 1) for x > 0.
    """
    rng = np.random.default_rng(seed)
    age = rng.uniform(t_min, t_max, size=n)
    lam = rng.gamma(shape=r, scale=1.0 / alpha, size=n)
    p = np.clip(rng.beta(a, b, size=n), 1e-12, 1.0)
    j = rng.geometric(p, size=n)
    big_n = rng.poisson(lam * age)
    x = np.minimum(big_n, j)
    recency = np.zeros(n)
    pos = x > 0
    recency[pos] = age[pos] * rng.beta(
        x[pos].astype(float), (big_n[pos] - x[pos] + 1).astype(float)
    )
    np.minimum(recency, age, out=recency)
    return x.astype(np.float64), recency, age


@pytest.fixture(scope="session")
def cdnow() -> pd.DataFrame:
    data = clvrs.datasets.load_cdnow_summary()
    assert len(data) == CDNOW_CUSTOMERS
    return data


@pytest.fixture(scope="session")
def cdnow_model(cdnow: pd.DataFrame) -> clvrs.BetaGeoModel:
    """BG/NBD fitted to CDNOW (shared: tests must not modify it)."""
    return clvrs.BetaGeoModel().fit(cdnow)


@pytest.fixture(scope="session")
def synth_100k() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """100,000 synthetic customers: many more rows than one parallel chunk (4,096)."""
    return bgnbd_synth(100_000, seed=20240611)
