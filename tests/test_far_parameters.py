"""Accuracy at far parameters (issue 25, "accuracy at far parameters").

At any finite parameter value a fit or a model file can produce, clvrs's log-likelihoods and
predictions are either exact (1e-12 relative for log-likelihoods, 1e-10 for predictions) or
refused with a typed :class:`clvrs.exceptions.ClvError` that names the parameters. A NaN, an
infinity, a value out of range or a wrong finite value is a failure.

Parameters: each model's parameters one at a time at 1e-8, 1e12, 1e-100, 1e100 and 1e300 (the
others at a typical fit), the scale pairs a fit drifts along (r and alpha, or the two Beta
shapes, multiplied together by 1e12 and 1e100: the Poisson and fixed-probability limits; for
BG/NBD and MBG/NBD also by 1e-6, the two-point limit of the dropout probability), and seeded
draws with every parameter log-uniform over 1e-8..1e12. Histories: no repeat purchase,
CDNOW-like, a heavy buyer and a long history (discrete analogues for BG/BB).

References are mpmath at enough digits for the parameters (the digits of ``alpha + T`` at
alpha = 1e300 are needed, so the precision grows with log10 of each parameter), each from two
independent forms that must agree before a case is judged:

* BG/NBD and MBG/NBD: log-likelihood and P(alive) in log space here and by the reused closed
  forms (``test_bgnbd_reference``, ``test_continuous_reference``); the active-customer
  expectation (a + b' - 1) / (a - 1) [1 - (rate / (rate + t))^k 2F1(k, b'; a + b' - 1;
  t / (rate + t))] (reused) against its Pfaff transform (a + b' - 1) / (a - 1) [1 - 2F1(k, a - 1;
  a + b' - 1; -t / rate)], which mpmath evaluates by a different route. Where r, a or b'
  exceed 1e6, mpmath's 2F1 takes minutes or loses digits silently, so both forms are summed
  here as power series (with the digits lost to growing terms added back).
* GGompertz/NBD (a hand-picked subset of the grid: each point costs seconds): the quadrature
  references of ``test_continuous_reference`` (likelihood terms by ``integrate_exp``, the dead
  branch also integrated by parts; window integrals of the survival function by 2F1 and by
  quadrature). Three histories: test_extremes.py covers ages up to 1e20.
* BG/BB: the sums of ``reference_value_models`` against a Pochhammer-ratio recurrence in log
  space; the conditional expectation by its Gamma-ratio closed form (120 more digits: its
  difference of Gamma ratios cancels at huge gamma or delta) and by the direct sum.
* Gamma-Gamma: the closed forms of ``reference_value_models`` at two precisions (40 more
  digits expose any cancellation; its quadrature forms take seconds per value at these shapes).

  Where either series would need over 3000 terms (huge r with alpha moderate, huge a or b,
  most draws) or t >= alpha + T, both forms are quadratures over y = logit p of the Beta
  mixture E[(1 - (1 + p t / rate)^-k) / p] (``_active_quad``: adaptive Gauss-Legendre from the
  log-concave integrand's mode, two node counts, breakpoints and precisions), trusted when
  they agree to 14 digits.

A BG/NBD or MBG/NBD expectation whose true value is inside double range must be computed, not
refused: at r = 1e100 and 1e300 (alpha moderate) clvrs refuses six of them ("is nan at these
parameters"), strict xfails in ``BG_KNOWN`` and ``MBG_KNOWN``.

A reference that cannot be established (the forms disagree) skips its case with the reason
(none today).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
import reference_value_models as rvm
import test_bgnbd_reference as tbr
import test_continuous_reference as tcr
from mpmath import mp  # type: ignore[import-untyped]

import clvrs
from clvrs.exceptions import ClvError

Params = tuple[float, ...]
Value = Any  # an mpf, or None where the quantity is undefined (Gamma-Gamma LL at x = 0)

# A log-likelihood within 1e-14 of the truth is a likelihood exact to 1e-14 relative: near 0
# (x = 0 at a tiny purchase rate) it is judged by that absolute tolerance.
LL_RTOL, LL_ATOL = 1e-12, 1e-14
RTOL = 1e-10
UNDERFLOW = 1e-290  # a true value below this may come out as any number in [0, 1e-280]
T_NEW = 52.0  # horizon of the expectations (opportunities m = 10 for BG/BB)
M_BGBB = 10

HISTORIES: list[tuple[float, float, float]] = [
    (0.0, 0.0, 38.86),
    (2.0, 30.43, 38.86),
    (50.0, 38.0, 39.0),
    (5.0, 1e4, 1e5),
]
BGBB_HISTORIES: list[tuple[int, int, int]] = [(0, 0, 39), (2, 30, 39), (35, 38, 39), (5, 980, 1000)]
# GGompertz/NBD references integrate numerically (seconds each at hundreds of digits): the long
# history is left to test_extremes.py (ages up to 1e20 at moderate parameters).
GG_HISTORIES = HISTORIES[:3]
SPEND_HISTORIES: list[tuple[int, float]] = [(0, 0.0), (1, 35.0), (6, 20.5), (50, 1e4)]

FAR = (1e-8, 1e12, 1e-100, 1e100, 1e300)


# ------------------------------------------------------------------------------------------------
# Grid
# ------------------------------------------------------------------------------------------------


def _grid(
    base: Params,
    names: Sequence[str],
    pairs: Sequence[tuple[int, int]],
    seed: int,
    draws: int,
    far: Sequence[float] = FAR,
    scales: Sequence[float] = (1e12, 1e100),
) -> list[tuple[str, Params]]:
    """One parameter at a time at each FAR value, scale pairs multiplied by each of ``scales``,
    and seeded draws log-uniform over 1e-8..1e12."""
    points: list[tuple[str, Params]] = []
    for i, name in enumerate(names):
        for value in far:
            point = list(base)
            point[i] = value
            points.append((f"{name}={value:g}", tuple(point)))
    for i, j in pairs:
        for scale in scales:
            point = list(base)
            point[i] *= scale
            point[j] *= scale
            points.append((f"{names[i]},{names[j]}x{scale:g}", tuple(point)))
    rng = np.random.default_rng(seed)
    for k in range(draws):
        draw = tuple(float(v) for v in 10.0 ** rng.uniform(-8.0, 12.0, len(base)))
        points.append((f"draw{k}", draw))
    return points


def _cases(
    grid: list[tuple[str, Params]], quantities: Sequence[str], known: dict[str, str]
) -> list[Any]:
    """(params, quantity) cases; those in ``known`` (clvrs is wrong there) are strict xfails."""
    cases = []
    for label, params in grid:
        for quantity in quantities:
            case_id = f"{label}-{quantity}"
            marks = (
                [pytest.mark.xfail(strict=True, reason=known[case_id])] if case_id in known else []
            )
            cases.append(pytest.param(params, quantity, id=case_id, marks=marks))
    unknown = set(known) - {f"{label}-{q}" for label, _ in grid for q in quantities}
    assert not unknown, unknown
    return cases


def _digits(params: Params, extra: int = 0) -> int:
    """Working digits: 40, plus the decades of every parameter away from 1 (alpha + T at
    alpha = 1e300 needs 300 digits to see T; ln Gamma(1e300) has 303 before the point), plus
    room for the histories' ages."""
    return 46 + extra + sum(int(abs(math.log10(p))) + 1 for p in params)


@contextmanager
def _precision(digits: int) -> Iterator[None]:
    """Run the reused references at ``digits``: their ``_hp`` wrappers read the module's DPS."""
    modules: tuple[Any, ...] = (rvm, tbr, tcr)
    saved = [m.DPS for m in modules]
    for m in modules:
        m.DPS = digits
    try:
        with mp.workdps(digits):
            yield
    finally:
        for m, value in zip(modules, saved):
            m.DPS = value


def _agree(first: Any, second: Any, label: str, digits: int = 25, floor: float = 0.0) -> Any:
    """The reference, once its two forms agree to ``digits`` significant digits (or within
    ``floor``: a log-likelihood near 0 is judged to an absolute tolerance)."""
    if first is None and second is None:
        return None
    scale = max(abs(first), abs(second))
    if scale != 0 and abs(first - second) > mp.mpf(10) ** -digits * scale + floor:
        raise ReferenceUnavailable(
            f"{label}: reference forms disagree ({mp.nstr(first, 20)} vs {mp.nstr(second, 20)})"
        )
    return first


class ReferenceUnavailable(Exception):
    """The two reference forms disagree or mpmath did not converge."""


def _attempt(out: dict[str, Any], quantity: str, compute: Callable[[], Any]) -> None:
    """Store ``compute()`` under ``quantity``, or why no reference could be established."""
    try:
        out[quantity] = compute()
    except (ReferenceUnavailable, ValueError, ZeroDivisionError) as error:
        out[quantity] = ReferenceUnavailable(str(error))


LARGE = 1e6  # above this, mpmath's 2F1 takes minutes or loses digits silently (seen at 1e12)


def _series_tail(k: Any, b: Any, c: Any, z: Any, max_terms: int = 3000) -> tuple[Any, Any]:
    """(2F1(k, b; c; z) - 1, largest term) by the power series, summed term by term."""
    term, total, largest = mp.one, mp.zero, mp.zero
    for n in range(max_terms):
        term *= (k + n) * (b + n) / ((c + n) * (n + 1)) * z
        total += term
        largest = max(largest, abs(term))
        ratio = abs((k + n + 1) * (b + n + 1) / ((c + n + 1) * (n + 2)) * z)
        if ratio < 1 and abs(term) < mp.eps * abs(total) * (1 - ratio):
            return total, largest
    raise ReferenceUnavailable(f"2F1 series at z = {mp.nstr(z, 5)} needs over {max_terms} terms")


def _tail(k: Any, b: Any, c: Any, z: Any) -> Any:
    """2F1(k, b; c; z) - 1 by the series for huge parameters, with the digits lost to the
    alternating or growing terms added back."""
    with mp.extradps(30):
        total, largest = _series_tail(k, b, c, z)
    lost = int(mp.log10(largest / abs(total))) if total else 0
    if lost > 20:
        with mp.extradps(30 + lost):
            total, _ = _series_tail(k, b, c, z)
    return total


def _active_series(k: Any, rate: Any, t: Any, a: Any, bb: Any) -> tuple[Any, Any]:
    """The active-customer expectation in both forms by power series (huge parameters):
    1 - (1 - z)^k 2F1(k, bb; a + bb - 1; z), z = t / (rate + t), and -[2F1(k, a - 1; a + bb - 1;
    -t / rate) - 1] (the second only where t < rate)."""
    with mp.extradps(30):
        k, rate, t, a, bb = (mp.mpf(v) for v in (k, rate, t, a, bb))
        front = (a + bb - 1) / (a - 1)
        z = t / (rate + t)
        ln_lead = -k * mp.log1p(t / rate)
        first = front * -mp.expm1(ln_lead + mp.log1p(_tail(k, bb, a + bb - 1, z)))
        if t >= rate:
            raise ReferenceUnavailable("Pfaff series needs t < alpha + T")
        second = front * -_tail(k, a - 1, a + bb - 1, -t / rate)
    return first, second


def _logit_parts(y: Any) -> tuple[Any, Any, Any, Any]:
    """(p, 1 - p, ln p, ln(1 - p)) at p = 1 / (1 + e^-y), each without cancellation."""
    if y >= 0:
        e = mp.exp(-y)
        return 1 / (1 + e), e / (1 + e), -mp.log1p(e), -y - mp.log1p(e)
    e = mp.exp(y)
    return e / (1 + e), 1 / (1 + e), y - mp.log1p(e), -mp.log1p(e)


def _active_quad(
    k: Any, rate: Any, t: Any, a: Any, bb: Any, nodes_per_span: int, first: float, quad_digits: int
) -> Any:
    """The active-customer expectation E[(1 - (1 + p t / rate)^-k) / p], p ~ Beta(a, bb), by
    quadrature over y = logit p, valid at any k, a, bb > 0 (where the power series needs too
    many terms). The log-integrand (a - 1) ln p + bb ln(1 - p) + ln(1 - (1 + p t / rate)^-k) is
    concave in y: its mode is found by bisection on its derivative, its width from the
    curvature there, and the breakpoints step out from the mode, the first step ``first``
    widths (shortened to at most 4 e-folds: a cliff at huge bb) and doubling, until the tail
    beyond is below 10^-(quad_digits + 5) of the peak (a tail e^(a y) at a = 1e-8 takes 35
    steps). The spans are then halved until their ``nodes_per_span``-point and half-as-many
    point Gauss-Legendre sums agree. The integrand is evaluated at the digits its terms need
    (the digits of a, bb at 1e100 that cancel), the nodes at ``quad_digits`` + 5."""
    hp = mp.dps
    k, rate, t, a, bb = (mp.mpf(v) for v in (k, rate, t, a, bb))
    u = t / rate

    def ln_f(y: Any) -> Any:
        p, _, lp, lq = _logit_parts(y)
        return (a - 1) * lp + bb * lq + mp.log(-mp.expm1(-k * mp.log1p(p * u)))

    def d_ln_f(y: Any) -> Any:  # decreasing from a (y -> -inf) to -bb (y -> inf)
        p, q, _, _ = _logit_parts(y)
        ln1p = mp.log1p(p * u)
        share = k * u * p * q * mp.exp(-(k + 1) * ln1p) / -mp.expm1(-k * ln1p)
        return (a - 1) * q - bb * p + share

    lo, hi = mp.mpf(-1), mp.mpf(1)
    for _ in range(200):
        if d_ln_f(lo) > 0:
            break
        lo *= 2
    for _ in range(200):
        if d_ln_f(hi) < 0:
            break
        hi *= 2
    if not d_ln_f(lo) > 0 > d_ln_f(hi):
        raise ReferenceUnavailable("integrand mode not bracketed")

    def width_at(y: Any) -> Any:  # 1 / sqrt(-ln f''(y))
        h = mp.mpf(10) ** (-(hp // 3)) * (1 + abs(y))
        return 1 / mp.sqrt((d_ln_f(y - h) - d_ln_f(y + h)) / (2 * h))

    # ln f varies by at most (hi - lo) (ln f'(lo) - ln f'(hi)) over the bracket (ln f' is
    # monotone): bisect until that is 1/4096, the mode then within 1/64 of the width.
    d_lo, d_hi = d_ln_f(lo), d_ln_f(hi)
    for _ in range(10 * hp):
        if (hi - lo) * (d_lo - d_hi) < mp.mpf(1) / 4096:
            break
        mid = (lo + hi) / 2
        d_mid = d_ln_f(mid)
        if d_mid > 0:
            lo, d_lo = mid, d_mid
        else:
            hi, d_hi = mid, d_mid
    y0 = (lo + hi) / 2
    width = width_at(y0)
    peak = ln_f(y0)
    cut = (quad_digits + 5) * mp.log(10)
    points = [mp.zero]
    for side in (-1, 1):
        step, v = width * first, mp.zero
        for _ in range(400):  # a first step over at most 4 e-folds (a cliff on one side)
            if ln_f(y0 + side * step) > peak - 4:
                break
            step /= 4
        for _ in range(400):
            v += side * step
            points.append(v)
            # Log-concave: the tail beyond v is at most f(v) / |ln f'(v)|.
            if ln_f(y0 + v) - mp.log(abs(d_ln_f(y0 + v)) * width) < peak - cut:
                break
            step *= 2
        else:
            raise ReferenceUnavailable("integrand tail does not fall off")
    points.sort()
    # Digits the integrand needs: its terms' size (at the mode and the ends) over the O(1)
    # differences from the peak, and those of y over the width.
    spread = mp.one
    for v in (points[0], mp.zero, points[-1]):
        _, _, lp, lq = _logit_parts(y0 + v)
        terms = 1 + abs(a * lp) + abs(lp) + abs(bb * lq) + abs(lq)
        spread = max(spread, terms * (1 + abs(y0 + v) / width))
    int_digits = min(hp, quad_digits + 10 + int(mp.log10(spread)))

    def integrand(w: Any) -> Any:  # in units of the width (mpmath's quad wants O(1) spans)
        with mp.workdps(int_digits):
            value = mp.exp(ln_f(y0 + w * width) - peak)
        return +value

    # Adaptive Gauss-Legendre: a span is accepted when its n/2- and n-point rules agree to
    # 10^-(3 quad_digits / 4), the n-point rule then good to about 10^-quad_digits (the integrand
    # is 1 at the mode and the unit is the width, so the total is of order 1 and this is a
    # relative tolerance), else halved.
    tol = mp.mpf(10) ** -(quad_digits * 3 // 4)
    total, count = mp.zero, 0
    with mp.workdps(quad_digits + 5):
        coarse_nodes = _gauss_legendre(nodes_per_span // 2, mp.prec)
        fine_nodes = _gauss_legendre(nodes_per_span, mp.prec)

        def rule(nodes: list[tuple[Any, Any]], lo: Any, hi: Any) -> Any:
            half, centre = (hi - lo) / 2, (hi + lo) / 2
            return half * mp.fsum(w * integrand(half * x + centre) for x, w in nodes)

        stack = [(lo / width, hi / width) for lo, hi in zip(points[:-1], points[1:])]
        while stack:
            lo, hi = stack.pop()
            fine = rule(fine_nodes, lo, hi)
            if abs(fine - rule(coarse_nodes, lo, hi)) <= tol:
                total += fine
                continue
            count += 1
            if count > 3000:
                raise ReferenceUnavailable("quadrature needs over 3000 spans")
            stack += [(lo, (lo + hi) / 2), ((lo + hi) / 2, hi)]
    return mp.exp(peak - _ln_beta(a, bb)) * width * total


@functools.cache
def _gauss_legendre(count: int, prec: int) -> list[tuple[Any, Any]]:
    """``count``-point Gauss-Legendre nodes and weights on [-1, 1] at ``prec`` bits."""
    with mp.workprec(prec + 20):
        nodes = []
        for i in range(1, count + 1):
            x = mp.cos(mp.pi * (i - mp.mpf(1) / 4) / (count + mp.mpf(1) / 2))
            for _ in range(100):  # Newton on P_count
                p0, p1 = mp.one, x
                for n in range(2, count + 1):
                    p0, p1 = p1, ((2 * n - 1) * x * p1 - (n - 1) * p0) / n
                dp = count * (x * p1 - p0) / (x * x - 1)
                dx = p1 / dp
                x -= dx
                if abs(dx) < mp.eps:
                    break
            p0, p1 = mp.one, x
            for n in range(2, count + 1):
                p0, p1 = p1, ((2 * n - 1) * x * p1 - (n - 1) * p0) / n
            dp = count * (x * p1 - p0) / (x * x - 1)
            nodes.append((x, 2 / ((1 - x * x) * dp * dp)))
    return nodes


def _active_quads(k: Any, rate: Any, t: Any, a: Any, bb: Any) -> tuple[Any, Any]:
    """The expectation by two quadratures over logit p with different breakpoints, rules and
    digits: 16/8-point Gauss-Legendre from one width, and 20/10-point from 0.7 widths with
    4 more digits (seen to agree with tanh-sinh at 25 digits to 16 digits or better)."""
    with mp.extradps(30):
        first = _active_quad(k, rate, t, a, bb, 16, 1.0, 18)
        second = _active_quad(k, rate, t, a, bb, 20, 0.7, 22)
    return first, second


def _uncached(func: Callable[..., Any]) -> Callable[..., Any]:
    """The function under a ``functools.cache`` (whose key does not include the precision)."""
    return getattr(func, "__wrapped__", func)


# ------------------------------------------------------------------------------------------------
# References
# ------------------------------------------------------------------------------------------------


def _logsumexp(*terms: Any) -> Any:
    top = max(terms)
    return top + mp.log(mp.fsum(mp.exp(v - top) for v in terms))


def _ln_beta(a: Any, b: Any) -> Any:
    return mp.loggamma(a) + mp.loggamma(b) - mp.loggamma(a + b)


def _active_pfaff(k: Any, rate: Any, t: Any, a: Any, bb: Any) -> Any:
    """E_p[(1 - (1 + p t / rate)^-k) / p], p ~ Beta(a, bb): (a + bb - 1) / (a - 1)
    [1 - E_{Beta(a - 1, bb)}(1 + p t / rate)^-k] = (a + bb - 1) / (a - 1) [1 - 2F1(k, a - 1;
    a + bb - 1; -t / rate)] (analytic in a, bb, so valid for a < 1 too)."""
    with mp.extradps(30):
        k, rate, t, a, bb = (mp.mpf(v) for v in (k, rate, t, a, bb))
        value = (a + bb - 1) / (a - 1) * (1 - mp.hyp2f1(k, a - 1, a + bb - 1, -t / rate))
    return mp.mpf(value)


def _active_closed(k: Any, rate: Any, t: Any, a: Any, bb: Any) -> Any:
    """The same by ``test_continuous_reference.beta_active_closed`` with more guard digits."""
    with mp.extradps(30):
        value = tcr.beta_active_closed(k, rate, t, a, bb)
    return mp.mpf(value)


def _series_fit(k: Any, rate: Any, t: Any, a: Any, bb: Any) -> bool:
    """Whether both power series of ``_active_series`` have terms falling by 0.95 per term by
    the 1500th (so they end within 3000 terms); otherwise summing them is only wasted time."""
    k, rate, t, a, bb = (mp.mpf(v) for v in (k, rate, t, a, bb))
    if t >= rate:
        return False
    c, n = a + bb - 1, 1500
    first = (k + n) * (bb + n) / ((c + n) * (n + 1)) * t / (rate + t)
    second = (k + n) * abs(a - 1 + n) / ((c + n) * (n + 1)) * t / rate
    return bool(max(first, second) < 0.95)


def _active(k: Any, rate: Any, t: Any, a: Any, bb: Any, label: str) -> Any:
    if max(k, a, bb) > LARGE:
        if _series_fit(k, rate, t, a, bb):
            return _agree(*_active_series(k, rate, t, a, bb), label, digits=20)
        # The series would need over 3000 terms (or t >= rate): two quadratures, agreeing to
        # 14 digits (the test asks for 10).
        return _agree(*_active_quads(k, rate, t, a, bb), label, digits=14)
    return _agree(
        _active_closed(k, rate, t, a, bb), _active_pfaff(k, rate, t, a, bb), label, digits=20
    )


def _bgnbd_branches(params: Params, x: float, t_x: float, T: float) -> list[Any]:
    r, alpha, a, b = (mp.mpf(v) for v in params)
    x_, t_x_, T_ = (mp.mpf(v) for v in (x, t_x, T))
    front = mp.loggamma(r + x_) - mp.loggamma(r) + r * mp.log(alpha) - _ln_beta(a, b)
    terms = [front + _ln_beta(a, b + x_) - (r + x_) * mp.log(alpha + T_)]
    if x > 0:
        terms.append(front + _ln_beta(a + 1, b + x_ - 1) - (r + x_) * mp.log(alpha + t_x_))
    return terms


def _mbg_branches(params: Params, x: float, t_x: float, T: float) -> list[Any]:
    r, alpha, a, b = (mp.mpf(v) for v in params)
    x_, t_x_, T_ = (mp.mpf(v) for v in (x, t_x, T))
    front = mp.loggamma(r + x_) - mp.loggamma(r) + r * mp.log(alpha) - _ln_beta(a, b)
    return [
        front + _ln_beta(a, b + x_ + 1) - (r + x_) * mp.log(alpha + T_),
        front + _ln_beta(a + 1, b + x_) - (r + x_) * mp.log(alpha + t_x_),
    ]


def _alive(terms: list[Any]) -> Any:
    return 1 / mp.fsum(mp.exp(v - terms[0]) for v in terms)


def _closed_forms(
    branches: Callable[[Params, float, float, float], list[Any]],
    reused_ll: Callable[..., Any],
    reused_alive: Callable[..., Any],
    params: Params,
) -> tuple[list[Value], list[Value]]:
    """(LL, P(alive)) per history: log-space branches against the reused closed forms."""
    lls, alives = [], []
    for x, t_x, T in HISTORIES:
        terms = branches(params, x, t_x, T)
        lls.append(
            _agree(_logsumexp(*terms), _uncached(reused_ll)(params, x, t_x, T), "LL", floor=1e-30)
        )
        alives.append(_agree(_alive(terms), _uncached(reused_alive)(params, x, t_x, T), "alive"))
    return lls, alives


@functools.cache
def bgnbd_reference(params: Params) -> dict[str, Any]:
    """BG/NBD references at ``params`` for HISTORIES (and the new customer's expectation);
    a quantity without a verified reference holds a ReferenceUnavailable."""
    r, alpha, a, b = params
    out: dict[str, Any] = {}
    with _precision(_digits(params)):
        _attempt(
            out,
            "both",
            lambda: _closed_forms(
                _bgnbd_branches, tbr.ref_log_likelihood, tbr.ref_probability_alive, params
            ),
        )
        if isinstance(out["both"], ReferenceUnavailable):
            out["ll"] = out["alive"] = out["both"]
        else:
            out["ll"], out["alive"] = out["both"]

        def expected() -> list[Value]:
            return [
                alive * _active(r + x, mp.mpf(alpha) + T, T_NEW, a, mp.mpf(b) + x, "expected")
                for alive, (x, _, T) in zip(out["alive"], HISTORIES)
            ]

        def new() -> list[Value]:
            return [_active(r, alpha, T_NEW, a, b, "new")]

        _attempt(out, "expected", expected)
        _attempt(out, "new", new)
    return out


@functools.cache
def mbg_reference(params: Params) -> dict[str, Any]:
    """MBG/NBD references (the reused ``mbg_*`` closed forms against the log-space ones)."""
    r, alpha, a, b = params
    out: dict[str, Any] = {}
    with _precision(_digits(params)):
        _attempt(
            out,
            "both",
            lambda: _closed_forms(
                _mbg_branches, tcr.mbg_log_likelihood, tcr.mbg_probability_alive, params
            ),
        )
        if isinstance(out["both"], ReferenceUnavailable):
            out["ll"] = out["alive"] = out["both"]
        else:
            out["ll"], out["alive"] = out["both"]

        def expected() -> list[Value]:
            return [
                alive * _active(r + x, mp.mpf(alpha) + T, T_NEW, a, mp.mpf(b) + x + 1, "expected")
                for alive, (x, _, T) in zip(out["alive"], HISTORIES)
            ]

        def new() -> list[Value]:
            bb = mp.mpf(b) + 1
            return [mp.mpf(b) / (mp.mpf(a) + b) * _active(r, alpha, T_NEW, a, bb, "new")]

        _attempt(out, "expected", expected)
        _attempt(out, "new", new)
    return out


def _gg_by_parts(params: Params, x: float, t_x: float, T: float) -> tuple[Any, Any]:
    """GGompertz/NBD (LL, P(alive)) with the dead branch integrated by parts (40 guard digits
    for its cancellation)."""
    with mp.extradps(40):
        branches: list[Any] = tcr.gg_branches_by_parts(params, int(x), t_x, T)
        alive, dead = branches
        r, alpha = mp.mpf(params[0]), mp.mpf(params[1])
        ll = tcr._ln_front(r, alpha, mp.mpf(x)) + mp.log(alive + dead)
        p_alive = alive / (alive + dead)
    return mp.mpf(ll), mp.mpf(p_alive)


def _gg_window(params: Params, lo: float, hi: float) -> Any:
    """int_lo^hi S(u) du by 2F1 (reused) and by quadrature (reused)."""
    _, _, b, s, beta = params
    with mp.extradps(20):
        by_2f1 = tcr.gg_survival_integral(b, s, beta, lo, hi)
        by_quad = tcr.gg_survival_integral_quad(b, s, beta, lo, hi)
    return _agree(by_2f1, by_quad, "survival integral", digits=20)


@functools.cache
def gg_reference(params: Params) -> dict[str, list[Value]]:
    """GGompertz/NBD references: quadrature of the likelihood terms, checked by parts."""
    r, alpha, b, s, beta = params
    out: dict[str, list[Value]] = {"ll": [], "alive": [], "expected": [], "new": []}
    with _precision(_digits(params)):
        for x, t_x, T in GG_HISTORIES:
            alive_term, dead_term = _uncached(tcr.gg_branches)(params, x, t_x, T)
            front = tcr._ln_front(mp.mpf(r), mp.mpf(alpha), mp.mpf(x))
            ll_parts, alive_parts = _gg_by_parts(params, x, t_x, T)
            ll = _agree(
                front + mp.log(alive_term + dead_term), ll_parts, "LL", digits=20, floor=1e-30
            )
            alive = _agree(alive_term / (alive_term + dead_term), alive_parts, "alive", digits=20)
            T_ = mp.mpf(T)
            ln_s_T = tcr.gg_log_survival(mp.mpf(b), mp.mpf(s), mp.mpf(beta), T_)
            window = _gg_window(params, T, T_ + T_NEW)
            out["ll"].append(ll)
            out["alive"].append(alive)
            out["expected"].append(alive * (r + x) / (alpha + T_) * window / mp.exp(ln_s_T))
        out["new"].append(mp.mpf(r) / alpha * _gg_window(params, 0, T_NEW))
    return out


def _bgbb_sum(params: Params, x: int, t_x: int, n: int) -> tuple[Any, Any]:
    """BG/BB (ln L, ln of the alive-through-n term) in log space: the dead terms by the
    Pochhammer-ratio recurrence B(., . + i + 1) / B(., . + i)."""
    a, b, g, d = (mp.mpf(v) for v in params)
    base = -_ln_beta(a, b) - _ln_beta(g, d)
    alive = base + _ln_beta(a + x, b + n - x) + _ln_beta(g, d + n)
    term = mp.exp(base + _ln_beta(a + x, b + t_x - x) + _ln_beta(g + 1, d + t_x))
    dead = []
    for i in range(n - t_x):
        dead.append(term)
        term *= (b + t_x - x + i) / (a + b + t_x + i) * (d + t_x + i) / (g + d + 1 + t_x + i)
    ln_l = mp.log(mp.exp(alive) + mp.fsum(dead)) if dead else alive
    return ln_l, alive


@functools.cache
def bgbb_reference(params: Params) -> dict[str, Any]:
    """BG/BB references: ``reference_value_models``' sums and closed form against log-space
    recurrences and the direct sum of the expectation."""
    a, b, g, d = params
    digits = _digits(params)
    out: dict[str, Any] = {"ll": [], "alive": [], "expected": []}
    with _precision(digits):
        for x, t_x, n in BGBB_HISTORIES:
            ln_l, ln_alive = _bgbb_sum(params, x, t_x, n)
            ll = _agree(rvm.bgbb_log_likelihood(a, b, g, d, x, t_x, n), ln_l, "LL", floor=1e-30)
            alive = _agree(
                rvm.bgbb_probability_alive_at_n(a, b, g, d, x, t_x, n),
                mp.exp(ln_alive - ln_l),
                "alive",
            )
            a_, b_, g_, d_ = (mp.mpf(v) for v in params)
            head = mp.exp(_ln_beta(a_ + x + 1, b_ + n - x) - _ln_beta(a_, b_) - ln_l)
            survive = mp.fsum(
                mp.exp(_ln_beta(g_, d_ + k) - _ln_beta(g_, d_))
                for k in range(n + 1, n + M_BGBB + 1)
            )
            out["ll"].append(ll)
            out["alive"].append(alive)
            out["expected"].append(head * survive)
    # The closed form's Gamma-ratio difference cancels when gamma or delta is huge: more digits.
    by_sum = out["expected"]

    def closed() -> list[Value]:
        with _precision(digits + 120):
            return [
                _agree(
                    rvm.bgbb_conditional_expected(a, b, g, d, x, t_x, n, M_BGBB),
                    want,
                    "expected",
                    digits=20,
                )
                for want, (x, t_x, n) in zip(by_sum, BGBB_HISTORIES)
            ]

    _attempt(out, "expected", closed)
    return out


INFINITE = "infinite"  # a mean that does not exist: only a refusal is right


@functools.cache
def spend_reference(params: Params) -> dict[str, list[Value]]:
    """Gamma-Gamma references: the closed forms at two precisions (40 more digits expose any
    cancellation; the quadrature forms of ``reference_value_models`` take seconds per value at
    these shapes)."""
    p, q, gamma = params
    digits = _digits(params)
    out: dict[str, list[Value]] = {"ll": [], "spend": []}
    for x, mbar in SPEND_HISTORIES:
        forms: dict[str, list[Any]] = {"ll": [], "spend": []}
        for extra in (0, 40):
            with _precision(digits + extra):
                forms["ll"].append(rvm.gg_log_likelihood(p, q, gamma, x, mbar) if x else None)
                if mp.mpf(p) * x + q <= 1:
                    forms["spend"].append(INFINITE)
                else:
                    forms["spend"].append(rvm.gg_conditional_expected_spend(p, q, gamma, x, mbar))
        lls, spend = forms["ll"], forms["spend"]
        out["ll"].append(_agree(lls[0], lls[1], "LL", digits=20, floor=1e-30))
        out["spend"].append(
            INFINITE if spend[0] is INFINITE else _agree(spend[0], spend[1], "spend", digits=20)
        )
    return out


# ------------------------------------------------------------------------------------------------
# Judging clvrs
# ------------------------------------------------------------------------------------------------

KIND = {  # quantity: (rtol, atol, lower bound, upper bound)
    "ll": (LL_RTOL, LL_ATOL, -math.inf, math.inf),
    "alive": (RTOL, 0.0, 0.0, 1.0),
    "expected": (RTOL, 0.0, 0.0, math.inf),
    "new": (RTOL, 0.0, 0.0, math.inf),
    "spend": (RTOL, 0.0, 0.0, math.inf),
}


def _names_parameters(message: str, names: Sequence[str]) -> bool:
    return "params_" in message or any(re.search(rf"\b{n}\b", message) for n in names)


def _judge(
    quantity: str,
    compute: Callable[[], Any],
    references: Sequence[Value],
    names: Sequence[str],
    labels: Sequence[Any],
    refuse_in_range: bool = True,
) -> None:
    """clvrs's values against the references, or a typed refusal naming the parameters (with
    ``refuse_in_range`` false, only where no true value is inside double range)."""
    try:
        got = np.atleast_1d(np.asarray(compute(), dtype=float))
    except ClvError as error:
        assert _names_parameters(str(error), names), f"refusal does not name them: {error}"
        in_range = [
            f"{label}: {mp.nstr(ref, 17)}"
            for ref, label in zip(references, labels)
            if ref is not None and ref is not INFINITE and UNDERFLOW < abs(ref) < 1e308
        ]
        assert refuse_in_range or not in_range, f"refused ({error}) though {in_range}"
        return
    rtol, atol, lower, upper = KIND[quantity]
    problems = []
    for value, ref, label in zip(got, references, labels):
        if ref is None:
            continue
        if ref is INFINITE:
            problems.append(f"{label}: {value!r} for a mean that does not exist (refuse)")
            continue
        if not (math.isfinite(value) and lower <= value <= upper):
            problems.append(f"{label}: {value!r} (out of range; reference {mp.nstr(ref, 17)})")
        elif abs(ref) < UNDERFLOW and lower == 0.0:
            if value > 1e-280:
                problems.append(f"{label}: {value!r}, reference {mp.nstr(ref, 17)}")
        elif abs(value - ref) > rtol * abs(ref) + atol:
            rel = float(abs(value - ref) / abs(ref)) if ref else math.inf
            problems.append(
                f"{label}: {value!r}, reference {mp.nstr(ref, 17)} (relative error {rel:.2g})"
            )
    assert not problems, "\n".join(problems)


def _reference_or_skip(
    build: Callable[[Params], dict[str, Any]], params: Params, quantity: str
) -> Any:
    try:
        refs = build(params)[quantity]
    except (ReferenceUnavailable, ValueError, ZeroDivisionError) as error:
        refs = ReferenceUnavailable(str(error))
    if isinstance(refs, ReferenceUnavailable):
        pytest.skip(f"no verified reference: {refs}")
    return refs


def _rfm_columns(histories: Sequence[tuple[float, float, float]]) -> dict[str, np.ndarray]:
    x, t_x, T = (np.array(c, dtype=float) for c in zip(*histories))
    return {"frequency": x, "recency": t_x, "T": T}


def _rfm_quantity(
    model: Any, quantity: str, histories: Sequence[tuple[float, float, float]] = HISTORIES
) -> Callable[[], Any]:
    cols = _rfm_columns(histories)
    return {
        "ll": lambda: model.log_likelihood_per_customer(**cols),
        "alive": lambda: model.probability_alive(**cols),
        "expected": lambda: model.expected_purchases(t=T_NEW, **cols),
        "new": lambda: model.expected_purchases_new_customer(T_NEW),
    }[quantity]


RFM_QUANTITIES = ("ll", "alive", "expected", "new")
BG_NAMES = ("r", "alpha", "a", "b")
GG_NAMES = ("r", "alpha", "b", "s", "beta")
BGBB_NAMES = ("alpha", "beta", "gamma", "delta")
SPEND_NAMES = ("p", "q", "gamma")

# The Beta shapes scaled down together as well: a fit with a dropout covariate can drive the
# reference level's a and b to about 1e-6 at a fixed a / (a + b) (a boundary optimum), where
# the 2F1 closed form has c = a + b - 1 next to its pole at -1.
BG_SCALES = (1e-6, 1e12, 1e100)
BG_GRID = _grid(
    (0.243, 4.414, 0.793, 2.426), BG_NAMES, [(0, 1), (2, 3)], 2501, draws=4, scales=BG_SCALES
)
MBG_GRID = _grid(
    (0.525, 6.183, 0.891, 1.614), BG_NAMES, [(0, 1), (2, 3)], 2502, draws=4, scales=BG_SCALES
)
# GGompertz/NBD references take seconds per point (quadrature at high precision, checked by
# parts): a few points where both forms are verified; test_extremes.py covers huge ages.
GG_GRID = [
    point
    for point in _grid((0.55, 10.5, 0.01, 0.6, 0.1), GG_NAMES, [(0, 1), (3, 4)], 2503, draws=1)
    if point[0]
    in (
        "r=1e-08",
        "r=1e+12",
        "alpha=1e+12",
        "alpha=1e+100",
        "b=1e-08",
        "b=1e+12",
        "s=1e-08",
        "beta=1e-08",
        "beta=1e+12",
        "r,alphax1e+12",
        "s,betax1e+12",
        "draw0",
    )
]
# mp.beta at 1e300 and 360 digits costs seconds per history: BG/BB stops at 1e100.
BGBB_GRID = _grid(
    (1.204, 0.750, 0.657, 2.783), BGBB_NAMES, [(0, 1), (2, 3)], seed=2504, draws=4, far=FAR[:4]
)
SPEND_GRID = _grid((6.25, 3.74, 15.44), SPEND_NAMES, [(0, 2), (1, 2)], seed=2505, draws=4)


# MBG/NBD x = 0: LL = a1 + a2 + log1p_exp(odds) in src/models/bgnbd.rs::log_likelihood adds the
# alive branch's -(r + x) ln1p(T / alpha) + ln(b / (a + b)) to log odds carrying the same terms
# with the other sign; when the dead branch (which has no r term at t_x = 0) dominates, the
# O(1) answer is the difference of two O(r) or O(ln b) numbers.
MBG_KNOWN: dict[str, str] = {
    f"r={r:g}-new": (
        f"MBG/NBD r = {r:g}, alpha = 6.183, a = 0.891, b = 1.614: expected_purchases_new_customer"
        f"(52) refuses (InvalidParameterError: 'is nan at these parameters'); the true value is "
        f"{value} (two quadratures over logit p agree to 14 digits)"
    )
    for r, value in ((1e100, "1.3697398636e12"), (1e300, "8.6424742740e33"))
}
# BG/NBD at huge r with alpha moderate: the expectation refuses though it is finite (it grows as
# (r t / alpha)^(1 - a), a < 1).
BG_KNOWN: dict[str, str] = {
    f"r={r:g}-{quantity}": (
        f"BG/NBD r = {r:g}, alpha = 4.414, a = 0.793, b = 2.426: {what} refuses "
        f"(InvalidParameterError: 'is nan at these parameters'); the true value is {value} "
        f"(two quadratures over logit p agree to 14 digits)"
    )
    for r, quantity, what, value in (
        (1e100, "new", "expected_purchases_new_customer(52)", "7.8873427868e21"),
        (1e300, "new", "expected_purchases_new_customer(52)", "1.9812109330e63"),
        (1e100, "expected", "expected_purchases(52) for x = 0, T = 38.86", "4.9171336e21"),
        (1e300, "expected", "expected_purchases(52) for x = 0, T = 38.86", "1.2351281e63"),
    )
}
GG_KNOWN: dict[str, str] = {}
BGBB_KNOWN: dict[str, str] = {}


def _history_labels(quantity: str, histories: Sequence[Any]) -> list[Any]:
    return ["new customer"] if quantity == "new" else list(histories)


@pytest.mark.parametrize(("params", "quantity"), _cases(BG_GRID, RFM_QUANTITIES, BG_KNOWN))
def test_bgnbd_at_far_parameters(params: Params, quantity: str) -> None:
    refs = _reference_or_skip(bgnbd_reference, params, quantity)
    model = clvrs.BetaGeoModel.from_params(**dict(zip(BG_NAMES, params)))
    labels = _history_labels(quantity, HISTORIES)
    # An expectation inside double range is computed, not refused (issue 25).
    may_refuse = quantity not in ("expected", "new")
    _judge(quantity, _rfm_quantity(model, quantity), refs, BG_NAMES, labels, may_refuse)


@pytest.mark.parametrize(("params", "quantity"), _cases(MBG_GRID, RFM_QUANTITIES, MBG_KNOWN))
def test_mbgnbd_at_far_parameters(params: Params, quantity: str) -> None:
    refs = _reference_or_skip(mbg_reference, params, quantity)
    model = clvrs.ModifiedBetaGeoModel.from_params(**dict(zip(BG_NAMES, params)))
    labels = _history_labels(quantity, HISTORIES)
    # An expectation inside double range is computed, not refused (issue 25).
    may_refuse = quantity not in ("expected", "new")
    _judge(quantity, _rfm_quantity(model, quantity), refs, BG_NAMES, labels, may_refuse)


@pytest.mark.parametrize(("params", "quantity"), _cases(GG_GRID, RFM_QUANTITIES, GG_KNOWN))
def test_ggompertz_nbd_at_far_parameters(params: Params, quantity: str) -> None:
    refs = _reference_or_skip(gg_reference, params, quantity)
    model = clvrs.GammaGompertzNBDModel.from_params(**dict(zip(GG_NAMES, params)))
    labels = _history_labels(quantity, GG_HISTORIES)
    _judge(quantity, _rfm_quantity(model, quantity, GG_HISTORIES), refs, GG_NAMES, labels)


@pytest.mark.parametrize(
    ("params", "quantity"), _cases(BGBB_GRID, ("ll", "alive", "expected"), BGBB_KNOWN)
)
def test_bgbb_at_far_parameters(params: Params, quantity: str) -> None:
    refs = _reference_or_skip(bgbb_reference, params, quantity)
    model = clvrs.BetaGeoBetaBinomModel.from_params(**dict(zip(BGBB_NAMES, params)))
    x, t_x, n = (np.array(c, dtype=float) for c in zip(*BGBB_HISTORIES))
    cols = {"frequency": x, "recency": t_x, "periods": n}
    compute = {
        "ll": lambda: model.log_likelihood_per_customer(**cols),
        "alive": lambda: model.probability_alive(**cols),
        "expected": lambda: model.expected_purchases(m=M_BGBB, **cols),
    }[quantity]
    _judge(quantity, compute, refs, BGBB_NAMES, BGBB_HISTORIES)


@pytest.mark.parametrize(("params", "quantity"), _cases(SPEND_GRID, ("ll", "spend"), {}))
def test_gamma_gamma_at_far_parameters(params: Params, quantity: str) -> None:
    refs = _reference_or_skip(spend_reference, params, quantity)
    model = clvrs.GammaGammaModel.from_params(**dict(zip(SPEND_NAMES, params)))
    x, mbar = (np.array(c, dtype=float) for c in zip(*SPEND_HISTORIES))
    cols = {"frequency": x, "monetary_value": mbar}
    compute = {
        "ll": lambda: model.log_likelihood_per_customer(**cols),
        "spend": lambda: model.expected_average_spend(**cols),
    }[quantity]
    _judge(quantity, compute, refs, SPEND_NAMES, SPEND_HISTORIES)
