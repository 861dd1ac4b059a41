#!/usr/bin/env python3
"""Run lifetimes' own test suite against :mod:`clvrs.lifetimes`.

lifetimes' tests (its ``tests/`` directory at v0.11.3) are the reference for what a drop-in must
do. CI has no network, so they are not vendored into clvrs and not part of ``pytest tests``;
this script runs them on demand from a lifetimes checkout::

    git clone https://github.com/CamDavidsonPilon/lifetimes && git -C lifetimes checkout v0.11.3
    python bench/run_lifetimes_suite.py lifetimes            # [extra pytest arguments]

What it does, in a fresh temporary directory (nothing is written to either checkout):

- copies the checkout's ``tests/*.py`` (test_estimation, test_utils, test_generate_data,
  test_plotting and lifetimes' conftest) into ``<tmp>/tests``;
- writes ``<tmp>/conftest.py``, which makes ``import lifetimes`` (and ``lifetimes.utils``,
  ``.datasets``, ``.plotting``, ``.generate_data``, ``.fitters``) resolve to
  ``clvrs.lifetimes`` before any test module is imported, and marks each test listed in
  ``clvrs.lifetimes.EXEMPT_TESTS`` as an expected failure with its reason (non-strict: an
  exempted test that passes is reported as XPASS);
- restores, for the test process only, three pandas APIs the 2019 test code calls and pandas
  2/3 removed (``pandas.util.testing``, ``DataFrame.append`` and ``float()`` of a one-element
  Series); these are test-harness fixes, not part of the shim;
- links ``<tmp>/lifetimes/datasets`` files that some tests read by relative path:
  ``CDNOW_sample.txt`` from clvrs' bundled data, and ``example_transactions.csv`` (lifetimes'
  synthetic test log, which clvrs does not bundle) from the checkout;
- runs pytest there and prints the counts: passed, exempt (xfailed), exempt-but-passing
  (xpassed), failed, errors.

With ``--example-log``, ``load_transaction_data`` reads the checkout's
``example_transactions.csv`` in the test process, and the tests exempted only for want of that
file run as ordinary tests (a check of the shim on lifetimes' data; clvrs itself does not ship
the file, so the exemptions stand).

The exit status is pytest's (0 when everything not exempt passes).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SUITE = ["test_estimation.py", "test_utils.py", "test_generate_data.py", "test_plotting.py"]

CONFTEST = '''
"""Test-harness glue written by clvrs' bench/run_lifetimes_suite.py (not lifetimes code)."""
import os
import sys
import types

import pandas as pd
import pytest

import clvrs.lifetimes as _shim
import clvrs.lifetimes.datasets
import clvrs.lifetimes.fitters
import clvrs.lifetimes.generate_data
import clvrs.lifetimes.plotting
import clvrs.lifetimes.utils

sys.modules["lifetimes"] = _shim
for _name in ("datasets", "fitters", "generate_data", "plotting", "utils"):
    sys.modules["lifetimes." + _name] = getattr(_shim, _name)

# pandas 2 removed these; lifetimes' 2019 tests call them.
if "pandas.util.testing" not in sys.modules:
    _testing = types.ModuleType("pandas.util.testing")
    _testing.assert_frame_equal = pd.testing.assert_frame_equal
    _testing.assert_series_equal = pd.testing.assert_series_equal
    sys.modules["pandas.util.testing"] = _testing
if not hasattr(pd.DataFrame, "append"):
    def _append(self, other, ignore_index=False):
        return pd.concat([self, other], ignore_index=ignore_index)
    pd.DataFrame.append = _append
if not hasattr(pd.Series, "__float__"):  # pandas 3: float() of a one-element Series
    def _float(self):
        if len(self) != 1:
            raise TypeError("only a one-element Series converts to float")
        return float(self.iloc[0])
    pd.Series.__float__ = _float


_EXAMPLE_LOG = os.environ.get("LIFETIMES_SUITE_EXAMPLE_LOG")
if _EXAMPLE_LOG:  # --example-log: the checkout's synthetic log, for the tests that load it
    def _load_transaction_data(**kwargs):
        return pd.read_csv(_EXAMPLE_LOG, **kwargs)
    _shim.datasets.load_transaction_data = _load_transaction_data


def pytest_configure(config):
    config.addinivalue_line("markers", "plottest: lifetimes' plotting tests")


def pytest_collection_modifyitems(config, items):
    for item in items:
        key = item.nodeid.split("tests/", 1)[-1]
        base = key.split("[", 1)[0]
        reason = _shim.EXEMPT_TESTS.get(key) or _shim.EXEMPT_TESTS.get(base)
        if reason and _EXAMPLE_LOG and "load_transaction_data" in reason:
            continue
        if reason:
            item.add_marker(pytest.mark.xfail(reason="exempt: " + reason, strict=False))
'''


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", help="path to a lifetimes checkout (v0.11.3)")
    parser.add_argument("pytest_args", nargs="*", help="extra arguments for pytest")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--example-log",
        action="store_true",
        help="also run the tests exempted for want of lifetimes' example_transactions.csv, "
        "with load_transaction_data reading the checkout's copy (a check, not shim behaviour)",
    )
    args = parser.parse_args()

    checkout = Path(args.checkout).resolve()
    tests = checkout / "tests"
    if not all((tests / name).is_file() for name in SUITE):
        parser.error(f"{tests} does not hold lifetimes' tests ({', '.join(SUITE)})")

    import clvrs.datasets

    bundled = Path(clvrs.datasets.__file__).parent / "data"
    tmp = Path(tempfile.mkdtemp(prefix="lifetimes_suite_"))
    try:
        (tmp / "tests").mkdir()
        for source in tests.glob("*.py"):
            shutil.copy(source, tmp / "tests" / source.name)
        (tmp / "conftest.py").write_text(CONFTEST)
        data = tmp / "lifetimes" / "datasets"
        data.mkdir(parents=True)
        os.symlink(bundled / "CDNOW_sample.txt", data / "CDNOW_sample.txt")
        example = checkout / "lifetimes" / "datasets" / "example_transactions.csv"
        if example.is_file():
            os.symlink(example, data / "example_transactions.csv")
        command = [
            sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfEX",
            "--rootdir", str(tmp), *[f"tests/{name}" for name in SUITE], *args.pytest_args,
        ]  # fmt: skip
        env = dict(os.environ)
        if args.example_log:
            if not example.is_file():
                parser.error(f"--example-log: {example} does not exist")
            env["LIFETIMES_SUITE_EXAMPLE_LOG"] = str(example)
        run = subprocess.run(command, cwd=tmp, capture_output=True, text=True, env=env)
        sys.stdout.write(run.stdout)
        sys.stderr.write(run.stderr)
        tail = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
        counts = {k: 0 for k in ("passed", "xfailed", "xpassed", "failed", "error")}
        for number, word in re.findall(r"(\d+) (passed|xfailed|xpassed|failed|errors?)", tail):
            counts["error" if word.startswith("error") else word] = int(number)
        print(
            f"\nlifetimes suite against clvrs.lifetimes: {counts['passed']} passed, "
            f"{counts['xfailed']} exempt, {counts['xpassed']} exempt but passing, "
            f"{counts['failed']} failed, {counts['error']} errors"
        )
        return run.returncode
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
