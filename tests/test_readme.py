"""The README's examples run, and its two set-up commands are the ones CI and users run."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import clvrs

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


@pytest.mark.parametrize("index", range(len(_blocks("python"))))
def test_python_examples_run(index: int) -> None:
    exec(compile(_blocks("python")[index], f"README.md[python {index}]", "exec"), {})


def test_ci_runs_the_readme_test_command() -> None:
    bash = _blocks("bash")
    assert bash[0].strip() == "pip install . && python -m clvrs"
    readme_test_command = bash[1].strip()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert readme_test_command in ci.splitlines()


def test_error_example_matches_the_real_message() -> None:
    frequency = np.zeros(20)
    recency = np.zeros(20)
    T = np.full(20, 38.0)
    frequency[17], recency[17] = 3, 40.0
    with pytest.raises(clvrs.InvalidDataError) as info:
        clvrs.BetaGeoModel().fit(frequency=frequency, recency=recency, T=T)
    assert f"InvalidDataError: {info.value}" in README
