#!/usr/bin/env python3
"""Benchmark fits with covariates against the base model's fit (issue 9: "fitting with 5
covariates on 1M customers stays within 3x the time of the base model"), and check that the
fits recover the coefficients the data were drawn from.

For every (model, covariate mix, size) this times, with time.perf_counter, alternating, the
median of ``--repeats`` runs of

  base        ``Model(n_jobs=...).fit(df)``
  covariates  ``Model(n_jobs=...).fit(df, purchase_covariates=cols, dropout_covariates=cols)``

with the same 5 columns in both processes (10 coefficients), and reports the ratio
covariates / base, the iterations and likelihood evaluations of both fits (``n_iter_``,
``fit_info_``) and, for the covariate fit, every true parameter against its estimate and
standard error (the check: each within 4 standard errors).

Customers are drawn exactly from the model with known coefficients (seed 1, ages
T ~ Uniform[26, 78] weeks), through the links documented under "Covariates" in the models:

  BG/NBD, MBG/NBD  alpha_i = alpha0 exp(-z_i.g_purchase), a_i = a0 exp(z_i.g_dropout),
                   b_i = b0 exp(z_i.g_dropout)
  Pareto/NBD       alpha_i = alpha0 exp(-z_i.g_purchase), beta_i = beta0 exp(-z_i.g_dropout)
  GGompertz/NBD    as Pareto/NBD (CLVTools' ggomnbd), b shared

Two covariate mixes:

  categorical  channel (3 levels, as the two 0/1 columns channel_web and channel_store against
               "partner"), promo (0/1), newsletter (0/1), tenure_band (0..3): 48 distinct
               covariate vectors. Each group of customers with one vector is drawn by clvrs'
               own simulator, ``Model.from_params(**group_params).simulate(T_group, seed=...)``.
  continuous   log_first_order (log of a log-normal first-order size, centred: N(0, 0.6^2)),
               age_z and income_z (standard normal, correlation 0.3), web (0/1), promo (0/1):
               every customer distinct. Drawn by the vectorised numpy simulators below
               (``--check-simulator N`` compares them with clvrs' simulator on one group).

Vectorised simulators (per-customer parameters as arrays):

  BG/NBD      lambda ~ Gamma(r, rate alpha_i), p ~ Beta(a_i, b_i); after each repeat purchase
              the customer drops out with probability p. With N ~ Poisson(lambda T) the
              purchases of the underlying process and K ~ Geometric(p) on {1, 2, ...} the
              purchase after which the customer drops, x = min(N, K) and, given N,
              t_x = T Beta(x, N - x + 1) (the x-th of N uniform event times).
  MBG/NBD     as BG/NBD with a coin also tossed at time 0: x = min(N, K - 1).
  Pareto/NBD  lambda ~ Gamma(r, rate alpha_i), mu ~ Gamma(s, rate beta_i), lifetime ~ Exp(mu);
              w = min(T, lifetime), x ~ Poisson(lambda w), t_x = w Beta(x, 1).
  GGompertz   as Pareto/NBD with eta ~ Gamma(s, rate beta_i) and lifetime ln(1 + E/eta)/b,
              E ~ Exp(1) (issue 22).

The data are generated in memory before any timing (a few seconds at 1M; not cached).

Spend (``--models gg``, issue 22): ``GammaGammaModel().fit(df)`` against
``GammaGammaModel().fit(df, spend_covariates=cols)`` (5 coefficients) on the same covariate
mixes, repeat transactions x ~ Poisson(2) (customers with x = 0 are left out of both fits) and
mean spend drawn exactly: nu ~ Gamma(q, rate gamma_i), gamma_i = gamma0 exp(z_i.g), mean of x
values ~ Gamma(p x, rate nu x). Reported in its own table (printed; not in --update-doc).

Churn (``--models sbg`` or ``bdw``, issue 22): ``Model().fit(records)`` against
``Model().fit(records, churn_covariates=cols)`` on per-customer records: theta ~
Beta(alpha_i, beta), alpha_i = alpha0 exp(z_i.g), observed for 4-12 periods (BdW with c = 0.7).
The base fit compresses the records to their few distinct (periods, churned) rows, the
covariate fit cannot (each customer has their own alpha_i), so the ratio measures that.

BG/BB (``--models bgbb``, issue 22): ``BetaGeoBetaBinomModel().fit(df)`` against the fit with
the 5 columns as purchase and dropout covariates (10 coefficients), histories over 4-8
opportunities drawn with alpha_i = alpha0 exp(z_i.g_p), gamma_i = gamma0 exp(z_i.g_d).

Examples
  python bench/bench_covariates.py                                  # 1m; bgnbd,pnbd; 3 repeats
  python bench/bench_covariates.py --sizes 100k --repeats 1         # quick
  python bench/bench_covariates.py --check-simulator 200000         # simulator check only
  python bench/bench_covariates.py --models gg --repeats 3          # Gamma-Gamma spend
  python bench/bench_covariates.py --quiet-wait 120 --json bench/data/covariates_results.json \\
      --update-doc BENCHMARKS.md                                    # rewrite the generated block
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import clvrs
from clvrs import _core

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_bgnbd as bg  # noqa: E402  (shared helpers: machine description, timing, waiting)
from _report import replace_block  # noqa: E402

SEED = 1
T_MIN, T_MAX = 26.0, 78.0
TARGET_RATIO = 3.0  # covariate fit / base fit, on 1M customers
SE_LIMIT = 4.0  # recovery check: |estimate - true| <= SE_LIMIT * se
QUIET_WAIT = 0.0  # set from --quiet-wait
DOC_BEGIN = (
    "<!-- bench_covariates:begin (generated by bench/bench_covariates.py; do not edit by hand) -->"
)
DOC_END = "<!-- bench_covariates:end -->"
DOC_HEADING = "## Covariates: fit time against the base model"
log = bg.log
median = bg.median
fmt_s = bg.fmt_s

MODELS: dict[str, dict[str, Any]] = {
    "bgnbd": {
        "label": "BG/NBD",
        "clvrs": "BetaGeoModel",
        "params": ("r", "alpha", "a", "b"),
        "true": {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426},
    },
    "pnbd": {
        "label": "Pareto/NBD",
        "clvrs": "ParetoNBDModel",
        "params": ("r", "alpha", "s", "beta"),
        "true": {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669},
    },
    "ggnbd": {
        "label": "GGompertz/NBD",
        "clvrs": "GammaGompertzNBDModel",
        "params": ("r", "alpha", "b", "s", "beta"),
        "true": {"r": 0.553, "alpha": 10.578, "b": 0.02, "s": 0.6, "beta": 1.0},
    },
    "mbgnbd": {
        "label": "MBG/NBD",
        "clvrs": "ModifiedBetaGeoModel",
        "params": ("r", "alpha", "a", "b"),
        "true": {"r": 0.525, "alpha": 6.183, "a": 0.891, "b": 1.614},
    },
}

# Covariate columns and the true coefficients (purchase, dropout), the same for every model.
MIXES: dict[str, dict[str, Any]] = {
    "categorical": {
        "label": "categorical",
        "columns": ("channel_web", "channel_store", "promo", "newsletter", "tenure_band"),
        "purchase": (0.25, -0.15, 0.10, 0.20, -0.05),
        "dropout": (-0.20, 0.15, 0.30, -0.10, 0.08),
        "describe": "channel_web, channel_store (channel: partner 30% (reference), web 50%, "
        "store 20%), promo (0/1, 30%), newsletter (0/1, 50%), tenure_band (0..3, uniform); int64 "
        "columns; 48 distinct vectors, each group drawn by "
        "`Model.from_params(**group_params).simulate(T_group, seed=...)`",
    },
    "continuous": {
        "label": "continuous",
        "columns": ("log_first_order", "age_z", "income_z", "web", "promo"),
        "purchase": (0.30, -0.10, 0.15, 0.20, 0.10),
        "dropout": (-0.25, 0.10, -0.10, 0.15, 0.20),
        "describe": "log_first_order (log of a log-normal first-order size, centred: "
        "N(0, 0.6^2)), age_z and income_z (standard normal, correlation 0.3), web (0/1, 50%), "
        "promo (0/1, 30%); float64 columns; every customer distinct, drawn by this script's "
        "vectorised simulator",
    },
}


# ---------------------------------------------------------------------------------------------
# simulation
# ---------------------------------------------------------------------------------------------
def sim_bg(
    rng: np.random.Generator,
    T: np.ndarray,
    r: float,
    alpha: Any,
    a: Any,
    b: Any,
    modified: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """BG/NBD (``modified``: MBG/NBD) customers, exactly, with per-customer alpha, a, b."""
    n = len(T)
    lam = rng.gamma(shape=r, size=n) / alpha
    p = rng.beta(a, b, size=n)
    K = rng.geometric(np.clip(p, 1e-300, 1.0), size=n).astype(np.int64)
    N = rng.poisson(lam * T).astype(np.int64)
    x = np.minimum(N, K - 1 if modified else K)
    rec = np.zeros(n)
    pos = x > 0
    rec[pos] = T[pos] * rng.beta(x[pos].astype(float), (N[pos] - x[pos] + 1).astype(float))
    np.minimum(rec, T, out=rec)
    return x, rec


def sim_pnbd(
    rng: np.random.Generator, T: np.ndarray, r: float, alpha: Any, s: float, beta: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Pareto/NBD customers, exactly, with per-customer alpha and beta."""
    n = len(T)
    lam = rng.gamma(shape=r, size=n) / alpha
    mu = rng.gamma(shape=s, size=n) / beta
    with np.errstate(divide="ignore"):  # mu can underflow to 0: an infinite lifetime
        lifetime = rng.exponential(1.0, size=n) / mu
    w = np.minimum(T, lifetime)
    x = rng.poisson(lam * w).astype(np.int64)
    rec = np.zeros(n)
    pos = x > 0
    rec[pos] = w[pos] * rng.beta(x[pos].astype(float), 1.0)
    np.minimum(rec, T, out=rec)
    return x, rec


def sim_ggnbd(
    rng: np.random.Generator,
    T: np.ndarray,
    r: float,
    alpha: Any,
    b: float,
    s: float,
    beta: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """GGompertz/NBD customers, exactly, with per-customer alpha and beta: eta ~ Gamma(s,
    rate beta), lifetime ln(1 + E / eta) / b with E ~ Exp(1) (hazard eta b e^(b t))."""
    n = len(T)
    lam = rng.gamma(shape=r, size=n) / alpha
    eta = rng.gamma(shape=s, size=n) / beta
    with np.errstate(divide="ignore"):  # eta can underflow to 0: an infinite lifetime
        lifetime = np.log1p(rng.exponential(1.0, size=n) / eta) / b
    w = np.minimum(T, lifetime)
    x = rng.poisson(lam * w).astype(np.int64)
    rec = np.zeros(n)
    pos = x > 0
    rec[pos] = w[pos] * rng.beta(x[pos].astype(float), 1.0)
    np.minimum(rec, T, out=rec)
    return x, rec


def simulate_vectorised(
    model: str, rng: np.random.Generator, T: np.ndarray, params: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    if model == "pnbd":
        return sim_pnbd(rng, T, **params)
    if model == "ggnbd":
        return sim_ggnbd(rng, T, **params)
    return sim_bg(rng, T, **params, modified=(model == "mbgnbd"))


def customer_params(model: str, Z: np.ndarray, gp: np.ndarray, gd: np.ndarray) -> dict[str, Any]:
    """Per-customer parameters through the documented covariate links."""
    t = MODELS[model]["true"]
    zp, zd = Z @ gp, Z @ gd
    if model == "ggnbd":
        return {
            "r": t["r"],
            "alpha": t["alpha"] * np.exp(-zp),
            "b": t["b"],
            "s": t["s"],
            "beta": t["beta"] * np.exp(-zd),
        }
    if model == "pnbd":
        return {
            "r": t["r"],
            "alpha": t["alpha"] * np.exp(-zp),
            "s": t["s"],
            "beta": t["beta"] * np.exp(-zd),
        }
    return {
        "r": t["r"],
        "alpha": t["alpha"] * np.exp(-zp),
        "a": t["a"] * np.exp(zd),
        "b": t["b"] * np.exp(zd),
    }


def covariates(mix: str, n: int, rng: np.random.Generator) -> pd.DataFrame:
    if mix == "categorical":
        channel = rng.choice(3, size=n, p=[0.3, 0.5, 0.2])  # partner, web, store
        return pd.DataFrame(
            {
                "channel_web": (channel == 1).astype(np.int64),
                "channel_store": (channel == 2).astype(np.int64),
                "promo": (rng.random(n) < 0.3).astype(np.int64),
                "newsletter": (rng.random(n) < 0.5).astype(np.int64),
                "tenure_band": rng.integers(0, 4, size=n).astype(np.int64),
            }
        )
    age = rng.standard_normal(n)
    income = 0.3 * age + np.sqrt(1 - 0.3**2) * rng.standard_normal(n)
    order = rng.lognormal(mean=np.log(40.0), sigma=0.6, size=n)  # first-order size
    return pd.DataFrame(
        {
            "log_first_order": np.log(order / 40.0),
            "age_z": age,
            "income_z": income,
            "web": (rng.random(n) < 0.5).astype(np.float64),
            "promo": (rng.random(n) < 0.3).astype(np.float64),
        }
    )


def make_data(model: str, mix: str, n: int) -> tuple[pd.DataFrame, int]:
    """Customers with their covariates; returns (frame, number of distinct covariate vectors)."""
    spec = MIXES[mix]
    cols = list(spec["columns"])
    base = np.random.default_rng(SEED)  # ages and covariates: the same for every model
    T = base.uniform(T_MIN, T_MAX, size=n)
    cov = covariates(mix, n, base)
    Z = cov[cols].to_numpy(dtype=np.float64)
    gp, gd = np.asarray(spec["purchase"]), np.asarray(spec["dropout"])
    model_index = list(MODELS).index(model)
    x = np.zeros(n, dtype=np.int64)
    rec = np.zeros(n)
    if mix == "categorical":
        vectors, group = np.unique(Z, axis=0, return_inverse=True)
        group = group.ravel()
        order = np.argsort(group, kind="stable")
        bounds = np.searchsorted(group[order], np.arange(len(vectors) + 1))
        cls = getattr(clvrs, MODELS[model]["clvrs"])
        for g in range(len(vectors)):
            idx = order[bounds[g] : bounds[g + 1]]
            params = customer_params(model, vectors[g : g + 1], gp, gd)
            params = {k: float(np.asarray(v).ravel()[0]) for k, v in params.items()}
            sim = cls.from_params(**params).simulate(
                T[idx], seed=SEED * 100_000 + 1000 * model_index + g
            )
            x[idx] = sim["frequency"].to_numpy()
            rec[idx] = sim["recency"].to_numpy()
        distinct = len(vectors)
    else:
        rng = np.random.default_rng([SEED, model_index, 7])
        x, rec = simulate_vectorised(model, rng, T, customer_params(model, Z, gp, gd))
        distinct = len(np.unique(Z, axis=0))
    frame = pd.DataFrame({"frequency": x, "recency": rec, "T": T})
    for c in cols:
        frame[c] = cov[c].to_numpy()
    return frame, distinct


def check_simulator(models: list[str], n: int, threads: int | None) -> str:
    """Compare the vectorised simulator with clvrs' simulator on one group of ``n`` customers.

    One covariate vector (the continuous mix at log_first_order = 0.5, age_z = -1,
    income_z = 1, web = 1, promo = 1), hence one set of parameters for all customers, all with
    T = 52: summary statistics of both samples, the z-score of their difference, the model's
    exact values where clvrs has them in closed form (``purchase_count_probability``,
    ``expected_purchases_new_customer``) with the z-score of the vectorised sample against them,
    and the base model fitted to the vectorised sample (true parameters of the group within 4
    standard errors?).
    """
    spec = MIXES["continuous"]
    z = np.array([[0.5, -1.0, 1.0, 1.0, 1.0]])
    gp, gd = np.asarray(spec["purchase"]), np.asarray(spec["dropout"])
    t_obs = 52.0
    out = [
        f"Simulator check: {n:,} customers per sample, all with T = {t_obs:g}, one covariate "
        f"vector {z.ravel().tolist()} (continuous mix); vectorised numpy simulator against "
        "clvrs' `from_params(...).simulate` and against the model's exact values (z = "
        "difference / its standard error)",
        "",
        "| model | statistic | vectorised | clvrs simulate | exact | z (vectorised - simulate) "
        "| z (vectorised - exact) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    notes = []
    for m in models:
        params = {
            k: float(np.asarray(v).ravel()[0]) for k, v in customer_params(m, z, gp, gd).items()
        }
        T = np.full(n, t_obs)
        x1, r1 = simulate_vectorised(m, np.random.default_rng([SEED, 99]), T, params)
        cls = getattr(clvrs, MODELS[m]["clvrs"])
        model = cls.from_params(**params)
        sim = model.simulate(T, seed=SEED + 99)
        x2, r2 = sim["frequency"].to_numpy(), sim["recency"].to_numpy()
        stats: list[tuple[str, Any, float | None]] = [
            (
                "mean frequency",
                lambda x, r: x.astype(float),
                float(np.asarray(model.expected_purchases_new_customer(t_obs))),
            ),
        ]
        for k in range(4):
            exact = float(np.asarray(model.purchase_count_probability(k, t_obs)))
            stats.append((f"P(x = {k})", lambda x, r, k=k: (x == k).astype(float), exact))
        stats += [
            ("P(x >= 5)", lambda x, r: (x >= 5).astype(float), None),
            ("mean recency / T", lambda x, r: r / t_obs, None),
            (
                "mean (T - recency) among x > 0",
                lambda x, r: np.where(x > 0, t_obs - r, np.nan),
                None,
            ),
        ]
        for name, f, exact in stats:
            a, b = f(x1, r1), f(x2, r2)
            a, b = a[np.isfinite(a)], b[np.isfinite(b)]
            se = np.sqrt(a.var() / len(a) + b.var() / len(b))
            z2 = (a.mean() - b.mean()) / se if se > 0 else 0.0
            if exact is None:
                shown, z_exact = "", ""
            else:
                se1 = a.std() / np.sqrt(len(a))
                shown = f"{exact:.5f}"
                z_exact = f"{(a.mean() - exact) / se1:+.2f}" if se1 > 0 else ""
            out.append(
                f"| {MODELS[m]['label']} | {name} | {a.mean():.5f} | {b.mean():.5f} | {shown} | "
                f"{z2:+.2f} | {z_exact} |"
            )
        fit = cls(n_jobs=threads).fit(frequency=x1, recency=r1, T=T)
        zs = {
            k: (float(fit.params_[k]) - params[k]) / float(fit.standard_errors_[k])
            for k in MODELS[m]["params"]
        }
        notes.append(
            f"- {MODELS[m]['label']}: base model fitted to the vectorised sample: "
            + ", ".join(
                f"{k} {float(fit.params_[k]):.4f} (true {params[k]:.4f}, z {zs[k]:+.2f})"
                for k in zs
            )
        )
    return "\n".join(out + [""] + notes)


# ---------------------------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------------------------
def fit_record(m: Any) -> dict[str, Any]:
    fi = dict(getattr(m, "fit_info_", None) or {})
    return {
        "converged": bool(getattr(m, "converged_", False)),
        "n_iter": int(m.n_iter_),
        "n_evaluations": fi.get("n_evaluations"),
        "n_rows": fi.get("n_rows"),
        "termination": fi.get("termination"),
        "log_likelihood": float(m.log_likelihood_),
        "fit_info": fi,
    }


def time_fits(
    model: str, mix: str, df: pd.DataFrame, repeats: int, n_jobs: int | None
) -> dict[str, Any]:
    cls = getattr(clvrs, MODELS[model]["clvrs"])
    cols = list(MIXES[mix]["columns"])
    times: dict[str, list[float]] = {"base": [], "covariates": []}
    fitted: dict[str, Any] = {}
    caught: list[str] = []
    for _ in range(repeats):
        for kind in ("base", "covariates"):
            kw = {"purchase_covariates": cols, "dropout_covariates": cols} if kind != "base" else {}
            if QUIET_WAIT:
                bg.wait_quiet(QUIET_WAIT, window=1.0)
            gc.collect()
            with warnings.catch_warnings(record=True) as w:
                warnings.simplefilter("always")
                with bg.Tracked():
                    t0 = time.perf_counter()
                    fitted[kind] = cls(n_jobs=n_jobs).fit(df, **kw)
                    elapsed = time.perf_counter() - t0
            caught += [f"{kind}: {x.category.__name__}: {x.message}" for x in w]
            times[kind].append(elapsed)
    med = {k: median(v) for k, v in times.items()}
    cov = fitted["covariates"]
    spec = MIXES[mix]
    true = dict(MODELS[model]["true"])
    for c, g in zip(cols, spec["purchase"]):
        true[f"purchase:{c}"] = g
    for c, g in zip(cols, spec["dropout"]):
        true[f"dropout:{c}"] = g
    recovery = []
    se_all = cov.standard_errors_
    for name, value in true.items():
        est = float(cov.params_[name])
        se = float(se_all[name]) if se_all is not None else float("nan")
        z = (est - value) / se if se > 0 else float("nan")
        recovery.append({"name": name, "true": value, "estimate": est, "se": se, "z": z})
    return {
        "times": times,
        "median": med,
        "ratio": med["covariates"] / med["base"] if med["base"] > 0 else float("nan"),
        "base": fit_record(fitted["base"]),
        "covariates": fit_record(cov),
        "recovery": recovery,
        "recovered": all(np.isfinite(r["z"]) and abs(r["z"]) <= SE_LIMIT for r in recovery),
        "warnings": sorted(set(caught)),
    }


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------
def _iters(d: dict[str, Any]) -> str:
    return f"{d['n_iter']} / {d['n_evaluations']}"


def _per_eval(c: dict[str, Any], kind: str) -> str:
    evals = c[kind]["n_evaluations"]
    return fmt_s(c["median"][kind] / evals) if evals else "n/a"


def report(args: argparse.Namespace, info: dict[str, Any], results: list[dict[str, Any]]) -> str:
    L: list[str] = []
    L.append(f"Run: {info['date']}; command: `{info['command']}`")
    L.append("")
    L.append(
        "Timed, alternating: `Model(n_jobs=...).fit(df)` (base) and `Model(n_jobs=...).fit(df, "
        "purchase_covariates=cols, dropout_covariates=cols)` with the same 5 columns in both "
        "processes (10 coefficients); only the call is timed (data generated beforehand, "
        f"in memory). Customers drawn from each model with known coefficients (seed {SEED}, "
        f"T ~ Uniform[{T_MIN:g}, {T_MAX:g}] weeks; frequency int64, recency and T float64)."
    )
    L.append("")
    L.append("Machine and software:")
    L.append("")
    L.append(f"- CPU: {info['cpu']}; nproc = {info['nproc']}; {info['os']}")
    L.append(
        f"- load average at start: {info['loadavg_start']}; at end: {info['loadavg_end']}; "
        f"CPU used by other processes during the timed runs: {info['other_cpu_cores']:.2f} "
        "cores on average ("
        + ", ".join(
            f"{r['model_label']} {r['mix']} {r['size_label']}: {r['other_cpu_cores']:.2f}"
            for r in results
        )
        + "; anything well above 0 means the timings are disturbed)"
    )
    if info.get("core_rebuilt"):
        L.append(
            f"- note: the clvrs extension file was replaced at {info['core_rebuilt']}, during the "
            "run; the figures are for the build loaded at the start"
        )
    L.append(
        f"- clvrs {info['clvrs']} (commit {info['clvrs_commit']}, core built "
        f"{info['clvrs_core_built']}), threads (n_jobs) = {info['clvrs_threads']}; "
        f"Python {info['python']}, numpy {info['numpy']}, pandas {info['pandas']}"
    )
    L.append(f"- repeats: {args.repeats} of each fit (median reported)")
    for mix in dict.fromkeys(r["mix"] for r in results):
        L.append(f"- {mix} mix: {MIXES[mix]['describe']}")
    L.append("")
    L.append(
        "| model | covariates | customers | distinct covariate vectors | base fit s | "
        "covariate fit s | ratio | base iterations / evaluations | covariate iterations / "
        "evaluations | LL gain |"
    )
    L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        c = r["fits"]
        gain = c["covariates"]["log_likelihood"] - c["base"]["log_likelihood"]
        L.append(
            f"| {r['model_label']} | {r['mix']} | {r['n']:,} | {r['distinct']:,} | "
            f"{fmt_s(c['median']['base'])} | {fmt_s(c['median']['covariates'])} | "
            f"{c['ratio']:.2f}x | {_iters(c['base'])} | {_iters(c['covariates'])} | "
            f"{gain:,.1f} |"
        )
    L.append("")
    L.append(
        "LL gain: log-likelihood of the covariate fit minus that of the base fit (total over "
        "customers). Iterations: L-BFGS iterations (`n_iter_`); evaluations: likelihood+gradient "
        "passes (`fit_info_['n_evaluations']`)."
    )
    L.append("")

    L.append(
        f"Recovery (covariate fit; z = (estimate - true) / se; the check is |z| <= {SE_LIMIT:g}). "
        "r, alpha, a, b / s, beta are the parameters at z = 0:"
    )
    L.append("")
    L.append("| model | covariates | customers | parameter | true | estimate | se | z |")
    L.append("|---|---|---:|---|---:|---:|---:|---:|")
    for r in results:
        for p in r["fits"]["recovery"]:
            flag = "" if np.isfinite(p["z"]) and abs(p["z"]) <= SE_LIMIT else " **!**"
            L.append(
                f"| {r['model_label']} | {r['mix']} | {r['n']:,} | {p['name']} | {p['true']:g} | "
                f"{p['estimate']:.4f} | {p['se']:.4f} | {p['z']:+.2f}{flag} |"
            )
    L.append("")
    notes = []
    for r in results:
        c = r["fits"]
        where = f"{r['model_label']}, {r['mix']}, {r['n']:,}"
        zs = [abs(p["z"]) for p in c["recovery"]]
        notes.append(
            f"{where}: recovery {'PASS' if c['recovered'] else 'FAIL'} (max |z| "
            f"{max(zs):.2f} over {len(zs)} parameters); base fit converged="
            f"{c['base']['converged']}, {c['base']['n_rows']} distinct rows "
            f"({c['base']['termination']}); "
            f"covariate fit converged={c['covariates']['converged']}, "
            f"{c['covariates']['n_rows']} rows ({c['covariates']['termination']}); "
            f"fit time / evaluations (an upper bound per evaluation: includes validation, set-up "
            f"and covariance): base {_per_eval(c, 'base')} s, covariates "
            f"{_per_eval(c, 'covariates')} s; "
            "runs (base / covariates, s): "
            + ", ".join(
                f"{b:.3f} / {v:.3f}" for b, v in zip(c["times"]["base"], c["times"]["covariates"])
            )
        )
        for w in c["warnings"]:
            notes.append(f"{where}: warning: {w}")
    L.extend(f"- {x}" for x in notes)
    L.append("")

    targets = []
    for r in results:
        if r["n"] < 1_000_000:
            continue
        ratio = r["fits"]["ratio"]
        verdict = "MET" if ratio <= TARGET_RATIO else "NOT MET"
        near = abs(ratio / TARGET_RATIO - 1) < 0.1
        note = " (within 10% of the target: inside the run-to-run noise)" if near else ""
        targets.append(
            f"- {r['model_label']}, {r['mix']} covariates, {r['n']:,} customers: covariate fit / "
            f"base fit = {ratio:.2f}x (at most {TARGET_RATIO:g}x) -> **{verdict}**{note}"
        )
    L.append(
        f"Target (from the issue): fitting with 5 covariates on 1M customers within "
        f"{TARGET_RATIO:g}x the time of the base model"
        + (":" if targets else ": not evaluated (no run at 1M customers)")
    )
    if targets:
        L.append("")
        L.extend(targets)
    L.append("")
    return "\n".join(L)


def update_doc(path: Path, text: str) -> None:
    replace_block(path, text, DOC_BEGIN, DOC_END, DOC_HEADING)
    log(f"updated {path}")


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------
SPEND_TRUE = {"p": 6.0, "q": 4.0, "gamma": 15.0}
SPEND_COEFFICIENTS = {
    "categorical": [0.3, 0.1, 0.2, -0.15, 0.05],
    "continuous": [0.4, 0.1, 0.15, -0.2, 0.05],
}


def make_spend_data(mix: str, n: int) -> pd.DataFrame:
    """Spend summaries with covariates drawn from the Gamma-Gamma model with covariates."""
    cols = list(MIXES[mix]["columns"])
    rng = np.random.default_rng([SEED, 99])
    cov = covariates(mix, n, rng)
    Z = cov[cols].to_numpy(dtype=np.float64)
    gamma_i = SPEND_TRUE["gamma"] * np.exp(Z @ np.asarray(SPEND_COEFFICIENTS[mix]))
    x = rng.poisson(2.0, n).astype(np.float64)
    nu = rng.gamma(SPEND_TRUE["q"], 1.0, n) / gamma_i
    shape = SPEND_TRUE["p"] * np.maximum(x, 1.0)
    mean = rng.gamma(shape, 1.0) / (nu * np.maximum(x, 1.0))
    frame = pd.DataFrame({"frequency": x, "monetary_value": np.where(x > 0, mean, 0.0)})
    for c in cols:
        frame[c] = cov[c].to_numpy()
    return frame


CHURN_TRUE = {"alpha": 1.0, "beta": 3.0}


def make_churn_data(model: str, mix: str, n: int) -> pd.DataFrame:
    """Per-customer churn records with covariates, drawn from sBG/BdW with covariates."""
    cols = list(MIXES[mix]["columns"])
    rng = np.random.default_rng([SEED, 98])
    cov = covariates(mix, n, rng)
    Z = cov[cols].to_numpy(dtype=np.float64)
    c = 0.7 if model == "bdw" else 1.0
    alpha = CHURN_TRUE["alpha"] * np.exp(Z @ np.asarray(SPEND_COEFFICIENTS[mix]))
    theta = rng.beta(alpha, CHURN_TRUE["beta"])
    horizon = rng.integers(4, 13, n)
    periods = horizon.astype(np.float64)
    churned = np.zeros(n, dtype=bool)
    alive = np.ones(n, dtype=bool)
    for t in range(1, 13):
        leave = alive & (t <= horizon) & (rng.random(n) > (1 - theta) ** (t**c - (t - 1) ** c))
        periods[leave] = t
        churned[leave] = True
        alive &= ~leave
    frame = pd.DataFrame({"periods": periods, "churned": churned})
    for col in cols:
        frame[col] = cov[col].to_numpy()
    return frame


def bench_churn(model: str, sizes: list[int], mixes: list[str], repeats: int) -> str:
    """Time sBG/BdW fits without and with 5 churn covariates; a Markdown table."""
    cls = clvrs.ShiftedBetaGeoModel if model == "sbg" else clvrs.BetaDiscreteWeibullModel
    lines = [
        f"| {model} mix | customers | base (s) | covariates (s) | ratio | iterations base / cov "
        "| recovery (max abs z) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for n in sizes:
        for mix in mixes:
            df = make_churn_data(model, mix, n)
            cols = list(MIXES[mix]["columns"])
            times: dict[str, list[float]] = {"base": [], "covariates": []}
            fitted: dict[str, Any] = {}
            for _ in range(repeats):
                for kind in ("base", "covariates"):
                    kw = {"churn_covariates": cols} if kind == "covariates" else {}
                    if QUIET_WAIT:
                        bg.wait_quiet(QUIET_WAIT, window=1.0)
                    gc.collect()
                    t0 = time.perf_counter()
                    fitted[kind] = cls().fit(df, **kw)
                    times[kind].append(time.perf_counter() - t0)
            med = {k: median(v) for k, v in times.items()}
            cov = fitted["covariates"]
            true = dict(CHURN_TRUE, **({"c": 0.7} if model == "bdw" else {}))
            true.update({f"churn:{c}": g for c, g in zip(cols, SPEND_COEFFICIENTS[mix])})
            z = max(
                abs((float(cov.params_[k]) - v) / float(cov.standard_errors_[k]))
                for k, v in true.items()
            )
            line = (
                f"| {mix} | {n:,} | {med['base']:.3f} | {med['covariates']:.3f} | "
                f"{med['covariates'] / med['base']:.1f}x | {fitted['base'].n_iter_} / "
                f"{cov.n_iter_} | {z:.2f} |"
            )
            log(line)
            lines.append(line)
            del df
            gc.collect()
    return "\n".join(lines)


BGBB_TRUE = {"alpha": 1.2, "beta": 0.8, "gamma": 0.6, "delta": 2.5}


def make_bgbb_data(mix: str, n: int) -> pd.DataFrame:
    """BG/BB histories with covariates, drawn exactly (see ``tests/test_bgbb_covariates.py``)."""
    cols = list(MIXES[mix]["columns"])
    rng = np.random.default_rng([SEED, 97])
    cov = covariates(mix, n, rng)
    Z = cov[cols].to_numpy(dtype=np.float64)
    g = np.asarray(SPEND_COEFFICIENTS[mix])
    alpha = BGBB_TRUE["alpha"] * np.exp(Z @ g)
    gamma = BGBB_TRUE["gamma"] * np.exp(Z @ (-g))
    p = rng.beta(alpha, BGBB_TRUE["beta"])
    theta = rng.beta(gamma, BGBB_TRUE["delta"])
    periods = rng.integers(4, 9, n)
    x = np.zeros(n)
    t_x = np.zeros(n)
    alive = np.ones(n, dtype=bool)
    for j in range(1, 9):
        alive &= (j <= periods) & (rng.random(n) >= theta)
        buy = alive & (rng.random(n) < p)
        x[buy] += 1
        t_x[buy] = j
    frame = pd.DataFrame({"frequency": x, "recency": t_x, "periods": periods.astype(np.float64)})
    for col in cols:
        frame[col] = cov[col].to_numpy()
    return frame


def bench_bgbb(sizes: list[int], mixes: list[str], repeats: int, threads: int | None) -> str:
    """Time BG/BB fits without and with 5 covariates in both processes; a Markdown table."""
    lines = [
        "| bgbb mix | customers | base (s) | covariates (s) | ratio | iterations base / cov "
        "| recovery (max abs z) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for n in sizes:
        for mix in mixes:
            df = make_bgbb_data(mix, n)
            cols = list(MIXES[mix]["columns"])
            times: dict[str, list[float]] = {"base": [], "covariates": []}
            fitted: dict[str, Any] = {}
            for _ in range(repeats):
                for kind in ("base", "covariates"):
                    kw = (
                        {"purchase_covariates": cols, "dropout_covariates": cols}
                        if kind == "covariates"
                        else {}
                    )
                    if QUIET_WAIT:
                        bg.wait_quiet(QUIET_WAIT, window=1.0)
                    gc.collect()
                    t0 = time.perf_counter()
                    fitted[kind] = clvrs.BetaGeoBetaBinomModel(n_jobs=threads).fit(df, **kw)
                    times[kind].append(time.perf_counter() - t0)
            med = {k: median(v) for k, v in times.items()}
            cov = fitted["covariates"]
            g = SPEND_COEFFICIENTS[mix]
            true = dict(BGBB_TRUE)
            true.update({f"purchase:{c}": v for c, v in zip(cols, g)})
            true.update({f"dropout:{c}": -v for c, v in zip(cols, g)})
            z = max(
                abs((float(cov.params_[k]) - v) / float(cov.standard_errors_[k]))
                for k, v in true.items()
            )
            line = (
                f"| {mix} | {n:,} | {med['base']:.3f} | {med['covariates']:.3f} | "
                f"{med['covariates'] / med['base']:.1f}x | {fitted['base'].n_iter_} / "
                f"{cov.n_iter_} | {z:.2f} |"
            )
            log(line)
            lines.append(line)
            del df
            gc.collect()
    return "\n".join(lines)


def bench_spend(sizes: list[int], mixes: list[str], repeats: int, threads: int | None) -> str:
    """Time the Gamma-Gamma fit without and with 5 spend covariates; a Markdown table."""
    lines = [
        "| mix | customers | base (s) | covariates (s) | ratio | iterations base / cov "
        "| recovery (max abs z) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for n in sizes:
        for mix in mixes:
            df = make_spend_data(mix, n)
            cols = list(MIXES[mix]["columns"])
            times: dict[str, list[float]] = {"base": [], "covariates": []}
            fitted: dict[str, Any] = {}
            for _ in range(repeats):
                for kind in ("base", "covariates"):
                    kw = {"spend_covariates": cols} if kind == "covariates" else {}
                    if QUIET_WAIT:
                        bg.wait_quiet(QUIET_WAIT, window=1.0)
                    gc.collect()
                    t0 = time.perf_counter()
                    fitted[kind] = clvrs.GammaGammaModel(n_jobs=threads).fit(df, **kw)
                    times[kind].append(time.perf_counter() - t0)
            med = {k: median(v) for k, v in times.items()}
            cov = fitted["covariates"]
            true = dict(SPEND_TRUE)
            true.update({f"spend:{c}": g for c, g in zip(cols, SPEND_COEFFICIENTS[mix])})
            z = max(
                abs((float(cov.params_[k]) - v) / float(cov.standard_errors_[k]))
                for k, v in true.items()
            )
            line = (
                f"| {mix} | {n:,} | {med['base']:.3f} | {med['covariates']:.3f} | "
                f"{med['covariates'] / med['base']:.2f}x | {fitted['base'].n_iter_} / "
                f"{cov.n_iter_} | {z:.2f} |"
            )
            log(line)
            lines.append(line)
            del df
            gc.collect()
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    global QUIET_WAIT
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--sizes",
        default="1m",
        help="comma-separated numbers of customers (100k, 1m, 250000); default %(default)s",
    )
    ap.add_argument(
        "--models",
        default="bgnbd,pnbd",
        help="comma-separated: bgnbd, pnbd, mbgnbd, ggnbd, gg (Gamma-Gamma spend), sbg, bdw "
        "(subscription churn), bgbb; default %(default)s",
    )
    ap.add_argument(
        "--mixes",
        default="categorical,continuous",
        help="comma-separated covariate mixes: categorical, continuous; default %(default)s",
    )
    ap.add_argument("--repeats", type=int, default=3, help="runs of each fit (default 3)")
    ap.add_argument(
        "--threads", type=int, default=None, help="n_jobs for clvrs (default: all cores)"
    )
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="on a shared machine: before each timed fit, wait up to this long for other "
        "processes to use < 0.25 cores (default 0: do not wait)",
    )
    ap.add_argument(
        "--check-simulator",
        type=int,
        default=0,
        metavar="N",
        help="only compare the vectorised simulator with clvrs' simulator on one group of N "
        "customers per model (and fit the base model to it), then exit",
    )
    ap.add_argument("--json", type=Path, default=None, help="also write raw results here")
    ap.add_argument(
        "--update-doc",
        type=Path,
        default=None,
        help="rewrite the generated section of this Markdown file (e.g. BENCHMARKS.md)",
    )
    args = ap.parse_args(argv)
    QUIET_WAIT = args.quiet_wait
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    mixes = [m.strip() for m in args.mixes.split(",") if m.strip()]
    spend = "gg" in models
    churn = [m for m in models if m in ("sbg", "bdw")]
    bgbb = "bgbb" in models
    models = [m for m in models if m not in ("gg", "sbg", "bdw", "bgbb")]
    bad = [m for m in models if m not in MODELS] + [m for m in mixes if m not in MIXES]
    if bad:
        ap.error(f"unknown model(s) or mix(es) {bad}: models {list(MODELS)}, mixes {list(MIXES)}")
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")
    if args.check_simulator:
        print(check_simulator(models, args.check_simulator, args.threads))
        return 0
    sizes = [bg.parse_size(s) for s in args.sizes.split(",") if s.strip()]
    if any(n is None for n in sizes):
        ap.error("--sizes takes numbers of customers (cdnow has no covariates)")
    if spend:
        print(bench_spend(sizes, mixes, args.repeats, args.threads))  # type: ignore[arg-type]
    for model in churn:
        print(bench_churn(model, sizes, mixes, args.repeats))  # type: ignore[arg-type]
    if bgbb:
        print(bench_bgbb(sizes, mixes, args.repeats, args.threads))  # type: ignore[arg-type]
    if (spend or churn or bgbb) and not models:
        return 0

    info = bg.machine_info(args.threads, bg.DEFAULT_PEER_PYTHON)
    info["command"] = "python " + " ".join(
        [os.path.relpath(Path(__file__).resolve(), Path.cwd())] + sys.argv[1:]
    )
    results: list[dict[str, Any]] = []
    whole = {"other_s": 0.0, "wall_s": 0.0}

    def dump() -> None:
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(
                json.dumps({"info": info, "results": results}, indent=1, default=str)
            )

    for n in sizes:
        for m in models:
            for mix in mixes:
                t0 = time.perf_counter()
                df, distinct = make_data(m, mix, n)
                log(
                    f"{MODELS[m]['label']}, {mix}, {n:,}: generated in "
                    f"{time.perf_counter() - t0:.1f} s (mean frequency "
                    f"{df['frequency'].mean():.3f}, {distinct:,} distinct covariate vectors); "
                    f"fits x{args.repeats}"
                )
                if args.quiet_wait:
                    bg.wait_quiet(args.quiet_wait)
                bg.disturbance_reset()
                fits = time_fits(m, mix, df, args.repeats, args.threads)
                whole["other_s"] += bg.DISTURBANCE["other_s"]
                whole["wall_s"] += bg.DISTURBANCE["wall_s"]
                entry = {
                    "model": m,
                    "model_label": MODELS[m]["label"],
                    "mix": mix,
                    "n": n,
                    "size_label": bg.size_label(n),
                    "distinct": distinct,
                    "mean_frequency": float(df["frequency"].mean()),
                    "fits": fits,
                    "other_cpu_cores": bg.disturbance_reset(),
                }
                results.append(entry)
                log(
                    f"  base {fits['median']['base']:.3f} s, covariates "
                    f"{fits['median']['covariates']:.3f} s, ratio {fits['ratio']:.2f}x; "
                    f"recovery {'PASS' if fits['recovered'] else 'FAIL'}; other processes "
                    f"{entry['other_cpu_cores']:.2f} cores"
                )
                dump()
                del df
                gc.collect()

    built_end = _dt.datetime.fromtimestamp(Path(_core.__file__).stat().st_mtime).strftime(
        "%Y-%m-%d %H:%M"
    )
    if built_end != info["clvrs_core_built"]:
        info["core_rebuilt"] = built_end
        log(f"note: the clvrs core was rebuilt during the run ({built_end}); not measured")
    info["loadavg_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    info["other_cpu_cores"] = whole["other_s"] / whole["wall_s"] if whole["wall_s"] else 0.0
    text = report(args, info, results)
    print(text)
    dump()
    if args.update_doc:
        update_doc(args.update_doc, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
