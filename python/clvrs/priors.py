"""Prior distributions for Bayesian fits (``fit(..., method="nuts", priors={...})``).

Each class is one named distribution of a parameter on its natural scale; the dict handed to
``fit`` maps a parameter name to one of them, or a pair of names (the two shapes of a beta
mixing distribution, e.g. ``("a", "b")``) to a :class:`MeanPrecision`. Parameters without an
entry get the model's default prior (see "Default priors" below).

Default priors
--------------
Every positive parameter without a given prior gets ``LogNormal(mu=ln s, sigma=2)``, where
``s`` is the model's own data-derived starting value: 1 for the dimensionless shapes
(``r``, ``a``, ``b``, ``s``, the BG/BB, sBG and BdW shapes, Gamma-Gamma's ``p``; 2 for its
``q``) and a data scale for the parameters that carry units (``alpha`` of the NBD models and
Pareto/NBD's ``beta``: the repeat buyers' mean time between purchases and the customers'
mean age; Gamma-Gamma's ``gamma``: the mean spend; GGompertz/NBD's ``b``: 0.1 over the mean
age). Why:

* weakly informative: 95% of the prior mass lies within a factor of 50 either side of ``s``,
  which covers every published estimate of these models (CDNOW BG/NBD r 0.24, a 0.79,
  b 2.4; donations BG/BB 0.66 to 2.8; sBG 0.67 to 3.8; Gamma-Gamma p 6.25, q 3.74) while
  keeping the sampler away from the plateaus where a shape runs off to 0 or infinity (which
  a flat prior allows on small data);
* the same in any unit: PyMC-Marketing's defaults (``Weibull(2, 10)`` on ``alpha``,
  ``Weibull(2, 1)`` on ``r``) are written for weekly data; on daily data the same customers
  have an ``alpha`` seven times larger, where ``Weibull(2, 10)`` has almost no mass
  (P(alpha > 30) = 1e-4). Centring unit-bearing scales on the data's own scale makes the
  prior say the same thing in days, weeks or cents;
* symmetric on the log scale, which is the scale the sampler moves on.

The defaults depend on the data only through these summary scales (not through the fit). A
prior that must not depend on the data at all (simulation-based calibration, published
comparisons) is given explicitly. :func:`pymc_marketing` returns PyMC-Marketing 0.19's default
priors for a model, to compare posteriors with it.
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import asdict, dataclass, fields
from typing import Any, Union

__all__ = [
    "Beta",
    "Flat",
    "Gamma",
    "HalfCauchy",
    "HalfNormal",
    "HalfStudentT",
    "LogNormal",
    "MeanPrecision",
    "Normal",
    "Pareto",
    "Prior",
    "Uniform",
    "Weibull",
    "pymc_marketing",
]


def _bad(message: str) -> Exception:
    from ._base import _bad_parameter

    return _bad_parameter("priors", message)


@dataclass(frozen=True)
class Prior:
    """Base of the prior distributions (not used directly)."""

    #: The core's name of the distribution.
    _dist = ""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if (
                isinstance(value, bool)
                or not isinstance(value, numbers.Real)
                or not math.isfinite(value)
            ):
                raise _bad(
                    f"{type(self).__name__}: {f.name} must be a finite number, got {value!r}"
                )
            object.__setattr__(self, f.name, float(value))

    def _document(self) -> dict[str, Any]:
        return {"dist": self._dist, **asdict(self)}


@dataclass(frozen=True)
class Flat(Prior):
    """The constant (improper) density on the parameter's domain: the posterior is the
    normalised likelihood (its mode is the maximum-likelihood estimate).

    The posterior is proper only where the likelihood falls off fast enough. It does not for
    the shapes of a mixing distribution: as both grow with their ratio fixed, the mixing
    distribution collapses to a point and the likelihood tends to that of a homogeneous
    population, which is positive. Flat priors on Pareto/NBD's ``s`` and ``beta`` (or on a
    beta pair such as BG/NBD's ``a`` and ``b``) leave infinite mass along that ridge: on
    CDNOW, Pareto/NBD chains run off along it, and BG/NBD's ``a`` and ``b`` have posterior
    means about one standard error above the MLE. Use flat priors on large data or on
    well-identified parameters, and a proper prior (the defaults) otherwise."""

    _dist = "flat"


@dataclass(frozen=True)
class Gamma(Prior):
    """Gamma with ``shape`` and ``rate`` (mean ``shape / rate``)."""

    shape: float
    rate: float
    _dist = "gamma"


@dataclass(frozen=True)
class HalfNormal(Prior):
    """The absolute value of a normal with standard deviation ``sigma``."""

    sigma: float
    _dist = "half_normal"


@dataclass(frozen=True)
class HalfCauchy(Prior):
    """The absolute value of a Cauchy with scale ``scale``."""

    scale: float
    _dist = "half_cauchy"


@dataclass(frozen=True)
class HalfStudentT(Prior):
    """The absolute value of a Student-t with ``nu`` degrees of freedom and scale ``sigma``."""

    nu: float
    sigma: float
    _dist = "half_student_t"


@dataclass(frozen=True)
class LogNormal(Prior):
    """``exp(N(mu, sigma^2))``."""

    mu: float
    sigma: float
    _dist = "lognormal"


@dataclass(frozen=True)
class Weibull(Prior):
    """Weibull with ``shape`` k and ``scale`` lambda (PyMC's ``Weibull(alpha=k, beta=lambda)``)."""

    shape: float
    scale: float
    _dist = "weibull"


@dataclass(frozen=True)
class Pareto(Prior):
    """Pareto with tail index ``alpha`` on ``[m, inf)``."""

    alpha: float
    m: float
    _dist = "pareto"


@dataclass(frozen=True)
class Normal(Prior):
    """Normal with mean ``mu`` and standard deviation ``sigma`` (covariate coefficients)."""

    mu: float
    sigma: float
    _dist = "normal"


@dataclass(frozen=True)
class Beta(Prior):
    """Beta(a, b) on (0, 1) (probabilities)."""

    a: float
    b: float
    _dist = "beta"


@dataclass(frozen=True)
class Uniform(Prior):
    """Uniform on ``(lower, upper)``."""

    lower: float
    upper: float
    _dist = "uniform"


@dataclass(frozen=True)
class MeanPrecision:
    """A joint prior of the two shapes ``(a, b)`` of a beta mixing distribution through its
    mean ``phi = a / (a + b)`` and precision ``kappa = a + b``: ``phi ~ mean``,
    ``kappa ~ precision`` (PyMC-Marketing's parameterisation of the BG/NBD dropout and the
    BG/BB and sBG shapes). Key it by the pair of names: ``{("a", "b"): MeanPrecision(...)}``.
    """

    mean: Prior
    precision: Prior

    def __post_init__(self) -> None:
        for name in ("mean", "precision"):
            if not isinstance(getattr(self, name), Prior):
                raise _bad(
                    f"MeanPrecision: {name} must be a prior (e.g. Uniform(0, 1)), got "
                    f"{getattr(self, name)!r}"
                )


PriorSpec = Union[Prior, MeanPrecision]

_BY_NAME: dict[str, type[Prior]] = {
    cls._dist: cls
    for cls in (
        Flat,
        Gamma,
        HalfNormal,
        HalfCauchy,
        HalfStudentT,
        LogNormal,
        Weibull,
        Pareto,
        Normal,
        Beta,
        Uniform,
    )
}


def _prior_from_document(doc: dict[str, Any]) -> Prior:
    doc = dict(doc)
    cls = _BY_NAME[doc.pop("dist")]
    return cls(**doc)


def terms_json(priors: Any, names: list[str]) -> str:
    """The core's prior terms (JSON) for the user's ``priors`` dict over ``names``."""
    if priors is None:
        return "[]"
    if not isinstance(priors, dict):
        raise _bad(
            "must be a dict of parameter name (or a pair of names) to a prior from "
            f"clvrs.priors, got {type(priors).__name__}"
        )
    terms = []
    for key, prior in priors.items():
        if isinstance(key, tuple):
            if not (len(key) == 2 and all(isinstance(k, str) for k in key)):
                raise _bad(f"a joint prior is keyed by two parameter names, got {key!r}")
            if not isinstance(prior, MeanPrecision):
                raise _bad(f"{key}: a pair of parameters takes a MeanPrecision prior")
            for k in key:
                if k not in names:
                    raise _bad(f"unknown parameter {k!r}; the parameters are {names}")
            terms.append(
                {
                    "kind": "mean_precision",
                    "first": names.index(key[0]),
                    "second": names.index(key[1]),
                    "mean": prior.mean._document(),
                    "precision": prior.precision._document(),
                }
            )
            continue
        if not isinstance(key, str) or key not in names:
            raise _bad(f"unknown parameter {key!r}; the parameters are {names}")
        if not isinstance(prior, Prior):
            raise _bad(
                f"{key}: must be a prior from clvrs.priors (e.g. clvrs.priors.Gamma(2, 1)), "
                f"got {prior!r}"
            )
        terms.append({"kind": "single", "index": names.index(key), "prior": prior._document()})
    return json.dumps(terms)


def from_terms(terms: list[dict[str, Any]], names: list[str]) -> dict[Any, PriorSpec]:
    """The user-facing priors dict from the core's terms."""
    out: dict[Any, PriorSpec] = {}
    for term in terms:
        if term["kind"] == "single":
            out[names[term["index"]]] = _prior_from_document(term["prior"])
        else:
            out[(names[term["first"]], names[term["second"]])] = MeanPrecision(
                _prior_from_document(term["mean"]), _prior_from_document(term["precision"])
            )
    return out


def pymc_marketing(model: Any) -> dict[Any, PriorSpec]:
    """PyMC-Marketing 0.19's default priors for ``model`` (an estimator class or instance),
    to compare posteriors with it on the same priors.

    BG/NBD and MBG/NBD: ``r ~ Weibull(2, 1)``, ``alpha ~ Weibull(2, 10)``, and the dropout
    shapes through ``phi ~ Uniform(0, 1)``, ``kappa ~ Pareto(1, 1)``; Pareto/NBD:
    ``Weibull(2, 1)`` on ``r`` and ``s``, ``Weibull(2, 10)`` on ``alpha`` and ``beta``;
    BG/BB: both pairs of shapes through ``Uniform(0, 1)`` means and ``Pareto(1, 1)``
    precisions; sBG: the same for ``(alpha, beta)``; Gamma-Gamma: flat priors on ``p``,
    ``q``, ``gamma`` (PyMC's ``HalfFlat``).
    """
    cls = model if isinstance(model, type) else type(model)
    name = cls.__name__
    beta_pair = MeanPrecision(Uniform(0.0, 1.0), Pareto(1.0, 1.0))
    table: dict[str, dict[Any, PriorSpec]] = {
        "BetaGeoModel": {
            "r": Weibull(2.0, 1.0),
            "alpha": Weibull(2.0, 10.0),
            ("a", "b"): beta_pair,
        },
        "ParetoNBDModel": {
            "r": Weibull(2.0, 1.0),
            "alpha": Weibull(2.0, 10.0),
            "s": Weibull(2.0, 1.0),
            "beta": Weibull(2.0, 10.0),
        },
        "BetaGeoBetaBinomModel": {("alpha", "beta"): beta_pair, ("gamma", "delta"): beta_pair},
        "ShiftedBetaGeoModel": {("alpha", "beta"): beta_pair},
        "GammaGammaModel": {"p": Flat(), "q": Flat(), "gamma": Flat()},
    }
    table["ModifiedBetaGeoModel"] = table["BetaGeoModel"]
    if name not in table:
        raise _bad(f"PyMC-Marketing has no default priors for {name}")
    return dict(table[name])
