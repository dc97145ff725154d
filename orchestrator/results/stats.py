"""Student-t quantiles and confidence intervals, without scipy.

``t_quantile`` inverts the t distribution's CDF written with the regularized incomplete beta
function, ``P(T > t) = I_x(df/2, 1/2) / 2`` with ``x = df / (df + t^2)``. The incomplete
beta is evaluated by its continued fraction (modified Lentz), and the quantile found by
bisection on t to double precision: exact for every df, no tables, no normal approximation.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["mean_ci", "t_quantile", "welch_ci"]


def _beta_cf(a: float, b: float, x: float) -> float:
    """Continued fraction of I_x(a, b) (Numerical Recipes ``betacf``, modified Lentz)."""
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-16:
            break
    return h


def _betainc(a: float, b: float, x: float, y: float) -> float:
    """Regularized incomplete beta I_x(a, b), with ``y = 1 - x`` passed in for precision."""
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log(y))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_cf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_cf(b, a, y) / b


def _t_upper_tail(t: float, df: float) -> float:
    """P(T > t) for t >= 0."""
    return 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t), t * t / (df + t * t))


def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t with ``df`` degrees of freedom (df > 0, 0 < p < 1)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be strictly between 0 and 1, but got {p=}")
    if not df > 0:
        raise ValueError(f"df must be positive, but got {df=}")
    tail = min(p, 1.0 - p)
    if tail == 0.5:
        return 0.0
    lo, hi = 0.0, 1.0
    while _t_upper_tail(hi, df) > tail:  # bracket the root
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if _t_upper_tail(mid, df) > tail:
            lo = mid
        else:
            hi = mid
    t = 0.5 * (lo + hi)
    return t if p > 0.5 else -t


def ci_halfwidth(std: np.ndarray, n: np.ndarray, level: float = 0.95) -> np.ndarray:
    """Half-width of the t confidence interval of a mean: t_{(1+level)/2, n-1} * std / sqrt(n).

    NaN where n < 2 (one replicate says nothing about noise).
    """
    std, n = np.asarray(std, dtype=np.float64), np.asarray(n, dtype=np.float64)
    t = np.full(n.shape, np.nan)
    for count in np.unique(n[n >= 2]):
        t[n == count] = t_quantile((1 + level) / 2, count - 1)
    return t * std / np.sqrt(n)


def mean_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float, int]:
    """(mean, CI half-width, n) of the finite values; the half-width is NaN for n < 2."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    n = len(values)
    if n == 0:
        return math.nan, math.nan, 0
    std = float(np.std(values, ddof=1)) if n > 1 else math.nan
    return float(values.mean()), float(ci_halfwidth(np.array([std]), np.array([n]), level)[0]), n


def welch_ci(mean_a: float, std_a: float, n_a: int, mean_b: float, std_b: float, n_b: int,
             level: float = 0.95) -> tuple[float, float]:
    """(b - a, CI half-width) of a difference of means, Welch–Satterthwaite df.

    The half-width is NaN unless both sides have at least two replicates.
    """
    delta = mean_b - mean_a
    if n_a < 2 or n_b < 2 or not (np.isfinite(std_a) and np.isfinite(std_b)):
        return delta, math.nan
    va, vb = std_a**2 / n_a, std_b**2 / n_b
    se = math.sqrt(va + vb)
    if se == 0.0:
        return delta, 0.0
    df = (va + vb) ** 2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1))
    return delta, t_quantile((1 + level) / 2, df) * se
