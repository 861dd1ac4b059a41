"""BG/NBD: the beta-geometric / negative-binomial model."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from .. import _core
from .._base import BaseModel
from .._input import Columns, as_float_array, wrap_output

__all__ = ["BetaGeoModel"]


def _horizon(values: Any, name: str) -> tuple[np.ndarray, bool]:
    """A horizon or count as a float64 array, and whether the caller gave a scalar."""
    scalar = np.ndim(values) == 0
    return as_float_array(values, name), scalar


class BetaGeoModel(BaseModel):
    r"""BG/NBD model of repeat purchasing (Fader, Hardie & Lee 2005).

    While active, a customer buys at Poisson rate :math:`\lambda \sim \mathrm{Gamma}(r, \alpha)`;
    after each repeat purchase they become inactive for good with probability
    :math:`p \sim \mathrm{Beta}(a, b)`. For a customer with :math:`x` repeat purchases, the last at
    :math:`t_x`, observed for :math:`T` since the first purchase, the likelihood is

    .. math::

        L(r, \alpha, a, b \mid x, t_x, T) =
            \frac{B(a, b + x)}{B(a, b)}
            \frac{\Gamma(r + x)\,\alpha^r}{\Gamma(r)(\alpha + T)^{r + x}}
          + \delta_{x > 0} \frac{B(a + 1, b + x - 1)}{B(a, b)}
            \frac{\Gamma(r + x)\,\alpha^r}{\Gamma(r)(\alpha + t_x)^{r + x}}.

    Parameters are estimated by maximum likelihood with analytic gradients (L-BFGS over
    log-parameters); the covariance comes from the Hessian at the optimum via the delta method.

    Parameters
    ----------
    penalizer : float, default 0.0
        L2 penalty ``penalizer * sum(params**2)`` added to the mean negative log-likelihood per
        customer (the same scale as ``lifetimes``). 0 gives plain maximum likelihood.
    n_jobs : int, optional
        Threads for fitting and predicting: ``None`` reads the ``CLVRS_NUM_THREADS`` environment
        variable and defaults to all cores; ``-1`` means all cores; ``1`` runs serially. Results
        are bit-identical for any value.
    max_iter : int, default 1000
        Maximum L-BFGS iterations per starting point.
    tol : float, default 1e-8
        Convergence when the largest gradient component of the mean negative log-likelihood
        (log-parameters) falls below this. A fit whose line search can make no further progress
        in floating point also counts as converged when that component is below 1e-5;
        ``fit_info_["termination"]`` says which rule stopped it.
    on_failure : {"warn", "raise", "ignore"}, default "warn"
        What to do when the fit does not converge: warn with
        :class:`~clvrs.exceptions.ConvergenceWarning`, raise
        :class:`~clvrs.exceptions.ConvergenceError`, or stay silent (``converged_`` tells).
    columns : dict, optional
        Column names for the data roles ``frequency``, ``recency``, ``T`` and ``weights``, when
        they differ from these defaults (``weights`` is read only when named here).

    Attributes
    ----------
    params_ : pandas.Series
        Estimates of ``r``, ``alpha``, ``a``, ``b``.
    covariance_ : pandas.DataFrame or None
        Covariance matrix of the estimates (None if the Hessian is singular).
    standard_errors_ : pandas.Series or None
        Standard errors.
    log_likelihood_ : float
        Log-likelihood at the estimates (weighted sum over customers, no penalty).
    aic_, bic_ : float
        Information criteria.
    n_observations_ : float
        Number of customers (sum of weights).
    converged_ : bool
        Whether the optimiser met its tolerance.
    n_iter_ : int
        L-BFGS iterations.
    fit_info_ : dict
        Termination reason, final gradient norm, evaluations, starts, Hessian condition number
        and the number of distinct rows after compression.

    References
    ----------
    Fader, P. S., Hardie, B. G. S. & Lee, K. L. (2005). "Counting Your Customers" the Easy Way:
    An Alternative to the Pareto/NBD Model. *Marketing Science* 24(2), 275-284.

    Examples
    --------
    >>> import clvrs
    >>> data = clvrs.datasets.load_cdnow_summary()
    >>> model = clvrs.BetaGeoModel().fit(data)
    >>> model.params_.round(3).tolist()
    [0.243, 4.414, 0.793, 2.426]
    """

    _param_names: ClassVar[tuple[str, ...]] = ("r", "alpha", "a", "b")
    _default_columns: ClassVar[dict[str, str | None]] = {
        "frequency": "frequency",
        "recency": "recency",
        "T": "T",
        "weights": None,
    }
    _roles: ClassVar[tuple[str, ...]] = ("frequency", "recency", "T")

    def __init__(
        self,
        penalizer: float = 0.0,
        *,
        n_jobs: int | None = None,
        max_iter: int = 1000,
        tol: float = 1e-8,
        on_failure: str = "warn",
        columns: dict[str, str | None] | None = None,
    ) -> None:
        self.penalizer = penalizer
        self.n_jobs = n_jobs
        self.max_iter = max_iter
        self.tol = tol
        self.on_failure = on_failure
        self.columns = columns

    @classmethod
    def from_params(cls, **kwargs: Any) -> BetaGeoModel:  # noqa: D102 - documented on the base
        """Build a model with known ``r``, ``alpha``, ``a``, ``b`` (no fitting).

        Other keywords are hyperparameters. The model predicts like a fitted one but has no
        covariance or log-likelihood.

        Examples
        --------
        >>> m = BetaGeoModel.from_params(r=0.243, alpha=4.414, a=0.793, b=2.426)
        >>> round(float(m.purchase_count_probability(0, 39)), 7)
        0.5737864
        """
        return super().from_params(**kwargs)  # type: ignore[no-any-return]

    def _rfm(self, data: Any, frequency: Any, recency: Any, T: Any) -> Columns:
        return self._columns(data, {"frequency": frequency, "recency": recency, "T": T})

    def _per_customer(
        self, core: Any, name: str, data: Any, arrays: dict[str, Any], *extra: Any
    ) -> Any:
        """Run a per-customer core function on the input and shape the result like it."""
        cols = self._rfm(data, arrays["frequency"], arrays["recency"], arrays["T"])
        a = cols.arrays
        with cols.locating_rows():
            out = core(
                self._params_list(),
                a["frequency"],
                a["recency"],
                a["T"],
                *extra,
                self._names(cols),
                self.n_jobs,
            )
        return wrap_output(out, cols, name)

    def _names(self, cols: Columns) -> tuple[str, str, str, str]:
        n = cols.names
        return (n["frequency"], n["recency"], n["T"], n.get("weights", "weights"))

    def fit(
        self,
        data: Any = None,
        *,
        frequency: Any = None,
        recency: Any = None,
        T: Any = None,
        weights: Any = None,
    ) -> BetaGeoModel:
        """Estimate the parameters from customer summaries.

        Parameters
        ----------
        data : pandas.DataFrame or polars.DataFrame, optional
            One row per customer (or per distinct history, with ``weights``) with columns
            ``frequency`` (repeat purchases), ``recency`` (time of the last repeat purchase since
            the first) and ``T`` (time since the first purchase), in one time unit.
        frequency, recency, T, weights : array-like, optional
            The same columns as arrays, when ``data`` is not given. ``weights`` counts how many
            customers share each row.

        Returns
        -------
        BetaGeoModel
            self, fitted.

        Raises
        ------
        InvalidDataError
            Naming the column, first offending row and rule, for NaN, negative or non-integer
            frequencies, recency > T, recency > 0 with frequency 0, mismatched lengths, or empty
            input.
        ConvergenceError
            If the fit does not converge and ``on_failure="raise"``.
        """
        self._check_hyperparameters()
        cols = self._columns(
            data,
            {"frequency": frequency, "recency": recency, "T": T, "weights": weights},
            optional=("weights",),
        )
        a = cols.arrays
        with cols.locating_rows():
            result = _core.bgnbd_fit(
                a["frequency"],
                a["recency"],
                a["T"],
                a.get("weights"),
                self._names(cols),
                penalizer=float(self.penalizer),
                max_iter=int(self.max_iter),
                tol=float(self.tol),
                n_jobs=self.n_jobs,
            )
        self._set_fit(result)
        return self

    def expected_purchases(
        self,
        data: Any = None,
        t: Any = 1.0,
        *,
        frequency: Any = None,
        recency: Any = None,
        T: Any = None,
    ) -> Any:
        r"""Expected number of purchases in :math:`(T, T + t]` given each customer's history.

        FHL (2005) eq. 10, computed as :math:`P(\text{alive}) \cdot E[\min(J, G)]` with a
        negative-binomial number of purchase opportunities :math:`J` and a geometric lifetime
        :math:`G` (a sum of positive terms: finite and accurate for every parameter value,
        including ``a = 1`` and ``a + b < 1``).

        Parameters
        ----------
        data : DataFrame, optional
            Customer summaries (see :meth:`fit`).
        t : float or array-like, default 1.0
            Horizon, in the data's time unit; one value or one per customer.
        frequency, recency, T : array-like, optional
            Columns as arrays when ``data`` is not given.

        Returns
        -------
        pandas.Series, polars.Series or numpy.ndarray
            One value per customer, shaped like the input.
        """
        horizon, _ = _horizon(t, "t")
        arrays = {"frequency": frequency, "recency": recency, "T": T}
        return self._per_customer(
            _core.bgnbd_expected_purchases, "expected_purchases", data, arrays, horizon
        )

    def probability_alive(
        self,
        data: Any = None,
        *,
        frequency: Any = None,
        recency: Any = None,
        T: Any = None,
    ) -> Any:
        r"""Probability that each customer is still active at the end of observation.

        :math:`P(\text{alive}) = 1 / (1 + \delta_{x>0}\,\frac{a}{b + x - 1}
        (\frac{\alpha + T}{\alpha + t_x})^{r + x})` (FHL 2005, eq. 11 rearranged), evaluated in
        log space.

        Returns
        -------
        pandas.Series, polars.Series or numpy.ndarray
            Values in [0, 1], shaped like the input.
        """
        arrays = {"frequency": frequency, "recency": recency, "T": T}
        return self._per_customer(_core.bgnbd_probability_alive, "probability_alive", data, arrays)

    def log_likelihood_per_customer(
        self,
        data: Any = None,
        *,
        frequency: Any = None,
        recency: Any = None,
        T: Any = None,
    ) -> Any:
        """Each customer's log-likelihood at the current parameters (unweighted)."""
        arrays = {"frequency": frequency, "recency": recency, "T": T}
        return self._per_customer(_core.bgnbd_log_likelihood, "log_likelihood", data, arrays)

    def expected_purchases_new_customer(self, t: Any) -> Any:
        r"""E[X(t)]: expected purchases of a newly acquired customer in :math:`(0, t]`.

        FHL (2005) eq. 9 (computed without its hypergeometric closed form).

        Parameters
        ----------
        t : float or array-like
            Horizon(s).

        Returns
        -------
        float or numpy.ndarray
            A float for a scalar ``t``, else an array of the same length.
        """
        horizon, scalar = _horizon(t, "t")
        out = _core.bgnbd_expected_purchases_new_customer(self._params_list(), horizon, self.n_jobs)
        return float(out[0]) if scalar else out

    def purchase_count_probability(self, n: Any, t: Any) -> Any:
        r"""P(X(t) = n): probability that a new customer makes exactly ``n`` purchases in (0, t].

        FHL (2005) eq. 8; the ``1 - sum`` term is evaluated as a negative-binomial upper tail,
        so tiny probabilities keep their precision.

        Parameters
        ----------
        n : int or array-like of int
            Purchase counts.
        t : float or array-like
            Horizon(s); broadcast against ``n``.

        Returns
        -------
        float or numpy.ndarray
            A float when both are scalars, else an array of the broadcast shape (1-d).
        """
        scalar = np.ndim(n) == 0 and np.ndim(t) == 0
        counts, horizon = np.broadcast_arrays(as_float_array(n, "n"), as_float_array(t, "t"))
        out = _core.bgnbd_purchase_count_probability(
            self._params_list(),
            np.ascontiguousarray(counts),
            np.ascontiguousarray(horizon),
            self.n_jobs,
        )
        return float(out[0]) if scalar else out
