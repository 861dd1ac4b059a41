"""Pareto/GGG: gamma inter-purchase times with customer-level regularity (Platzer & Reutterer
2016), fitted by Gibbs sampling."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .. import _core
from .._base import _check_level, _check_seed
from ._hb import IndividualLevelModel

__all__ = ["ParetoGGGModel"]


class ParetoGGGModel(IndividualLevelModel):
    r"""Pareto/GGG: Pareto/NBD with gamma inter-purchase times of customer-specific regularity
    (Platzer & Reutterer 2016).

    While alive, customer :math:`i`'s inter-purchase times are
    :math:`\mathrm{Gamma}(k_i, k_i\lambda_i)` (mean :math:`1/\lambda_i`; :math:`k_i = 1` is the
    Poisson purchasing of the Pareto/NBD, larger :math:`k_i` more regular); the lifetime is
    exponential with rate :math:`\mu_i`. Across customers :math:`k_i \sim \mathrm{Gamma}(t,
    \gamma)`, :math:`\lambda_i \sim \mathrm{Gamma}(r, \alpha)`, :math:`\mu_i \sim
    \mathrm{Gamma}(s, \beta)` (shape, rate). Given :math:`(k, \lambda)` and the lifetime
    :math:`\tau`, the likelihood of the purchases is the product of the gamma densities of the
    ``x`` inter-purchase times times the probability of no purchase in
    :math:`(t_x, \min(\tau, T)]`, so ``frequency``, ``recency``, ``T`` and ``litt`` (the sum
    of the logs of the inter-purchase times, from
    ``summarize_transactions(..., regularity=True)``) are sufficient.

    Fitted by Gibbs sampling, customers in parallel (each on its own random stream, so a seed
    gives the same draws for any number of threads): ``ln k`` and ``ln lambda`` by slice steps,
    the lifetime by Metropolis-Hastings steps, ``mu`` from its conjugate gamma; each population
    rate from its conjugate gamma (prior :math:`1/\text{rate}`), each shape by a slice step on
    its log (prior density :math:`(1 + \text{shape})^{-2}`): priors without a time unit.

    Parameters
    ----------
    customer_draws : int, optional
        Per-customer draws of :math:`(k, \lambda, \mu, \tau)` kept for predictions (16 bytes
        per customer and draw). None keeps up to 1,000 within 256 MB (at least 100).
    n_jobs : int, optional
        Threads (default: ``CLVRS_NUM_THREADS`` or all cores).
    on_failure : {"warn", "raise", "ignore"}, default "warn"
        What to do when R-hat exceeds 1.01.
    columns : dict, optional
        Column names for ``frequency``, ``recency``, ``T``, ``litt`` when they differ.

    Attributes
    ----------
    params_ : pandas.Series
        Posterior medians of ``t``, ``gamma``, ``r``, ``alpha``, ``s``, ``beta``.
    posterior_
        The population's draws in ArviZ's layout.
    fit_info_ : dict
        Chains, draws, burn-in, thinning, seed, largest R-hat, smallest bulk ESS, customers.

    References
    ----------
    Platzer, M. & Reutterer, T. (2016). Ticking Away the Moments: Timing Regularity Helps to
    Better Predict Customer Activity. *Marketing Science* 35(5), 779-799.
    """

    _param_names: ClassVar[tuple[str, ...]] = ("t", "gamma", "r", "alpha", "s", "beta")
    _default_columns: ClassVar[dict[str, str | None]] = {
        "frequency": "frequency",
        "recency": "recency",
        "T": "T",
        "litt": "litt",
    }
    _roles: ClassVar[tuple[str, ...]] = ("frequency", "recency", "T", "litt")
    _mean_names: ClassVar[tuple[str, ...]] = ("k", "lambda", "mu", "tau", "p_alive")
    _width: ClassVar[int] = 4

    def __init__(
        self,
        *,
        customer_draws: int | None = None,
        n_jobs: int | None = None,
        on_failure: str = "warn",
        columns: dict[str, str | None] | None = None,
    ) -> None:
        self.customer_draws = customer_draws
        self.n_jobs = n_jobs
        self.on_failure = on_failure
        self.columns = columns

    def fit(
        self,
        data: Any = None,
        *,
        frequency: Any = None,
        recency: Any = None,
        T: Any = None,
        litt: Any = None,
        chains: int = 4,
        draws: int = 1000,
        tune: int = 1000,
        thin: int = 1,
        seed: int | None = None,
        progress: bool | None = None,
    ) -> ParetoGGGModel:
        """Draw from the posterior by Gibbs sampling.

        Parameters
        ----------
        data : DataFrame, optional
            One row per customer with ``frequency``, ``recency``, ``T`` and ``litt`` (or give
            them as arrays by keyword).
        chains, draws, tune, thin : int
            Chains; draws kept per chain; burn-in iterations; keep every ``thin``-th iteration.
        seed : int, optional
            Seed of every random choice (drawn when None, kept in ``fit_info_``).
        progress : bool, optional
            Show a progress bar of the iterations (needs ``tqdm``); None (the default): on a
            terminal only.

        Returns
        -------
        self
        """
        self._check_common()
        seed_value = self._settings(chains, draws, tune, thin, seed)
        keywords = {"frequency": frequency, "recency": recency, "T": T, "litt": litt}
        cols = self._columns(data, keywords, fitting=True)
        a = cols.arrays
        n = len(cols)
        with self._progress(progress, type(self).__name__) as update, cols.locating_rows():
            result = _core.ggg_sample(
                a["frequency"],
                a["recency"],
                a["T"],
                a["litt"],
                (
                    int(chains),
                    int(draws),
                    int(tune),
                    int(thin),
                    seed_value,
                    self._kept_customer_draws(n),
                ),
                n_jobs=self.n_jobs,
                progress=update,
            )
        self._finish_fit(
            result,
            list(result["names"]),
            {"tune": int(tune), "thin": int(thin), "seed": int(seed_value)},
            {k: np.asarray(a[k], dtype=float) for k in self._roles},
            cols.index,
        )
        return self

    def _predict(self, quantity: str, t: Any, level: float | None, seed: int) -> Any:
        from .._base import _check_level

        self._fitted()
        if level is not None:
            level = _check_level(level)
        return _core.ggg_predict(
            quantity,
            self._customer,
            self._history["recency"],
            self._history["T"],
            self._horizon(t),
            _check_seed(seed),
            level=level,
            n_jobs=self.n_jobs,
        )

    def probability_alive(self, data: Any = None, **keywords: Any) -> Any:
        """Posterior probability that each fitted customer is alive at the end of the data
        (the share of draws with a lifetime beyond ``T``). ``data``, if given, must be the
        fitted customers."""
        self._check_customers(data, {k: keywords.get(k) for k in self._roles})
        return self._wrap(self._means["p_alive"].copy(), "probability_alive")

    def expected_purchases(
        self,
        data: Any = None,
        *,
        frequency: Any = None,
        recency: Any = None,
        T: Any = None,
        litt: Any = None,
        t: Any = 1.0,
        level: float | None = None,
        seed: int = 0,
    ) -> Any:
        """Expected purchases of each fitted customer in the next ``t`` time units.

        There is no closed form: at each kept draw of the customer's ``(k, lambda, tau)`` the
        future purchases are simulated (the gamma renewal process from the last purchase,
        conditioned on no purchase up to ``T``, until the end of the lifetime), and averaged
        over draws; ``seed`` fixes the simulation. With ``level`` a DataFrame of ``estimate``,
        ``se``, ``lower``, ``upper`` (the interval of the simulated counts: a predictive
        interval).
        """
        self._check_customers(
            data, {"frequency": frequency, "recency": recency, "T": T, "litt": litt}
        )
        out = self._predict("purchases", t, level, seed)
        return self._shape(out, "expected_purchases", level)

    def customer_summary(self, level: float = 0.9) -> pd.DataFrame:
        """Each fitted customer's posterior means of ``k``, ``lambda``, ``mu`` and P(alive),
        with equal-tailed ``level`` credible intervals of ``k``, ``lambda`` and ``mu`` (over the
        kept customer draws)."""
        level = _check_level(level)
        columns: dict[str, np.ndarray] = {}
        for quantity in ("k", "lambda", "mu"):
            band = self._predict(quantity, 0.0, level, 0)
            columns[quantity] = self._means[quantity]
            columns[f"{quantity}_lower"] = np.asarray(band["lower"])
            columns[f"{quantity}_upper"] = np.asarray(band["upper"])
        columns["probability_alive"] = self._means["p_alive"]
        return pd.DataFrame(columns, index=self._index)
