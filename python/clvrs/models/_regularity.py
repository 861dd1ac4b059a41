"""The shared machinery of the regularity models BG/CNBD-k and MBG/CNBD-k."""

from __future__ import annotations

import math
import numbers
from typing import Any, ClassVar

import pandas as pd

from .. import _core
from .._base import _bad_parameter, _check_seed
from .._input import as_float_array
from .._units import fit_unit
from ..exceptions import InvalidDataError
from ._rfm import ConditionalPredictions

__all__ = ["RegularityModel"]

#: Largest regularity k the core accepts.
_MAX_K = 1000


def _whole(value: Any) -> bool:
    """A whole number from 1 to the largest k (numpy numbers too; not a bool or text)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    number = float(value)
    return math.isfinite(number) and number == math.floor(number) and 1 <= number <= _MAX_K


class RegularityModel(ConditionalPredictions):
    """Base of BG/CNBD-k and MBG/CNBD-k (not used directly): a BG-family model whose
    inter-purchase times are Erlang-k, with ``k`` given or chosen by likelihood."""

    _param_names: ClassVar[tuple[str, ...]] = ("r", "alpha", "a", "b")
    _default_columns: ClassVar[dict[str, str | None]] = {
        "frequency": "frequency",
        "recency": "recency",
        "T": "T",
        "weights": None,
        "litt": "litt",
    }

    k_: int
    regularity_profile_: pd.DataFrame | None

    def __init__(
        self,
        k: int | None = None,
        max_k: int = 12,
        penalizer: float = 0.0,
        *,
        n_jobs: int | None = None,
        max_iter: int = 1000,
        tol: float = 1e-8,
        on_failure: str = "warn",
        columns: dict[str, str | None] | None = None,
    ) -> None:
        self.k = k
        self.max_k = max_k
        super().__init__(
            penalizer,
            n_jobs=n_jobs,
            max_iter=max_iter,
            tol=tol,
            on_failure=on_failure,
            columns=columns,
        )

    def _check_hyperparameters(self, *, environment: bool = True) -> None:
        super()._check_hyperparameters(environment=environment)
        if self.k is not None and not _whole(self.k):
            raise _bad_parameter(
                "k",
                f"must be None (choose by likelihood) or a whole number from 1 to {_MAX_K}, "
                f"got {self.k!r}",
            )
        if not _whole(self.max_k):
            raise _bad_parameter(
                "max_k", f"must be a whole number from 1 to {_MAX_K}, got {self.max_k!r}"
            )

    def _params_list(self) -> list[float]:
        return [*super()._params_list(), float(self.k_)]

    def _require_litt(self, data: Any, litt: Any) -> tuple[str, ...]:
        """Refuse a fit that needs ``litt`` (``k`` chosen, or ``k > 1``) without it; the
        optional columns to read."""
        needs_litt = self.k is None or int(self.k) > 1
        names = self._column_names(data)
        litt_name = names.get("litt")
        has_litt_column = (
            data is not None
            and litt_name is not None
            and litt_name in [str(c) for c in getattr(data, "columns", [])]
        )
        if needs_litt and litt is None and not has_litt_column:
            where = (
                f"column `{litt_name}` is missing"
                if data is not None
                else "`litt` is required with arrays"
            )
            err = InvalidDataError(
                f"{where}: {type(self).__name__}"
                f"({'k=None' if self.k is None else f'k={self.k}'}) needs each customer's sum "
                "of the logs of the inter-purchase times (the timing term of the likelihood); "
                "summarize_transactions(..., regularity=True) adds it as `litt` (map another "
                "name with columns={'litt': ...}), or fit with k=1"
            )
            err.column, err.rule = litt_name or "litt", "required column"
            raise err
        if litt is not None or has_litt_column:
            return ("weights", "litt")
        return ("weights",)

    def fit(  # type: ignore[override]
        self,
        data: Any = None,
        *,
        frequency: Any = None,
        recency: Any = None,
        T: Any = None,
        weights: Any = None,
        litt: Any = None,
        time_unit: str | None = None,
    ) -> Any:
        """Estimate ``r``, ``alpha``, ``a``, ``b`` for the given ``k``, or for each
        ``k = 1 .. max_k`` keeping the most likely (the profile is ``regularity_profile_``).

        Parameters
        ----------
        data : pandas.DataFrame or polars.DataFrame, optional
            Customer summaries with ``frequency``, ``recency``, ``T`` and ``litt`` (the sum of
            the logs of each customer's inter-purchase times, in the same time unit:
            ``summarize_transactions(..., regularity=True)`` adds it). ``litt`` is needed
            unless ``k=1``: it enters the likelihood through the timing term
            :math:`(k - 1)\\,\\mathrm{litt} - x \\ln((k - 1)!)`, which does not depend on the
            other parameters but decides between values of ``k``.
        frequency, recency, T, weights, litt : array-like, optional
            The same columns as arrays, when ``data`` is not given (``weights`` as for
            :meth:`BetaGeoModel.fit`).
        time_unit : str, optional
            As for :meth:`BetaGeoModel.fit`.

        Returns
        -------
        self
            With ``k_`` (the regularity used), ``regularity_profile_`` (one row per ``k``
            tried: log-likelihood, estimates, convergence) and the usual fitted attributes.
            ``log_likelihood_`` includes the timing term. When ``k`` was chosen, ``aic_`` and
            ``bic_`` count it as a fifth parameter.

        Raises
        ------
        InvalidDataError
            As for :meth:`BetaGeoModel.fit`; also for a missing ``litt`` when it is needed, and
            a ``litt`` that is not finite, not 0 without repeat purchases, or larger than
            ``frequency * ln(recency / frequency)`` (which no set of inter-purchase times adding
            up to ``recency`` can exceed: the usual sign of a ``litt`` in another time unit).
        """
        self._check_hyperparameters()
        rfm_keywords = {"frequency": frequency, "recency": recency, "T": T, "weights": weights}
        unit = fit_unit(data, rfm_keywords, time_unit)
        optional = self._require_litt(data, litt)
        keywords = {**rfm_keywords, "litt": litt}
        cols = self._columns(data, keywords, optional=optional, fitting=True)
        a = cols.arrays
        with cols.locating_rows():
            result = _core.cnbd_fit(
                self._model,
                a["frequency"],
                a["recency"],
                a["T"],
                a.get("weights"),
                a.get("litt"),
                self._names(cols),
                litt_name=cols.names.get("litt", "litt"),
                k=None if self.k is None else float(self.k),
                max_k=float(self.max_k),
                penalizer=float(self.penalizer),
                max_iter=int(self.max_iter),
                tol=float(self.tol),
                n_jobs=self.n_jobs,
            )
        k = int(result["k"])
        self._set_fit(result)
        self.time_unit_ = unit
        self.covariates_ = None
        self._set_regularity(k)
        return self

    def _set_regularity(self, k: int) -> None:
        """Set ``k_`` and the profile (from ``fit_info_``), and count a chosen ``k`` in the
        information criteria."""
        self.k_ = k
        self.fit_info_["k"] = k
        rows = self.fit_info_.get("regularity_profile")
        if rows:
            frame = pd.DataFrame(
                {
                    "log_likelihood": [float(r["log_likelihood"]) for r in rows],
                    **{
                        name: [float(r["params"][i]) for r in rows]
                        for i, name in enumerate(self._param_names)
                    },
                    "converged": [bool(r["converged"]) for r in rows],
                },
                index=pd.Index([int(r["k"]) for r in rows], name="k"),
            )
            self.regularity_profile_ = frame
            self.fit_info_["regularity_profile"] = [
                {
                    "k": int(r["k"]),
                    "log_likelihood": float(r["log_likelihood"]),
                    "params": [float(v) for v in r["params"]],
                    "converged": bool(r["converged"]),
                }
                for r in rows
            ]
        else:
            self.regularity_profile_ = None
        if self.k is None and self.log_likelihood_ is not None and self.n_observations_:
            n_params = len(self._param_names) + 1
            self.aic_ = 2 * n_params - 2 * self.log_likelihood_
            self.bic_ = n_params * math.log(self.n_observations_) - 2 * self.log_likelihood_

    @classmethod
    def from_params(cls, **kwargs: Any) -> Any:
        """Build a model with known ``r``, ``alpha``, ``a``, ``b`` and ``k`` (no fitting).

        ``k`` (a whole number) is required; other keywords are hyperparameters, and
        ``time_unit`` the unit of the parameters.
        """
        if kwargs.get("k") is None:
            raise _bad_parameter(
                "k", f"{cls.__name__}.from_params needs k (a whole number, the regularity)"
            )
        model = super().from_params(**kwargs)
        model.k_ = int(model.k)
        model.regularity_profile_ = None
        return model

    @classmethod
    def _from_document(cls, doc: dict[str, Any]) -> Any:
        model: Any = super()._from_document(doc)
        fit = doc.get("fit") or {}
        k = fit.get("k", doc["hyperparameters"].get("k"))
        if not _whole(k):
            raise ValueError(f'"fit.k" must be a whole number from 1 to {_MAX_K}, got {k!r}')
        if fit.get("log_likelihood") is None:
            model.k_ = int(k)
            model.regularity_profile_ = None
            return model
        # (The information criteria were saved by _set_fit's rule; recompute with k counted.)
        model._set_regularity(int(k))
        return model

    def __repr__(self) -> str:
        text = super().__repr__()
        if "k_" in self.__dict__ and text.endswith(">"):
            return f"{text[:-1]}, k={self.k_}>"
        return text

    def simulate(self, T: Any, seed: int = 0) -> pd.DataFrame:
        """Customer summaries drawn from the model: one customer per age in ``T``.

        Customer ``i`` uses random stream ``i`` of ``seed``. Purchases follow the model's
        process exactly: Erlang-k gaps at a gamma-distributed stage rate, a dropout coin after
        each repeat purchase (and, for MBG/CNBD-k, right after the first).

        Returns
        -------
        pandas.DataFrame
            Columns ``frequency``, ``recency``, ``T`` and ``litt`` (the sum of the logs of the
            inter-purchase times), ready for :meth:`fit`.
        """
        seed = _check_seed(seed)
        ages = as_float_array(T, "T")
        x, t_x, litt = _core.cnbd_simulate(self._model, self._params_list(), ages, seed)
        return pd.DataFrame({"frequency": x, "recency": t_x, "T": ages, "litt": litt})
