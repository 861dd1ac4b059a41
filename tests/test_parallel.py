"""Threads: bit-identical results for any thread count, GIL release, Ctrl-C, fork safety."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from conftest import bgnbd_synth

import clvrs
from clvrs import BetaGeoModel

SUBPROCESS_TIMEOUT = 120


def _outputs(model: BetaGeoModel, x, recency, age) -> dict[str, np.ndarray]:
    """Every estimate and prediction of a fitted model, as float arrays."""
    kw = {"frequency": x, "recency": recency, "T": age}
    horizons = np.linspace(0.0, 52.0, len(x))
    return {
        "params": model.params_.to_numpy(),
        "covariance": model.covariance_.to_numpy(),
        "log_likelihood": np.array([model.log_likelihood_]),
        "expected_purchases": model.expected_purchases(**kw, t=horizons),
        "expected_purchases_scalar_t": model.expected_purchases(**kw, t=39.0),
        "probability_alive": model.probability_alive(**kw),
        "log_likelihood_per_customer": model.log_likelihood_per_customer(**kw),
        "new_customer": model.expected_purchases_new_customer(np.linspace(0.0, 100.0, 10_000)),
        "count_probability": model.purchase_count_probability(np.arange(10_000) % 60, 39.0),
    }


@pytest.fixture(scope="module")
def serial_outputs(synth_100k):
    model = _fit(synth_100k, n_jobs=1)
    return _outputs(model, *synth_100k)


def _kw(data):
    x, recency, age = data
    return {"frequency": x, "recency": recency, "T": age}


def _fit(data, **hyper) -> BetaGeoModel:
    return BetaGeoModel(**hyper).fit(**_kw(data))


def test_synthetic_data_recovers_its_parameters(synth_100k):
    model = _fit(synth_100k, n_jobs=1)
    assert model.converged_
    assert model.fit_info_["n_rows"] > 10 * 4096  # many parallel chunks
    truth = np.array([0.243, 4.414, 0.793, 2.426])
    z = (model.params_.to_numpy() - truth) / model.standard_errors_.to_numpy()
    assert np.all(np.abs(z) < 4), z


@pytest.mark.parametrize("n_jobs", [2, 3, -1])
def test_results_are_bit_identical_for_any_thread_count(synth_100k, serial_outputs, n_jobs):
    model = _fit(synth_100k, n_jobs=n_jobs)
    outputs = _outputs(model, *synth_100k)
    for name, expected in serial_outputs.items():
        np.testing.assert_array_equal(outputs[name], expected, err_msg=name)


def _bgbb_histories(n: int, seed: int) -> dict[str, np.ndarray]:
    """Discrete-time histories over 6 opportunities: few distinct ones, many repeats."""
    rng = np.random.default_rng(seed)
    t_x = rng.integers(0, 7, size=n).astype(float)
    x = np.floor(rng.random(n) * t_x) + (t_x > 0)
    return {"frequency": x, "recency": t_x, "periods": np.full(n, 6.0)}


@pytest.mark.parametrize("n_jobs", [2, 3])
def test_lane_and_memoized_predictions_are_bit_identical_for_any_thread_count(synth_100k, n_jobs):
    # Pareto/NBD predicts four rows at a time (SIMD lanes), BG/BB once per distinct history in
    # a block: neither may depend on the thread count, nor differ from one row at a time.
    x, recency, age = synth_100k
    kw = {"frequency": x, "recency": recency, "T": age}
    pnbd = {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}
    bgbb = {"alpha": 1.204, "beta": 0.750, "gamma": 0.657, "delta": 2.783}
    histories = _bgbb_histories(50_000, 3)

    def outputs(jobs: int) -> dict[str, np.ndarray]:
        p = clvrs.ParetoNBDModel.from_params(**pnbd, n_jobs=jobs)
        b = clvrs.BetaGeoBetaBinomModel.from_params(**bgbb, n_jobs=jobs)
        return {
            "pnbd_alive": p.probability_alive(**kw),
            "pnbd_expected": p.expected_purchases(**kw, t=52.0),
            "bgbb_alive": b.probability_alive(**histories),
            "bgbb_alive_later": b.probability_alive(**histories, m=1),
            "bgbb_expected": b.expected_purchases(**histories, m=5),
        }

    serial, parallel = outputs(1), outputs(n_jobs)
    for name, expected in serial.items():
        np.testing.assert_array_equal(parallel[name], expected, err_msg=name)
    p = clvrs.ParetoNBDModel.from_params(**pnbd)
    b = clvrs.BetaGeoBetaBinomModel.from_params(**bgbb)
    for i in range(0, 40_000, 997):
        one = {k: v[i : i + 1] for k, v in kw.items()}
        assert p.probability_alive(**one)[0] == serial["pnbd_alive"][i]
        assert p.expected_purchases(**one, t=52.0)[0] == serial["pnbd_expected"][i]
        one = {k: v[i : i + 1] for k, v in histories.items()}
        assert b.probability_alive(**one)[0] == serial["bgbb_alive"][i]
        assert b.probability_alive(**one, m=1)[0] == serial["bgbb_alive_later"][i]
        assert b.expected_purchases(**one, m=5)[0] == serial["bgbb_expected"][i]


def _run_script(script: str, env_update: dict[str, str], *args: str) -> dict:
    env = {**os.environ, **env_update}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


ENV_SCRIPT = """
import json, sys
import numpy as np
import clvrs
data = np.load(sys.argv[1])
kw = {"frequency": data["x"], "recency": data["recency"], "T": data["age"]}
model = clvrs.BetaGeoModel().fit(**kw)  # n_jobs=None: reads CLVRS_NUM_THREADS
arrays = {
    "params": model.params_.to_numpy(),
    "covariance": model.covariance_.to_numpy(),
    "log_likelihood": [model.log_likelihood_],
    "expected_purchases_scalar_t": model.expected_purchases(**kw, t=39.0),
    "probability_alive": model.probability_alive(**kw),
}
out = {k: [float(v).hex() for v in np.ravel(a)] for k, a in arrays.items()}
out["threads"] = clvrs._core.resolve_n_jobs()
print(json.dumps(out))
"""


@pytest.mark.parametrize("threads", ["1", "2", "3"])
def test_thread_count_from_environment_variable(tmp_path, synth_100k, serial_outputs, threads):
    x, recency, age = synth_100k
    path = tmp_path / "synth.npz"
    np.savez(path, x=x, recency=recency, age=age)
    out = _run_script(ENV_SCRIPT, {"CLVRS_NUM_THREADS": threads}, str(path))
    assert out.pop("threads") == int(threads)  # the variable was read
    assert len(out) == 5
    for name, values in out.items():
        assert values == [float(v).hex() for v in np.ravel(serial_outputs[name])], name


def test_resolve_n_jobs(monkeypatch):
    assert clvrs._core.resolve_n_jobs(1) == 1
    assert clvrs._core.resolve_n_jobs(3) == 3
    assert clvrs._core.resolve_n_jobs(-1) >= 1
    monkeypatch.delenv("CLVRS_NUM_THREADS", raising=False)
    assert clvrs._core.resolve_n_jobs() == clvrs._core.resolve_n_jobs(-1)
    monkeypatch.setenv("CLVRS_NUM_THREADS", "3")
    assert clvrs._core.resolve_n_jobs() == 3
    assert clvrs._core.resolve_n_jobs(2) == 2  # an explicit n_jobs wins


# --------------------------------------------------------------------------------------------
# the GIL is released during fits
# --------------------------------------------------------------------------------------------


def test_fits_in_two_threads_overlap_in_time():
    """Two Python threads fitting at once must run their fits concurrently.

    The second thread starts 10 ms after the first has entered ``fit``. If the GIL were held
    during the fit, the second could not even record its start until the first fit returned, so
    the two [start, end] intervals would not overlap (checked to hold for a GIL-holding call).
    """
    data = bgnbd_synth(1_000_000, seed=99)
    first_started = threading.Event()
    spans: dict[str, tuple[float, float, np.ndarray]] = {}
    errors: list[BaseException] = []

    def work(name: str, wait: bool) -> None:
        try:
            model = BetaGeoModel(n_jobs=1)
            if wait:
                first_started.wait(30)
                time.sleep(0.01)
            else:
                first_started.set()
            start = time.perf_counter()
            model.fit(**_kw(data))
            end = time.perf_counter()
            spans[name] = (start, end, model.params_.to_numpy())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=work, args=("first", False)),
        threading.Thread(target=work, args=("second", True)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    (s1, e1, p1), (s2, e2, p2) = spans["first"], spans["second"]
    overlap = min(e1, e2) - max(s1, s2)
    shorter = min(e1 - s1, e2 - s2)
    assert s1 < s2 < e1, (s1, e1, s2, e2)  # the second fit started while the first ran
    assert overlap > 0.25 * shorter, (overlap, shorter)
    np.testing.assert_array_equal(p1, p2)


# --------------------------------------------------------------------------------------------
# Ctrl-C
# --------------------------------------------------------------------------------------------

SIGINT_SCRIPT = """
import json, os, signal, sys, threading, time
import numpy as np
import clvrs
data = np.load(sys.argv[1])
kw = {"frequency": data["x"], "recency": data["recency"], "T": data["age"]}
# Pareto/NBD on 2M customers in one thread takes seconds (its likelihood is a series per row),
# so the interrupt lands mid-fit.
model = clvrs.ParetoNBDModel(n_jobs=1, tol=1e-300, max_iter=10**6, on_failure="ignore")
sent = {}

def interrupt():
    sent["at"] = time.monotonic()
    os.kill(os.getpid(), signal.SIGINT)

timer = threading.Timer(0.5, interrupt)
start = time.monotonic()
timer.start()
try:
    model.fit(**kw)
    outcome = "finished"
except KeyboardInterrupt:
    outcome = "KeyboardInterrupt"
end = time.monotonic()
timer.join()
fitted = "params_" in vars(model) or hasattr(model, "params_")
# The interpreter and the library still work afterwards.
small = clvrs.BetaGeoModel(n_jobs=1).fit(clvrs.datasets.load_cdnow_summary())
print(json.dumps({
    "outcome": outcome,
    "latency": end - sent.get("at", float("nan")),
    "elapsed": end - start,
    "fitted": fitted,
    "after": small.log_likelihood_,
}))
"""


def test_ctrl_c_interrupts_a_long_fit(tmp_path):
    x, recency, age = bgnbd_synth(2_000_000, seed=7)
    path = tmp_path / "big.npz"
    np.savez(path, x=x, recency=recency, age=age)
    out = _run_script(SIGINT_SCRIPT, {}, str(path))
    assert out["outcome"] == "KeyboardInterrupt", out
    assert 0 <= out["latency"] < 2.0, out
    assert out["fitted"] is False, out
    assert out["after"] == pytest.approx(-9582.43, abs=0.01)


# --------------------------------------------------------------------------------------------
# fork after the thread pool was used
# --------------------------------------------------------------------------------------------

FORK_SCRIPT = """
import json, multiprocessing, sys
import numpy as np
import clvrs
data = np.load(sys.argv[1])
kw = {"frequency": data["x"], "recency": data["recency"], "T": data["age"]}
parent = clvrs.BetaGeoModel(n_jobs=2).fit(**kw)  # starts the 2-thread pool
parent_alive = parent.probability_alive(**kw)

def child():
    model = clvrs.BetaGeoModel(n_jobs=2).fit(**kw)
    same = np.array_equal(model.params_.to_numpy(), parent.params_.to_numpy()) and (
        np.array_equal(model.probability_alive(**kw), parent_alive)
    )
    sys.exit(0 if same else 3)

process = multiprocessing.get_context("fork").Process(target=child)
process.start()
process.join(60)
hung = process.is_alive()
if hung:
    process.kill()
    process.join()
print(json.dumps({"hung": hung, "exitcode": process.exitcode}))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="no fork on Windows")
def test_forked_child_fits_after_parent_used_the_pool(tmp_path):
    x, recency, age = bgnbd_synth(50_000, seed=11)
    path = tmp_path / "fork.npz"
    np.savez(path, x=x, recency=recency, age=age)
    out = _run_script(FORK_SCRIPT, {}, str(path))
    assert out == {"hung": False, "exitcode": 0}
