"""How result objects show themselves: a few lines of text (``repr``) and an HTML block for
notebooks (``_repr_html_``, in the style of :meth:`clvrs._base.BaseModel._repr_html_`), with
tables cut to a few rows and counts shown as whole numbers."""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

#: Rows of a table shown in text; in HTML.
TEXT_ROWS = 5
HTML_ROWS = 20


def whole(values: Any) -> Any:
    """Counts as integers: a float Series, or column, whose values are all whole numbers (a
    sum of integer weights, counts read back from JSON) as int64; anything else unchanged."""
    series = pd.Series(values)
    if series.dtype.kind != "f" or not len(series):
        return values
    numbers = series.to_numpy()
    if not (np.all(np.isfinite(numbers)) and np.all(numbers == np.round(numbers))):
        return values
    if np.max(np.abs(numbers)) >= 2.0**53:
        return values
    out = series.astype(np.int64)
    return out if isinstance(values, pd.Series) else out.to_numpy()


def whole_columns(frame: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """A copy of ``frame`` with each named count column as integers where it holds whole
    numbers (see :func:`whole`)."""
    frame = frame.copy()
    for column in columns:
        if column in frame.columns:
            frame[column] = whole(frame[column])
    return frame


def number(value: Any) -> str:
    """A count as ``2357``, any other number to 4 significant digits."""
    value = float(value)
    if np.isfinite(value) and value == round(value) and abs(value) < 1e15:
        return f"{int(value)}"
    return f"{value:.4g}"


def text_table(
    frame: pd.DataFrame, rows: int = TEXT_ROWS, what: str = "rows", total: int | None = None
) -> str:
    """The first ``rows`` rows as text, with a line saying how many more there are (of
    ``total``, when ``frame`` holds only the first rows)."""
    total = len(frame) if total is None else total
    shown = frame.head(rows).to_string()
    if total > min(rows, len(frame)):
        shown += f"\n... {total - min(rows, len(frame))} more {what}"
    return shown


def html_table(
    frame: pd.DataFrame, rows: int = HTML_ROWS, what: str = "rows", total: int | None = None
) -> str:
    """The first ``rows`` rows as an HTML table, with a line saying how many more there are
    (of ``total``, when ``frame`` holds only the first rows)."""
    total = len(frame) if total is None else total
    shown = frame.head(rows).to_html(float_format=lambda v: f"{v:.6g}")
    if total > min(rows, len(frame)):
        shown += f"<p>... {total - min(rows, len(frame))} more {html.escape(what)}</p>"
    return shown


def html_block(name: str, lines: Iterable[str], *tables: str) -> str:
    """``<strong>name</strong>``, a paragraph of (escaped) lines, then the tables' HTML."""
    text = "<br>".join(html.escape(line) for line in lines)
    return f"<strong>{html.escape(name)}</strong><p>{text}</p>{''.join(tables)}"
