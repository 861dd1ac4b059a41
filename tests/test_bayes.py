"""Bayesian fits (method="nuts"): the diagnostics against ArviZ, the posterior against
PyMC-Marketing's on the same priors, against the maximum-likelihood fit on large simulated data,
simulation-based calibration, reproducibility, persistence and the argument checks."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pandas as pd
import pytest
from conftest import bgnbd_synth

import clvrs
from clvrs import _diagnostics
from clvrs import priors as P
from clvrs.exceptions import ConvergenceWarning, InvalidParameterError

# --------------------------------------------------------------------------------------------
# Diagnostics: rank-normalised R-hat, bulk and tail ESS, MCSE against ArviZ.


def _normals(seed: int, size: int) -> np.ndarray:
    """Standard normals from a 64-bit LCG and Box-Muller: the same numbers on any numpy."""
    state = seed
    u = np.empty(size + size % 2)
    for i in range(u.size):
        state = (state * 6364136223846793005 + 1442695040888963407) % 2**64
        u[i] = ((state >> 11) + 0.5) / 2.0**53
    radius = np.sqrt(-2 * np.log(u[0::2]))
    angle = 2 * np.pi * u[1::2]
    out = np.empty(u.size)
    out[0::2], out[1::2] = radius * np.cos(angle), radius * np.sin(angle)
    return out[:size]


def _ar1(rho: float, chains: int, n: int, seed: int, shift: list[float] | None = None):
    e = _normals(seed, chains * n).reshape(chains, n)
    x = np.zeros((chains, n))
    x[:, 0] = e[:, 0] / math.sqrt(1 - rho**2)
    for t in range(1, n):
        x[:, t] = rho * x[:, t - 1] + e[:, t]
    return x if shift is None else x + np.asarray(shift)[:, None]


_CASES = {
    "iid": lambda: _ar1(0.0, 4, 1000, 1),
    "ar_0.5": lambda: _ar1(0.5, 4, 1000, 2),
    "ar_0.9": lambda: _ar1(0.9, 4, 1000, 3),
    "one_chain_shifted": lambda: _ar1(0.3, 4, 1000, 4, shift=[0, 0, 0, 1.0]),
    "odd_length": lambda: _ar1(0.7, 3, 501, 5),
    "skewed": lambda: np.exp(_ar1(0.6, 4, 1000, 6)),
    "ties": lambda: np.round(_ar1(0.4, 2, 400, 7)),
}

#: (R-hat, bulk ESS, tail ESS, MCSE of the mean) by arviz 0.23.4 (az.rhat, az.ess(method=
#: "bulk"/"tail"), az.mcse(method="mean")) on the cases above, computed once.
_ARVIZ = {
    "iid": (0.9997058322148573, 3904.6081002748565, 3728.373991014589, 0.01591256423782132),
    "ar_0.5": (1.000782668664822, 1513.1741170804369, 2215.286892952775, 0.029158931308492984),
    "ar_0.9": (1.014766144445698, 221.75574599046567, 574.1145591269917, 0.16408078976352786),
    "one_chain_shifted": (
        1.1002581995388183,
        27.111083712285954,
        138.2776376032544,
        0.21647887327431664,
    ),
    "odd_length": (1.0071789446296007, 240.4545525619457, 523.8435380905552, 0.09194145824265924),
    "skewed": (1.0054028671315318, 1046.0244233910023, 1807.793370271303, 0.12351234042897036),
    "ties": (1.001163230745995, 352.3426000485666, 592.1992874415416, 0.06327945314694791),
}


@pytest.mark.parametrize("case", sorted(_CASES))
def test_diagnostics_match_arviz(case):
    x = _CASES[case]()
    ours = (
        _diagnostics.rhat(x),
        _diagnostics.ess_bulk(x),
        _diagnostics.ess_tail(x),
        _diagnostics.mcse_mean(x),
    )
    np.testing.assert_allclose(ours, _ARVIZ[case], rtol=1e-9)


def test_ess_of_a_long_ar1_chain_is_its_known_value():
    # An AR(1) chain with coefficient rho has ESS = n (1 - rho) / (1 + rho) asymptotically.
    x = _ar1(0.5, 1, 40_000, 11)
    assert _diagnostics.ess_bulk(x) == pytest.approx(40_000 / 3, rel=0.08)
    assert _diagnostics.rhat(np.vstack([x[:, :20_000], x[:, 20_000:]])) < 1.01


def test_diagnostics_of_degenerate_draws_are_nan():
    assert math.isnan(_diagnostics.rhat(np.ones((4, 100))))
    assert math.isnan(_diagnostics.ess_bulk(np.zeros((2, 3))))


# --------------------------------------------------------------------------------------------
# Posterior of BG/NBD on CDNOW with PyMC-Marketing's default priors.

#: PyMC-Marketing 0.19.2 posterior means, BG/NBD on CDNOW, default priors, 4 x 1000 draws after
#: 1000 tuning steps, seed 1 (../shared/bench/README.md).
_PMM_MEANS = {"r": 0.2458, "alpha": 4.518, "a": 0.782, "b": 2.412}


@pytest.fixture(scope="module")
def cdnow_nuts(cdnow):
    model = clvrs.BetaGeoModel()
    return model.fit(cdnow, method="nuts", seed=1, priors=P.pymc_marketing(model))


def test_cdnow_posterior_matches_pymc_marketing_on_its_priors(cdnow_nuts):
    summary = cdnow_nuts.summary
    for name, theirs in _PMM_MEANS.items():
        ours, mcse = summary.loc[name, "mean"], summary.loc[name, "mcse_mean"]
        # Both are Monte Carlo estimates of one posterior mean: their difference has a standard
        # error of about sqrt(2) * mcse (theirs is quoted to 3-4 digits: add that rounding).
        tolerance = 4 * math.sqrt(2) * mcse + 5e-4 * abs(theirs)
        assert abs(ours - theirs) < tolerance, (name, ours, theirs, tolerance)
    assert cdnow_nuts.converged_
    assert cdnow_nuts.fit_info_["divergences"] == 0
    assert (summary["r_hat"] < 1.01).all()
    assert (summary["ess_bulk"] > 400).all() and (summary["ess_tail"] > 400).all()


def test_summary_and_attributes_of_a_bayesian_fit(cdnow_nuts):
    m = cdnow_nuts
    summary = m.summary
    assert list(summary.columns) == [
        "mean",
        "sd",
        "lower",
        "upper",
        "r_hat",
        "ess_bulk",
        "ess_tail",
        "mcse_mean",
    ]
    assert list(summary.index) == ["r", "alpha", "a", "b"]
    np.testing.assert_allclose(summary["mean"], m.params_)
    np.testing.assert_allclose(summary["sd"], m.standard_errors_)
    assert (summary["lower"] < summary["mean"]).all() and (summary["mean"] < summary["upper"]).all()
    assert "divergences" in summary.attrs["sampler_health"]
    assert repr(summary).endswith(summary.attrs["sampler_health"])
    # Rounded for printing, it keeps the line.
    assert repr(summary.round(3)).endswith(summary.attrs["sampler_health"])
    assert "maximum tree depth" in summary._repr_html_()
    assert m.fit_info_["method"] == "nuts" and m.fit_info_["seed"] == 1
    assert m.log_likelihood_ is None and m.n_observations_ == 2357
    assert isinstance(m.priors_[("a", "b")], P.MeanPrecision)
    assert "posterior mean of 4 x 1000 NUTS draws" in repr(m)
    # A narrower credible level gives a narrower interval.
    narrow = m.summary_frame(level=0.5)
    assert (narrow["upper"] - narrow["lower"] < summary["upper"] - summary["lower"]).all()
    # Predictions work from the posterior mean.
    assert np.all(np.isfinite(m.expected_purchases(m_data := clvrs.datasets.load_cdnow_summary())))
    assert len(m_data) == 2357


def test_posterior_layout(cdnow_nuts):
    post = cdnow_nuts.posterior_
    try:
        import arviz  # noqa: F401
    except ImportError:
        arviz = None
    if isinstance(post, dict):
        assert post["posterior"]["r"].shape == (4, 1000)
        assert post["sample_stats"]["diverging"].dtype == bool
        return
    assert arviz is not None or hasattr(post, "children")
    r = post["posterior"]["r"]
    assert r.dims == ("chain", "draw") and r.shape == (4, 1000)
    assert float(r.mean()) == pytest.approx(cdnow_nuts.params_["r"], rel=1e-12)
    assert set(post["sample_stats"].data_vars) >= {"diverging", "tree_depth", "lp"}
    if arviz is not None:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            frame = arviz.summary(post, var_names=["r"])
        # ArviZ's own diagnostics of our draws agree with the summary's.
        assert frame.loc["r", "r_hat"] == pytest.approx(
            cdnow_nuts.summary.loc["r", "r_hat"], abs=0.006
        )


def test_posterior_without_arviz_is_a_dict_of_arrays(cdnow_nuts, monkeypatch):
    import builtins

    from clvrs import _bayes

    real_import = builtins.__import__

    def no_xarray(name, *args, **kwargs):
        if name in ("arviz", "xarray"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_xarray)
    post = _bayes.posterior_container(cdnow_nuts._draws)
    assert isinstance(post, dict)
    assert post["posterior"]["alpha"].shape == (4, 1000)
    assert post["sample_stats"]["tree_depth"].shape == (4, 1000)


def test_save_load_and_pickle_keep_the_draws(cdnow_nuts, tmp_path):
    path = tmp_path / "bgnbd.json"
    cdnow_nuts.save(path)
    doc = json.loads(path.read_text())
    assert doc["format_version"] == 3 and len(doc["posterior"]["values"]) == 4000
    loaded = clvrs.load(path)
    for group in ("posterior", "sample_stats"):
        for name, array in cdnow_nuts._draws[group].items():
            np.testing.assert_array_equal(loaded._draws[group][name], array)
    pd.testing.assert_frame_equal(loaded.summary, cdnow_nuts.summary)
    assert loaded.priors_ == cdnow_nuts.priors_
    assert loaded.fit_info_["seed"] == 1
    again = pickle.loads(pickle.dumps(cdnow_nuts))
    pd.testing.assert_series_equal(again.params_, cdnow_nuts.params_)
    # A maximum-likelihood refit clears the posterior.
    refit = clvrs.load(path).fit(clvrs.datasets.load_cdnow_summary())
    assert "posterior_" not in refit.__dict__ and refit.summary.columns[0] == "coef"


# --------------------------------------------------------------------------------------------
# Large data: with flat priors the posterior concentrates at the MLE with sds equal to the
# standard errors (Bernstein-von Mises), and covers the true parameters.
#
# Two limits of "flat priors give the MLE" (issue 19's check), measured: on CDNOW (2,357
# customers) BG/NBD's r and alpha agree (means within 0.3 se, sds within 5%), but the dropout
# shapes a and b are skewed: with 4 x 1000 draws their posterior means are about 1 se above the
# MLE (a 0.98 vs 0.79, b 3.22 vs 2.43) and their sds 1.6-1.7 times the standard errors, so the
# CDNOW test checks r and alpha only. Pareto/NBD's flat posterior is improper on any data: as s
# and beta grow with s / beta fixed, the likelihood tends to that of a homogeneous dropout rate,
# which is positive, so a flat prior leaves infinite mass there; on CDNOW (beta weakly
# identified) the chains run off along that ridge. Its check is on simulated data, where the
# ridge lies far below the maximum, behind CLVRS_HEAVY_TESTS=1 with the 100,000-customer
# BG/NBD case (about 1.5 and 4 minutes on 2 busy cores).

_HEAVY = __import__("os").environ.get("CLVRS_HEAVY_TESTS") == "1"


def _flat_agrees_with_the_mle(mle, post, names, mean_tolerance, sd_tolerance):
    summary = post.summary
    for name in names:
        se = mle.standard_errors_[name]
        assert (
            abs(summary.loc[name, "mean"] - mle.params_[name])
            < mean_tolerance * se + 4 * summary.loc[name, "mcse_mean"]
        ), (name, summary.loc[name, "mean"], mle.params_[name], se)
        assert summary.loc[name, "sd"] / se == pytest.approx(1.0, abs=sd_tolerance), name


def test_flat_posterior_of_bgnbd_on_cdnow_agrees_with_the_mle_on_r_and_alpha(cdnow, cdnow_model):
    flat = {name: P.Flat() for name in ("r", "alpha", "a", "b")}
    post = clvrs.BetaGeoModel(on_failure="ignore").fit(
        cdnow, method="nuts", chains=2, draws=500, tune=500, seed=1, priors=flat
    )
    _flat_agrees_with_the_mle(cdnow_model, post, ["r", "alpha"], 0.3, 0.1)
    # The skew of the dropout shapes (see above): their posterior means lie above the MLE.
    assert (post.params_[["a", "b"]] > cdnow_model.params_[["a", "b"]]).all()


def test_nbd_flat_posterior_and_mode_agree_with_the_mle_on_cdnow(cdnow):
    """NBD (two well-identified parameters): the flat-prior mode is the MLE, and the flat
    posterior's means and sds are its estimates and standard errors."""
    mle = clvrs.NBDModel().fit(cdnow)
    flat = {"r": P.Flat(), "alpha": P.Flat()}
    mode = clvrs.NBDModel().fit(cdnow, method="map", priors=flat)
    np.testing.assert_allclose(mode.params_, mle.params_, rtol=1e-6)
    np.testing.assert_allclose(mode.standard_errors_, mle.standard_errors_, rtol=1e-4)
    post = clvrs.NBDModel(on_failure="ignore").fit(
        cdnow, method="nuts", chains=2, draws=500, tune=300, seed=1, priors=flat
    )
    _flat_agrees_with_the_mle(mle, post, ["r", "alpha"], 0.2, 0.1)


@pytest.mark.parametrize(
    ("model", "n"),
    [("bgnbd", 10_000)] + ([("bgnbd", 100_000), ("pnbd", 20_000)] if _HEAVY else []),
)
def test_posterior_agrees_with_the_mle_on_large_simulated_data(model, n):
    from clvrs import _core

    if model == "bgnbd":
        truth = {"r": 0.8, "alpha": 6.0, "a": 0.6, "b": 2.5}
        x, t_x, age = bgnbd_synth(n, seed=7, **truth)
        cls = clvrs.BetaGeoModel
    else:
        truth = {"r": 0.6, "alpha": 6.0, "s": 0.8, "beta": 12.0}
        age = np.random.default_rng(11).uniform(26, 78, n)
        x, t_x = _core.rfm_simulate("pnbd", list(truth.values()), age, 5)
        cls = clvrs.ParetoNBDModel
    data = pd.DataFrame({"frequency": x, "recency": t_x, "T": age})
    mle = cls().fit(data)
    flat = {name: P.Flat() for name in truth}
    # (Two chains for Pareto/NBD, whose likelihood pass costs several times BG/NBD's.)
    chains = 2 if model == "pnbd" else 4
    post = cls(on_failure="ignore").fit(
        data, method="nuts", seed=3, chains=chains, draws=400, tune=400, priors=flat
    )
    # Posterior mean minus mode is O(1/n): far below a standard error here.
    _flat_agrees_with_the_mle(mle, post, list(truth), 0.2, 0.12)
    summary = post.summary
    for name, true in truth.items():
        assert abs(summary.loc[name, "mean"] - true) < 4 * summary.loc[name, "sd"], name
    assert post.fit_info_["initial_point_is_mode"]


# --------------------------------------------------------------------------------------------
# Reproducibility.


def test_same_seed_gives_the_same_draws_on_one_and_two_threads(cdnow):
    def draws(n_jobs, seed):
        m = clvrs.BetaGeoModel(n_jobs=n_jobs, on_failure="ignore").fit(
            cdnow, method="nuts", chains=2, draws=150, tune=150, seed=seed
        )
        return np.stack([m._draws["posterior"][k] for k in ("r", "alpha", "a", "b")])

    one = draws(1, 42)
    two = draws(2, 42)
    assert one.tobytes() == two.tobytes()
    assert draws(2, 43).tobytes() != one.tobytes()


# --------------------------------------------------------------------------------------------
# Simulation-based calibration (Talts, Betancourt, Simpson, Vehtari & Gelman 2018) of sBG on a
# small cohort: with data simulated from the prior, the rank of each true parameter among the
# posterior draws is uniform. 100 data sets, ranks among 99 thinned draws in 10 bins, a
# chi-squared test with 9 degrees of freedom at level 0.001 per parameter: under a correct
# sampler it fails with probability about 0.002 over seeds (two parameters); at this fixed
# seed it passes. The same test with a wrong prior in the fit fails (it can fail).

_SBC_PRIOR = {"alpha": P.LogNormal(0.0, 0.5), "beta": P.LogNormal(1.0, 0.5)}
_SBC_SETS, _SBC_DRAWS, _SBC_THIN = 100, 99, 4
_CHI2_9_999 = 27.877  # 0.999 quantile of chi-squared with 9 degrees of freedom


def _sbc_chi2(fit_priors) -> dict[str, float]:
    rng = np.random.default_rng(2026)
    ranks: dict[str, list[int]] = {"alpha": [], "beta": []}
    for i in range(_SBC_SETS):
        alpha = rng.lognormal(0.0, 0.5)
        beta = rng.lognormal(1.0, 0.5)
        p = rng.beta(alpha, beta, size=150)
        churn = rng.geometric(p)  # period of churn: 1, 2, ...
        survivors = [int(np.sum(churn > t)) for t in range(7)]
        m = clvrs.ShiftedBetaGeoModel(on_failure="ignore").fit(
            survivors=survivors,
            method="nuts",
            chains=1,
            draws=_SBC_DRAWS * _SBC_THIN,
            tune=300,
            seed=i,
            priors=fit_priors,
        )
        for name, true in (("alpha", alpha), ("beta", beta)):
            thinned = m._draws["posterior"][name][0, _SBC_THIN - 1 :: _SBC_THIN]
            ranks[name].append(int(np.sum(thinned < true)))
    out = {}
    for name, r in ranks.items():
        counts = np.bincount(np.asarray(r) * 10 // (_SBC_DRAWS + 1), minlength=10)
        expected = _SBC_SETS / 10
        out[name] = float(np.sum((counts - expected) ** 2 / expected))
    return out


def test_simulation_based_calibration_of_sbg():
    stats = _sbc_chi2(_SBC_PRIOR)
    assert all(v < _CHI2_9_999 for v in stats.values()), stats


def test_simulation_based_calibration_detects_a_wrong_prior():
    wrong = {"alpha": P.LogNormal(1.5, 0.3), "beta": P.LogNormal(-0.5, 0.3)}
    stats = _sbc_chi2(wrong)
    assert max(stats.values()) > _CHI2_9_999, stats


# --------------------------------------------------------------------------------------------
# Every model on the generic likelihood path samples.


def test_every_model_samples(cdnow):
    # (Short chains on few customers: Pareto/NBD's and GGompertz/NBD's likelihood passes cost
    # 0.5 and 4 ms per evaluation on CDNOW's 1,016 distinct rows.)
    for cls, customers in (
        (clvrs.BetaGeoModel, 800),
        (clvrs.ModifiedBetaGeoModel, 800),
        (clvrs.ParetoNBDModel, 150),
        (clvrs.GammaGompertzNBDModel, 80),
    ):
        m = cls(on_failure="ignore").fit(
            cdnow.iloc[:customers], method="nuts", chains=2, draws=100, tune=100, seed=1
        )
        assert m.posterior_ is not None and len(m.params_) == len(cls._param_names), cls
        assert np.all(np.isfinite(m.params_)), cls
    donations = clvrs.datasets.load_donations()
    bgbb = clvrs.BetaGeoBetaBinomModel(on_failure="ignore").fit(
        donations, method="nuts", chains=2, draws=200, tune=200, seed=1
    )
    mle = clvrs.BetaGeoBetaBinomModel().fit(donations)
    np.testing.assert_allclose(bgbb.params_, mle.params_, rtol=0.15)
    spend = clvrs.GammaGammaModel(on_failure="ignore").fit(
        cdnow, method="nuts", chains=2, draws=200, tune=200, seed=1
    )
    assert spend.fit_info_["n_excluded"] == 1411
    survivors = [1000, 631, 468, 382, 326, 289, 262, 241]
    sbg = clvrs.ShiftedBetaGeoModel().fit(survivors=survivors, method="nuts", seed=1)
    mle = clvrs.ShiftedBetaGeoModel().fit(survivors=survivors)
    np.testing.assert_allclose(sbg.params_, mle.params_, rtol=0.1)
    bdw = clvrs.BetaDiscreteWeibullModel(on_failure="ignore").fit(
        survivors=survivors, method="nuts", chains=2, draws=200, tune=200, seed=1
    )
    assert list(bdw.params_.index) == ["alpha", "beta", "c"]


# --------------------------------------------------------------------------------------------
# Arguments.


def test_arguments_are_checked(cdnow):
    m = clvrs.BetaGeoModel()
    with pytest.raises(InvalidParameterError, match="method"):
        m.fit(cdnow, method="mcmc")
    with pytest.raises(InvalidParameterError, match="unknown parameter 'rr'"):
        m.fit(cdnow, method="nuts", priors={"rr": P.Gamma(1, 1)})
    with pytest.raises(InvalidParameterError, match="domain"):
        m.fit(cdnow, method="nuts", priors={"r": P.Normal(0, 1)})
    with pytest.raises(InvalidParameterError, match="must be a finite number"):
        P.Gamma(float("nan"), 1.0)
    with pytest.raises(InvalidParameterError, match="penalizer"):
        clvrs.BetaGeoModel(penalizer=0.1).fit(cdnow, method="nuts")
    with pytest.raises(InvalidParameterError, match="nuts"):
        m.fit(cdnow, priors={"r": P.Gamma(1, 1)})
    with pytest.raises(InvalidParameterError, match="chains"):
        m.fit(cdnow, method="nuts", chains=0)
    with pytest.raises(InvalidParameterError, match="target_accept"):
        m.fit(cdnow, method="nuts", target_accept=1.5)
    with pytest.raises(InvalidParameterError, match="MeanPrecision"):
        m.fit(cdnow, method="nuts", priors={("a", "b"): P.Gamma(1, 1)})


def test_unhealthy_samples_warn(cdnow):
    # Four draws per chain after no tuning cannot mix: R-hat is far above 1.01.
    with pytest.warns(ConvergenceWarning, match="R-hat"):
        m = clvrs.BetaGeoModel().fit(cdnow, method="nuts", draws=8, tune=0, seed=2)
    assert m.converged_ is False


def test_covariate_coefficients_are_sampled(cdnow):
    data = cdnow.copy()
    # A categorical covariate that shifts nothing: half the customers, by position.
    data["flag"] = np.where(np.arange(len(data)) % 2 == 1, "on", "off")
    mle = clvrs.BetaGeoModel().fit(data, purchase_covariates=["flag"])
    post = clvrs.BetaGeoModel(on_failure="ignore").fit(
        data, purchase_covariates=["flag"], method="nuts", chains=2, draws=300, tune=300, seed=4
    )
    name = "purchase:flag[on]"
    assert list(post.params_.index) == list(mle.params_.index)
    summary = post.summary
    # The reference level a categorical coefficient compares with, as in the MLE summary.
    assert summary.loc[name, "reference"] == mle.summary.loc[name, "reference"] == "flag=off"
    assert summary["reference"].isna().sum() == 4
    # The default Normal(0, 2.5) prior barely moves a coefficient whose standard error is 0.06.
    se = mle.standard_errors_[name]
    assert (
        abs(summary.loc[name, "mean"] - mle.params_[name])
        < 0.25 * se + 4 * summary.loc[name, "mcse_mean"]
    )
    assert summary.loc[name, "sd"] / se == pytest.approx(1.0, abs=0.2)
    assert post.covariates_ is not None
    assert np.all(np.isfinite(post.expected_purchases(data, t=10)))
    with pytest.raises(InvalidParameterError, match="covariate_penalizer"):
        clvrs.BetaGeoModel().fit(
            data, purchase_covariates=["flag"], method="nuts", covariate_penalizer=0.1
        )


def test_a_maximum_likelihood_fit_has_no_posterior(cdnow_model):
    with pytest.raises(AttributeError, match='method="nuts"'):
        cdnow_model.posterior_  # noqa: B018


def test_posterior_is_a_datatree_with_xarray_and_no_old_arviz(cdnow_nuts, monkeypatch):
    # (ArviZ >= 1.0 works on DataTree; so does xarray alone.)
    xarray = pytest.importorskip("xarray")
    if not hasattr(xarray, "DataTree"):
        pytest.skip("this xarray has no DataTree")
    import builtins

    from clvrs import _bayes

    real_import = builtins.__import__

    def no_arviz(name, *args, **kwargs):
        if name == "arviz":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_arviz)
    tree = _bayes.posterior_container(cdnow_nuts._draws)
    monkeypatch.undo()
    assert isinstance(tree, xarray.DataTree)
    assert set(tree.children) == {"posterior", "sample_stats"}
    assert tree["posterior"]["b"].dims == ("chain", "draw")
    np.testing.assert_array_equal(
        tree["sample_stats"]["diverging"].values, cdnow_nuts._draws["sample_stats"]["diverging"]
    )
    # ArviZ summarises the tree (ArviZ >= 1.0 natively; ArviZ 0.x, the newest that installs on
    # Python 3.11, through its DataTree converter) as it summarises its own layout.
    arviz = pytest.importorskip("arviz")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        if int(arviz.__version__.split(".")[0]) >= 1:
            table = arviz.summary(tree)
        else:
            table = arviz.summary(arviz.InferenceData.from_datatree(tree))
            own = arviz.summary(cdnow_nuts.posterior_)
            pd.testing.assert_frame_equal(table, own)
    assert list(table.index) == ["r", "alpha", "a", "b"]
    np.testing.assert_allclose(table["mean"], cdnow_nuts.params_, atol=1e-3)


# --------------------------------------------------------------------------------------------
# Gamma-Gamma's per-customer log-likelihood and customer value with a given spend.


def test_spend_log_likelihood_is_the_posterior_mean_of_each_customers(cdnow):
    spend = clvrs.GammaGammaModel(on_failure="ignore").fit(
        cdnow, method="nuts", chains=2, draws=60, tune=150, seed=5
    )
    got = spend.log_likelihood_per_customer(cdnow)
    post = spend._draws["posterior"]
    per_draw = np.vstack(
        [
            clvrs.GammaGammaModel.from_params(p=p, q=q, gamma=g)
            .log_likelihood_per_customer(cdnow)
            .to_numpy()
            for p, q, g in zip(post["p"].ravel(), post["q"].ravel(), post["gamma"].ravel())
        ]
    )
    # As for the purchase models: the mean over the draws (NaN without repeat transactions),
    # not the log-likelihood at the posterior-mean parameters.
    assert got.index.equals(cdnow.index)
    assert np.array_equal(np.isnan(got), cdnow["frequency"].to_numpy() == 0)
    np.testing.assert_allclose(got, per_draw.mean(axis=0), rtol=1e-12)
    at_mean = clvrs.GammaGammaModel.from_params(**spend.params_.to_dict())
    assert np.nanmax(np.abs(at_mean.log_likelihood_per_customer(cdnow) - got)) > 1e-4
    band = clvrs.prediction_interval(spend, "log_likelihood_per_customer", cdnow, level=0.9)
    repeat = cdnow["frequency"] > 0
    np.testing.assert_allclose(
        band["se"][repeat], per_draw[:, repeat].std(axis=0, ddof=1), rtol=1e-7
    )
    assert band["lower"][~repeat].isna().all()
    bgnbd = clvrs.BetaGeoModel(on_failure="ignore").fit(
        cdnow.iloc[:300], method="nuts", chains=1, draws=20, tune=50, seed=5
    )
    purchases = bgnbd.log_likelihood_per_customer(cdnow.iloc[:300])
    post = bgnbd._draws["posterior"]
    rows = [
        clvrs.BetaGeoModel.from_params(r=r, alpha=al, a=a, b=b)
        .log_likelihood_per_customer(cdnow.iloc[:300])
        .to_numpy()
        for r, al, a, b in zip(
            post["r"].ravel(), post["alpha"].ravel(), post["a"].ravel(), post["b"].ravel()
        )
    ]
    np.testing.assert_allclose(purchases, np.mean(rows, axis=0), rtol=1e-12)


def test_value_of_a_bayesian_fit_matches_a_spend_series_by_customer_id(cdnow):
    from clvrs.exceptions import InvalidDataError

    cdnow_nuts = clvrs.BetaGeoModel(on_failure="ignore").fit(
        cdnow, method="nuts", chains=2, draws=50, tune=100, seed=6
    )
    spend = pd.Series(np.linspace(10.0, 60.0, len(cdnow)), index=cdnow.index)
    options = {"time": 6, "discount_rate": 0.01}
    ordered = clvrs.customer_lifetime_value(cdnow_nuts, spend, cdnow, **options)
    shuffled = spend.sample(frac=1.0, random_state=3)
    assert not shuffled.index.equals(cdnow.index)
    pd.testing.assert_series_equal(
        clvrs.customer_lifetime_value(cdnow_nuts, shuffled, cdnow, **options), ordered
    )
    band = clvrs.customer_lifetime_value(cdnow_nuts, shuffled, cdnow, level=0.9, **options)
    np.testing.assert_allclose(band["estimate"], ordered)
    # Ids missing from the spend, and a spend array of the wrong length, are refused.
    with pytest.raises(InvalidDataError, match="labels of `data` missing from `spend_model`"):
        clvrs.customer_lifetime_value(cdnow_nuts, shuffled.iloc[1:], cdnow, **options)
    with pytest.raises(InvalidParameterError, match="2356 spends for 2357 customers"):
        clvrs.customer_lifetime_value(cdnow_nuts, spend.to_numpy()[1:], cdnow, **options)
