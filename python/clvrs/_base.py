"""The estimator base class: scikit-learn manners, fitted attributes, summary, persistence."""

from __future__ import annotations

import copy
import inspect
import json
import math
import numbers
import os
import re
import warnings
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from . import _units
from ._input import Columns, coerce_columns, resolve_weights_column
from .exceptions import (
    ConvergenceError,
    ConvergenceWarning,
    InvalidParameterError,
    ModelFileError,
    NotFittedError,
)

__all__ = ["BaseModel", "load", "FORMAT", "FORMAT_VERSION"]


def _settings_record(settings: tuple[int, int, int, int, float, int]) -> dict[str, Any]:
    """The sampler settings (as handed to the core) by name, for ``fit_info_``."""
    chains, draws, tune, seed, target_accept, max_depth = settings
    return {"tune": tune, "seed": seed, "target_accept": target_accept}


#: Identifies a clvrs model document.
FORMAT = "clvrs.model"
#: Version of the model document layout; files with a larger version are refused. Version 2
#: added ``"time_unit"``: a model that knows its time unit is written as version 2 (an older
#: clvrs, which could not honour the unit, refuses it), a unit-free model as version 1.
#: Version 3 added ``"posterior"`` (the draws of a Bayesian fit): such a model is written as
#: version 3, so that an older clvrs refuses it rather than loading the posterior mean as a
#: fit without its draws.
FORMAT_VERSION = 3

_REGISTRY: dict[str, type[BaseModel]] = {}

_ON_FAILURE = ("warn", "raise", "ignore")

#: Keys of a core fit result stored as fitted attributes rather than in ``fit_info_``.
_FIT_RESULT_FIELDS = frozenset(
    {
        "names",
        "params",
        "covariance",
        "log_likelihood",
        "n_observations",
        "converged",
        "n_iter",
        "weakly_identified",
    }
)


def _bad_parameter(name: str, message: str) -> InvalidParameterError:
    err = InvalidParameterError(f"{name}: {message}")
    err.parameter = name
    return err


def _check_seed(seed: Any, name: str = "seed") -> int:
    """A random seed: a whole number in [0, 2**64) (numpy integers too, not a bool)."""
    if (
        isinstance(seed, bool)
        or not isinstance(seed, numbers.Integral)
        or not 0 <= int(seed) < 2**64
    ):
        raise _bad_parameter(name, f"must be a whole number >= 0 (below 2**64), got {seed!r}")
    return int(seed)


def _check_level(level: Any, name: str = "level") -> float:
    """A confidence level: a number strictly between 0 and 1 (not a string or a bool)."""
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0 < float(level) < 1:
        raise _bad_parameter(name, f"must lie strictly between 0 and 1, got {level!r}")
    return float(level)


#: Most threads taken, from ``n_jobs`` or ``CLVRS_NUM_THREADS``. Starting a pool of thousands
#: of threads took longer than any fit it could speed up (2,048 threads: 9 s), and no machine
#: clvrs runs on has more cores than this.
_MAX_N_JOBS = 1024

#: Environment variable the core reads for the number of threads when ``n_jobs`` is None.
_NUM_THREADS_ENV = "CLVRS_NUM_THREADS"


def _check_n_jobs(n_jobs: Any, *, environment: bool = True) -> None:
    """``n_jobs`` as handed to the core: None, -1 (all cores) or 1 to :data:`_MAX_N_JOBS`
    threads (a whole number, not a bool). With ``environment`` and ``n_jobs`` None, the value
    of ``CLVRS_NUM_THREADS`` that the core will read is checked too, and an error names the
    variable (not an ``n_jobs`` the caller never gave)."""
    if n_jobs is None:
        if environment:
            _check_num_threads_env()
        return
    if (
        isinstance(n_jobs, bool)
        or not isinstance(n_jobs, numbers.Integral)
        or not (int(n_jobs) == -1 or 0 < int(n_jobs) <= _MAX_N_JOBS)
    ):
        raise _bad_parameter(
            "n_jobs",
            f"must be None, -1 (all cores) or a positive integer up to {_MAX_N_JOBS} "
            f"(the most threads clvrs starts), got {n_jobs!r}",
        )


def _check_num_threads_env() -> None:
    """``CLVRS_NUM_THREADS``, as the core reads it when ``n_jobs`` is None: unset or blank (all
    cores), a negative integer (all cores) or 1 to :data:`_MAX_N_JOBS` threads."""
    text = os.environ.get(_NUM_THREADS_ENV)
    if text is None or not text.strip():
        return
    if not re.fullmatch(r"[+-]?[0-9]+", text.strip()):
        raise _bad_parameter(
            _NUM_THREADS_ENV,
            f"(environment variable, read because n_jobs is None) must be an integer number of "
            f"threads, got {text!r}; set it to a number from 1 to {_MAX_N_JOBS}, or unset it",
        )
    value = int(text.strip())
    if value == 0 or value > _MAX_N_JOBS:
        raise _bad_parameter(
            _NUM_THREADS_ENV,
            f"(environment variable, read because n_jobs is None) must be an integer number of "
            f"threads from 1 to {_MAX_N_JOBS} (or negative for all cores), got {text!r}; "
            "change it, unset it, or pass n_jobs",
        )


def _check_path(path: Any) -> None:
    """A file path: a string or path-like (an integer would be taken as a file descriptor)."""
    if not isinstance(path, (str, os.PathLike)):
        raise _bad_parameter("path", f"must be a file path, got {type(path).__name__}")


@lru_cache(maxsize=256)
def _label_index(names: tuple[str, ...]) -> pd.Index:
    """The index of a fit's labelled estimates, one per list of parameter names, built once:
    building it (and its lookup table, on the first ``params_["q"]``) costs more than a small
    fit's arithmetic. Fits take a view of it (:meth:`pandas.Index.view`: its own object, so that
    renaming one fit's index renames no other, sharing the values and the lookup table)."""
    return pd.Index(list(names))


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class BaseModel:
    """Common machinery of the clvrs estimators (not used directly).

    Subclasses declare ``_param_names`` and implement ``_fit_core``; everything estimated ends
    in ``_`` and is set only by :meth:`fit` or :meth:`from_params`.
    """

    _param_names: ClassVar[tuple[str, ...]] = ()
    #: Default column name for each data role.
    _default_columns: ClassVar[dict[str, str | None]] = {}
    #: Roles every fit/prediction needs.
    _roles: ClassVar[tuple[str, ...]] = ()
    #: Keyword names of roles whose keyword is not the role's name (errors use them).
    _keyword_names: ClassVar[dict[str, str] | None] = None

    # Hyperparameters shared by every model (subclasses list them in __init__).
    penalizer: float
    n_jobs: int | None
    max_iter: int
    tol: float
    on_failure: str
    columns: dict[str, str | None] | None

    # Fitted attributes (set by fit / from_params; None where a model built from parameters has
    # no such estimate).
    params_: pd.Series
    covariance_: pd.DataFrame | None
    standard_errors_: pd.Series | None
    log_likelihood_: float | None
    n_observations_: float | None
    aic_: float | None
    bic_: float | None
    converged_: bool | None
    n_iter_: int
    fit_info_: dict[str, Any]
    #: The time unit of the data the model was fitted on (e.g. "W", "7D"), None when unit-free.
    time_unit_: str | None
    #: After ``fit(..., method="nuts")``: the priors used (``posterior_`` holds the draws).
    priors_: dict[Any, Any]

    #: Attributes only a Bayesian fit sets (cleared by any other fit).
    _BAYES_ATTRIBUTES: ClassVar[tuple[str, ...]] = ("priors_", "_draws", "_posterior")

    # The hyperparameters of most estimators (those that differ define their own __init__).
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

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls

    # -- scikit-learn protocol ------------------------------------------------------------------

    @classmethod
    def _get_param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [
            p.name for p in sig.parameters.values() if p.name != "self" and p.kind != p.VAR_KEYWORD
        ]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Hyperparameters of this estimator, as given to ``__init__``."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params: Any) -> BaseModel:
        """Set hyperparameters; returns self."""
        valid = set(self._get_param_names())
        for key, value in params.items():
            if key not in valid:
                raise _bad_parameter(
                    key, f"{type(self).__name__} has no such hyperparameter; valid: {sorted(valid)}"
                )
            setattr(self, key, value)
        return self

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails: a fitted attribute before fitting.
        # Properties of fitted models (e.g. `summary`) land here too when they raise
        # NotFittedError, which is an AttributeError.
        if name in ("posterior_", "priors_") and "_draws" not in self.__dict__:
            # (Also reached when the `posterior_` property raises.)
            raise NotFittedError(
                f"{type(self).__name__} has no `{name}`: "
                + (
                    'it was not fitted with method="nuts"'
                    if "params_" in self.__dict__
                    else "it is not fitted"
                )
                + ' (call fit(..., method="nuts") for posterior draws)'
            )
        if (name.endswith("_") and not name.startswith("__")) or isinstance(
            getattr(type(self), name, None), property
        ):
            raise NotFittedError(
                f"{type(self).__name__} is not fitted yet: call fit(...) or from_params(...) "
                f"before using `{name}`"
            )
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # -- fitting --------------------------------------------------------------------------------

    def _column_names(self, data: Any = None) -> dict[str, str | None]:
        """Column name per role: the defaults, ``columns=``, and (given ``data``) the data's
        ``weights`` column when ``columns=`` does not map that role."""
        names = dict(self._default_columns)
        if self.columns is not None and not isinstance(self.columns, Mapping):
            raise _bad_parameter(
                "columns",
                "must be a dict of role to column name (e.g. {'T': 'age'}), got "
                f"{type(self.columns).__name__}",
            )
        if self.columns is not None:
            unknown = set(self.columns) - set(names)
            if unknown:
                raise _bad_parameter(
                    "columns", f"unknown role(s) {sorted(unknown)}; roles are {sorted(names)}"
                )
            names.update(self.columns)
        return resolve_weights_column(names, self.columns, data)

    def _columns(
        self,
        data: Any,
        keywords: dict[str, Any],
        optional: tuple[str, ...] = (),
        *,
        fitting: bool = False,
        integers: tuple[str, ...] = (),
    ) -> Columns:
        """The input's columns; for a prediction (not ``fitting``) the data's recorded time
        unit must be the model's. Integer columns of the ``integers`` roles are kept as they
        are (see :func:`coerce_columns`)."""
        cols = coerce_columns(
            data,
            self._roles,
            self._column_names(data),
            keywords,
            optional,
            self._keyword_names,
            with_data=("weights",) if "weights" in optional else (),
            integers=integers,
        )
        if not fitting:
            _units.check_same(
                self.__dict__.get("time_unit_"),
                _units.data_unit(data, keywords),
                type(self).__name__,
            )
            # Predictions hand n_jobs (or CLVRS_NUM_THREADS) to the core; checked here.
            _check_n_jobs(getattr(self, "n_jobs", None))
        return cols

    def _check_hyperparameters(self, *, environment: bool = True) -> None:
        """Check the hyperparameters as used by a fit; with ``environment`` (a fit, not
        ``from_params`` or a model file) also the ``CLVRS_NUM_THREADS`` that ``n_jobs=None``
        reads."""

        def number(value: Any) -> bool:
            return isinstance(value, numbers.Real) and not isinstance(value, bool)

        def integer(value: Any) -> bool:
            return isinstance(value, numbers.Integral) and not isinstance(value, bool)

        if not (number(self.penalizer) and math.isfinite(self.penalizer) and self.penalizer >= 0):
            raise _bad_parameter(
                "penalizer", f"must be a finite number >= 0, got {self.penalizer!r}"
            )
        if not (isinstance(self.on_failure, str) and self.on_failure in _ON_FAILURE):
            raise _bad_parameter(
                "on_failure", f"must be one of {_ON_FAILURE}, got {self.on_failure!r}"
            )
        if not (integer(self.max_iter) and self.max_iter > 0):
            raise _bad_parameter("max_iter", f"must be a positive integer, got {self.max_iter!r}")
        if not (number(self.tol) and math.isfinite(self.tol) and self.tol > 0):
            raise _bad_parameter("tol", f"must be a finite number > 0, got {self.tol!r}")
        _check_n_jobs(self.n_jobs, environment=environment)

    def _check_bayes_hyperparameters(self) -> None:
        """A Bayesian fit has no penalty: a nonzero ``penalizer`` is refused, not ignored."""
        if self.penalizer:
            raise _bad_parameter(
                "penalizer",
                f'is for method="mle" (got {self.penalizer!r}); with method="nuts" express the '
                "penalty as a prior (priors=...), or set penalizer=0",
            )

    def _set_fit(self, result: dict[str, Any]) -> None:
        """Store a fit result dict from the core as fitted attributes, applying on_failure.

        With ``on_failure="raise"`` a failed fit raises before anything is stored, so the
        estimator is left as it was.
        """
        names = list(result["names"])
        converged = bool(result["converged"])
        failure = (
            f"{type(self).__name__} did not converge: {result['termination']}. "
            "The estimates may be unreliable; try max_iter, a small penalizer, or rescaling "
            "time (e.g. weeks instead of days)."
        )
        if not converged and self.on_failure == "raise":
            raise ConvergenceError(failure)
        self._clear_posterior()
        # One shared index for every labelled estimate (see _label_index).
        labels = _label_index(tuple(names)).view()
        values = np.asarray(result["params"], dtype=float)
        params = pd.Series(values, index=labels, name="coef", copy=False)
        self.time_unit_ = None  # set by the fit that knows it
        cov = result["covariance"]
        self.params_ = params
        errors = None
        if cov is None:
            self.covariance_ = None
            self.standard_errors_ = None
        else:
            matrix = np.asarray(cov, dtype=float)
            self.covariance_ = pd.DataFrame(matrix, index=labels, columns=labels)
            errors = np.sqrt(np.clip(np.diag(matrix), 0, None))
            self.standard_errors_ = pd.Series(errors, index=labels, name="se")
        self.log_likelihood_ = float(result["log_likelihood"])
        self.n_observations_ = float(result["n_observations"])
        k = len(names)
        self.aic_ = 2 * k - 2 * self.log_likelihood_
        self.bic_ = k * math.log(self.n_observations_) - 2 * self.log_likelihood_
        self.converged_ = converged
        self.n_iter_ = int(result["n_iter"])
        # Everything else the core reports (termination, gradient norm, evaluations, starts,
        # Hessian condition, distinct rows, model-specific counts) is fit information.
        self.fit_info_ = {
            key: _finite_or_none(value)
            for key, value in result.items()
            if key not in _FIT_RESULT_FIELDS
        }
        # Weak parameters: flags from the core, or names from a saved document.
        weak = list(result.get("weakly_identified") or [])
        if all(isinstance(w, str) for w in weak):
            flags = [name in weak for name in names]
        else:
            flags = [bool(w) for w in weak]
        if errors is not None:
            # Also weak: a log-scale standard error above 1 (the 95% interval spans a factor
            # of about 50).
            # (Model parameters only: covariate coefficients are not on a log scale.)
            with np.errstate(divide="ignore", invalid="ignore"):
                relative = errors / values
            flags = [
                bool(f) or (name in self._param_names and bool(r > 1.0))
                for name, f, r in zip(names, flags, relative)
            ]
        self.fit_info_["weakly_identified"] = [n for n, f in zip(names, flags) if f]
        if not converged:
            if self.on_failure == "warn":
                warnings.warn(failure, ConvergenceWarning, stacklevel=3)
        elif self.fit_info_.get("covariance_note") and self.on_failure != "ignore":
            warnings.warn(
                f"{type(self).__name__}: {self.fit_info_['covariance_note']}; the estimates, "
                "the log-likelihood and the predictions are still valid.",
                ConvergenceWarning,
                stacklevel=3,
            )
        elif cov is None and self.on_failure != "ignore":
            weak_names = ", ".join(self.fit_info_["weakly_identified"]) or "some parameters"
            warnings.warn(
                f"{type(self).__name__}: the Hessian at the estimate is not positive definite: "
                f"{weak_names} are not identified by these data (the likelihood is flat along "
                "them), "
                "so there are no standard errors; the log-likelihood and the predictions are "
                "still valid. A simpler model may describe these data as well.",
                ConvergenceWarning,
                stacklevel=3,
            )
        elif self.fit_info_["weakly_identified"] and self.on_failure != "ignore":
            weak_names = ", ".join(self.fit_info_["weakly_identified"])
            warnings.warn(
                f"{type(self).__name__}: {weak_names} are not identified by these data (the "
                "likelihood is nearly flat along them: their standard errors exceed the "
                "estimates); the log-likelihood and the predictions are still valid. A simpler "
                "model may describe these data as well.",
                ConvergenceWarning,
                stacklevel=3,
            )

    def _set_map(self, result: dict[str, Any]) -> None:
        """Store a MAP fit (the posterior mode, from the core) like a maximum-likelihood fit,
        recording the method, the log posterior at the mode and the priors used."""
        import json

        from .priors import from_terms

        result = dict(result)
        terms = result.pop("priors")
        terms = json.loads(terms) if isinstance(terms, str) else terms
        log_posterior = float(result.pop("log_posterior"))
        self._set_fit(result)
        self.fit_info_["method"] = "map"
        self.fit_info_["log_posterior"] = log_posterior
        self.fit_info_["priors"] = terms
        self.priors_ = from_terms(terms, list(result["names"]))

    def _is_map(self) -> bool:
        return getattr(self, "fit_info_", None) is not None and (
            self.fit_info_.get("method") == "map"
        )

    def _mean_over_posterior(self, call: Any) -> np.ndarray:
        """``call(params)`` (a prediction that is not per customer: new customers, a cohort's
        survival, a population mean) at the fitted parameters; after a Bayesian fit its mean
        over the draws, as one running sum (the memory of one result)."""
        if not self._is_bayesian():
            return np.asarray(call(self._params_list()), dtype=float)
        from . import _bayes

        draws = _bayes.draws_matrix(self)
        total = np.zeros(0)
        for s, row in enumerate(draws):
            out = np.asarray(call([float(v) for v in row]), dtype=float)
            total = out.copy() if s == 0 else total + out
        return total / len(draws)

    def _clear_posterior(self) -> None:
        for name in self._BAYES_ATTRIBUTES:
            self.__dict__.pop(name, None)

    def _is_bayesian(self) -> bool:
        return "_draws" in self.__dict__

    def _set_posterior(
        self, result: dict[str, Any], settings: dict[str, Any], *, quiet: bool = False
    ) -> None:
        """Store posterior draws from the core (or a model document) as fitted attributes:
        ``params_`` the posterior mean, ``covariance_`` and ``standard_errors_`` the
        posterior covariance and standard deviations, ``posterior_`` the draws in ArviZ's
        layout. Warns (per ``on_failure``) about R-hat > 1.01 and divergences, unless
        ``quiet`` (a model loaded from a file)."""
        from . import _bayes
        from .priors import from_terms

        by_chain = _bayes.draws_by_chain(result)
        names = list(result["names"])
        info = _bayes.fit_record(result, settings, by_chain)
        healthy = _bayes.warn_or_raise(
            type(self).__name__, info, "ignore" if quiet else self.on_failure
        )
        values = np.asarray(result["values"], dtype=float).reshape(-1, len(names))
        self._clear_posterior()
        self.params_ = pd.Series(values.mean(axis=0), index=names, name="coef", dtype=float)
        cov = np.atleast_2d(np.cov(values, rowvar=False)) if values.shape[0] > 1 else None
        if cov is None:
            self.covariance_ = None
            self.standard_errors_ = None
        else:
            self.covariance_ = pd.DataFrame(cov, index=names, columns=names)
            self.standard_errors_ = pd.Series(
                np.sqrt(np.clip(np.diag(cov), 0, None)), index=names, name="se"
            )
        self.log_likelihood_ = None
        self.aic_ = None
        self.bic_ = None
        self.n_observations_ = float(result["n_observations"])
        self.converged_ = healthy
        self.n_iter_ = int(result["draws"])
        self.fit_info_ = {key: _finite_or_none(value) for key, value in info.items()}
        self.priors_ = from_terms(info["priors"], names)
        self._draws = by_chain

    @property
    def posterior_(self) -> Any:
        """The draws of a Bayesian fit (``fit(..., method="nuts")``) in ArviZ's layout: groups
        ``posterior`` (one variable per parameter) and ``sample_stats`` (``lp``,
        ``diverging``, ``tree_depth``, ``reached_max_treedepth``, ``n_steps``, ``step_size``,
        ``energy``) with ``chain`` and ``draw`` dimensions; an ``xarray.DataTree`` (ArviZ >=
        1.0, or xarray without ArviZ), ``arviz.InferenceData`` (older ArviZ), or without
        xarray the same groups as dicts of numpy arrays. Built on first use (importing ArviZ
        takes about a second)."""
        if "_draws" not in self.__dict__:
            raise AttributeError("posterior_")  # __getattr__ says why
        cached = self.__dict__.get("_posterior")
        if cached is None:
            from . import _bayes

            cached = self.__dict__["_posterior"] = _bayes.posterior_container(self._draws)
        return cached

    def _posterior_document(self) -> dict[str, Any]:
        """The draws and sampler statistics as a JSON-ready object."""
        from . import _bayes

        post = self._draws["posterior"]
        names = list(post)
        stats = self._draws["sample_stats"]
        first = next(iter(post.values()))
        values = np.stack([post[n] for n in names], axis=-1).reshape(-1, len(names))
        doc: dict[str, Any] = {
            "names": names,
            "chains": int(first.shape[0]),
            "draws": int(first.shape[1]),
            "values": values.tolist(),
        }
        for key, name in _bayes._STATS.items():
            array = stats[name].ravel()
            doc[key] = [bool(v) for v in array] if array.dtype == bool else array.tolist()
        return doc

    @classmethod
    def from_params(cls, **kwargs: Any) -> Any:
        """Build a model with known parameters (published figures, a fit made elsewhere).

        Parameters are given by name; ``time_unit`` (e.g. ``"W"``) is the unit the parameters
        are in (the model then refuses data recorded in another unit); any other keyword is a
        hyperparameter. The model predicts like a fitted one but has no covariance, standard
        errors or log-likelihood.
        """
        missing = [p for p in cls._param_names if p not in kwargs]
        if missing:
            raise _bad_parameter(
                missing[0],
                f"{cls.__name__}.from_params needs {', '.join(cls._param_names)}; "
                f"missing {missing}",
            )
        values = {p: kwargs.pop(p) for p in cls._param_names}
        time_unit = kwargs.pop("time_unit", None)
        unit = None if time_unit is None else _units.unit_name(*_units.parse_unit(time_unit))
        try:
            model = cls(**kwargs)
        except TypeError as exc:
            unknown = sorted(set(kwargs) - set(cls._get_param_names()))
            raise _bad_parameter(
                unknown[0] if unknown else "from_params",
                f"{cls.__name__}.from_params takes the parameters {', '.join(cls._param_names)} "
                f"and the hyperparameters {', '.join(cls._get_param_names())}; got {unknown}",
            ) from exc
        model._check_hyperparameters(environment=False)
        model._set_params(values)
        model.time_unit_ = unit
        return model

    def _set_params(self, values: dict[str, Any]) -> None:
        for name, value in values.items():
            try:
                # Text ("0.2") and bools are not parameter values: refused, not converted.
                if isinstance(value, (bool, np.bool_, str, bytes)):
                    raise TypeError
                v = float(value)
            except (TypeError, ValueError):
                v = float("nan")
            if not (math.isfinite(v) and v > 0):
                raise _bad_parameter(name, f"must be a finite number > 0, got {value!r}")
        self._clear_posterior()
        self.params_ = pd.Series({k: float(v) for k, v in values.items()}, name="coef", dtype=float)
        self.covariance_ = None
        self.standard_errors_ = None
        self.log_likelihood_ = None
        self.n_observations_ = None
        self.aic_ = None
        self.bic_ = None
        self.converged_ = None
        self.n_iter_ = 0
        self.fit_info_ = {"termination": "parameters given, not fitted"}
        self.time_unit_ = None

    def _params_list(self) -> list[float]:
        return np.asarray(self.params_.to_numpy(), dtype=np.float64).tolist()

    # -- reporting ------------------------------------------------------------------------------

    def summary_frame(self, level: float = 0.95) -> pd.DataFrame:
        """Estimates with standard errors and ``level`` confidence intervals.

        Intervals are Wald intervals on the log scale mapped back
        (``coef * exp(+-z se / coef)``), so they respect the positivity of the parameters.
        """
        level = _check_level(level)
        if self._is_bayesian():
            return self._posterior_summary_frame(level)
        from statistics import NormalDist

        z = NormalDist().inv_cdf(0.5 + level / 2)
        coef = self.params_
        if self.standard_errors_ is None:
            se = pd.Series(np.nan, index=coef.index)
        else:
            se = self.standard_errors_
        with np.errstate(over="ignore"):  # a huge se/coef: the interval is (0, inf)
            spread = np.exp(z * se / coef)
        frame = pd.DataFrame(
            {"coef": coef, "se": se, "lower": coef / spread, "upper": coef * spread},
            index=coef.index,
        )
        weak = self.fit_info_.get("weakly_identified")
        if weak is not None:
            frame["weakly_identified"] = [name in weak for name in coef.index]
        if self._is_map():
            from . import _bayes

            frame = _bayes.PosteriorSummary(frame)
            frame.attrs["sampler_health"] = (
                "MAP: posterior mode under the priors (priors_), log posterior "
                f"{self.fit_info_['log_posterior']:.2f}; se and intervals from the Hessian of "
                "the log posterior (Laplace approximation)"
            )
        unit = self.__dict__.get("time_unit_")
        if unit is not None:
            # Shown in the corner of the printed table; also in attrs for code.
            frame.columns.name = f"time unit {unit}"
            frame.attrs[_units.ATTR] = unit
        return frame

    def _posterior_summary_frame(self, level: float) -> pd.DataFrame:
        """The summary of a Bayesian fit: posterior mean, sd, equal-tailed ``level`` credible
        interval, R-hat, bulk and tail ESS, Monte Carlo error of the mean; the sampler-health
        line is printed under the table and kept in ``attrs["sampler_health"]``."""
        from . import _bayes

        frame = _bayes.posterior_summary(self._draws, level)
        frame.attrs["sampler_health"] = str(self.fit_info_.get("termination"))
        unit = self.__dict__.get("time_unit_")
        if unit is not None:
            frame.columns.name = f"time unit {unit}"
            frame.attrs[_units.ATTR] = unit
        return frame

    @property
    def summary(self) -> pd.DataFrame:
        """DataFrame of estimates: coef, se, lower, upper (95% intervals).

        For fitted models, ``weakly_identified`` flags parameters the data barely determine:
        those loading on a direction of (nearly) zero curvature of the log-likelihood, or with
        a log-scale standard error above 1. A model that knows its time unit (``time_unit_``)
        names it in the table's corner (``columns.name``) and in ``attrs["time_unit"]``.

        After ``fit(..., method="nuts")`` the columns are the posterior ``mean``, ``sd``, the
        95% equal-tailed credible interval (``lower``, ``upper``), ``r_hat`` (rank-normalised
        split R-hat), ``ess_bulk``, ``ess_tail`` (Vehtari et al. 2021, as ArviZ computes them)
        and ``mcse_mean``; the sampler-health line (divergences, draws at the maximum tree
        depth, largest R-hat) is printed under the table and kept in
        ``attrs["sampler_health"]``.
        """
        return self.summary_frame()

    def _hyper_repr(self) -> str:
        defaults = {
            p.name: p.default
            for p in inspect.signature(type(self).__init__).parameters.values()
            if p.default is not inspect.Parameter.empty
        }
        shown = [
            f"{k}={v!r}" for k, v in self.get_params().items() if defaults.get(k, object()) != v
        ]
        return ", ".join(shown)

    def __repr__(self) -> str:
        head = f"{type(self).__name__}({self._hyper_repr()})"
        if "params_" not in self.__dict__:
            return head
        params = ", ".join(f"{k}={v:.4g}" for k, v in self.params_.items())
        tail = f"{params}"
        if self._is_bayesian():
            tail += (
                f", posterior mean of {self.fit_info_['chains']} x {self.fit_info_['draws']} "
                f"NUTS draws, {self.fit_info_['divergences']} divergences"
            )
            if not self.converged_:
                tail += ", CHECK R-HAT/DIVERGENCES"
        if self._is_map():
            tail += ", posterior mode (MAP)"
        if self.log_likelihood_ is not None:
            tail += f", log-likelihood={self.log_likelihood_:.2f}"
            if not self.converged_:
                tail += ", NOT CONVERGED"
        if self.__dict__.get("time_unit_") is not None:
            tail += f", time unit {self.time_unit_}"
        return f"{head} <{tail}>"

    def _repr_html_(self) -> str:
        import html

        from . import _display

        head = f"<strong>{html.escape(type(self).__name__)}</strong>"
        if "params_" not in self.__dict__:
            return f"{head} (not fitted)"
        info = ""
        if self.log_likelihood_ is not None:
            info = (
                f"<p>log-likelihood {self.log_likelihood_:.2f}, AIC {self.aic_:.2f}, "
                f"BIC {self.bic_:.2f}, n = {_display.number(self.n_observations_)}, "
                f"converged: {self.converged_} "
                f"({html.escape(str(self.fit_info_.get('termination')))})</p>"
            )
        if self._is_bayesian():
            info = f"<p>{html.escape(str(self.fit_info_.get('termination')))}</p>"
        if self.__dict__.get("time_unit_") is not None:
            info += f"<p>time unit {html.escape(str(self.time_unit_))}</p>"
        return f"{head}{info}{self.summary.to_html(float_format=lambda v: f'{v:.6g}')}"

    # -- persistence ----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The model as a JSON-ready document (hyperparameters, estimates, covariance, fit info)."""
        if "params_" not in self.__dict__:
            raise NotFittedError(f"{type(self).__name__} is not fitted: nothing to save")
        from . import __version__

        cov = None if self.covariance_ is None else self.covariance_.to_numpy().tolist()
        unit = self.__dict__.get("time_unit_")
        bayesian = self._is_bayesian()
        # Version 1 (readable by older clvrs) unless there is a unit (2) or draws (3) to keep.
        version = FORMAT_VERSION if bayesian else (2 if unit is not None else 1)
        return {
            "format": FORMAT,
            "format_version": version,
            "clvrs_version": __version__,
            "model": type(self).__name__,
            **({"time_unit": unit} if unit is not None else {}),
            "hyperparameters": self.get_params(),
            "params": {k: float(v) for k, v in self.params_.items()},
            "covariance": cov,
            "fit": {
                "log_likelihood": self.log_likelihood_,
                "n_observations": self.n_observations_,
                "converged": self.converged_,
                "n_iter": self.n_iter_,
                **self.fit_info_,
            },
            **({"posterior": self._posterior_document()} if bayesian else {}),
        }

    def to_json(self) -> str:
        """The model document as a JSON string."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the model to ``path`` as a small versioned JSON document (see :func:`load`)."""
        _check_path(path)
        text = self.to_json()
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)

    @classmethod
    def _document_names(cls, doc: dict[str, Any]) -> list[str]:
        """The names of the estimates stored in a model document, in order."""
        return list(cls._param_names)

    def _with_params(self, params: pd.Series) -> BaseModel:
        """A copy of this model predicting with ``params`` (same names; no refit): without the
        draws of a Bayesian fit, which its predictions would otherwise average over."""
        clone = copy.copy(self)
        clone.__dict__ = {k: v for k, v in self.__dict__.items() if k not in self._BAYES_ATTRIBUTES}
        clone.params_ = params.astype(float)
        return clone

    def _log_scale(self) -> np.ndarray:
        """Which estimates are positive model parameters (log scale), rather than covariate
        coefficients (any sign)."""
        return np.array([name in self._param_names for name in self.params_.index])

    @classmethod
    def _from_document(cls, doc: dict[str, Any]) -> BaseModel:
        model = cls(**doc["hyperparameters"])
        model._check_hyperparameters(environment=False)
        model._column_names()  # a `columns` that no fit or prediction could use is refused now
        params = doc["params"]
        model._set_params({name: params[name] for name in cls._param_names})
        model.time_unit_ = _document_unit(doc)
        fit = doc.get("fit") or {}
        if doc.get("posterior") is not None:
            post = dict(doc["posterior"])
            post.update(
                priors=fit.get("priors") or [],
                tuning_divergences=fit.get("tuning_divergences", 0),
                max_depth=fit.get("max_depth", 10),
                initial_point_is_mode=fit.get("initial_point_is_mode", True),
                n_rows=fit.get("n_rows", 0),
                n_observations=fit.get("n_observations"),
            )
            settings = {key: fit[key] for key in ("tune", "seed", "target_accept")}
            model._set_posterior(post, settings, quiet=True)
            model.time_unit_ = _document_unit(doc)
            return model
        if fit.get("log_likelihood") is None:
            return model
        names = cls._document_names(doc)
        result = dict(fit)
        result.update(
            names=names,
            params=[params[name] for name in names],
            covariance=doc.get("covariance"),
        )
        # Non-finite numbers were stored as null.
        if result.get("hessian_condition") is None:
            result["hessian_condition"] = float("inf")
        # The warning (if any) was given when the model was fitted; loading stays quiet.
        on_failure, model.on_failure = model.on_failure, "ignore"
        try:
            model._set_fit(result)
        finally:
            model.on_failure = on_failure
        if model._is_map():
            from .priors import from_terms

            model.priors_ = from_terms(model.fit_info_.get("priors") or [], names)
        model.time_unit_ = _document_unit(doc)
        return model


def _document_unit(doc: dict[str, Any]) -> str | None:
    """The ``"time_unit"`` of a model document (absent before format version 2: unit-free)."""
    unit = doc.get("time_unit")
    if unit is None:
        return None
    freq, multiplier = _units.parse_unit(unit, '"time_unit"')
    return _units.unit_name(freq, multiplier)


def _doc_error(path: Any, why: str) -> ModelFileError:
    return ModelFileError(f"{path}: not a usable clvrs model file: {why}")


def _loadable(cls: Any) -> bool:
    """Whether a registered class is a concrete estimator a document may name.

    Every subclass of :class:`BaseModel` is registered, including the shared bases
    (``RfmModel``, ``LifetimePredictions``, ``ContractualModel``), which have no parameters
    or no core model of their own and cannot predict.
    """
    if not (isinstance(cls, type) and issubclass(cls, BaseModel)):
        return hasattr(cls, "_from_document")  # SegmentedModel
    return bool(cls._param_names) and getattr(cls, "_model", None) != ""


#: Entries of a model file's ``"fit"`` object that are numbers (or null).
_FIT_NUMBERS = frozenset(
    {
        "log_likelihood",
        "n_observations",
        "n_iter",
        "n_rows",
        "n_evaluations",
        "n_starts",
        "gradient_norm",
        "hessian_condition",
        "n_excluded",
    }
)


def _check_fit_record(cls: type[BaseModel], doc: dict[str, Any], source: Any) -> None:
    """Refuse fit information that would load as something other than what was saved."""
    fit = doc.get("fit") or {}
    if not isinstance(fit, dict):
        raise _doc_error(source, '"fit" must be an object')
    converged = fit.get("converged")
    if not (
        isinstance(converged, bool) or (converged is None and fit.get("log_likelihood") is None)
    ):
        raise _doc_error(source, f'"converged" must be true or false, got {converged!r}')
    # Text is not read as a number, nor a string as a list of names (of its letters).
    for key, value in fit.items():
        if key in _FIT_NUMBERS and value is not None:
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise _doc_error(source, f'"fit.{key}" must be a number or null, got {value!r}')
        elif key == "termination" and not (value is None or isinstance(value, str)):
            raise _doc_error(source, f'"fit.termination" must be text or null, got {value!r}')
        elif key == "weakly_identified" and not (
            value is None or (isinstance(value, list) and all(isinstance(v, str) for v in value))
        ):
            raise _doc_error(
                source, f'"fit.weakly_identified" must be a list of parameter names, got {value!r}'
            )
    cov = doc.get("covariance")
    if cov is None:
        return
    names = cls._document_names(doc)
    k = len(names)
    if not (
        isinstance(cov, list)
        and len(cov) == k
        and all(isinstance(row, list) and len(row) == k for row in cov)
        and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for row in cov
            for v in row
        )
    ):
        raise _doc_error(
            source,
            f'"covariance" must be null or a {k} x {k} list of finite numbers (one row and '
            f"column per estimate: {', '.join(names)})",
        )
    matrix = np.asarray(cov, dtype=float)
    scale = float(np.max(np.abs(matrix), initial=0.0))
    if not np.allclose(matrix, matrix.T, rtol=0.0, atol=1e-9 * scale):
        raise _doc_error(source, '"covariance" must be symmetric')


def load_document(doc: Any, source: Any = "<document>") -> BaseModel:
    """Rebuild a model from a parsed model document.

    Raises
    ------
    ModelFileError
        If the document is not a clvrs model document, names no concrete model, is from a
        newer clvrs, or holds values that do not make a usable model.
    """
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise _doc_error(source, f'expected a JSON object with "format": "{FORMAT}"')
    version = doc.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _doc_error(source, f"format_version must be a positive whole number, got {version!r}")
    if version > FORMAT_VERSION:
        raise _doc_error(
            source,
            f"written by a newer clvrs ({doc.get('clvrs_version')}, format version {version}); "
            f"this clvrs reads format version {FORMAT_VERSION} or older: upgrade clvrs",
        )
    name = doc.get("model")
    cls = _REGISTRY.get(name) if isinstance(name, str) else None
    if cls is None or not _loadable(cls):
        known = sorted(key for key, value in _REGISTRY.items() if _loadable(value))
        raise _doc_error(source, f"unknown model {name!r}; known: {known}")
    try:
        if isinstance(cls, type) and issubclass(cls, BaseModel):
            _check_fit_record(cls, doc, source)
        return cls._from_document(doc)
    except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError, IndexError) as exc:
        if isinstance(exc, ModelFileError):
            raise
        raise _doc_error(source, f"{type(exc).__name__}: {exc}") from exc


def load(path: str | os.PathLike[str]) -> BaseModel:
    """Load a model saved with ``model.save(path)``.

    Raises
    ------
    ModelFileError
        If the file is not valid JSON, not a clvrs model, truncated, or from a newer clvrs, or
        if its content does not make a usable model.
    """
    _check_path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _doc_error(path, f"not valid JSON ({exc})") from exc
    except RecursionError as exc:
        raise _doc_error(path, "not valid JSON (nested too deeply)") from exc
    return load_document(doc, path)
