"""Bundled reference data sets.

Origin: the public teaching data sets that Peter Fader and Bruce Hardie distribute with their
papers and notes (brucehardie.com), as shipped (byte for byte) in the MIT-licensed ``lifetimes``
0.11.3 wheel.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

__all__ = ["load_cdnow_summary", "load_cdnow_transactions", "load_donations"]


def _path(name: str) -> str:
    return str(resources.files(__name__) / "data" / name)


def load_cdnow_summary() -> pd.DataFrame:
    """CDNOW customer summaries over the 39-week calibration period (weeks).

    The 1/10th systematic sample (2,357 customers) of the cohort that first bought at the online
    music retailer CDNOW in the first quarter of 1997, summarised over 1997-01-01 .. 1997-09-30
    as in Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way", *Marketing Science*
    24(2), and Fader, Hardie & Lee (2005), "RFM and CLV", *Journal of Marketing Research* 42(4).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``customer_id`` (1 .. 2357), with columns ``frequency`` (repeat purchases),
        ``recency`` (weeks from the first to the last repeat purchase), ``T`` (weeks from the
        first purchase to 1997-09-30) and ``monetary_value`` (mean dollar value of the repeat
        purchases, 0 when there are none).
    """
    frame = pd.read_csv(_path("cdnow_customers_summary_with_transactions.csv"))
    frame = frame.rename(
        columns={"ID": "customer_id", "x": "frequency", "t_x": "recency", "zbar": "monetary_value"}
    )
    frame["frequency"] = frame["frequency"].astype("int64")
    return frame.set_index("customer_id")


def load_cdnow_transactions(sample: bool = True) -> pd.DataFrame:
    """The CDNOW transaction log, 1997-01-01 .. 1998-06-30.

    Parameters
    ----------
    sample : bool, default True
        True: the 1/10th sample used in the BG/NBD paper (2,357 customers, 6,919 rows).
        False: the full cohort (23,570 customers, 69,659 rows).

    Returns
    -------
    pandas.DataFrame
        Columns ``customer_id`` (int; the sample's 1 .. 2357 ids for the sample, the master ids
        otherwise), ``date`` (datetime64), ``quantity`` (number of CDs) and ``amount`` (US$).
        Several rows can share a customer and a date.
    """
    if sample:
        frame = pd.read_csv(
            _path("CDNOW_sample.txt"),
            sep=r"\s+",
            header=None,
            names=["master_id", "customer_id", "date", "quantity", "amount"],
            dtype={"date": str},
        ).drop(columns="master_id")
    else:
        frame = pd.read_csv(
            _path("CDNOW_master.txt.gz"),
            sep=r"\s+",
            dtype={"date": str},
        ).rename(columns={"number_of_cds": "quantity", "dollar_value": "amount"})
    frame["customer_id"] = frame["customer_id"].astype("int64")
    frame["date"] = pd.to_datetime(frame["date"], format="%Y%m%d")
    return frame[["customer_id", "date", "quantity", "amount"]]


def load_donations() -> pd.DataFrame:
    """Donation histories of 11,104 first-time supporters of a non-profit (discrete time).

    The 1995 cohort of Fader, Hardie & Shang (2010), "Customer-Base Analysis in a Discrete-Time
    Noncontractual Setting", *Marketing Science* 29(6): whether each donor gave in each of the 6
    annual opportunities 1996 .. 2001, as 22 distinct (frequency, recency) patterns.

    Returns
    -------
    pandas.DataFrame
        Columns ``frequency`` (repeat donations, 0 .. 6), ``recency`` (opportunity of the last
        repeat donation, 0 if none), ``periods`` (6) and ``weights`` (donors with the pattern).
    """
    return pd.read_csv(_path("donations.csv"))
