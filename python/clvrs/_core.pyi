"""Type stubs for the native module (checked against the built module by mypy.stubtest)."""

from typing import Any

import numpy as np
import numpy.typing as npt

__version__: str
__all__ = [
    "__version__",
    "_panic_for_test",
    "bgnbd_expected_purchases",
    "bgnbd_expected_purchases_new_customer",
    "bgnbd_fit",
    "bgnbd_log_likelihood",
    "bgnbd_probability_alive",
    "bgnbd_purchase_count_probability",
    "resolve_n_jobs",
]

_Array = npt.NDArray[np.float64]
_Names = tuple[str, str, str, str]

def _panic_for_test(message: str) -> None: ...
def resolve_n_jobs(n_jobs: int | None = None) -> int: ...
def bgnbd_fit(
    frequency: _Array,
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
def bgnbd_log_likelihood(
    params: list[float],
    frequency: _Array,
    recency: _Array,
    T: _Array,
    names: _Names,
    n_jobs: int | None = None,
) -> _Array: ...
def bgnbd_probability_alive(
    params: list[float],
    frequency: _Array,
    recency: _Array,
    T: _Array,
    names: _Names,
    n_jobs: int | None = None,
) -> _Array: ...
def bgnbd_expected_purchases(
    params: list[float],
    frequency: _Array,
    recency: _Array,
    T: _Array,
    t: _Array,
    names: _Names,
    n_jobs: int | None = None,
) -> _Array: ...
def bgnbd_expected_purchases_new_customer(
    params: list[float], t: _Array, n_jobs: int | None = None
) -> _Array: ...
def bgnbd_purchase_count_probability(
    params: list[float], n: _Array, t: _Array, n_jobs: int | None = None
) -> _Array: ...
