"""Type stubs for the native module (checked against the built module by mypy.stubtest)."""

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

__version__: str
__all__ = [
    "__version__",
    "_panic_for_test",
    "abe_predict",
    "abe_sample",
    "bgnbd_dynamic_fit",
    "bgnbd_dynamic_predict",
    "churn_bayes_covariates",
    "churn_dynamic_fit",
    "churn_dynamic_predict",
    "churn_fit",
    "churn_fit_covariates",
    "churn_map",
    "churn_predict",
    "churn_predict_covariates",
    "churn_sample",
    "cnbd_check_litt",
    "cnbd_fit",
    "cnbd_simulate",
    "factorize_text",
    "gamma_gamma_fit",
    "gamma_gamma_fit_covariates",
    "gamma_gamma_map",
    "gamma_gamma_map_covariates",
    "gamma_gamma_population_mean",
    "gamma_gamma_posterior_predict",
    "gamma_gamma_predict",
    "gamma_gamma_predict_covariates",
    "gamma_gamma_sample",
    "gamma_gamma_sample_covariates",
    "ggg_predict",
    "ggg_sample",
    "parse_text_times",
    "period_index",
    "pnbd_dynamic_fit",
    "pnbd_dynamic_predict",
    "resolve_n_jobs",
    "rfm_fit",
    "rfm_fit_covariates",
    "rfm_fit_segments",
    "rfm_map",
    "rfm_new_customer",
    "rfm_posterior_predict",
    "rfm_predict",
    "rfm_sample",
    "rfm_sample_pooled",
    "rfm_sample_segments",
    "rfm_simulate",
    "rfm_weighted_expected_purchases",
    "summarize_transactions",
    "transaction_gaps",
]

_Array = npt.NDArray[np.float64]
_Names = tuple[str, str, str, str]
_Indices = npt.NDArray[np.int64]
#: frequency, recency, T, piece offsets, piece starts, purchase offsets, purchase pieces.
_DynamicCustomers = tuple[_Array, _Array, _Array, _Indices, _Array, _Indices, _Indices]
_Matrix = npt.NDArray[np.float64]
#: Purchase and dropout matrices, their columns' coefficient indices, the columns' names and
#: the coefficients' names.
_Covariates = tuple[_Matrix, _Matrix, list[int], list[int], list[str], list[str], list[str]]

def _panic_for_test(message: str) -> None: ...
def resolve_n_jobs(n_jobs: int | None = None) -> int: ...

#: A frequency column the fit reads in place: float64, or whole numbers of these types.
_Counts = (
    npt.NDArray[np.float64]
    | npt.NDArray[np.int64]
    | npt.NDArray[np.int32]
    | npt.NDArray[np.uint64]
    | npt.NDArray[np.uint32]
)
#: One chunk of an Arrow string column: offsets (int32 or int64), bytes, validity or None.
_TextChunk = tuple[
    npt.NDArray[np.int32] | npt.NDArray[np.int64],
    npt.NDArray[np.uint8],
    npt.NDArray[np.bool_] | None,
]

def rfm_fit(
    model: str,
    frequency: _Counts,
    recency: _Array,
    T: _Array,
    weights: _Array | None,
    names: _Names,
    penalizer: float = 0.0,
    max_iter: int = 0,
    tol: float = 0.0,
    n_jobs: int | None = None,
    start: list[float] | None = None,
) -> dict[str, Any]: ...
def rfm_fit_covariates(
    model: str,
    frequency: _Array,
    recency: _Array,
    T: _Array,
    weights: _Array | None,
    names: _Names,
    covariates: _Covariates,
    penalizer: float = 0.0,
    covariate_penalizer: float = 0.0,
    max_iter: int = 0,
    tol: float = 0.0,
    n_jobs: int | None = None,
) -> dict[str, Any]: ...
def pnbd_dynamic_fit(
    customers: _DynamicCustomers,
    names: _Names,
    covariates: _Covariates,
    penalizer: float = 0.0,
    covariate_penalizer: float = 0.0,
    max_iter: int = 0,
    tol: float = 0.0,
    n_jobs: int | None = None,
) -> dict[str, Any]: ...
def pnbd_dynamic_predict(
    quantity: str,
    params: list[float],
    customers: _DynamicCustomers,
    names: _Names,
    covariates: _Covariates,
    t: _Array,
    n_jobs: int | None = None,
) -> _Array: ...
def bgnbd_dynamic_fit(
    customers: _DynamicCustomers,
    names: _Names,
    covariates: _Covariates,
    penalizer: float = 0.0,
    covariate_penalizer: float = 0.0,
    max_iter: int = 0,
    tol: float = 0.0,
    n_jobs: int | None = None,
) -> dict[str, Any]: ...
def bgnbd_dynamic_predict(
    quantity: str,
    params: list[float],
    customers: _DynamicCustomers,
    names: _Names,
    covariates: _Covariates,
    t: _Array,
    n_jobs: int | None = None,
) -> _Array: ...
def rfm_predict(
    model: str,
    quantity: str,
    params: list[float],
    frequency: _Counts,
    recency: _Array,
    T: _Array,
    names: _Names,
    t: _Array | None = None,
    n: _Array | None = None,
    n_jobs: int | None = None,
    covariates: _Covariates | None = None,
) -> _Array: ...
def rfm_new_customer(
    model: str,
    quantity: str,
    params: list[float],
    t: _Array,
    n: _Array | None = None,
    n_jobs: int | None = None,
    covariates: _Covariates | None = None,
) -> _Array: ...
def gamma_gamma_fit(
    frequency: _Array,
    monetary_value: _Array,
    weights: _Array | None,
    names: tuple[str, str, str],
    penalizer: float = 0.0,
    max_iter: int = 0,
    tol: float = 0.0,
    n_jobs: int | None = None,
) -> dict[str, Any]: ...
def gamma_gamma_predict(
    quantity: str,
    params: list[float],
    frequency: _Array,
    monetary_value: _Array,
    names: tuple[str, str, str],
    n_jobs: int | None = None,
) -> _Array: ...
def gamma_gamma_population_mean(params: list[float]) -> float: ...
def gamma_gamma_fit_covariates(
    frequency: _Array,
    monetary_value: _Array,
    weights: _Array | None,
    names: tuple[str, str, str],
    covariates: _Array,
    covariate_names: list[str],
    coefficient_names: list[str],
    penalizer: float = 0.0,
    covariate_penalizer: float = 0.0,
    max_iter: int = 0,
    tol: float = 0.0,
    n_jobs: int | None = None,
) -> dict[str, Any]: ...
def gamma_gamma_sample_covariates(
    frequency: _Array,
    monetary_value: _Array,
    weights: _Array | None,
    names: tuple[str, str, str],
    covariates: _Array,
    covariate_names: list[str],
    coefficient_names: list[str],
    priors: str,
    settings: _Settings,
    n_jobs: int | None = None,
) -> dict[str, Any]: ...
def gamma_gamma_map_covariates(
    frequency: _Array,
    monetary_value: _Array,
    weights: _Array | None,
    names: tuple[str, str, str],
    covariates: _Array,
    covariate_names: list[str],
    coefficient_names: list[str],
    priors: str,
    max_iter: int = 0,
    tol: float = 0.0,
    n_jobs: int | None = None,
) -> dict[str, Any]: ...
def gamma_gamma_predict_covariates(
    quantity: str,
    params: list[float],
    frequency: _Array,
    monetary_value: _Array,
    names: tuple[str, str, str],
    covariates: _Array,
    covariate_names: list[str],
    n_jobs: int | None = None,
) -> _Array: ...
def rfm_weighted_expected_purchases(
    model: str,
    params: list[float],
    frequency: _Array,
    recency: _Array,
    T: _Array,
    names: _Names,
    horizons: list[float],
    weights: list[float],
    n_jobs: int | None = None,
    covariates: _Covariates | None = None,
) -> _Array: ...
def churn_fit(
    model: str,
    survivors: _Array | None = None,
    periods: _Array | None = None,
    churned: _Array | None = None,
    weights: _Array | None = None,
    penalizer: float = 0.0,
    max_iter: int = 0,
    tol: float = 0.0,
) -> dict[str, Any]: ...

#: The sampler settings: (chains, draws, tune, seed, target_accept, max_depth).
_Settings = tuple[int, int, int, int, float, int]

def rfm_sample(
    model: str,
    frequency: _Array,
    recency: _Array,
    T: _Array,
    weights: _Array | None,
    names: _Names,
    priors: str,
    settings: _Settings,
    n_jobs: int | None = None,
    covariates: _Covariates | None = None,
) -> dict[str, Any]: ...
def rfm_sample_pooled(
    model: str,
    frequency: _Array,
    recency: _Array,
    T: _Array,
    weights: _Array | None,
    codes: npt.NDArray[np.int64],
    n_segments: int,
    names: _Names,
    priors: str,
    settings: _Settings,
    n_jobs: int | None = None,
) -> dict[str, Any]: ...
def rfm_sample_segments(
    model: str,
    frequency: _Array,
    recency: _Array,
    T: _Array,
    weights: _Array | None,
    codes: npt.NDArray[np.int64],
    n_segments: int,
    names: _Names,
    priors: str,
    settings: _Settings,
    seeds: list[int],
    min_customers: float = 0.0,
    n_jobs: int | None = None,
) -> list[dict[str, Any]]: ...
def gamma_gamma_sample(
    frequency: _Array,
    monetary_value: _Array,
    weights: _Array | None,
    names: tuple[str, str, str],
    priors: str,
    settings: _Settings,
    n_jobs: int | None = None,
) -> dict[str, Any]: ...
def churn_sample(
    model: str,
    priors: str,
    settings: _Settings,
    survivors: _Array | None = None,
    periods: _Array | None = None,
    churned: _Array | None = None,
    weights: _Array | None = None,
) -> dict[str, Any]: ...
def rfm_posterior_predict(
    model: str,
    quantity: str,
    draws: npt.NDArray[np.float64],
    frequency: _Array,
    recency: _Array,
    T: _Array,
    names: _Names,
    t: _Array | None = None,
    n: _Array | None = None,
    horizons: list[float] | None = None,
    weights: list[float] | None = None,
    scale: _Array | None = None,
    spend_draws: npt.NDArray[np.float64] | None = None,
    spend_frequency: _Array | None = None,
    spend_monetary: _Array | None = None,
    level: float | None = None,
    bins: int = 512,
    n_jobs: int | None = None,
    covariates: _Covariates | None = None,
) -> dict[str, _Array]: ...
def gamma_gamma_posterior_predict(
    draws: npt.NDArray[np.float64],
    frequency: _Array,
    monetary_value: _Array,
    level: float | None = None,
    bins: int = 512,
    n_jobs: int | None = None,
    quantity: str = "expected_spend",
) -> dict[str, _Array]: ...
def abe_sample(
    frequency: _Array,
    recency: _Array,
    T: _Array,
    design: npt.NDArray[np.float64],
    settings: tuple[int, int, int, int, int, int],
    prior: tuple[float, float, float],
    n_jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]: ...
def abe_predict(
    quantity: str,
    customer: npt.NDArray[np.float32],
    recency: _Array,
    T: _Array,
    t: _Array,
    level: float | None = None,
    bins: int = 512,
    n_jobs: int | None = None,
) -> dict[str, _Array]: ...
def ggg_sample(
    frequency: _Array,
    recency: _Array,
    T: _Array,
    litt: _Array,
    settings: tuple[int, int, int, int, int, int],
    n_jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]: ...
def ggg_predict(
    quantity: str,
    customer: npt.NDArray[np.float32],
    recency: _Array,
    T: _Array,
    t: _Array,
    seed: int,
    level: float | None = None,
    bins: int = 512,
    n_jobs: int | None = None,
) -> dict[str, _Array]: ...
def rfm_map(
    model: str,
    frequency: _Array,
    recency: _Array,
    T: _Array,
    weights: _Array | None,
    names: _Names,
    priors: str,
    max_iter: int = 0,
    tol: float = 0.0,
    n_jobs: int | None = None,
    covariates: _Covariates | None = None,
) -> dict[str, Any]: ...
def gamma_gamma_map(
    frequency: _Array,
    monetary_value: _Array,
    weights: _Array | None,
    names: tuple[str, str, str],
    priors: str,
    max_iter: int = 0,
    tol: float = 0.0,
    n_jobs: int | None = None,
) -> dict[str, Any]: ...
def churn_map(
    model: str,
    priors: str,
    survivors: _Array | None = None,
    periods: _Array | None = None,
    churned: _Array | None = None,
    weights: _Array | None = None,
    max_iter: int = 0,
    tol: float = 0.0,
) -> dict[str, Any]: ...
def churn_predict(
    model: str, quantity: str, params: list[float], t: _Array, k: _Array | None = None
) -> _Array: ...
def churn_fit_covariates(
    model: str,
    periods: _Array,
    churned: _Array,
    weights: _Array | None,
    covariates: _Array,
    covariate_names: list[str],
    coefficient_names: list[str],
    penalizer: float = 0.0,
    covariate_penalizer: float = 0.0,
    max_iter: int = 0,
    tol: float = 0.0,
    n_jobs: int | None = None,
) -> dict[str, Any]: ...
def churn_dynamic_fit(
    model: str,
    customers: tuple[_Array, _Array, _Indices, _Array],
    covariates: _Array,
    covariate_names: list[str],
    coefficient_names: list[str],
    penalizer: float = 0.0,
    covariate_penalizer: float = 0.0,
    max_iter: int = 0,
    tol: float = 0.0,
    n_jobs: int | None = None,
) -> dict[str, Any]: ...
def churn_dynamic_predict(
    model: str,
    quantity: str,
    params: list[float],
    customers: tuple[_Array, _Array, _Indices, _Array],
    covariates: _Array,
    covariate_names: list[str],
    t: _Array,
    covered: _Array,
    n_jobs: int | None = None,
) -> _Array: ...
def churn_bayes_covariates(
    model: str,
    periods: _Array,
    churned: _Array,
    weights: _Array | None,
    covariates: _Array,
    covariate_names: list[str],
    coefficient_names: list[str],
    priors: str,
    settings: _Settings | None = None,
    max_iter: int = 0,
    tol: float = 0.0,
) -> dict[str, Any]: ...
def churn_predict_covariates(
    model: str,
    quantity: str,
    params: list[float],
    covariates: _Array,
    covariate_names: list[str],
    t: _Array,
    k: _Array | None = None,
) -> _Array: ...
def summarize_transactions(
    customer: npt.NDArray[np.int64],
    time_ns: npt.NDArray[np.int64],
    amount: _Array | None,
    n_customers: int,
    names: tuple[str, str, str],
    freq: str = "D",
    freq_multiplier: float = 1.0,
    end_ns: int | None = None,
    include_first: bool = False,
    exclude_after_end: bool = False,
    allow_negative: bool = False,
    after_ns: int | None = None,
    track: bool = False,
    time_unit_ns: int = 1,
    customer_offset: int = 0,
    n_jobs: int | None = None,
) -> dict[str, Any]: ...
def period_index(
    time_ns: npt.NDArray[np.int64], freq: str, time_unit_ns: int = 1
) -> npt.NDArray[np.int64]: ...
def factorize_text(
    chunks: list[_TextChunk], column: str, n_jobs: int | None = None
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]: ...
def parse_text_times(
    chunks: list[_TextChunk], column: str, format: str, n_jobs: int | None = None
) -> npt.NDArray[np.int64] | None: ...
def rfm_fit_segments(
    model: str,
    frequency: _Array,
    recency: _Array,
    T: _Array,
    weights: _Array | None,
    segment: npt.NDArray[np.int64],
    n_segments: int,
    names: _Names,
    min_customers: float = 1.0,
    penalizer: float = 0.0,
    max_iter: int = 0,
    tol: float = 0.0,
    n_jobs: int | None = None,
) -> list[dict[str, Any]]: ...
def rfm_simulate(
    model: str, params: list[float], T: _Array, seed: int
) -> tuple[_Array, _Array]: ...
def cnbd_fit(
    model: str,
    frequency: _Array,
    recency: _Array,
    T: _Array,
    weights: _Array | None,
    litt: _Array | None,
    names: _Names,
    litt_name: str = "litt",
    k: float | None = None,
    max_k: float = 12.0,
    penalizer: float = 0.0,
    max_iter: int = 0,
    tol: float = 0.0,
    n_jobs: int | None = None,
) -> dict[str, Any]: ...
def cnbd_check_litt(
    frequency: _Array,
    recency: _Array,
    T: _Array,
    weights: _Array | None,
    litt: _Array,
    names: _Names,
    litt_name: str = "litt",
) -> None: ...
def cnbd_simulate(
    model: str, params: list[float], T: _Array, seed: int
) -> tuple[_Array, _Array, _Array]: ...
def transaction_gaps(
    customer: npt.NDArray[np.int64],
    time_ns: npt.NDArray[np.int64],
    n_customers: int,
    freq: str,
    freq_multiplier: float,
    end_period: int,
    after_ns: int | None = None,
    time_unit_ns: int = 1,
    customer_offset: int = 0,
    n_jobs: int | None = None,
) -> dict[str, _Array]: ...
