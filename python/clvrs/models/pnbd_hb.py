"""Hierarchical Pareto/NBD with individual-level rates: the model of Abe (2009)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .. import _core
from .._base import _bad_parameter, _check_level
from ..exceptions import InvalidDataError
from ._hb import IndividualLevelModel, _real

__all__ = ["ParetoNBDHierarchicalModel"]


class ParetoNBDHierarchicalModel(IndividualLevelModel):
    r"""Hierarchical Bayes Pareto/NBD with individual-level rates (Abe 2009).

    Customer :math:`i` buys at Poisson rate :math:`\lambda_i` while alive and drops out at
    exponential rate :math:`\mu_i`, as in the Pareto/NBD; instead of independent gamma
    distributions, the log-rates are bivariate normal, correlated, with customer covariates
    :math:`z_i` (intercept first) in the mean:

    .. math::

        (\ln\lambda_i, \ln\mu_i)^\top \sim N(B^\top z_i, \Sigma), \quad
        \Sigma \sim \mathrm{IW}(\nu, v I), \quad
        B \mid \Sigma \sim \mathrm{MN}(0, (a I)^{-1}, \Sigma).

    There is no closed-form marginal likelihood: the posterior is drawn by Gibbs sampling in
    the structure of the paper's. Per customer (in parallel on the crate's thread pool), the
    pair :math:`(\ln\lambda_i, \ln\mu_i)` takes a joint elliptical slice step (Murray, Adams &
    MacKay 2010) on the customer's Pareto/NBD likelihood given the rates (the dropout time
    summed out, rather than drawn as in Abe's appendix) under the population's bivariate
    normal; the population :math:`(B, \Sigma)` then has its conjugate
    multivariate-regression update, followed by random-walk Metropolis steps in partially
    non-centred coordinates (Papaspiliopoulos, Roberts & Skold 2007: each customer centred by
    how much its own data say, from a Gaussian approximation of its likelihood learnt during
    burn-in; the acceptance uses the exact densities). P(alive) and expected purchases are
    their exact expectations given each draw of the rates.
    Every customer draws from its own random stream (derived from the seed, chain, iteration
    and customer), so a seed gives the same draws for any number of threads.

    Default priors (``coefficient_precision=0.01``, ``prior_dof=4``, ``prior_scale=1``): each
    coefficient's prior standard deviation is 10 population spreads (flat over any plausible
    log-rate for a covariate of order one: scale covariates to that, e.g. dollars x 1e-3), and
    the inverse-Wishart is the least informative one with a finite mean, the identity (a
    factor of e between customers one standard deviation apart). Thousands of customers
    outweigh both.

    Parameters
    ----------
    coefficient_precision : float, default 0.01
        Prior precision :math:`a` of each regression coefficient (in units of :math:`\Sigma`).
    prior_dof : float, default 4.0
        Degrees of freedom :math:`\nu` of the inverse-Wishart prior on :math:`\Sigma` (> 1).
    prior_scale : float, default 1.0
        Scale :math:`v` of the inverse-Wishart prior (its scale matrix is :math:`v I`).
    customer_draws : int, optional
        Per-customer draws of :math:`(\lambda_i, \mu_i)` kept for predictions (spread evenly
        over all chains' draws, 8 bytes per customer and draw). None keeps up to 1,000 within
        256 MB (at least 100).
    n_jobs : int, optional
        Threads (default: ``CLVRS_NUM_THREADS`` or all cores).
    on_failure : {"warn", "raise", "ignore"}, default "warn"
        What to do when R-hat exceeds 1.01.
    columns : dict, optional
        Column names for ``frequency``, ``recency``, ``T`` when they differ.

    Attributes
    ----------
    params_ : pandas.Series
        Posterior medians of the population parameters: ``log_lambda``, ``log_mu`` (or, with
        covariates, ``log_lambda:intercept``, ``log_lambda:<column>``, ...,
        ``log_mu:intercept``, ...), ``var_log_lambda``, ``cov_log_lambda_log_mu``,
        ``var_log_mu``.
    posterior_ : xarray.DataTree
        The population parameters' draws in ArviZ's layout (group ``posterior``, dimensions
        ``chain`` and ``draw``); per-customer draws are not in it (see :meth:`customer_draws_`).
    fit_info_ : dict
        Chains, draws, tuning, thinning, seed, largest R-hat, smallest bulk ESS, customers.
    n_customers_ : int
        Customers fitted; predictions are for these customers.

    References
    ----------
    Abe, M. (2009). "Counting your customers" one by one: A hierarchical Bayes extension to
    the Pareto/NBD model. *Marketing Science* 28(3), 541-553.

    Examples
    --------
    >>> import clvrs
    >>> data = clvrs.datasets.load_cdnow_summary()
    >>> model = clvrs.ParetoNBDHierarchicalModel(on_failure="ignore").fit(
    ...     data, chains=2, draws=100, tune=100, seed=1)  # short chains: R-hat not checked
    >>> bool(-4.0 < model.params_["log_lambda"] < -3.0)
    True
    """

    _param_names: ClassVar[tuple[str, ...]] = (
        "log_lambda",
        "log_mu",
        "var_log_lambda",
        "cov_log_lambda_log_mu",
        "var_log_mu",
    )
    _default_columns: ClassVar[dict[str, str | None]] = {
        "frequency": "frequency",
        "recency": "recency",
        "T": "T",
    }
    _mean_names: ClassVar[tuple[str, ...]] = ("lambda", "mu", "p_alive")
    _width: ClassVar[int] = 2

    def __init__(
        self,
        coefficient_precision: float = 0.01,
        prior_dof: float = 4.0,
        prior_scale: float = 1.0,
        *,
        customer_draws: int | None = None,
        n_jobs: int | None = None,
        on_failure: str = "warn",
        columns: dict[str, str | None] | None = None,
    ) -> None:
        self.coefficient_precision = coefficient_precision
        self.prior_dof = prior_dof
        self.prior_scale = prior_scale
        self.customer_draws = customer_draws
        self.n_jobs = n_jobs
        self.on_failure = on_failure
        self.columns = columns

    # -- checks ---------------------------------------------------------------------------------

    def _check_hyperparameters_hb(self) -> None:
        for name in ("coefficient_precision", "prior_scale"):
            value = getattr(self, name)
            if not (_real(value) and np.isfinite(value) and value > 0):
                raise _bad_parameter(name, f"must be a finite number > 0, got {value!r}")
        if not (_real(self.prior_dof) and np.isfinite(self.prior_dof) and self.prior_dof > 1):
            raise _bad_parameter(
                "prior_dof", f"must be a finite number > 1, got {self.prior_dof!r}"
            )
        self._check_common()

    def _covariate_matrix(
        self, data: Any, covariates: Any, n: int, index: pd.Index | None
    ) -> tuple[np.ndarray, list[str]]:
        """The design matrix (intercept first) and the covariates' names."""
        if covariates is None:
            return np.ones((n, 1)), []
        if isinstance(covariates, str):
            covariates = [covariates]
        if isinstance(covariates, Sequence) and all(isinstance(c, str) for c in covariates):
            if data is None or not hasattr(data, "columns"):
                raise _bad_parameter(
                    "covariates", "column names need the data frame they are columns of"
                )
            missing = [c for c in covariates if c not in data.columns]
            if missing:
                raise _bad_parameter("covariates", f"no such column(s) in the data: {missing}")
            frame = pd.DataFrame({c: np.asarray(data[c]) for c in covariates})
        elif isinstance(covariates, pd.DataFrame):
            frame = covariates
            if index is not None and not frame.index.equals(index):
                frame = frame.reindex(index)
        elif isinstance(covariates, (np.ndarray, list, tuple)):
            try:
                array = np.asarray(covariates)
                if array.dtype.kind not in "biuf":
                    raise TypeError(f"values of dtype {array.dtype}")
                array = array.astype(float)
            except (TypeError, ValueError) as exc:
                raise _bad_parameter(
                    "covariates", f"must be numbers, one row per customer ({exc})"
                ) from None
            if array.ndim == 1:
                array = array[:, None]
            if array.ndim != 2:
                raise _bad_parameter(
                    "covariates", f"must be one row per customer, got shape {array.shape}"
                )
            frame = pd.DataFrame(array, columns=[f"x{j}" for j in range(array.shape[1])])
        else:
            raise _bad_parameter(
                "covariates",
                "must be column names of the data, a DataFrame or an array with one row per "
                f"customer, got {type(covariates).__name__}",
            )
        names = [str(c) for c in frame.columns]
        try:
            values = frame.to_numpy(dtype=float)
        except (TypeError, ValueError) as exc:
            raise InvalidDataError(
                f"covariates: must be numeric columns ({exc}); encode categories as 0/1 columns"
            ) from exc
        if values.shape[0] != n:
            raise InvalidDataError(
                f"covariates: {values.shape[0]} rows for {n} customers; give one row per customer"
            )
        bad = np.argwhere(~np.isfinite(values))
        if bad.size:
            row, col = bad[0]
            raise InvalidDataError(
                f"covariates: column {names[col]!r} row {row} is {values[row, col]}: must be "
                "finite (fill or drop missing values first)"
            )
        return np.ascontiguousarray(np.column_stack([np.ones(n), values])), names

    def _names(self, covariates: list[str]) -> list[str]:
        if not covariates:
            coefficient_names = ["log_lambda", "log_mu"]
        else:
            terms = ["intercept", *covariates]
            coefficient_names = [f"log_lambda:{t}" for t in terms] + [f"log_mu:{t}" for t in terms]
        return [*coefficient_names, "var_log_lambda", "cov_log_lambda_log_mu", "var_log_mu"]

    # -- fitting --------------------------------------------------------------------------------

    def fit(
        self,
        data: Any = None,
        covariates: Any = None,
        *,
        frequency: Any = None,
        recency: Any = None,
        T: Any = None,
        chains: int = 4,
        draws: int = 1000,
        tune: int = 1000,
        thin: int = 1,
        seed: int | None = None,
        progress: bool | None = None,
    ) -> ParetoNBDHierarchicalModel:
        """Draw from the posterior by Gibbs sampling.

        Parameters
        ----------
        data : DataFrame, optional
            One row per customer with ``frequency``, ``recency`` and ``T`` (or give them as
            arrays by keyword).
        covariates : list of str, DataFrame or array, optional
            Time-invariant customer covariates in the mean of the log-rates: column names of
            ``data``, or one row per customer. An intercept is added.
        chains, draws, tune, thin : int
            Chains; draws kept per chain; iterations discarded first (burn-in); keep every
            ``thin``-th iteration after that.
        seed : int, optional
            Seed of every random choice (drawn from the operating system when None, and kept
            in ``fit_info_``).
        progress : bool, optional
            Show a progress bar of the iterations (needs ``tqdm``); None (the default): on a
            terminal only.

        Returns
        -------
        self
        """
        self._check_hyperparameters_hb()
        seed_value = self._settings(chains, draws, tune, thin, seed)
        cols = self._columns(
            data, {"frequency": frequency, "recency": recency, "T": T}, fitting=True
        )
        a = cols.arrays
        n = len(cols)
        design, covariate_names = self._covariate_matrix(data, covariates, n, cols.index)
        with self._progress(progress, type(self).__name__) as update, cols.locating_rows():
            result = _core.abe_sample(
                a["frequency"],
                a["recency"],
                a["T"],
                design,
                (
                    int(chains),
                    int(draws),
                    int(tune),
                    int(thin),
                    seed_value,
                    self._kept_customer_draws(n),
                ),
                (float(self.coefficient_precision), float(self.prior_dof), float(self.prior_scale)),
                n_jobs=self.n_jobs,
                progress=update,
            )
        self._finish_fit(
            result,
            self._names(covariate_names),
            {
                "tune": int(tune),
                "thin": int(thin),
                "seed": int(seed_value),
                "covariates": covariate_names,
            },
            {k: np.asarray(a[k], dtype=float) for k in self._roles},
            cols.index,
        )
        return self

    # -- predictions ----------------------------------------------------------------------------

    def _predict(self, quantity: str, t: Any, level: float | None) -> Any:
        from .._base import _check_level

        self._fitted()
        if level is not None:
            level = _check_level(level)
        out = _core.abe_predict(
            quantity,
            self._customer,
            self._history["recency"],
            self._history["T"],
            self._horizon(t),
            level=level,
            n_jobs=self.n_jobs,
        )
        return self._shape(out, quantity, level)

    def probability_alive(
        self,
        data: Any = None,
        *,
        frequency: Any = None,
        recency: Any = None,
        T: Any = None,
        level: float | None = None,
    ) -> Any:
        """Posterior probability that each fitted customer is alive at the end of the data.

        Without ``level``: the posterior mean (over every kept draw of every chain, a
        Rao-Blackwellised average of P(alive | lambda, mu)). With ``level``: a DataFrame of
        ``estimate``, ``se``, ``lower``, ``upper`` (equal-tailed credible interval) over the
        kept customer draws, streamed in bounded memory. ``data`` (or the arrays), if given,
        must be the fitted customers.
        """
        self._check_customers(data, {"frequency": frequency, "recency": recency, "T": T})
        if level is None:
            return self._wrap(self._means["p_alive"].copy(), "probability_alive")
        return self._predict("probability_alive", 0.0, level)

    def expected_purchases(
        self,
        data: Any = None,
        *,
        frequency: Any = None,
        recency: Any = None,
        T: Any = None,
        t: Any = 1.0,
        level: float | None = None,
    ) -> Any:
        """Expected purchases of each fitted customer in the next ``t`` time units:
        ``E[P(alive | lambda, mu) lambda (1 - exp(-mu t)) / mu]`` over the posterior.

        ``t`` is one number or one per customer. Without ``level`` the posterior mean; with
        it a DataFrame of ``estimate``, ``se``, ``lower``, ``upper``. Computed over the kept
        customer draws (``fit_info_["customer_draws"]``), streamed in bounded memory.
        """
        self._check_customers(data, {"frequency": frequency, "recency": recency, "T": T})
        return self._predict("expected_purchases", t, level)

    def customer_summary(self, level: float = 0.9) -> pd.DataFrame:
        """Each fitted customer's posterior of ``lambda``, ``mu`` and P(alive): mean (over
        every kept draw) and the equal-tailed ``level`` credible interval (over the kept
        customer draws)."""
        level = _check_level(level)
        columns: dict[str, np.ndarray] = {}
        for quantity, mean in (
            ("lambda", "lambda"),
            ("mu", "mu"),
            ("probability_alive", "p_alive"),
        ):
            band = self._predict(quantity, 0.0, level)
            columns[quantity] = self._means[mean]
            columns[f"{quantity}_lower"] = np.asarray(band["lower"])
            columns[f"{quantity}_upper"] = np.asarray(band["upper"])
        return pd.DataFrame(columns, index=self._index)

    def customer_draws_(self, customers: Any) -> dict[str, np.ndarray]:
        """The kept draws of ``lambda`` and ``mu`` for the customers at positions
        ``customers`` (a subset: ``kept draws x len(customers)`` arrays)."""
        self._fitted()
        rows = self._positions(customers)
        draws = self._customer.reshape(-1, self.n_customers_, 2)[:, rows, :]
        return {
            "lambda": np.exp(draws[..., 0].astype(float)),
            "mu": np.exp(draws[..., 1].astype(float)),
        }
