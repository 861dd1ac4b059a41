"""Pooling across segments (fit_segments(..., pooling=...)): partial pooling against separate
and pooled fits on simulated segments with known parameters, the layout of its posterior (ArviZ's
InferenceData and xarray's DataTree), separate posteriors in parallel, persistence, and the
argument checks. Heavier variants run with CLVRS_HEAVY_TESTS=1."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

import clvrs
from clvrs import _core
from clvrs.exceptions import ConvergenceWarning, InvalidParameterError

_HEAVY = os.environ.get("CLVRS_HEAVY_TESTS") == "1"

#: Population centres of the simulated segments' parameters.
_CENTRES = {
    "bgnbd": (clvrs.BetaGeoModel, [0.5, 5.0, 0.8, 2.5]),
    "pnbd": (clvrs.ParetoNBDModel, [0.6, 6.0, 0.8, 12.0]),
}


def _segments(model: str, sizes: list[int], spread: float, seed: int):
    """Customers of segments whose log-parameters are the centre plus Normal(0, spread)
    offsets: the data, and the true parameters by segment."""
    rng = np.random.default_rng(seed)
    _, centre = _CENTRES[model]
    frames, truth = [], {}
    for s, n in enumerate(sizes):
        params = [c * float(np.exp(spread * rng.normal())) for c in centre]
        truth[s] = params
        T = rng.uniform(26, 78, n)
        x, t_x = _core.rfm_simulate(model, params, T, seed * 1000 + s)
        frames.append(pd.DataFrame({"frequency": x, "recency": t_x, "T": T, "segment": s}))
    return pd.concat(frames, ignore_index=True), truth


def _estimates(fits) -> pd.DataFrame:
    return pd.DataFrame({k: m.params_ for k, m in fits.models_.items()}).T


def _log_error(estimates: pd.DataFrame, truth: dict) -> float:
    want = pd.DataFrame(truth, index=estimates.columns).T
    return float(np.log(estimates / want).pow(2).to_numpy().mean())


_SAMPLER = {"chains": 2, "draws": 300, "tune": 300}


@pytest.mark.parametrize("model", ["bgnbd", "pnbd"])
def test_partial_pooling_recovers_small_segments_better_than_separate_fits(model):
    # 8 segments of 60 customers (6 of 50 for the costlier Pareto/NBD pass): alone each says
    # little about its dropout process.
    n_segments, size = (8, 60) if model == "bgnbd" else (6, 50)
    if _HEAVY:
        n_segments *= 2
    data, truth = _segments(model, [size] * n_segments, spread=0.3, seed=3)
    cls, _ = _CENTRES[model]
    sampler = _SAMPLER if model == "bgnbd" or _HEAVY else {**_SAMPLER, "draws": 200, "tune": 200}
    with _quiet():
        partial = clvrs.fit_segments(
            cls(), data, "segment", method="nuts", pooling="partial", seed=1, **sampler
        )
        separate = clvrs.fit_segments(
            cls(), data, "segment", method="nuts", pooling="none", seed=1, min_customers=0,
            **sampler,
        )  # fmt: skip
    partial_error = _log_error(_estimates(partial), truth)
    separate_error = _log_error(_estimates(separate), truth)
    # Mean squared log-error over segments and parameters: pooling at least halves it.
    assert partial_error < 0.5 * separate_error, (partial_error, separate_error)
    # The population's centre is near the simulated one (within 3 posterior sds).
    population = partial.population_
    _, centre = _CENTRES[model]
    for name, c in zip(cls._param_names, centre):
        row = population.loc[f"mu_log_{name}"]
        assert abs(row["mean"] - np.log(c)) < 3 * row["sd"] + 0.1, name


class _quiet:
    """Ignore the sampler's health warnings (short test chains)."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", ConvergenceWarning)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def test_partial_pooling_equals_separate_fits_on_large_segments():
    # 3 segments of 3,000 customers, far apart: each is pinned down by its own data, and the
    # population barely moves it.
    size = 6000 if _HEAVY else 3000
    data, _ = _segments("bgnbd", [size] * 3, spread=0.5, seed=5)
    settings = {"chains": 2, "draws": 500, "tune": 500, "seed": 2}
    with _quiet():
        partial = clvrs.fit_segments(
            clvrs.BetaGeoModel(), data, "segment", method="nuts", pooling="partial", **settings
        )
        separate = clvrs.fit_segments(
            clvrs.BetaGeoModel(), data, "segment", method="nuts", pooling="none", **settings
        )
    a = partial.summary.drop(index="population")
    b = separate.summary
    # Within Monte Carlo error (4 combined MCSEs) plus a share of a posterior sd for the
    # shrinkage left at this size: a tenth for the purchase rates r and alpha, which the data
    # pin down, half for the weakly identified dropout shapes a and b (the population moves
    # segment 2's a by about 0.45 of its separate sd, 0.89 against 1.0: seen with both the
    # whitened sampler and the one before it, whose larger MCSEs had hidden it behind a
    # common quarter of a sd).
    share = np.where(b.index.get_level_values("parameter").isin(["r", "alpha"]), 0.1, 0.5)
    tolerance = 4 * np.hypot(a["mcse_mean"], b["mcse_mean"]) + share * b["sd"]
    difference = (a["mean"] - b["mean"]).abs()
    assert (difference < tolerance).all(), pd.DataFrame({"diff": difference, "tol": tolerance})
    # The posterior sds of r and alpha agree too; those of a and b, which BG/NBD data
    # identify weakly even at this size, are legitimately tightened by the population.
    sds = pd.DataFrame({"partial": a["sd"], "separate": b["sd"]})
    rates = sds[sds.index.get_level_values("parameter").isin(["r", "alpha"])]
    assert np.allclose(rates["partial"], rates["separate"], rtol=0.15), rates


def test_partial_pooling_layout_reproducibility_and_complete_pooling():
    data, _ = _segments("bgnbd", [200, 40, 120], spread=0.3, seed=7)
    data["segment"] = data["segment"].map({0: "north", 1: "south", 2: "west"})
    settings = {"chains": 2, "draws": 100, "tune": 100, "seed": 4}
    with _quiet():
        one = clvrs.fit_segments(
            clvrs.BetaGeoModel(n_jobs=1), data, "segment", method="nuts", pooling="partial",
            **settings,
        )  # fmt: skip
        two = clvrs.fit_segments(
            clvrs.BetaGeoModel(n_jobs=2), data, "segment", method="nuts", pooling="partial",
            **settings,
        )  # fmt: skip
    pd.testing.assert_frame_equal(one.summary, two.summary, check_exact=True)
    assert list(one.summary.index.get_level_values(0).unique()) == [
        "north", "south", "west", "population"
    ]  # fmt: skip
    post = one.posterior_
    posterior = post["posterior"] if isinstance(post, dict) else post.posterior
    assert posterior["r"].shape == (2, 100, 3)
    assert posterior["mu_log_r"].shape == (2, 100)
    # Each segment's model holds its slice of the draws and predicts with its posterior mean.
    south = one.models_["south"]
    assert south.params_["r"] == pytest.approx(float(np.mean(np.asarray(posterior["r"])[:, :, 1])))
    assert one.pooling == "partial" and south.fit_info_["pooling"] == "partial"
    rows = data[data["segment"] == "south"]
    pd.testing.assert_series_equal(
        one.expected_purchases(rows, 4.0).reset_index(drop=True),
        south.expected_purchases(rows, 4.0).reset_index(drop=True),
        check_names=False,
    )
    # Complete pooling: one model for every segment, the model fitted to all customers.
    pooled = clvrs.fit_segments(clvrs.BetaGeoModel(), data, "segment", pooling="complete")
    alone = clvrs.BetaGeoModel().fit(data)
    for model in pooled.models_.values():
        pd.testing.assert_series_equal(model.params_, alone.params_)


def test_pooling_arguments_are_checked():
    data, _ = _segments("bgnbd", [100, 100], spread=0.3, seed=9)
    model = clvrs.BetaGeoModel()
    with pytest.raises(InvalidParameterError, match="pooling"):
        clvrs.fit_segments(model, data, "segment", pooling="hierarchical")
    with pytest.raises(InvalidParameterError, match='method="nuts"'):
        clvrs.fit_segments(model, data, "segment", pooling="partial")
    with pytest.raises(InvalidParameterError, match="method"):
        clvrs.fit_segments(model, data, "segment", method="bayes")
    one = data.assign(segment=0)
    with pytest.raises(InvalidParameterError, match="at least 2 segments"):
        clvrs.fit_segments(model, one, "segment", method="nuts", pooling="partial")
    with pytest.raises(InvalidParameterError, match="unknown parameter 'r'"):
        clvrs.fit_segments(
            model, data, "segment", method="nuts", pooling="partial",
            priors={"r": clvrs.priors.Gamma(1, 1)},
        )  # fmt: skip
    with pytest.raises(InvalidParameterError, match="priors"):
        clvrs.fit_segments(model, data, "segment", priors={"r": clvrs.priors.Gamma(1, 1)})
    with pytest.raises(InvalidParameterError, match="chains"):
        clvrs.fit_segments(model, data, "segment", method="nuts", pooling="partial", chains=0)
    with pytest.raises(AttributeError, match="population_"):
        _ = clvrs.fit_segments(model, data, "segment").population_
    # The regularity models are fitted per segment by maximum likelihood only.
    regular = clvrs.BetaGeoCNBDModel(k=1)
    with pytest.raises(InvalidParameterError, match="maximum likelihood only"):
        clvrs.fit_segments(regular, data, "segment", method="nuts", chains=1, draws=10, tune=10)
    with pytest.raises(InvalidParameterError, match="pooling"):
        clvrs.fit_segments(regular, data, "segment", pooling="complete")
    # A prior on a population spread is used.
    with _quiet():
        tight = clvrs.fit_segments(
            model, data, "segment", method="nuts", pooling="partial", chains=1, draws=50,
            tune=50, seed=1, priors={"sigma_log_r": clvrs.priors.HalfNormal(0.01)},
        )  # fmt: skip
    assert tight.population_.loc["sigma_log_r", "mean"] < 0.03
    assert "sigma_log_r" in tight.priors_


def _three_segments() -> pd.DataFrame:
    data, _ = _segments("bgnbd", [200, 40, 120], spread=0.3, seed=7)
    data["segment"] = data["segment"].map({0: "north", 1: "south", 2: "west"})
    return data


_SHORT = {"method": "nuts", "chains": 2, "draws": 100, "tune": 100, "seed": 4}


@pytest.mark.parametrize("pooling", ["partial", "none", "complete"])
def test_save_and_load_keep_every_draw_the_pooling_and_the_priors(pooling, tmp_path):
    data = _three_segments()
    priors = (
        {"sigma_log_a": clvrs.priors.HalfNormal(0.5)}
        if pooling == "partial"
        else {"r": clvrs.priors.Gamma(1.0, 2.0)}
    )
    with _quiet():
        fitted = clvrs.fit_segments(
            clvrs.BetaGeoModel(), data, "segment", pooling=pooling, priors=priors, **_SHORT
        )
    path = tmp_path / "segments.json"
    fitted.save(path)
    loaded = clvrs.load(path)
    assert (loaded.pooling, loaded.method) == (pooling, "nuts")
    assert loaded.priors_ == fitted.priors_ and loaded.priors_  # the given prior among them
    assert loaded.fit_info_ == fitted.fit_info_
    pd.testing.assert_frame_equal(loaded.summary, fitted.summary)
    for key, model in fitted.models_.items():
        for group in ("posterior", "sample_stats"):
            for name, array in model._draws[group].items():
                np.testing.assert_array_equal(loaded.models_[key]._draws[group][name], array)
    if pooling == "partial":
        for name, array in fitted._population.items():
            np.testing.assert_array_equal(loaded._population[name], array)
        pd.testing.assert_frame_equal(loaded.population_, fitted.population_)
        assert loaded.models_["south"].fit_info_["pooling"] == "partial"
    else:
        with pytest.raises(AttributeError, match="population_"):
            _ = loaded.population_
    # Predictions after loading are those of the fitted collection (posterior means).
    pd.testing.assert_series_equal(
        loaded.expected_purchases(data, 10.0), fitted.expected_purchases(data, 10.0)
    )
    pd.testing.assert_series_equal(loaded.probability_alive(data), fitted.probability_alive(data))
    post, again = fitted.posterior_, loaded.posterior_
    for name in ("r", "b"):
        np.testing.assert_array_equal(
            np.asarray(again["posterior"][name]), np.asarray(post["posterior"][name])
        )


def test_separate_posteriors_run_in_parallel_each_as_its_own_fit():
    data = _three_segments()
    with _quiet():
        one = clvrs.fit_segments(
            clvrs.BetaGeoModel(n_jobs=1), data, "segment", min_customers=50, **_SHORT
        )
        two = clvrs.fit_segments(
            clvrs.BetaGeoModel(n_jobs=2), data, "segment", min_customers=50, **_SHORT
        )
    # Bit-identical for 1 and 2 threads (segments run in parallel, each serially).
    assert list(one.models_) == list(two.models_) == ["north", "west"]
    for key in one.models_:
        for name, array in one.models_[key]._draws["posterior"].items():
            assert array.tobytes() == two.models_[key]._draws["posterior"][name].tobytes()
    assert "fewer than the 50 required" in one.failures_["south"]
    # A segment's draws are those of the model fitted to its customers alone with the seed
    # recorded for it (derived from `seed` and the segment's position).
    west = one.models_["west"]
    seed = west.fit_info_["seed"]
    assert seed != _SHORT["seed"]
    with _quiet():
        alone = clvrs.BetaGeoModel().fit(
            data[data["segment"] == "west"], **{**_SHORT, "seed": seed}
        )
    for name, array in alone._draws["posterior"].items():
        assert array.tobytes() == west._draws["posterior"][name].tobytes()


def test_pooled_posterior_as_a_datatree_and_arviz_summary_on_both_layouts(monkeypatch):
    xarray = pytest.importorskip("xarray")
    arviz = pytest.importorskip("arviz")
    import builtins
    import warnings

    data = _three_segments()
    with _quiet():
        pooled = clvrs.fit_segments(
            clvrs.BetaGeoModel(), data, "segment", pooling="partial", **_SHORT
        )
    draws_r = np.stack([pooled.models_[k]._draws["posterior"]["r"] for k in pooled.models_], -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        # The layout this ArviZ builds (InferenceData before 1.0; a DataTree from 1.0 on).
        table = arviz.summary(pooled.posterior_, var_names=["r", "mu_log_r"])
    assert list(table.index) == ["r[north]", "r[south]", "r[west]", "mu_log_r"]
    np.testing.assert_allclose(table["mean"].iloc[:3], draws_r.mean(axis=(0, 1)), atol=1e-3)
    if not hasattr(xarray, "DataTree"):
        pytest.skip("this xarray has no DataTree")
    # Without ArviZ < 1.0 (ArviZ >= 1.0, or xarray alone), an xarray.DataTree.
    real_import = builtins.__import__

    def no_arviz(name, *args, **kwargs):
        if name == "arviz":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_arviz)
    pooled.__dict__.pop("_posterior", None)
    tree = pooled.posterior_
    monkeypatch.undo()
    assert isinstance(tree, xarray.DataTree)
    assert set(tree.children) == {"posterior", "sample_stats"}
    posterior = tree["posterior"]
    assert posterior["r"].dims == ("chain", "draw", "segment")
    assert list(posterior["segment"].values) == ["north", "south", "west"]
    assert posterior["mu_log_r"].dims == ("chain", "draw")
    np.testing.assert_array_equal(posterior["r"].values, draws_r)
    assert tree["sample_stats"]["diverging"].dims == ("chain", "draw")
    # ArviZ reads the tree (ArviZ 1.x natively; before 1.0 through its DataTree converter) and
    # summarises it as it summarises its own layout.
    if int(arviz.__version__.split(".")[0]) >= 1:
        again = arviz.summary(tree, var_names=["r", "mu_log_r"])
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            again = arviz.summary(
                arviz.InferenceData.from_datatree(tree), var_names=["r", "mu_log_r"]
            )
    pd.testing.assert_frame_equal(again, table)
