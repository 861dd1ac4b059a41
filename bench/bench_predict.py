#!/usr/bin/env python3
"""Predictions at fixed parameters on 1M customers: clvrs against lifetimes, side by side.

For every model lifetimes has, the predictions its runner times with ``--fixed-params`` (no
fit; the parameters are the runner's ``REFERENCE_PARAMS``, the published CDNOW/donations
estimates), on synthetic customers drawn from each model's process:

  model       data (bench/data/)                      stages
  BG/NBD      synth_1000000.parquet (gen_synth summary)  expected purchases (t = 52), P(alive),
                                                      CLV (Gamma-Gamma, 12 months, 1% a month)
  MBG/NBD     synth_mbgnbd_1000000_seed1.parquet      expected purchases (t = 52), P(alive)
  Pareto/NBD  synth_pnbd_1000000_seed1.parquet        expected purchases (t = 52), P(alive)
  BG/BB       synth_bgbb_1000000.parquet (gen_synth bgbb, 6 opportunities)
                                                      expected purchases (m = 5), P(alive in
                                                      the next opportunity, m = 1)
  Gamma-Gamma synth_1000000.parquet, every row        expected average spend

clvrs: ``Model.from_params(...)`` then ``model.expected_purchases(df, t=52)``,
``model.probability_alive(df)``, ``clvrs.customer_lifetime_value(bg, gg, df, time=12,
discount_rate=0.01, time_unit="W")``, ``gg.expected_average_spend(df)``, on the DataFrame as read
(its int64 ``frequency`` included), each the median of ``--calls`` calls in a fresh process.
lifetimes: ``/work/shared/bench/peer_lifetimes.py --fixed-params`` in its own environment, one
fresh process per run (its CLV stage uses a Gamma-Gamma it fits first, untimed).

Rounds alternate the libraries (A B A B): each round runs, for each model, lifetimes once and
each clvrs build once; the table gives the median over ``--rounds`` rounds and the ratio of the
medians. ``--before PATH`` adds a second clvrs build (a directory holding a ``clvrs`` package,
put first on PYTHONPATH), e.g. a copy of the main checkout's ``python/clvrs`` with its built
``_core``, to record before/after figures in the same run. The CPU used by other processes
during the timed calls is reported (the machine is shared; prefer the ratios).

Examples
  python bench/bench_predict.py --rounds 3
  python bench/bench_predict.py --rounds 3 --before bench/data/before_pkg --models pnbd,bgnbd
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA_DIR = HERE / "data"
SHARED = Path(os.environ.get("CLVRS_BENCH_SHARED", "/work/shared/bench"))
DEFAULT_PEER_PYTHON = HERE.parent / ".venv-peer" / "bin" / "python"
PREDICT_T = 52.0

#: (label, clvrs class, data file, stages) per model; parameters are the peer's
#: REFERENCE_PARAMS (lifetimes' names; Gamma-Gamma's `v` is clvrs' `gamma`).
MODELS: dict[str, dict[str, Any]] = {
    "bgnbd": {
        "label": "BG/NBD",
        "cls": "BetaGeoModel",
        "data": "synth_1000000.parquet",
        "params": {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426},
        "stages": ("predict", "palive", "clv"),
    },
    "mbgnbd": {
        "label": "MBG/NBD",
        "cls": "ModifiedBetaGeoModel",
        "data": "synth_mbgnbd_1000000_seed1.parquet",
        "params": {"r": 0.525, "alpha": 6.183, "a": 0.891, "b": 1.614},
        "stages": ("predict", "palive"),
    },
    "pnbd": {
        "label": "Pareto/NBD",
        "cls": "ParetoNBDModel",
        "data": "synth_pnbd_1000000_seed1.parquet",
        "params": {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669},
        "stages": ("predict", "palive"),
    },
    "bgbb": {
        "label": "BG/BB",
        "cls": "BetaGeoBetaBinomModel",
        "data": "synth_bgbb_1000000.parquet",
        "params": {"alpha": 1.204, "beta": 0.750, "gamma": 0.657, "delta": 2.783},
        "stages": ("predict", "palive"),
    },
    "gg": {
        "label": "Gamma-Gamma",
        "cls": "GammaGammaModel",
        "data": "synth_1000000.parquet",
        "params": {"p": 6.25, "q": 3.74, "gamma": 15.44},
        "stages": ("predict",),
    },
}
STAGE_LABEL = {
    ("bgbb", "predict"): "expected purchases (m = 5)",
    ("bgbb", "palive"): "P(alive at the next opportunity)",
    ("gg", "predict"): "expected average spend (all rows)",
    ("*", "predict"): "expected purchases (t = 52)",
    ("*", "palive"): "P(alive)",
    ("*", "clv"): "CLV (with Gamma-Gamma, 12 months)",
}
GG_PARAMS = MODELS["gg"]["params"]

# lifetimes 0.11.3's ParetoNBDFitter predictions fail on pandas Series when alpha > beta: hand
# them numpy arrays (as bench_continuous.py does).
PEER_WRAPPER = """
import sys, runpy
import numpy as np
import lifetimes.fitters.pareto_nbd_fitter as m
names = ("conditional_expected_number_of_purchases_up_to_time", "conditional_probability_alive")
for name in names:
    original = getattr(m.ParetoNBDFitter, name)
    def wrapped(self, *a, _o=original, **k):
        a = [np.asarray(v) if hasattr(v, "to_numpy") else v for v in a]
        k = {key: (np.asarray(v) if hasattr(v, "to_numpy") else v) for key, v in k.items()}
        return _o(self, *a, **k)
    setattr(m.ParetoNBDFitter, name, wrapped)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def stage_label(model: str, stage: str) -> str:
    return STAGE_LABEL.get((model, stage)) or STAGE_LABEL[("*", stage)]


# ---------------------------------------------------------------------------------------------
# the clvrs side (run in a fresh process per round: `--worker`)
# ---------------------------------------------------------------------------------------------
def worker(model: str, path: str, calls: int) -> None:
    import numpy as np
    import pandas as pd

    import clvrs

    spec = MODELS[model]
    df = pd.read_parquet(path)
    if model == "bgbb":
        df = df.rename(columns={"n_periods": "periods"})
    cls = getattr(clvrs, spec["cls"])
    m = cls.from_params(**spec["params"])
    gg = clvrs.GammaGammaModel.from_params(**GG_PARAMS)
    if model == "bgbb":
        run = {
            "predict": lambda: m.expected_purchases(df, m=5),
            "palive": lambda: m.probability_alive(df, m=1),
        }
    elif model == "gg":
        run = {"predict": lambda: m.expected_average_spend(df)}
    else:
        run = {
            "predict": lambda: m.expected_purchases(df, t=PREDICT_T),
            "palive": lambda: m.probability_alive(df),
            "clv": lambda: clvrs.customer_lifetime_value(
                m, gg, df, time=12, discount_rate=0.01, time_unit="W"
            ),
        }
    out: dict[str, Any] = {"clvrs": clvrs.__file__, "times": {}, "sums": {}}
    for stage in spec["stages"]:
        times = []
        values = None
        for _ in range(calls):
            t0 = time.perf_counter()
            values = run[stage]()
            times.append(time.perf_counter() - t0)
        out["times"][stage] = statistics.median(times)
        out["sums"][stage] = float(np.sum(np.asarray(values, dtype=float)))
    print(json.dumps(out))


def run_clvrs(python: str, env_path: str | None, model: str, calls: int) -> dict[str, Any]:
    env = dict(os.environ)
    if env_path:
        env["PYTHONPATH"] = env_path + os.pathsep + env.get("PYTHONPATH", "")
    path = str(DATA_DIR / MODELS[model]["data"])
    cmd = [python, __file__, "--worker", model, path, str(calls)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"clvrs worker failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_peer(peer_python: str, model: str) -> dict[str, Any]:
    path = str(DATA_DIR / MODELS[model]["data"])
    cmd = [peer_python, "-c", PEER_WRAPPER, str(SHARED / "peer_lifetimes.py"), "--model", model]
    cmd += ["--data", path, "--fixed-params"]
    if "clv" not in MODELS[model]["stages"]:
        cmd.append("--no-clv")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    result = None
    for line in proc.stdout.splitlines():
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            continue
        if ev.get("event") == "result":
            result = ev
    if result is None:
        raise RuntimeError(f"lifetimes runner failed: {proc.stdout[-1000:]} {proc.stderr[-1000:]}")
    return result


def ensure_data(models: list[str]) -> None:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    for model in models:
        path = DATA_DIR / MODELS[model]["data"]
        if path.exists():
            continue
        if model == "bgbb":
            cmd = [sys.executable, str(SHARED / "gen_synth.py"), "bgbb", "-n", "1000000"]
            cmd += ["--seed", "1", "-o", str(path)]
            log(f"generating {path.name}")
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        elif model in ("pnbd", "mbgnbd"):
            sys.path.insert(0, str(HERE))
            import bench_continuous as bc

            bc.DATA_DIR = DATA_DIR
            bc.ensure_synth(model, 1_000_000, path)
        else:
            sys.path.insert(0, str(HERE))
            import bench_bgnbd as bg

            bg.DATA_DIR = DATA_DIR
            bg.ensure_synth(1_000_000)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--calls", type=int, default=3, help="clvrs calls per stage and process")
    ap.add_argument("--before", default=None, help="directory with an older clvrs package")
    ap.add_argument("--peer-python", default=str(DEFAULT_PEER_PYTHON))
    ap.add_argument("--skip-peer", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--worker", nargs=3, metavar=("MODEL", "PATH", "CALLS"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.worker[0], args.worker[1], int(args.worker[2]))
        return 0

    sys.path.insert(0, str(HERE))
    import bench_bgnbd as bg

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    ensure_data(models)
    builds = [("after", None)] + (
        [("before", str(Path(args.before).resolve()))] if args.before else []
    )
    info = bg.machine_info(None, Path(args.peer_python))
    times: dict[tuple[str, str, str], list[float]] = {}
    sums: dict[tuple[str, str, str], float] = {}
    files: dict[str, str] = {}
    other = {"s": 0.0, "wall": 0.0}
    for round_ in range(args.rounds):
        for model in models:
            runs: list[tuple[str, Any]] = []
            if not args.skip_peer:
                runs.append(("lifetimes", None))
            runs += builds
            for lib, where in runs:
                probe = bg.OtherCpu()
                if lib == "lifetimes":
                    res = run_peer(args.peer_python, model)
                    got = {s: res["timings"].get(s) for s in MODELS[model]["stages"]}
                    got_sums = {s: res.get("health", {}).get(s, {}).get("sum") for s in got}
                else:
                    res = run_clvrs(sys.executable, where, model, args.calls)
                    files[lib] = res["clvrs"]
                    got, got_sums = res["times"], res["sums"]
                o, w = probe.seconds()
                other["s"] += o
                other["wall"] += w
                for stage, t in got.items():
                    if t is not None:
                        times.setdefault((model, stage, lib), []).append(t)
                        sums[(model, stage, lib)] = got_sums.get(stage) or float("nan")
                log(
                    f"round {round_ + 1} {MODELS[model]['label']} {lib}: "
                    + ", ".join(f"{s} {t:.4f}s" for s, t in got.items() if t is not None)
                )
    libs = [b for b, _ in builds]
    med = {k: statistics.median(v) for k, v in times.items()}
    lines = [
        f"Run: {info['date']}; command: `python bench/bench_predict.py "
        + " ".join(sys.argv[1:] if argv is None else argv)
        + "`",
        "",
        f"- CPU: {info['cpu']}; nproc = {info['nproc']}; {info['os']}; load average at start "
        f"{info['loadavg_start']}, at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        f"- CPU used by other processes during the timed runs: "
        f"{other['s'] / max(other['wall'], 1e-9):.2f} cores on average (anything well above 0 "
        "means the timings are disturbed)",
        f"- clvrs {info['clvrs']} (commit {info['clvrs_commit']}), threads = "
        f"{info['clvrs_threads']}; builds: "
        + "; ".join(f"{b}: `{files.get(b, '?')}`" for b in libs),
        f"- lifetimes 0.11.3 (`{args.peer_python}`, single-threaded, fixed parameters: "
        "`peer_lifetimes.py --fixed-params`)",
        f"- {args.rounds} rounds, each: lifetimes once, then each clvrs build in a fresh process "
        f"(median of {args.calls} calls); medians over the rounds",
        "",
        "| model | prediction (1M customers) | lifetimes s | "
        + " | ".join(f"clvrs {b} s" for b in libs)
        + " | "
        + " | ".join(f"ratio {b}" for b in libs)
        + " |",
        "|---|---|---:|" + "---:|" * (2 * len(libs)),
    ]
    for model in models:
        for stage in MODELS[model]["stages"]:
            peer = med.get((model, stage, "lifetimes"), float("nan"))
            ours = [med.get((model, stage, b), float("nan")) for b in libs]
            ratios = [peer / o if o == o and o > 0 else float("nan") for o in ours]
            lines.append(
                f"| {MODELS[model]['label']} | {stage_label(model, stage)} | {peer:.4f} | "
                + " | ".join(f"{o:.4f}" for o in ours)
                + " | "
                + " | ".join(f"{r:.1f}x" for r in ratios)
                + " |"
            )
    lines.append("")
    lines.append("Sums of the predictions over all customers (agreement check):")
    lines.append("")
    for model in models:
        for stage in MODELS[model]["stages"]:
            vals = {lib: sums.get((model, stage, lib)) for lib in ["lifetimes", *libs]}
            lines.append(
                f"- {MODELS[model]['label']}, {stage_label(model, stage)}: "
                + ", ".join(f"{k} {v:,.6f}" for k, v in vals.items() if v is not None)
            )
    text = "\n".join(lines)
    print(text)
    if args.json:
        args.json.write_text(
            json.dumps({"info": info, "times": {"|".join(k): v for k, v in times.items()}})
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
