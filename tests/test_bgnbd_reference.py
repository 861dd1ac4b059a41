"""BG/NBD numbers against independent high-precision references computed here with mpmath.

Every reference is evaluated at ``DPS`` (>= 30) significant digits, from the published formulas of
Fader, Hardie & Lee (2005), "Counting your customers the easy way", Marketing Science 24(2):

* log-likelihood (eq. 6), P(alive) (eq. 11 rearranged), P(X(t) = n) (eq. 8);
* E[X(t)] (eq. 9) and the conditional expectation (eq. 10) from their Gaussian hypergeometric
  closed forms, or -- where those are singular (the removable pole at a = 1, the poles at
  a + b + x - 1 <= 0) -- from the mixture integral E_p[(1 - (1 + p t / (alpha + T))^-(r + x)) / p]
  over p ~ Beta(a, b + x), evaluated with mp.quad.

clvrs computes none of these the same way (log space, positive series, no 2F1), so agreement to
1e-10 relative is a real check. ``test_reference_forms_agree`` checks that the two forms of the
reference agree with each other, which protects the references themselves.
"""

from __future__ import annotations

import functools
import math

import mpmath
import numpy as np
import pytest
from mpmath import mp

import clvrs

DPS = 30
RTOL = 1e-10
TINY = np.finfo(float).tiny  # smallest normal double

CDNOW = (0.242594, 4.413587, 0.792925, 2.425891)  # FHL (2005) MLE on the CDNOW cohort
CDNOW_ROUNDED = (0.243, 4.414, 0.793, 2.426)

# (r, alpha, a, b) for the reference grid.
PARAM_SETS = {
    "cdnow": CDNOW,
    "note027": (0.25, 4.0, 0.8, 2.5),
    "alpha_tiny": (1.5, 1e-3, 1.7, 3.2),
    "alpha_huge": (2.0, 1e4, 0.6, 1.5),
    "a_plus_b_lt_1": (0.7, 3.0, 0.2, 0.3),
    "a_plus_b_lt_1_alpha_tiny": (0.5, 1e-3, 0.3, 0.4),
    "a_plus_b_eq_1": (0.6, 2.0, 0.4, 0.6),
    "a_eq_1": (1.3, 7.0, 1.0, 0.7),
    "a_1_plus_1e-9": (1.3, 7.0, 1.0 + 1e-9, 0.7),
    "a_1_minus_1e-9": (1.3, 7.0, 1.0 - 1e-9, 0.7),
    "large_r_a_b": (50.0, 0.1, 5.0, 20.0),
}

# (x, t_x, T): x up to 1000, t_x = T, t_x well below T.
HISTORIES = [
    (0, 0.0, 40.0),
    (0, 0.0, 2.5),
    (1, 5.0, 40.0),
    (1, 40.0, 40.0),
    (2, 30.43, 38.86),
    (10, 12.0, 40.0),
    (10, 40.0, 40.0),
    (100, 35.0, 40.0),
    (100, 40.0, 40.0),
    (1000, 39.5, 40.0),
    (1000, 40.0, 40.0),
]
HORIZON_FACTORS = (None, 1.0, 10.0)  # t = 1, t = T, t = 10 T
NEW_CUSTOMER_HORIZONS = (1e-3, 1.0, 10.0, 40.0, 400.0)
COUNTS = (0, 1, 2, 5, 20, 100)
COUNT_HORIZONS = (1.0, 40.0, 400.0)


def _hp(func):
    """Run a reference function at DPS digits (without touching the global mpmath context)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with mp.workdps(DPS):
            return func(*args, **kwargs)

    return wrapper


def _mpf(*values):
    return [mp.mpf(v) for v in values]


# ------------------------------------------------------------------------------------------------
# References
# ------------------------------------------------------------------------------------------------


@functools.cache
@_hp
def ref_log_likelihood(params, x, t_x, T):
    r, alpha, a, b = _mpf(*params)
    x, t_x, T = _mpf(x, t_x, T)
    c = mp.exp(mp.loggamma(r + x) - mp.loggamma(r) + r * mp.log(alpha))
    lik = mp.beta(a, b + x) / mp.beta(a, b) * c / (alpha + T) ** (r + x)
    if x > 0:
        lik += mp.beta(a + 1, b + x - 1) / mp.beta(a, b) * c / (alpha + t_x) ** (r + x)
    return mp.log(lik)


@functools.cache
@_hp
def ref_probability_alive(params, x, t_x, T):
    r, alpha, a, b = _mpf(*params)
    x, t_x, T = _mpf(x, t_x, T)
    if x == 0:
        return mp.mpf(1)
    return 1 / (1 + a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x))


@_hp
def active_closed_form(k, rate, t, a, bb):
    """E[purchases in t | active], lambda ~ Gamma(k, rate), p ~ Beta(a, bb): FHL eq. 9/10.

    (a + bb - 1) / (a - 1) [1 - (rate / (rate + t))^k 2F1(k, bb; a + bb - 1; t / (rate + t))].
    Evaluated with 20 guard digits: near a = 1 the bracket cancels (1e-9 away loses 9 digits).
    """
    with mp.extradps(20):
        k, rate, t, a, bb = _mpf(k, rate, t, a, bb)
        z = t / (rate + t)
        bracket = 1 - (rate / (rate + t)) ** k * mp.hyp2f1(k, bb, a + bb - 1, z)
        value = (a + bb - 1) / (a - 1) * bracket
    return +value


@_hp
def active_integral(k, rate, t, a, bb):
    """The same quantity as E_p[(1 - (1 + p t / rate)^-k) / p], p ~ Beta(a, bb), by mp.quad.

    [0, 1/2] and [1/2, 1] are integrated separately with p = s^(1/a) and 1 - p = s^(1/bb), which
    absorb the endpoint singularities p^(a-1) and (1-p)^(bb-1) exactly (a plain tanh-sinh rule
    cannot resolve mass within 10^-DPS of an endpoint, which matters when a or bb is small).
    """
    k, rate, t, a, bb = _mpf(k, rate, t, a, bb)
    c = t / rate
    ln_beta = mp.log(mp.beta(a, bb))
    half = mp.mpf(1) / 2

    def g(p):  # (1 - E_lambda[exp(-lambda p t)]) / p
        return -mp.expm1(-k * mp.log1p(p * c)) / p

    def lower(s):  # p = s^(1/a): p^(a-1) dp = ds / a
        p = s ** (1 / a)
        return g(p) * mp.exp((bb - 1) * mp.log1p(-p) - ln_beta) / a

    def upper(s):  # 1 - p = s^(1/bb): (1-p)^(bb-1) dp = -ds / bb
        u = s ** (1 / bb)
        return g(1 - u) * mp.exp((a - 1) * mp.log1p(-u) - ln_beta) / bb

    # Break the lower piece where the Beta mass sits (p ~ a / (a + bb), sharp when bb is large).
    mean = a / (a + bb)
    sd = mp.sqrt(mean * (1 - mean) / (a + bb + 1))
    cuts = sorted({q for q in (mean / 30, mean / 3, mean, mean + 3 * sd, 3 * mean) if 0 < q < half})
    lo = mp.quad(lower, [mp.mpf(0)] + [q**a for q in cuts] + [half**a])
    hi = mp.quad(upper, [mp.mpf(0), half**bb])
    return lo + hi


def active_expected(k, rate, t, a, bb):
    """Closed form where it is regular; the integral at a = 1 and where a + bb - 1 <= 0."""
    if a == 1.0 or a + bb - 1 <= 0:
        return active_integral(k, rate, t, a, bb)
    return active_closed_form(k, rate, t, a, bb)


@functools.cache
@_hp
def ref_expected_purchases(params, x, t_x, T, t):
    r, alpha, a, b = params
    alive = ref_probability_alive(params, x, t_x, T)
    return alive * active_expected(mp.mpf(r) + x, mp.mpf(alpha) + T, t, a, mp.mpf(b) + x)


@functools.cache
@_hp
def ref_expected_new_customer(params, t):
    r, alpha, a, b = params
    return active_expected(r, alpha, t, a, b)


def _pmf_formula(params, n, t):
    r, alpha, a, b = _mpf(*params)
    t = mp.mpf(t)
    w, q = t / (alpha + t), alpha / (alpha + t)

    def nb(j):  # Gamma(r + j) / (Gamma(r) j!) w^j
        return mp.exp(mp.loggamma(r + j) - mp.loggamma(r) - mp.loggamma(j + 1)) * w**j

    value = mp.beta(a, b + n) / mp.beta(a, b) * nb(n) * q**r
    if n > 0:
        tail = 1 - q**r * mp.fsum(nb(j) for j in range(n))
        value += mp.beta(a + 1, b + n - 1) / mp.beta(a, b) * tail
    return value


@functools.cache
@_hp
def ref_purchase_count_probability(params, n, t):
    """FHL eq. 8. Its ``1 - sum`` is the upper tail P(J >= n) of a negative binomial and cancels
    (down to 1e-77 at n = 100, t = 1): the tail is at least its first term P(J = n), so raising
    the working precision by -log10 P(J = n) digits covers the cancellation."""
    r, alpha = mp.mpf(params[0]), mp.mpf(params[1])
    w = mp.mpf(t) / (alpha + t)
    ln_first = mp.loggamma(r + n) - mp.loggamma(r) - mp.loggamma(n + 1) + n * mp.log(w)
    ln_first += r * mp.log1p(-w)
    lost = max(0, int(mp.ceil(-ln_first / mp.log(10))))
    with mp.extradps(20 + lost):
        value = _pmf_formula(params, n, t)
    return +value


@_hp
def pmf_via_incomplete_beta(params, n, t):
    """Eq. 8 with ``1 - sum`` as the negative-binomial upper tail I_w(n, r) (regularized)."""
    r, alpha, a, b = _mpf(*params)
    t = mp.mpf(t)
    w = t / (alpha + t)
    nb = mp.exp(mp.loggamma(r + n) - mp.loggamma(r) - mp.loggamma(n + 1)) * w**n
    value = mp.beta(a, b + n) / mp.beta(a, b) * nb * (1 - w) ** r
    if n > 0:
        tail = mp.betainc(n, r, 0, w, regularized=True)
        value += mp.beta(a + 1, b + n - 1) / mp.beta(a, b) * tail
    return value


# ------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------


def model(params):
    r, alpha, a, b = params
    return clvrs.BetaGeoModel.from_params(r=r, alpha=alpha, a=a, b=b)


def rel_error(got, ref):
    with mp.workdps(DPS):
        ref = mp.mpf(ref)
        return float(abs(mp.mpf(float(got)) - ref) / abs(ref))


def assert_matches(got, refs, labels, rtol=RTOL):
    """Every value within ``rtol`` of its reference (references below the double range, such as
    P(X(1) = 100) at alpha = 1e4, about 1e-400, must underflow to 0 instead)."""
    got = np.asarray(got, dtype=float)
    assert got.shape == (len(refs),)

    def ok(g, ref):
        if abs(ref) < TINY:
            return g == 0.0 or abs(g) < 1e-300
        return math.isfinite(g) and rel_error(g, ref) <= rtol

    bad = [
        f"{label}: clvrs {float(g)!r}, mpmath {mpmath.nstr(ref, 20)}, "
        f"rel err {rel_error(g, ref):.2e}"
        for g, ref, label in zip(got, refs, labels)
        if not ok(g, ref)
    ]
    assert not bad, "\n".join(bad)


def history_columns():
    x, t_x, T = (np.array(col, dtype=float) for col in zip(*HISTORIES))
    return x, t_x, T


def horizon(factor, T):
    return 1.0 if factor is None else factor * T


# ------------------------------------------------------------------------------------------------
# The references agree with each other
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("k", "rate", "t", "a", "bb"),
    [
        (CDNOW[0], CDNOW[1], 39.0, CDNOW[2], CDNOW[3]),  # E[X(39)] at the CDNOW MLE
        (CDNOW[0] + 2, CDNOW[1] + 38.86, 39.0, CDNOW[2], CDNOW[3] + 2),  # x = 2 posterior
        (0.7, 43.0, 1.0, 0.2, 0.3),  # a + b < 1, x = 0: 2F1 with c = -0.5
        (0.5, 40.001, 400.0, 0.3, 0.4),
        (1.3, 47.0, 40.0, 1.0 + 1e-9, 10.7),  # a within 1e-9 of 1
        (1.3, 47.0, 400.0, 1.0 - 1e-9, 0.7),
        (1.3, 47.0, 400.0, 1.0 - 1e-9, 1000.7),  # x = 1000 posterior
        (1001.3, 47.0, 400.0, 1.7, 1003.2),
        (50.0, 0.1, 10.0, 5.0, 20.0),
        (2.0, 1e4, 400.0, 0.6, 1.5),
    ],
)
def test_reference_forms_agree(k, rate, t, a, bb):
    closed = active_closed_form(k, rate, t, a, bb)
    integral = active_integral(k, rate, t, a, bb)
    with mp.workdps(DPS):
        assert abs(closed - integral) <= mp.mpf(10) ** (5 - DPS) * abs(closed)


def test_integral_is_continuous_at_a_equal_one():
    # At a = 1 exactly only the integral form exists: it must sit between its neighbours at
    # 1 -+ 1e-9, which the closed form also gives.
    args = (4.3, 47.0, 52.0)
    below = active_closed_form(*args, 1.0 - 1e-9, 3.7)
    above = active_closed_form(*args, 1.0 + 1e-9, 3.7)
    at_one = active_integral(*args, 1.0, 3.7)
    assert min(below, above) < at_one < max(below, above)
    assert rel_error(float(at_one), below) < 1e-8


@pytest.mark.parametrize("params", [CDNOW, (2.0, 1e-3, 0.3, 0.4), (50.0, 0.1, 5.0, 20.0)])
@pytest.mark.parametrize("n", [1, 5, 100])
@pytest.mark.parametrize("t", [1.0, 400.0])
def test_pmf_references_agree(params, n, t):
    direct = ref_purchase_count_probability(params, n, t)
    via_betainc = pmf_via_incomplete_beta(params, n, t)
    with mp.workdps(DPS):
        assert abs(direct - via_betainc) <= mp.mpf(10) ** (5 - DPS) * direct


# ------------------------------------------------------------------------------------------------
# clvrs against the references
# ------------------------------------------------------------------------------------------------

param_sets = pytest.mark.parametrize("params", list(PARAM_SETS.values()), ids=list(PARAM_SETS))


@param_sets
def test_log_likelihood(params):
    x, t_x, T = history_columns()
    got = model(params).log_likelihood_per_customer(frequency=x, recency=t_x, T=T)
    refs = [ref_log_likelihood(params, *h) for h in HISTORIES]
    assert_matches(got, refs, [f"(x, t_x, T) = {h}" for h in HISTORIES])


@param_sets
def test_probability_alive(params):
    x, t_x, T = history_columns()
    got = model(params).probability_alive(frequency=x, recency=t_x, T=T)
    refs = [ref_probability_alive(params, *h) for h in HISTORIES]
    assert_matches(got, refs, [f"(x, t_x, T) = {h}" for h in HISTORIES])


@param_sets
@pytest.mark.parametrize("factor", HORIZON_FACTORS, ids=["t=1", "t=T", "t=10T"])
def test_expected_purchases(params, factor):
    x, t_x, T = history_columns()
    t = np.array([horizon(factor, h[2]) for h in HISTORIES])
    got = model(params).expected_purchases(frequency=x, recency=t_x, T=T, t=t)
    refs = [ref_expected_purchases(params, *h, ti) for h, ti in zip(HISTORIES, t)]
    assert_matches(got, refs, [f"(x, t_x, T, t) = {(*h, ti)}" for h, ti in zip(HISTORIES, t)])


@param_sets
def test_expected_purchases_new_customer(params):
    t = np.array(NEW_CUSTOMER_HORIZONS)
    got = model(params).expected_purchases_new_customer(t)
    refs = [ref_expected_new_customer(params, ti) for ti in t]
    assert_matches(got, refs, [f"t = {ti}" for ti in t])
    # Scalar in, float out, same value.
    scalar = model(params).expected_purchases_new_customer(float(t[2]))
    assert isinstance(scalar, float)
    assert rel_error(scalar, refs[2]) <= RTOL


@param_sets
def test_purchase_count_probability(params):
    n, t = (a.ravel() for a in np.meshgrid(np.array(COUNTS), np.array(COUNT_HORIZONS)))
    got = model(params).purchase_count_probability(n, t)
    refs = [ref_purchase_count_probability(params, int(ni), ti) for ni, ti in zip(n, t)]
    assert_matches(got, refs, [f"(n, t) = ({int(ni)}, {ti})" for ni, ti in zip(n, t)])


def test_note_027_large_frequency_log_likelihood_is_finite_and_exact():
    # Hardie's note 027: the naive evaluation of the likelihood overflows for large x.
    params = (0.25, 4.0, 0.8, 2.5)
    got = model(params).log_likelihood_per_customer(
        frequency=np.array([200.0]), recency=np.array([38.0]), T=np.array([40.0])
    )
    assert np.isfinite(got).all()
    assert_matches(got, [ref_log_likelihood(params, 200, 38.0, 40.0)], ["(200, 38, 40)"])


# ------------------------------------------------------------------------------------------------
# Published figures (FHL 2005 and Hardie's BG/NBD notes), CDNOW
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("t", "printed"), [(1.0, 0.0532), (3.0, 0.1506), (32.0, 1.0437)])
def test_published_new_customer_expectations(t, printed):
    got = model(CDNOW).expected_purchases_new_customer(t)
    ref = ref_expected_new_customer(CDNOW, t)
    assert round(float(ref), 4) == printed  # the reference reproduces the printed digits
    assert round(got, 4) == printed
    assert rel_error(got, ref) <= RTOL


def test_published_expected_purchases_78_weeks():
    # Design material lists E[X(78)] = 1.8576, but an exact evaluation of eq. 9 at the MLE gives
    # 1.857950287 (closed form and integral agree to DPS digits), which rounds to 1.8580. The
    # printed figure is presumably from a different rounding of the parameters or a coarser
    # numerical evaluation; we assert against mpmath rather than the printed digits.
    got = model(CDNOW).expected_purchases_new_customer(78.0)
    closed = active_closed_form(CDNOW[0], CDNOW[1], 78.0, CDNOW[2], CDNOW[3])
    integral = active_integral(CDNOW[0], CDNOW[1], 78.0, CDNOW[2], CDNOW[3])
    assert abs(float(closed) - 1.857950287) < 1e-9
    with mp.workdps(DPS):
        assert abs(integral - closed) < mp.mpf(10) ** (5 - DPS)
    assert rel_error(got, closed) <= RTOL


def test_published_conditional_expectation():
    # FHL (2005): a customer with x = 2, t_x = 30.43, T = 38.86 makes 1.226 purchases in 39 weeks.
    args = (2.0, 30.43, 38.86, 39.0)
    got = model(CDNOW).expected_purchases(
        frequency=np.array([2.0]), recency=np.array([30.43]), T=np.array([38.86]), t=39.0
    )[0]
    ref = ref_expected_purchases(CDNOW, *args)
    assert round(float(ref), 3) == 1.226
    assert round(got, 3) == 1.226
    assert rel_error(got, ref) <= RTOL


def test_published_zero_purchase_probability():
    # Published at the rounded estimates (0.243, 4.414, 0.793, 2.426): P(X(39) = 0) = 0.5737864.
    got = model(CDNOW_ROUNDED).purchase_count_probability(0, 39.0)
    ref = ref_purchase_count_probability(CDNOW_ROUNDED, 0, 39.0)
    assert round(float(ref), 7) == 0.5737864
    assert round(got, 7) == 0.5737864
    assert rel_error(got, ref) <= RTOL


# ------------------------------------------------------------------------------------------------
# Many purchase opportunities: tiny alpha with a long horizon
# ------------------------------------------------------------------------------------------------

# The number J of purchase opportunities in the horizon is negative binomial with mode about
# (r + x - 1) t / (alpha + T) (x = T = 0 for a new customer). clvrs sums a series outward from that
# mode. An earlier version formed the NB pmf at the mode from ln-Gamma values of size
# mode * ln(mode) and drifted from the exact value by more than 1e-10 once the mode passed about
# 1e5 (errors given in the ids below); the series is now normalised by its own sum instead. These
# cases guard against that regression.


def _many_opportunities(*values, err):
    return pytest.param(*values, id=f"mode-1e5-plus-was-{err}")


@pytest.mark.parametrize(
    ("params", "t"),
    [
        ((1.5, 1e-3, 1.7, 3.2), 400.0),  # mode 2e5
        ((1000.0, 1e-3, 2.0, 3.0), 0.01),  # mode 1e4
        _many_opportunities((3.0, 1e-3, 1.7, 3.2), 400.0, err=7.8e-10),  # mode 8e5
        _many_opportunities((10.0, 1e-3, 2.0, 3.0), 40.0, err=3.4e-10),  # mode 3.6e5
        _many_opportunities((1000.0, 1e-3, 2.0, 3.0), 10.0, err=2.0e-9),  # mode 1e7
    ],
)
def test_new_customer_expectation_with_many_opportunities(params, t):
    closed = active_closed_form(params[0], params[1], t, params[2], params[3])
    integral = active_integral(params[0], params[1], t, params[2], params[3])
    with mp.workdps(DPS):
        assert abs(closed - integral) <= mp.mpf(10) ** (5 - DPS) * closed
    got = model(params).expected_purchases_new_customer(t)
    assert_matches([got], [closed], [f"params {params}, t = {t}"])


@pytest.mark.parametrize(
    ("history", "t"),
    [
        ((1000, 1.0, 1.0), 10.0),  # mode 2e4
        _many_opportunities((1000, 1.0, 1.0), 1000.0, err=2.3e-9),  # mode 2e6
    ],
)
def test_conditional_expectation_with_many_opportunities(history, t):
    params = (1000.0, 1e-3, 2.0, 3.0)
    x, t_x, T = history
    got = model(params).expected_purchases(
        frequency=np.array([float(x)]), recency=np.array([t_x]), T=np.array([T]), t=t
    )
    ref = ref_expected_purchases(params, x, t_x, T, t)
    assert_matches(got, [ref], [f"params {params}, (x, t_x, T, t) = {(*history, t)}"])


# ------------------------------------------------------------------------------------------------
# Broad random grid: finite, P(alive) in [0, 1], expectations non-decreasing in t
# ------------------------------------------------------------------------------------------------

RANDOM_HORIZONS = np.geomspace(1e-3, 1e2, 6)
# Where the expectation has saturated, consecutive exact values differ by less than clvrs's
# (allowed) rounding error, so "non-decreasing" can only hold up to twice the accuracy tolerance.
MONOTONE_SLACK = 2 * RTOL


def _random_cases(seed=20240517, n_params=60, n_customers=40):
    """Parameters log-uniform on [1e-3, 1e3]; x in 0..1000 (some 0, one 1000); T log-uniform on
    [1, 1000]; t_x uniform on [0, T], with a quarter of the repeat buyers at t_x = T."""
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(n_params):
        params = tuple(float(v) for v in 10.0 ** rng.uniform(-3.0, 3.0, size=4))
        x = np.floor(10.0 ** rng.uniform(0.0, 3.0, size=n_customers)) - 1.0  # 0 .. 999
        x[: n_customers // 8] = 0.0
        x[-1] = 1000.0
        T = 10.0 ** rng.uniform(0.0, 3.0, size=n_customers)
        t_x = T * rng.uniform(0.0, 1.0, size=n_customers)
        t_x[-n_customers // 4 :] = T[-n_customers // 4 :]
        t_x[x == 0] = 0.0
        cases.append(
            pytest.param(
                params, x, t_x, T, id="r={:.3g},alpha={:.3g},a={:.3g},b={:.3g}".format(*params)
            )
        )
    return cases


def _non_decreasing(curves):
    steps = np.diff(curves, axis=0)
    return steps >= -MONOTONE_SLACK * np.abs(curves[:-1])


@pytest.mark.parametrize(("params", "x", "t_x", "T"), _random_cases())
def test_random_grid_is_finite_and_consistent(params, x, t_x, T):
    m = model(params)
    ll = m.log_likelihood_per_customer(frequency=x, recency=t_x, T=T)
    assert np.isfinite(ll).all()
    alive = m.probability_alive(frequency=x, recency=t_x, T=T)
    assert np.isfinite(alive).all()
    assert ((alive >= 0) & (alive <= 1)).all()
    curves = np.array(
        [m.expected_purchases(frequency=x, recency=t_x, T=T, t=t) for t in RANDOM_HORIZONS]
    )
    assert np.isfinite(curves).all() and (curves >= 0).all()
    assert _non_decreasing(curves).all()
    new = m.expected_purchases_new_customer(RANDOM_HORIZONS)
    assert np.isfinite(new).all() and (new > 0).all()
    assert _non_decreasing(new).all()
    probs = m.purchase_count_probability(np.arange(6), 10.0)
    assert np.isfinite(probs).all() and ((probs >= 0) & (probs <= 1)).all()


@pytest.mark.parametrize("t", [100.0, 1000.0])
def test_horizon_with_a_billion_opportunities_is_exact_and_monotone(t):
    # About 1e8-1e9 expected purchase opportunities: an earlier version summed the series term by
    # term (14 s per call, 1e-6 error, and E[X(1000)] < E[X(100)]); the quadrature branch is exact.
    params = (1000.0, 1e-3, 1000.0, 1000.0)
    got = model(params).expected_purchases_new_customer(t)
    ref = ref_expected_new_customer(params, t)
    assert_matches([got], [ref], [f"params {params}, t = {t}"])
    assert got >= model(params).expected_purchases_new_customer(t / 10)


@pytest.mark.parametrize(
    ("params", "t"),
    [
        # Diffuse dropout posterior (tiny a) just past the switch to quadrature: an earlier
        # version cut the quadrature off at tau = 12 and lost most of the mass near p = 0.
        ((0.243, 0.01, 1e-6, 2.426), 49.9),
        ((0.243, 0.01, 1e-6, 2.426), 50.0),
        ((0.243, 0.01, 1e-5, 2.426), 1000.0),
        # Concentrated posterior (huge a, b): the grid must not step over the peak (it returned 0).
        ((0.243, 4.414, 3e4, 9e4), 4.414 * 4990),
        ((0.243, 4.414, 3e4, 9e4), 4.414 * 5010),
    ],
)
def test_quadrature_branch_matches_mpmath(params, t):
    got = model(params).expected_purchases_new_customer(t)
    ref = ref_expected_new_customer(params, t)
    assert_matches([got], [ref], [f"params {params}, t = {t}"])


def test_concentrated_posterior_customer_with_zero_age():
    params = (0.243, 0.005, 1e5, 3e5)
    got = model(params).expected_purchases(
        frequency=np.array([0.0, 0.0]), recency=np.array([0.0, 0.0]), T=np.array([0.0, 0.02]), t=52
    )
    refs = [ref_expected_purchases(params, 0, 0.0, T, 52.0) for T in (0.0, 0.02)]
    assert_matches(got, refs, ["T = 0", "T = 0.02"])


def test_astronomical_horizons_stay_finite_and_increasing():
    # With a < 1, E[X(t)] grows like t^(1 - a) without bound, but is finite for every finite t
    # (t / alpha overflowing a double must not turn it into inf).
    values = model((0.243, 0.5, 0.793, 2.426)).expected_purchases_new_customer(
        np.array([1e10, 1e200, 1e300, 1e308])
    )
    assert np.isfinite(values).all() and (np.diff(values) > 0).all()
