"""lifetimes' ``datasets`` loaders, reading the copies of lifetimes' data files that clvrs
bundles (the same bytes: CDNOW sample and master logs, the CDNOW summaries, the donations).

lifetimes' ``example_transactions.csv`` (a synthetic log) is not bundled:
:func:`load_transaction_data` says so (draw a log with
:func:`clvrs.lifetimes.generate_data.beta_geometric_nbd_model_transactional_data` instead).
"""

from __future__ import annotations

import gzip
import io
from typing import Any

import pandas as pd

from .. import datasets as _datasets
from ..exceptions import InvalidParameterError

__all__ = [
    "load_cdnow_summary",
    "load_cdnow_summary_data_with_monetary_value",
    "load_dataset",
    "load_donations",
    "load_transaction_data",
]

#: lifetimes' file names -> clvrs' bundled files.
_FILES = {
    "CDNOW_sample.txt": "CDNOW_sample.txt",
    "CDNOW_master.txt": "CDNOW_master.txt.gz",
    "cdnow_customers_summary.csv": "cdnow_customers_summary.csv",
    **{name: name for name in ("cdnow_customers_summary_with_transactions.csv",)},
    "donations.csv": "donations.csv",
}


def load_dataset(filename: str, **kwargs: Any) -> pd.DataFrame:
    """Read one of lifetimes' data files with ``pandas.read_csv(**kwargs)`` (as lifetimes
    does: no parsing beyond what ``kwargs`` ask for).

    Parameters
    ----------
    filename : str
        One of ``CDNOW_sample.txt``, ``CDNOW_master.txt``, ``cdnow_customers_summary.csv``,
        ``cdnow_customers_summary_with_transactions.csv``, ``donations.csv``.
    **kwargs
        Passed to :func:`pandas.read_csv`.
    """
    if filename == "example_transactions.csv":
        return load_transaction_data(**kwargs)
    if filename not in _FILES:
        raise InvalidParameterError(
            f"`filename`: clvrs bundles no {filename!r}; the files it has are "
            f"{', '.join(sorted(_FILES))}"
        )
    path = _datasets._path(_FILES[filename])
    if path.endswith(".gz"):
        with gzip.open(path, "rt") as handle:
            return pd.read_csv(io.StringIO(handle.read()), **kwargs)
    return pd.read_csv(path, **kwargs)


def load_transaction_data(**kwargs: Any) -> pd.DataFrame:
    """lifetimes' synthetic example log is not bundled with clvrs; this raises.

    Raises
    ------
    InvalidParameterError
        Always, naming the replacement: a log drawn by
        ``generate_data.beta_geometric_nbd_model_transactional_data`` or clvrs' own CDNOW
        log (``load_dataset("CDNOW_sample.txt", ...)``).
    """
    raise InvalidParameterError(
        "load_transaction_data: lifetimes' synthetic example_transactions.csv is not bundled "
        "with clvrs; draw a log with clvrs.lifetimes.generate_data."
        "beta_geometric_nbd_model_transactional_data(...) or use the CDNOW log "
        "(clvrs.lifetimes.datasets.load_dataset('CDNOW_sample.txt', header=None, sep=r'\\s+'))"
    )


def load_donations(**kwargs: Any) -> pd.DataFrame:
    """The donations data: columns frequency, recency, periods, weights (as lifetimes)."""
    return load_dataset("donations.csv", **kwargs)


def load_cdnow_summary(**kwargs: Any) -> pd.DataFrame:
    """CDNOW summaries (columns ID, frequency, recency, T; weeks), as lifetimes reads them."""
    return load_dataset("cdnow_customers_summary.csv", **kwargs)


def load_cdnow_summary_data_with_monetary_value(**kwargs: Any) -> pd.DataFrame:
    """CDNOW summaries with ``monetary_value`` (mean spend of repeat purchases), indexed by
    ``customer_id``."""
    frame = load_dataset("cdnow_customers_summary_with_transactions.csv", **kwargs)
    frame.columns = ["customer_id", "frequency", "recency", "T", "monetary_value"]
    return frame.set_index("customer_id")
