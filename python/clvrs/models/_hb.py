"""What the individual-level hierarchical Bayes models share: fitted state, summary, the check
that predictions are for the fitted customers, streamed predictions and persistence."""

from __future__ import annotations

import base64
import contextlib
import numbers
import os
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .._base import FORMAT, BaseModel, _bad_parameter, _check_level, _finite_or_none
from ..exceptions import InvalidDataError, NotFittedError

#: Memory budget (bytes) of the per-customer draws kept for predictions when
#: ``customer_draws`` is None.
CUSTOMER_DRAW_BUDGET = 256 << 20


class IndividualLevelModel(BaseModel):
    """Base of the hierarchical Bayes models (not used directly)."""

    #: Roles of the customers' histories kept for predictions, in order.
    _roles: ClassVar[tuple[str, ...]] = ("frequency", "recency", "T")
    #: Per-customer posterior means the sampler returns (core key ``mean_<name>``).
    _mean_names: ClassVar[tuple[str, ...]] = ()
    #: Values per customer and draw in the kept customer draws.
    _width: ClassVar[int] = 2
    _BAYES_ATTRIBUTES: ClassVar[tuple[str, ...]] = ("_draws", "_posterior")

    n_customers_: int
    customer_draws: int | None
    on_failure: str

    # -- fitting --------------------------------------------------------------------------------

    def _check_common(self) -> None:
        cd = self.customer_draws
        if cd is not None and not (_whole(cd) and 1 <= int(cd) <= 10**6):
            raise _bad_parameter("customer_draws", f"must be None or 1 to 10**6, got {cd!r}")
        if not isinstance(self.on_failure, str) or self.on_failure not in (
            "warn",
            "raise",
            "ignore",
        ):
            raise _bad_parameter(
                "on_failure", f"must be 'warn', 'raise' or 'ignore', got {self.on_failure!r}"
            )
        from .._base import _check_n_jobs

        _check_n_jobs(self.n_jobs)

    @staticmethod
    def _settings(chains: Any, draws: Any, tune: Any, thin: Any, seed: Any) -> int:
        """Check the sampler's settings; returns the seed (drawn when None)."""
        from .. import _bayes

        for name, value, low in (
            ("chains", chains, 1),
            ("draws", draws, 1),
            ("tune", tune, 0),
            ("thin", thin, 1),
        ):
            if not (_whole(value) and low <= int(value) <= 10**8):
                raise _bad_parameter(name, f"must be a whole number >= {low}, got {value!r}")
        if int(chains) > 1024:
            raise _bad_parameter("chains", f"must be at most 1024, got {chains!r}")
        return _bayes.sampler_settings(chains, draws, tune, seed, 0.8, 10)[3]

    @staticmethod
    @contextlib.contextmanager
    def _progress(progress: Any, name: str) -> Iterator[Callable[[int, int], None] | None]:
        """The core's ``progress(done, total)`` callback, drawing a tqdm bar when ``progress``
        is true (None: on a terminal) and tqdm is installed; None otherwise. The bar is closed
        on the way out, also after an error or Ctrl-C."""
        if progress is not None and not isinstance(progress, (bool, np.bool_)):
            raise _bad_parameter("progress", f"must be True, False or None, got {progress!r}")
        show = progress if progress is not None else os.isatty(2)
        try:
            if not show:
                raise ImportError
            from tqdm.auto import tqdm  # type: ignore[import-untyped]
        except ImportError:
            yield None
            return
        bar = tqdm(total=None, desc=f"{name} iterations (all chains)")

        def update(done: int, total: int) -> None:
            if bar.total != total:
                bar.total = total
            bar.update(done - bar.n)

        try:
            yield update
        finally:
            bar.close()

    def _kept_customer_draws(self, n: int) -> int:
        if self.customer_draws is not None:
            return int(self.customer_draws)
        per_draw = 4 * self._width * max(1, n)
        return max(100, min(1000, CUSTOMER_DRAW_BUDGET // per_draw))

    def _finish_fit(
        self,
        result: dict[str, Any],
        names: list[str],
        info: dict[str, Any],
        history: dict[str, np.ndarray],
        index: pd.Index | None,
    ) -> None:
        """Store a core sample: population draws, diagnostics, the customers' histories, means
        and kept draws; warn (per ``on_failure``) when R-hat exceeds 1.01."""
        from .. import _bayes, _diagnostics

        chains, draws = int(result["chains"]), int(result["draws"])
        population = np.asarray(result["population"], dtype=float)
        by_chain = {
            "posterior": {
                name: population[:, j].reshape(chains, draws) for j, name in enumerate(names)
            },
            "sample_stats": {},
        }
        rhats = [_diagnostics.rhat(x) for x in by_chain["posterior"].values()]
        ess = [_diagnostics.ess_bulk(x) for x in by_chain["posterior"].values()]
        finite = [r for r in rhats if np.isfinite(r)]
        info = {
            "method": "gibbs",
            "chains": chains,
            "draws": draws,
            **info,
            "r_hat_max": float(max(finite)) if finite else float("nan"),
            "ess_bulk_min": float(np.nanmin(ess)) if np.any(np.isfinite(ess)) else float("nan"),
            "n_customers": len(history["frequency"]),
            "customer_draws": int(result["n_customer_draws"]),
        }
        info["termination"] = (
            f"Gibbs {chains} chains x {draws} draws (+{info['tune']} burn-in, thin "
            f"{info['thin']}), {info['n_customers']} customers, max R-hat "
            f"{info['r_hat_max']:.3f}, min bulk ESS {info['ess_bulk_min']:.0f}"
        )
        healthy = _bayes.warn_or_raise(
            type(self).__name__,
            {"r_hat_max": info["r_hat_max"], "divergences": 0},
            self.on_failure,
        )
        means = {name: np.asarray(result[f"mean_{name}"], dtype=float) for name in self._mean_names}
        self._store(
            by_chain,
            info,
            np.asarray(result["customer"], dtype=np.float32),
            history,
            index,
            means,
            healthy,
        )

    def _store(
        self,
        by_chain: dict[str, Any],
        info: dict[str, Any],
        customer: np.ndarray,
        history: dict[str, np.ndarray],
        index: pd.Index | None,
        means: dict[str, np.ndarray],
        converged: bool,
    ) -> None:
        self._clear_posterior()
        names = list(by_chain["posterior"])
        values = np.stack([np.asarray(by_chain["posterior"][k]).ravel() for k in names], axis=-1)
        self.params_ = pd.Series(np.median(values, axis=0), index=names, name="median")
        self.covariance_ = None
        self.standard_errors_ = None
        self.log_likelihood_ = None
        self.aic_ = None
        self.bic_ = None
        self.n_observations_ = float(len(history["frequency"]))
        self.n_iter_ = int(info["draws"])
        self.converged_ = bool(converged)
        self.fit_info_ = {
            k: v if isinstance(v, (list, str)) else _finite_or_none(v) for k, v in info.items()
        }
        self.n_customers_ = len(history["frequency"])
        self.time_unit_ = None
        self._draws = by_chain
        self._customer = customer
        self._history = history
        self._index = index
        self._means = means

    @classmethod
    def from_params(cls, **kwargs: Any) -> Any:
        """Not available: predictions need every customer's posterior draws, which only a fit
        (or :func:`clvrs.load` of a saved fit) provides."""
        raise _bad_parameter(
            "from_params",
            f"{cls.__name__} predicts from each customer's posterior draws: there are no "
            "population parameters to build it from; fit it (or load a saved fit)",
        )

    def _positions(self, customers: Any) -> np.ndarray:
        """Customer positions (whole numbers in 0..n-1) as an int64 array."""
        values = np.atleast_1d(np.asarray(customers, dtype=object))
        if values.ndim != 1 or not all(_whole(v) for v in values):
            raise _bad_parameter(
                "customers",
                f"must be whole-number positions of fitted customers, got {customers!r}",
            )
        rows = values.astype(np.int64) if values.size else np.zeros(0, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= self.n_customers_):
            raise _bad_parameter("customers", f"positions must lie in 0..{self.n_customers_ - 1}")
        return rows

    # -- reporting ------------------------------------------------------------------------------

    def summary_frame(self, level: float = 0.95) -> pd.DataFrame:
        """The population parameters: posterior mean, sd, median, equal-tailed ``level``
        credible interval, R-hat, bulk and tail ESS and the Monte Carlo error of the mean."""
        from .. import _bayes

        level = _check_level(level)
        if "_draws" not in self.__dict__:
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit(...) first")
        frame = _bayes.posterior_summary(self._draws, level)
        frame.insert(2, "median", self.params_.reindex(frame.index))
        frame.attrs["sampler_health"] = str(self.fit_info_.get("termination"))
        return _bayes.PosteriorSummary(frame)

    def __repr__(self) -> str:
        head = f"{type(self).__name__}({self._hyper_repr()})"
        if "params_" not in self.__dict__:
            return head
        params = ", ".join(f"{k}={v:.4g}" for k, v in self.params_.items())
        check = "" if self.converged_ else ", CHECK R-HAT"
        return (
            f"{head} <{params}, posterior median of {self.fit_info_['chains']} x "
            f"{self.fit_info_['draws']} Gibbs draws, {self.n_customers_} customers{check}>"
        )

    def _repr_html_(self) -> str:
        import html

        head = f"<strong>{html.escape(type(self).__name__)}</strong>"
        if "params_" not in self.__dict__:
            return f"{head} (not fitted)"
        info = f"<p>{html.escape(str(self.fit_info_.get('termination')))}</p>"
        return f"{head}{info}{self.summary.to_html(float_format=lambda v: f'{v:.6g}')}"

    # -- predictions ----------------------------------------------------------------------------

    def _fitted(self) -> None:
        if "_customer" not in self.__dict__:
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit(...) first")

    def _check_customers(self, data: Any, keywords: dict[str, Any]) -> None:
        """Predictions are for the fitted customers: refuse other data."""
        self._fitted()
        if data is None and all(v is None for v in keywords.values()):
            return
        cols = self._columns(data, keywords)
        same = len(cols) == self.n_customers_ and all(
            np.array_equal(np.asarray(cols.arrays[k], dtype=float), self._history[k])
            for k in self._roles
        )
        if not same:
            raise InvalidDataError(
                f"{type(self).__name__} predicts for the {self.n_customers_} customers it was "
                "fitted on (individual-level draws); the data given are different customers or "
                "histories: fit the model on them"
            )

    def _horizon(self, t: Any) -> np.ndarray:
        from .._input import _is_polars_series, as_float_array

        if isinstance(t, bool) or not (
            isinstance(t, numbers.Real)
            or isinstance(t, (list, tuple, np.ndarray, pd.Series))
            or _is_polars_series(t)
        ):
            raise _bad_parameter("t", f"must be one number or one per customer, got {t!r}")
        try:
            horizon = as_float_array(t, "t")
        except InvalidDataError as exc:
            raise _bad_parameter("t", str(exc)) from None
        if horizon.size not in (1, self.n_customers_):
            raise _bad_parameter(
                "t", f"must be one number or one per customer ({self.n_customers_})"
            )
        if not np.all(np.isfinite(horizon) & (horizon >= 0)):
            raise _bad_parameter("t", "must be finite and >= 0")
        return np.ascontiguousarray(horizon)

    def _shape(self, out: dict[str, Any], name: str, level: float | None) -> Any:
        if level is None:
            return self._wrap(np.asarray(out["mean"]), name)
        return pd.DataFrame(
            {
                "estimate": np.asarray(out["mean"]),
                "se": np.asarray(out["sd"]),
                "lower": np.asarray(out["lower"]),
                "upper": np.asarray(out["upper"]),
            },
            index=self._index,
        )

    def _wrap(self, values: np.ndarray, name: str) -> Any:
        if self._index is not None:
            return pd.Series(values, index=self._index, name=name)
        return values

    # -- persistence ----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The model as a JSON-ready document: hyperparameters, population draws, the fitted
        customers' histories, posterior means and kept draws (float32, base64)."""
        if "_draws" not in self.__dict__:
            raise NotFittedError(f"{type(self).__name__} is not fitted: nothing to save")
        from .. import __version__
        from .._base import FORMAT_VERSION

        post = self._draws["posterior"]
        index = None if self._index is None else [_plain(v) for v in self._index]
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "clvrs_version": __version__,
            "model": type(self).__name__,
            "hyperparameters": self.get_params(),
            "params": {k: float(v) for k, v in self.params_.items()},
            "covariance": None,
            "fit": {"converged": self.converged_, **self.fit_info_},
            "population": {name: np.asarray(x).tolist() for name, x in post.items()},
            "customers": {
                "index": index,
                "index_name": None if self._index is None else _plain(self._index.name),
                **{k: v.tolist() for k, v in self._history.items()},
                **{f"mean_{k}": v.tolist() for k, v in self._means.items()},
                "draws_float32_base64": base64.b64encode(
                    np.ascontiguousarray(self._customer, dtype="<f4").tobytes()
                ).decode("ascii"),
            },
        }

    @classmethod
    def _from_document(cls, doc: dict[str, Any]) -> IndividualLevelModel:
        model = cls(**doc["hyperparameters"])
        model._check_hyperparameters_hb()
        fit = dict(doc["fit"])
        converged = fit.pop("converged")
        by_chain = {
            "posterior": {
                name: np.asarray(v, dtype=float) for name, v in doc["population"].items()
            },
            "sample_stats": {},
        }
        cust = doc["customers"]
        history = {k: np.asarray(cust[k], dtype=float) for k in cls._roles}
        raw = base64.b64decode(cust["draws_float32_base64"])
        customer = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        n = len(history["frequency"])
        if customer.size == 0 or customer.size % (cls._width * n):
            raise ValueError("the customer draws do not match the customers")
        index = (
            None
            if cust.get("index") is None
            else pd.Index(cust["index"], name=cust.get("index_name"))
        )
        means = {k: np.asarray(cust[f"mean_{k}"], dtype=float) for k in cls._mean_names}
        model._store(by_chain, fit, customer, history, index, means, bool(converged))
        return model

    def _check_hyperparameters_hb(self) -> None:
        self._check_common()


def _whole(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _plain(value: Any) -> Any:
    """An index label as a JSON value."""
    if isinstance(value, np.generic):
        return value.item()
    return value
