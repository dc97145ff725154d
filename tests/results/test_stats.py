import math

import numpy as np
import pytest

from orchestrator.results.stats import mean_ci, t_quantile, welch_ci


@pytest.mark.parametrize("p", [0.6, 0.9, 0.975, 0.995, 0.9999, 0.025, 0.3])
def test_t_quantile_closed_forms(p):
    # df = 1 (Cauchy), 2 and 4 have closed forms.
    assert t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-9)
    assert t_quantile(p, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-9)
    a = 4 * p * (1 - p)
    q = math.cos(math.acos(math.sqrt(a)) / 3) / math.sqrt(a)
    assert t_quantile(p, 4) == pytest.approx(math.copysign(2 * math.sqrt(q - 1), p - 0.5),
                                             rel=1e-9)


def test_t_quantile_against_scipy_when_available():
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 3, 5.5, 9, 29, 30, 31, 120, 10_000):
        for p in (0.975, 0.995, 0.7, 1e-5):
            assert t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-9)


def test_t_quantile_tends_to_normal_and_validates():
    assert t_quantile(0.975, 1e6) == pytest.approx(1.959963984540054, rel=1e-5)
    assert t_quantile(0.5, 3) == 0.0
    with pytest.raises(ValueError, match="p must be"):
        t_quantile(1.0, 3)
    with pytest.raises(ValueError, match="df must be"):
        t_quantile(0.9, 0)


def test_mean_ci_by_hand():
    mean, half, n = mean_ci([0.8, 0.9, 1.0, np.nan])
    assert (mean, n) == (pytest.approx(0.9), 3)
    assert half == pytest.approx(4.302652729911275 * 0.1 / math.sqrt(3), rel=1e-9)
    assert math.isnan(mean_ci([0.5])[1])


def test_welch_ci_by_hand():
    delta, half = welch_ci(0.8, 0.02, 4, 0.85, 0.04, 5)
    va, vb = 0.02**2 / 4, 0.04**2 / 5
    df = (va + vb) ** 2 / (va**2 / 3 + vb**2 / 4)
    assert delta == pytest.approx(0.05)
    assert half == pytest.approx(t_quantile(0.975, df) * math.sqrt(va + vb))
    assert math.isnan(welch_ci(0.8, math.nan, 1, 0.85, 0.04, 5)[1])
