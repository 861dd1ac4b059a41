"""Every Python block of the user guide and the ETL page runs, in order, per page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.mark.parametrize("page", ["user_guide.md", "etl.md"])
def test_page_runs(page: str) -> None:
    pytest.importorskip("matplotlib")
    pytest.importorskip("dask.dataframe")
    text = (DOCS / page).read_text(encoding="utf-8")
    namespace: dict = {}
    for index, block in enumerate(re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)):
        exec(compile(block, f"{page}[python {index}]", "exec"), namespace)
