"""lifetimes' fitter classes over clvrs' models (see :mod:`clvrs.lifetimes`); the submodules
(``beta_geo_fitter``, ...) are lifetimes' import paths for them."""

from __future__ import annotations

import copy
import json
import math
import numbers
import os
import warnings
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ... import _base
from ...exceptions import InvalidDataError, InvalidParameterError, ModelFileError, ModelWarning
from ...exceptions import NotFittedError as _ClvNotFittedError
from ...models import (
    BetaGeoBetaBinomModel,
    BetaGeoModel,
    GammaGammaModel,
    ModifiedBetaGeoModel,
    ParetoNBDModel,
)
from .. import generate_data as _generate

__all__ = [
    "BaseFitter",
    "BetaGeoBetaBinomFitter",
    "BetaGeoFitter",
    "GammaGammaFitter",
    "ModifiedBetaGeoFitter",
    "NotFittedError",
    "ParetoNBDFitter",
]

#: What lifetimes' ``fit`` leaves on a fitter (``load_model`` restores these).
_FITTED = ("params_", "data", "predict", "generate_new_data", "variance_matrix_",
           "standard_errors_", "confidence_intervals_", "_scale",
           "_negative_log_likelihood_")  # fmt: skip
_FORMAT = "clvrs.lifetimes fitter"
#: Marks a saved ``generate_new_data`` (restored as the fitter's method).
_METHOD = object()


class NotFittedError(_ClvNotFittedError, ValueError):
    """A fitter was used before ``fit`` (or before ``params_`` was set).

    A :class:`clvrs.exceptions.NotFittedError` (so an ``AttributeError``: ``hasattr`` is False
    before fitting) that is also a ``ValueError``, as lifetimes raises.
    """


def _not_fitted(fitter: Any, what: str) -> NotFittedError:
    # A private helper's name (``_model``, reached from any prediction) means nothing to the
    # user: the fitter is named alone.
    where = type(fitter).__name__ + ("" if what.startswith("_") else f".{what}")
    return NotFittedError(
        f"{where} needs a fitted model: call .fit(...) first "
        "(or assign fitted parameters to params_)"
    )


def _column(values: Any, name: str) -> tuple[np.ndarray, tuple[int, ...]]:
    """One argument as a flat float64 array and its shape; refuses None, text, dates."""
    from ..._input import as_float_array

    if values is None:
        err = InvalidParameterError(f"`{name}` is required (got None)")
        err.parameter = name
        raise err
    if isinstance(values, (pd.Series, pd.Index)) or np.ndim(values) <= 1:
        out = as_float_array(values, name)
        return out, (np.shape(values) if np.ndim(values) else ())
    raw = np.asarray(values)
    return as_float_array(raw.ravel(), name), raw.shape


def _inputs(**given: Any) -> tuple[dict[str, np.ndarray], Any]:
    """Broadcast the arguments against each other (as numpy does); returns flat arrays and a
    function that shapes a flat result like the inputs (a scalar for scalars, a Series with the
    index of the first Series argument, else an array of the broadcast shape)."""
    from ..._input import align_to

    flat: dict[str, np.ndarray] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    index = None
    first = ""
    for name, value in given.items():
        if isinstance(value, pd.Series):
            if index is None:
                index, first = value.index, name
            else:  # same labels: by label (as pandas arithmetic); other labels: refused
                value = align_to(value, index, len(index), name, first)
        flat[name], shapes[name] = _column(value, name)
    shape: tuple[int, ...] = ()
    for name, own in shapes.items():
        try:
            shape = np.broadcast_shapes(shape, own)
        except ValueError:
            # blame the first argument that does not fit the ones before it
            sizes = ", ".join(f"`{k}` has shape {v}" for k, v in shapes.items())
            err = InvalidDataError(
                f"`{name}` does not match the other arguments' lengths ({sizes}): give one "
                "value or one per customer for each"
            )
            err.column, err.rule = name, "lengths must match"
            raise err from None
    arrays = {
        k: np.ascontiguousarray(np.broadcast_to(v.reshape(shapes[k]), shape).ravel())
        for k, v in flat.items()
    }

    def shaped(out: Any) -> Any:
        values = np.asarray(out, dtype=float).reshape(shape)
        if shape == ():
            return np.float64(values)
        if index is not None and len(shape) == 1 and len(index) == shape[0]:
            return pd.Series(values, index=index)
        return values

    return arrays, shaped


def _fit_inputs(**given: Any) -> dict[str, np.ndarray]:
    """The arguments of a ``fit``: like :func:`_inputs`, but each must be one value or one
    dimension (one value per customer); a table or matrix is refused, naming it, rather than
    flattened."""
    for name, value in given.items():
        if value is not None and not isinstance(value, (pd.Series, pd.Index, str)):
            dims = np.ndim(value)
            if dims > 1:
                err = InvalidDataError(
                    f"`{name}` must be one-dimensional (one value per customer), got an array "
                    f"of shape {np.shape(value)}; pass a 1-D array or a Series (e.g. "
                    f"`{name}.ravel()` if that is what you mean)"
                )
                err.column, err.rule = name, "one-dimensional"
                raise err
    return _inputs(**given)[0]


def _check_penalizer_coef(value: Any) -> None:
    """lifetimes' ``penalizer_coef`` (clvrs' ``penalizer``), named as the user gave it."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not (math.isfinite(float(value)) and float(value) >= 0)
    ):
        raise _base._bad_parameter("penalizer_coef", f"must be a finite number >= 0, got {value!r}")


def _to_json_value(value: Any, name: str) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        raise InvalidParameterError(
            f"`values_to_save`: {value!r} (for `{name}`) cannot be written to the model file; "
            "use None, a number or a string"
        ) from None
    return value


def _frame_to_json(frame: pd.DataFrame) -> dict[str, Any]:
    return {
        "index": [v.item() if hasattr(v, "item") else v for v in frame.index],
        "columns": {c: frame[c].tolist() for c in frame.columns},
        "dtypes": {c: str(frame[c].dtype) for c in frame.columns},
    }


def _frame_from_json(doc: dict[str, Any]) -> pd.DataFrame:
    frame = pd.DataFrame(doc["columns"], index=pd.Index(doc["index"]))
    return frame.astype(doc["dtypes"])


class BaseFitter:
    """lifetimes' ``BaseFitter``: repr, ``_unload_params``, ``save_model`` / ``load_model``,
    ``summary`` and the fitted attributes' error when unfitted."""

    _model_class: ClassVar[Any] = None
    #: lifetimes' names of the parameters, in clvrs' order.
    _names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, penalizer_coef: float = 0.0) -> None:
        self.penalizer_coef = penalizer_coef

    def __getattr__(self, name: str) -> Any:
        # Only called for missing attributes: a fitted attribute before fit is a typed error.
        if name == "predict" and "params_" in self.__dict__:
            # lifetimes sets ``predict`` in ``fit``; a fitter given params_ directly has it too.
            return self.conditional_expected_number_of_purchases_up_to_time
        if name in _FITTED or name in ("summary", "_model"):
            raise _not_fitted(self, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __repr__(self) -> str:
        classname = type(self).__name__
        data = self.__dict__.get("data")
        shape = getattr(data, "shape", None)
        subjects = f" fitted with {shape[0]:d} subjects," if shape else ""
        params = self.__dict__.get("params_")
        if params is None:
            return f"<lifetimes.{classname}>"
        values = ", ".join(f"{k}: {float(v):.2f}" for k, v in sorted(dict(params).items()))
        return f"<lifetimes.{classname}:{subjects} {values}>"

    def _unload_params(self, *names: str) -> list[float]:
        """The fitted parameters named (lifetimes' names), as floats."""
        params = self.__dict__.get("params_")
        if params is None:
            raise _not_fitted(self, "_unload_params")
        missing = [n for n in names if n not in params.index]
        if missing:
            raise InvalidParameterError(
                f"`{missing[0]}` is not a parameter of {type(self).__name__} "
                f"(its parameters: {', '.join(map(str, params.index))})"
            )
        return [float(params[n]) for n in names]

    # -- the clvrs model behind the fitter --------------------------------------------------

    @property
    def _model(self) -> Any:
        """The clvrs model for the current ``params_`` (the fitted one while they are
        unchanged, so its covariance is kept)."""
        values = tuple(self._unload_params(*self._names))
        fitted = self.__dict__.get("_fitted")
        if fitted is not None and tuple(fitted.params_.to_numpy().tolist()) == values:
            return fitted
        cached = self.__dict__.get("_built")
        if cached is not None and cached[0] == values:
            return cached[1]
        clvrs_names = self._model_class._param_names
        try:
            model = self._model_class.from_params(**dict(zip(clvrs_names, values)))
        except InvalidParameterError as err:
            raise InvalidParameterError(f"params_: {err}") from err
        self.__dict__["_built"] = (values, model)
        return model

    def _set_fit(self, model: Any, data: pd.DataFrame, weights: np.ndarray) -> None:
        self._fitted = model
        params = model.params_.to_numpy()
        self.params_ = pd.Series(params, index=list(self._names))
        self.data = data
        self._negative_log_likelihood_ = -float(model.log_likelihood_) / float(np.sum(weights))
        self._set_errors()

    def _set_errors(self) -> None:
        cov = getattr(self.__dict__.get("_fitted"), "covariance_", None)
        names = list(self._names)
        if cov is None:
            matrix = np.full((len(names), len(names)), np.nan)
        else:
            matrix = cov.to_numpy()
        self.variance_matrix_ = pd.DataFrame(matrix, index=names, columns=names)
        self.standard_errors_ = pd.Series(np.sqrt(np.clip(np.diag(matrix), 0, None)), index=names)
        self.confidence_intervals_ = pd.DataFrame(
            {
                "lower 95% bound": self.params_ - 1.96 * self.standard_errors_,
                "upper 95% bound": self.params_ + 1.96 * self.standard_errors_,
            },
            index=names,
        )

    @property
    def summary(self) -> pd.DataFrame:
        """coef, se(coef) and the 95% bounds of each parameter (lifetimes' columns)."""
        if "params_" not in self.__dict__:
            raise _not_fitted(self, "summary")
        if "standard_errors_" not in self.__dict__:
            self._set_errors()
        out = pd.DataFrame(index=self.params_.index)
        out["coef"] = self.params_
        out["se(coef)"] = self.standard_errors_
        out["lower 95% bound"] = self.confidence_intervals_["lower 95% bound"]
        out["upper 95% bound"] = self.confidence_intervals_["upper 95% bound"]
        return out

    def _fit_model(self, weights: np.ndarray, **arrays: Any) -> Any:
        _check_penalizer_coef(self.penalizer_coef)
        model = self._model_class(penalizer=self.penalizer_coef, on_failure="warn")
        model.fit(**arrays, weights=weights)
        return model

    # -- persistence -------------------------------------------------------------------------

    def save_model(
        self,
        path: str | os.PathLike[str],
        save_data: bool = True,
        save_generate_data_method: bool = True,
        values_to_save: Any = None,
    ) -> None:
        """Save the fitter to ``path`` (a JSON document, not lifetimes' dill pickle).

        Parameters
        ----------
        path : str or path-like
            Where to write.
        save_data : bool, default True
            Whether to keep ``data``; if False it is replaced by a placeholder.
        save_generate_data_method : bool, default True
            Whether to keep ``generate_new_data``; if False it is replaced by a placeholder.
        values_to_save : list, optional
            The placeholders, in the order of the attributes left out (default None each).
            They must be JSON values (None, numbers, strings).
        """
        left_out = ["data" * (not save_data),
                    "generate_new_data" * (not save_generate_data_method)]  # fmt: skip
        placeholders = [None] * len(left_out) if values_to_save is None else list(values_to_save)
        replaced = {
            name: _to_json_value(value, name)
            for name, value in zip(left_out, placeholders)
            if name and name in self.__dict__
        }
        attributes: dict[str, Any] = {"penalizer_coef": self.penalizer_coef}
        for name in ("_scale", "_negative_log_likelihood_"):
            if name in self.__dict__:
                attributes[name] = float(self.__dict__[name])
        if "params_" in self.__dict__:
            attributes["params_"] = {str(k): float(v) for k, v in self.params_.items()}
        if "data" in self.__dict__:
            data = self.__dict__["data"]
            if "data" in replaced:
                attributes["data"] = {"placeholder": replaced["data"]}
            elif isinstance(data, pd.DataFrame):
                attributes["data"] = {"frame": _frame_to_json(data)}
            else:
                attributes["data"] = {"placeholder": _to_json_value(data, "data")}
        if "generate_new_data" in self.__dict__:
            attributes["generate_new_data"] = (
                {"placeholder": replaced["generate_new_data"]}
                if "generate_new_data" in replaced
                else {"method": True}
            )
        fitted = self.__dict__.get("_fitted")
        doc = {
            "format": _FORMAT,
            "fitter": type(self).__name__,
            "attributes": attributes,
            "model": None if fitted is None else fitted.to_dict(),
        }
        try:
            text = json.dumps(doc)
        except (TypeError, ValueError) as err:
            raise InvalidDataError(
                f"`data` cannot be written to the model file ({err}): its index labels must be "
                "numbers or strings; pass save_data=False or reset the index"
            ) from None
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)

    def load_model(self, path: str | os.PathLike[str]) -> None:
        """Load a fitter saved by :meth:`save_model` into this one (its attributes replace
        this fitter's, as lifetimes' ``load_model`` does)."""
        try:
            with open(path, encoding="utf-8") as handle:
                doc = json.load(handle)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ModelFileError(
                f"{path}: not a clvrs.lifetimes model file ({err}); files pickled by lifetimes "
                "cannot be read: refit, or copy params_ across"
            ) from None
        if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
            if isinstance(doc, dict) and "model" in doc and "params" in doc:
                # A plain clvrs model document (``model.save``): take its parameters.
                model = _base.load(path)
                if self._model_class is None or type(model) is not self._model_class:
                    raise ModelFileError(
                        f"{path}: holds a clvrs {type(model).__name__}, which a "
                        f"{type(self).__name__} cannot use"
                    )
                for name in _FITTED + ("_fitted", "_built"):
                    self.__dict__.pop(name, None)
                self._fitted = model
                self.params_ = pd.Series(model.params_.to_numpy(), index=list(self._names))
                self._set_errors()
                return
            raise ModelFileError(f"{path}: not a clvrs.lifetimes model file")
        if doc.get("fitter") != type(self).__name__:
            raise ModelFileError(
                f"{path}: holds a {doc.get('fitter')}, not a {type(self).__name__}"
            )
        try:
            state = self._state_from_document(doc, path)
        except ModelFileError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ModelFileError(
                f"{path}: a damaged clvrs.lifetimes model file ({err!r})"
            ) from None
        for name in _FITTED + ("_fitted", "_built"):
            self.__dict__.pop(name, None)
        self.__dict__.update(state)
        if "params_" in state:
            if hasattr(type(self), "conditional_expected_number_of_purchases_up_to_time"):
                self.predict = self.conditional_expected_number_of_purchases_up_to_time  # type: ignore[attr-defined]
            self._set_errors()
        if state.get("generate_new_data", None) is _METHOD:
            self.generate_new_data = self._generate_new_data

    @staticmethod
    def _state_from_document(doc: dict[str, Any], path: Any) -> dict[str, Any]:
        """The attributes a saved document restores (parsed before any is set)."""
        attributes = doc["attributes"]
        state: dict[str, Any] = {"penalizer_coef": attributes["penalizer_coef"]}
        for name in ("_scale", "_negative_log_likelihood_"):
            if name in attributes:
                state[name] = float(attributes[name])
        if doc.get("model") is not None:
            state["_fitted"] = _base.load_document(doc["model"], path)
        if "params_" in attributes:
            state["params_"] = pd.Series(attributes["params_"], dtype=float)
        data = attributes.get("data")
        if data is not None:
            state["data"] = (
                _frame_from_json(data["frame"]) if "frame" in data else data["placeholder"]
            )
        generate = attributes.get("generate_new_data")
        if generate is not None:
            state["generate_new_data"] = (
                _METHOD if "method" in generate else generate["placeholder"]
            )
        return state

    def _generate_new_data(self, size: int = 1) -> pd.DataFrame:  # pragma: no cover - abstract
        raise NotImplementedError


class _RfmFitter(BaseFitter):
    """The fitters on (frequency, recency, T)."""

    def fit(self, frequency: Any, recency: Any, T: Any, weights: Any = None,
            initial_params: Any = None, verbose: bool = False, tol: float = 1e-7,
            index: Any = None, **kwargs: Any) -> Any:  # fmt: skip
        """Fit to (frequency, recency, T[, weights]) arrays (lifetimes' signature).

        ``initial_params``, ``verbose``, ``tol`` and optimiser options (``iterative_fitting``,
        ``fit_method``, ``maxiter``, ...) are accepted and not used: clvrs' fit is a
        deterministic gradient method to its own tolerance. The data are kept in ``data``
        (with ``index`` as its index), as lifetimes does.
        """
        arrays = _fit_inputs(frequency=frequency, recency=recency, T=T)
        n = arrays["T"].size
        w = (
            np.ones(n, dtype=np.int64)
            if weights is None
            else _fit_inputs(weights=weights)["weights"]
        )
        if w.size != n:
            raise InvalidDataError(
                f"`weights` has {w.size} values for {n} customers: give one per customer"
            )
        model = self._fit_model(w, **arrays)
        data = pd.DataFrame(
            {
                "frequency": arrays["frequency"].astype(np.int64),
                "recency": arrays["recency"],
                "T": arrays["T"],
                "weights": w,
            },
            index=index,
        )
        self._scale = float(1.0 / np.max(arrays["T"]))
        self._set_fit(model, data, w)
        self.generate_new_data = self._generate_new_data
        self.predict = self.conditional_expected_number_of_purchases_up_to_time
        return self

    # -- lifetimes' lenient inputs -------------------------------------------------------------

    def _zero_frequency_odds(self, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """(1 - P(alive)) / P(alive) of customers with frequency 0 and recency ``t_x`` > 0."""
        raise NotImplementedError

    def _lenient(self, a: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Inputs the clvrs models accept, and the rows lifetimes accepts that they refuse:
        frequency 0 with recency > 0 (lifetimes evaluates its formulas there)."""
        odd = (a["frequency"] == 0) & (a["recency"] > 0)
        if not odd.any():
            return a, odd
        fixed = dict(a)
        fixed["recency"] = np.where(odd, 0.0, a["recency"])
        return fixed, odd

    def _alive(self, a: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """P(alive) at the lifetimes inputs, at the inputs given to clvrs, and the odd rows."""
        fixed, odd = self._lenient(a)
        model = self._model
        base = np.asarray(
            model.probability_alive(
                frequency=fixed["frequency"], recency=fixed["recency"], T=fixed["T"]
            ),
            dtype=float,
        )
        alive = base.copy()
        if odd.any():
            odds = self._zero_frequency_odds(a["recency"][odd], a["T"][odd])
            alive[odd] = 1.0 / (1.0 + odds)
        return alive, base, odd

    def conditional_expected_number_of_purchases_up_to_time(
        self, t: Any, frequency: Any, recency: Any, T: Any
    ) -> Any:
        """Expected repeat purchases in the next ``t`` for customers with history
        (frequency, recency, T)."""
        a, shaped = _inputs(t=t, frequency=frequency, recency=recency, T=T)
        fixed, odd = self._lenient(a)
        out = np.asarray(
            self._model.expected_purchases(
                t=fixed["t"], frequency=fixed["frequency"], recency=fixed["recency"], T=fixed["T"]
            ),
            dtype=float,
        ).copy()
        if odd.any():
            alive, base, _ = self._alive(a)
            out[odd] *= alive[odd] / base[odd]
        return shaped(out)

    def conditional_probability_alive(self, frequency: Any, recency: Any, T: Any) -> Any:
        """P(alive) of customers with history (frequency, recency, T)."""
        a, shaped = _inputs(frequency=frequency, recency=recency, T=T)
        return shaped(self._alive(a)[0])

    def conditional_probability_alive_matrix(
        self, max_frequency: int | None = None, max_recency: int | None = None
    ) -> np.ndarray:
        """P(alive) on the grid recency 0..max_recency (rows) x frequency 0..max_frequency
        (columns), at age ``max_recency`` (default: the data's largest frequency and age)."""
        grid = {"max_frequency": max_frequency, "max_recency": max_recency}
        for name, value in grid.items():
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, (int, np.integer, float, np.floating))
                or not (np.isfinite(value) and value >= 0 and float(value).is_integer())
            ):
                raise InvalidParameterError(
                    f"{name}: must be a whole number >= 0 (the grid's largest value), got {value!r}"
                )
        if None in grid.values() and self.__dict__.get("data") is None:
            raise InvalidParameterError(
                "max_frequency, max_recency: this fitter has no data (loaded without it): give both"
            )
        if max_frequency is None:
            max_frequency = int(self.data["frequency"].max())
        if max_recency is None:
            max_recency = int(self.data["T"].max())
        max_frequency, max_recency = int(max_frequency), int(max_recency)
        recency, frequency = np.mgrid[0 : max_recency + 1, 0 : max_frequency + 1].astype(float)
        return np.asarray(self.conditional_probability_alive(frequency, recency, max_recency))

    def expected_number_of_purchases_up_to_time(self, t: Any) -> Any:
        """Expected repeat purchases of a new customer in (0, t]."""
        a, shaped = _inputs(t=t)
        return shaped(self._model.expected_purchases_new_customer(a["t"]))

    def probability_of_n_purchases_up_to_time(self, t: Any, n: Any) -> Any:
        """P(N(t) = n): a new customer makes exactly ``n`` repeat purchases in (0, t]."""
        a, shaped = _inputs(t=t, n=n)
        return shaped(self._model.purchase_count_probability(a["n"], a["t"]))

    #: lifetimes' generator of the model in ``clvrs.lifetimes.generate_data`` (ages first,
    #: then the four parameters in ``_names`` order).
    _generator: Any = None

    def _simulate(self, size: int) -> pd.DataFrame:
        p1, p2, p3, p4 = self._unload_params(*self._names)
        return self._generator(self.data["T"].to_numpy(), p1, p2, p3, p4, size=size)

    def _generate_new_data(self, size: int = 1) -> pd.DataFrame:
        """Customers drawn from the fitted model with the fitted customers' ages
        (lifetimes' ``generate_new_data``; uses numpy's global random state)."""
        return self._simulate(size)


class BetaGeoFitter(_RfmFitter):
    """lifetimes' ``BetaGeoFitter`` (BG/NBD) over :class:`clvrs.BetaGeoModel`."""

    _model_class = BetaGeoModel
    _names = ("r", "alpha", "a", "b")
    _generator = staticmethod(_generate.beta_geometric_nbd_model)

    def _zero_frequency_odds(self, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        return np.zeros_like(t_x)  # BG/NBD: no dropout before the first repeat purchase


class ModifiedBetaGeoFitter(_RfmFitter):
    """lifetimes' ``ModifiedBetaGeoFitter`` (MBG/NBD) over :class:`clvrs.ModifiedBetaGeoModel`."""

    _model_class = ModifiedBetaGeoModel
    _names = ("r", "alpha", "a", "b")
    _generator = staticmethod(_generate.modified_beta_geometric_nbd_model)

    def _zero_frequency_odds(self, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        r, alpha, a, b = self._unload_params(*self._names)
        return np.asarray(a / b * np.exp(r * (np.log(alpha + T) - np.log(alpha + t_x))))


class ParetoNBDFitter(_RfmFitter):
    """lifetimes' ``ParetoNBDFitter`` over :class:`clvrs.ParetoNBDModel`."""

    _model_class = ParetoNBDModel
    _names = ("r", "alpha", "s", "beta")
    _generator = staticmethod(_generate.pareto_nbd_model)

    def _zero_frequency_odds(self, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        # With no repeat purchase, the dead part of the likelihood over (t_x, T] is the one
        # over (0, T] less the one over (0, t_x]; each comes from P(alive) of a consistent
        # one-purchase customer of that age: D(0, y) = A(y) (1 / P(alive | 0, 0, y) - 1),
        # A(y) = (alpha / (alpha + y))^r (beta / (beta + y))^s the part alive at y.
        r, alpha, s, beta = self._unload_params(*self._names)
        model = self._model
        zeros = np.zeros_like(t_x)

        def odds0(age: np.ndarray) -> np.ndarray:
            alive = np.asarray(model.probability_alive(frequency=zeros, recency=zeros, T=age))
            return (1.0 - alive) / alive

        log_ratio = r * (np.log(alpha + T) - np.log(alpha + t_x)) + s * (
            np.log(beta + T) - np.log(beta + t_x)
        )
        return np.clip(odds0(T) - np.exp(log_ratio) * odds0(t_x), 0.0, None)

    def conditional_probability_of_n_purchases_up_to_time(
        self, n: Any, t: Any, frequency: Any, recency: Any, T: Any
    ) -> Any:
        """P(n purchases in the next ``t``) for customers with history (frequency, recency, T)."""
        a, shaped = _inputs(n=n, t=t, frequency=frequency, recency=recency, T=T)
        fixed, odd = self._lenient(a)
        positive = a["t"] > 0
        out = np.zeros_like(a["t"])
        if positive.any():
            sel = {k: v[positive] for k, v in fixed.items()}
            out[positive] = np.asarray(
                self._model.conditional_purchase_count_probability(
                    n=sel["n"],
                    t=sel["t"],
                    frequency=sel["frequency"],
                    recency=sel["recency"],
                    T=sel["T"],
                ),  # fmt: skip
                dtype=float,
            )
        if (odd & positive).any():
            # Given alive, the future does not depend on recency: rescale the alive part.
            alive, base, _ = self._alive(a)
            zero = (a["n"] == 0).astype(float)
            rows = odd & positive
            out[rows] = (alive[rows] / base[rows]) * (out[rows] - (1 - base[rows]) * zero[rows]) + (
                1 - alive[rows]
            ) * zero[rows]
        return shaped(out)


class BetaGeoBetaBinomFitter(BaseFitter):
    """lifetimes' ``BetaGeoBetaBinomFitter`` (BG/BB) over :class:`clvrs.BetaGeoBetaBinomModel`."""

    _model_class = BetaGeoBetaBinomModel
    _names = ("alpha", "beta", "gamma", "delta")
    #: lifetimes calls the opportunities ``n_periods`` (clvrs: ``periods``); the model reads a
    #: column of that name, so its errors name the argument the user gave.
    _columns: ClassVar[dict[str, str]] = {"T": "n_periods"}

    def _fit_model(self, weights: np.ndarray, **arrays: Any) -> Any:
        _check_penalizer_coef(self.penalizer_coef)
        model = self._model_class(
            penalizer=self.penalizer_coef, on_failure="warn", columns=dict(self._columns)
        )
        model.fit(pd.DataFrame(arrays), weights=weights)
        return model

    def _mapped(self, a: dict[str, np.ndarray]) -> tuple[Any, pd.DataFrame]:
        """The model reading lifetimes' column names, and the histories as its data."""
        model = self._model
        if model.columns != self._columns:
            model = copy.copy(model).set_params(columns=dict(self._columns))
        frame = pd.DataFrame({k: a[k] for k in ("frequency", "recency", "n_periods")})
        return model, frame

    def fit(self, frequency: Any, recency: Any, n_periods: Any, weights: Any = None,
            initial_params: Any = None, verbose: bool = False, tol: float = 1e-7,
            index: Any = None, **kwargs: Any) -> Any:  # fmt: skip
        """Fit to (frequency, recency, n_periods[, weights]) (lifetimes' signature); the data
        are kept in ``data``."""
        arrays = _fit_inputs(frequency=frequency, recency=recency, n_periods=n_periods)
        n = arrays["n_periods"].size
        w = (
            np.ones(n, dtype=np.int64)
            if weights is None
            else _fit_inputs(weights=weights)["weights"]
        )
        if w.size != n:
            raise InvalidDataError(
                f"`weights` has {w.size} values for {n} customers: give one per customer"
            )
        model = self._fit_model(w, **arrays)
        data = pd.DataFrame(
            {
                "frequency": arrays["frequency"],
                "recency": arrays["recency"],
                "n_periods": arrays["n_periods"],
                "weights": w,
            },
            index=index,
        )
        self._set_fit(model, data, w)
        self.generate_new_data = self._generate_new_data
        self.predict = self.conditional_expected_number_of_purchases_up_to_time
        return self

    def conditional_expected_number_of_purchases_up_to_time(
        self, m_periods_in_future: Any, frequency: Any, recency: Any, n_periods: Any
    ) -> Any:
        """Expected transactions in the next ``m_periods_in_future`` opportunities."""
        a, shaped = _inputs(m=m_periods_in_future, frequency=frequency, recency=recency,
                            n_periods=n_periods)  # fmt: skip
        model, frame = self._mapped(a)
        return shaped(model.expected_purchases(frame, m=a["m"]))

    def conditional_probability_alive(
        self, m_periods_in_future: Any, frequency: Any, recency: Any, n_periods: Any
    ) -> Any:
        """P(alive at opportunity n_periods + m_periods_in_future)."""
        a, shaped = _inputs(m=m_periods_in_future, frequency=frequency, recency=recency,
                            n_periods=n_periods)  # fmt: skip
        model, frame = self._mapped(a)
        return shaped(model.probability_alive(frame, m=a["m"]))

    def expected_number_of_transactions_in_first_n_periods(self, n: int) -> pd.DataFrame:
        """Expected number of customers with each observed frequency after ``n`` opportunities:
        P(X(n) = x) times the number of customers fitted, for the frequencies in ``data``
        (lifetimes' DataFrame: index ``frequency``, column ``model``)."""
        counts = self.data.groupby("frequency")["weights"].sum()
        x = np.asarray(counts.index, dtype=float)
        probs = np.asarray(self._model.purchase_count_probability(x, float(n)), dtype=float)
        index = pd.Index(counts.index, name="frequency")
        return pd.DataFrame({"model": probs * float(counts.sum())}, index=index)

    def _generate_new_data(self, size: int = 1) -> pd.DataFrame:
        periods = np.repeat(
            self.data["n_periods"].to_numpy(), self.data["weights"].to_numpy().astype(np.int64)
        )
        alpha, beta, gamma, delta = self._unload_params(*self._names)
        return _generate.beta_geometric_beta_binom_model(
            periods, alpha, beta, gamma, delta, size=size
        )


class GammaGammaFitter(BaseFitter):
    """lifetimes' ``GammaGammaFitter`` over :class:`clvrs.GammaGammaModel` (lifetimes calls the
    scale parameter ``v``; clvrs ``gamma``)."""

    _model_class = GammaGammaModel
    _names = ("p", "q", "v")

    def fit(self, frequency: Any, monetary_value: Any, weights: Any = None,
            initial_params: Any = None, verbose: bool = False, tol: float = 1e-7,
            index: Any = None, q_constraint: bool = False, **kwargs: Any) -> Any:  # fmt: skip
        """Fit to the repeat buyers' (frequency, monetary_value) (lifetimes' signature).

        With ``q_constraint=True`` a fit with q <= 1 (mean spend infinite) warns
        (:class:`clvrs.exceptions.ModelWarning`); lifetimes bounds q >= 1 instead.
        """
        arrays = _fit_inputs(frequency=frequency, monetary_value=monetary_value)
        n = arrays["frequency"].size
        w = (
            np.ones(n, dtype=np.int64)
            if weights is None
            else _fit_inputs(weights=weights)["weights"]
        )
        if w.size != n:
            raise InvalidDataError(
                f"`weights` has {w.size} values for {n} customers: give one per customer"
            )
        model = self._fit_model(w, **arrays)
        data = pd.DataFrame(
            {"monetary_value": arrays["monetary_value"], "frequency": arrays["frequency"],
             "weights": w},
            index=index,
        )  # fmt: skip
        self._set_fit(model, data, w)
        if q_constraint and self.params_["q"] <= 1:
            warnings.warn(
                f"GammaGammaFitter: q = {self.params_['q']:.4g} <= 1 (mean spend infinite)",
                ModelWarning,
                stacklevel=2,
            )
        return self

    def conditional_expected_average_profit(
        self, frequency: Any = None, monetary_value: Any = None
    ) -> Any:
        """Expected mean spend per transaction of each customer (default: the fitted data)."""
        if frequency is None:
            frequency = self.data["frequency"]
        if monetary_value is None:
            monetary_value = self.data["monetary_value"]
        a, shaped = _inputs(frequency=frequency, monetary_value=monetary_value)
        return shaped(
            self._model.expected_average_spend(
                frequency=a["frequency"], monetary_value=a["monetary_value"]
            )
        )

    def customer_lifetime_value(self, transaction_prediction_model: Any, frequency: Any,
                                recency: Any, T: Any, monetary_value: Any, time: int = 12,
                                discount_rate: float = 0.01, freq: str = "D") -> Any:  # fmt: skip
        """lifetimes' discrete CLV: monthly purchases x expected spend, discounted monthly
        (``freq`` is the data's time unit: 'W', 'M', 'D' or 'H')."""
        from ..utils import _customer_lifetime_value

        spend = self.conditional_expected_average_profit(frequency, monetary_value)
        return _customer_lifetime_value(
            transaction_prediction_model, frequency, recency, T, spend, time=time,
            discount_rate=discount_rate, freq=freq,
        )  # fmt: skip
