"""Paired statistics: McNemar, the HAC long-run variance (direct and prefix-vectorised, each
method), and the daily test."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import signal as sps_signal
from scipy import stats as sps

from finmlops.abtest import (
    HAC_METHODS,
    HacMethod,
    PairedStats,
    daily_diff_test,
    hac_estimate,
    hac_prefix,
    iid_diff_test,
    mcnemar,
    newey_west_lrv,
    nw_lag,
)
from finmlops.abtest import hac as hac_module


def ar1(rng: np.random.Generator, phi: float, shape: tuple[int, ...]) -> np.ndarray:
    """Stationary AR(1) with unit innovations (burn-in of 300)."""
    e = rng.normal(size=(*shape[:-1], shape[-1] + 300))
    return sps_signal.lfilter([1.0], [1.0, -phi], e, axis=-1)[..., 300:]


def test_paired_stats_count_discordant_pairs() -> None:
    s = PairedStats.from_arrays([1, 1, 0, 0, 1], [1, 0, 1, 0, 0], [0.1, 0.2, 0, 0, 0.3],
                                [0.0, 0.1, 0.1, 0, 0.1])
    assert (s.n, s.b, s.c) == (5, 2, 1)
    assert s.sum_diff == pytest.approx(0.3)
    assert s.hit_diff == pytest.approx(0.2)


def test_mcnemar_is_exact_for_few_discordant_pairs() -> None:
    res = mcnemar(PairedStats(100, 9, 1, 0.0, 0.0))
    assert res.p_value == pytest.approx(sps.binomtest(9, 10, 0.5).pvalue)


def test_mcnemar_uses_continuity_corrected_chi_square_for_many() -> None:
    res = mcnemar(PairedStats(1000, 80, 50, 0.0, 0.0))
    chi2 = (abs(80 - 50) - 1) ** 2 / 130
    assert res.statistic == pytest.approx(chi2)
    assert res.p_value == pytest.approx(sps.chi2.sf(chi2, 1))
    assert res.lower < 0.03 < res.upper


@pytest.mark.parametrize(("b", "c"), [(40, 40), (41, 40), (40, 41), (500, 500), (5, 5),
                                      (6, 5)])
def test_mcnemar_with_balanced_discordant_pairs_gives_p_one(b: int, c: int) -> None:
    """``b = c`` (or one apart) is no evidence at all: statistic 0 and p = 1, exactly as the
    exact binomial test says; the uncapped correction gave chi2 = 1/m and p < 1."""
    res = mcnemar(PairedStats(2000, b, c, 0.0, 0.0))
    assert res.p_value == 1.0
    assert sps.binomtest(b, b + c, 0.5).pvalue == pytest.approx(1.0)
    if b + c >= 25:
        assert res.statistic == 0.0


@given(st.integers(25, 3000), st.floats(0, 1))
@settings(max_examples=150, deadline=None)
def test_mcnemar_chi_square_stays_close_to_the_exact_test(m: int, frac: float) -> None:
    b = round(frac * m)
    res = mcnemar(PairedStats(m + 10, b, m - b, 0.0, 0.0))
    exact = sps.binomtest(b, m, 0.5).pvalue
    assert 0.0 <= res.p_value <= 1.0
    assert abs(res.p_value - exact) <= 0.003
    assert res.p_value == mcnemar(PairedStats(m + 10, m - b, b, 0.0, 0.0)).p_value


def test_lag_rule() -> None:
    assert nw_lag(100) == 4
    assert nw_lag(250) == 4
    assert nw_lag(1500) == 7
    assert nw_lag(np.array([1, 10, 100])).tolist() == [1, 2, 4]


def test_newey_west_with_lag_zero_is_the_biased_variance() -> None:
    x = np.random.default_rng(0).normal(size=200)
    assert newey_west_lrv(x, 0) == pytest.approx(x.var())


def test_prewhitened_hac_recovers_the_long_run_variance_of_an_ar1() -> None:
    phi = 0.5
    x = ar1(np.random.default_rng(1), phi, (100_000,))
    true = 1 / (1 - phi) ** 2
    est = hac_estimate(x)
    assert est.lrv == pytest.approx(true, rel=0.05)
    assert est.rho == pytest.approx(phi, abs=0.01)
    assert est.method == "andrews" and est.bandwidth is not None and est.bandwidth < 5
    assert newey_west_lrv(x, 0) < 0.5 * true  # the iid variance is far too small


def test_white_noise_long_run_variance_is_its_variance() -> None:
    x = np.random.default_rng(2).normal(0.0, 0.01, 20_000)
    assert hac_estimate(x).lrv == pytest.approx(x.var(), rel=0.05)


@pytest.mark.parametrize("t", [100, 1842])
def test_prewhitening_removes_the_bias_the_fixed_lag_leaves(t: int) -> None:
    """AR(1) with phi = 0.6 (LRV = 6.25 innovations' variances): the typical (median)
    prewhitened estimate is within a few percent at the first decision day and at production
    length, and not short on average, while the Newey-West lag (4 at 100 days, 7 at 1,842)
    is 25-45% short."""
    phi = 0.6
    x = ar1(np.random.default_rng(3), phi, (2000, t))
    true = 1 / (1 - phi) ** 2
    andrews = hac_prefix(x)[1][:, -1] / true
    nw = hac_prefix(x, "newey_west")[1][:, -1] / true
    assert 0.95 < np.median(andrews) < 1.05 and andrews.mean() > 0.97, andrews.mean()
    assert np.median(nw) < 0.8 and nw.mean() < 0.8, nw.mean()


def test_the_prewhitening_coefficient_is_corrected_for_its_small_sample_bias() -> None:
    """The Yule-Walker AR(1) coefficient of 100 days is short by about (1 + 4 phi) / 100;
    the corrected one is not."""
    phi, n = 0.6, 100
    x = ar1(np.random.default_rng(4), phi, (4000, n))
    c = x - x.mean(axis=1, keepdims=True)
    raw = (c[:, 1:] * c[:, :-1]).sum(axis=1) / (c * c).sum(axis=1)
    corrected = np.array([hac_estimate(row).rho for row in x], dtype=float)
    assert raw.mean() - phi < -0.025
    assert abs(corrected.mean() - phi) < 0.01


@pytest.mark.parametrize("method", HAC_METHODS)
@given(x=arrays(np.float64, st.integers(2, 90), elements=st.floats(-1, 1)))
@settings(max_examples=60, deadline=None)
def test_prefix_hac_equals_the_direct_computation(method: HacMethod, x: np.ndarray) -> None:
    mean, lrv = hac_prefix(x, method)
    for t in (2, len(x) // 2 + 1, len(x)):
        assert mean[t - 1] == pytest.approx(x[:t].mean(), abs=1e-12)
        direct = hac_estimate(x[:t], method).lrv
        assert lrv[t - 1] == pytest.approx(direct, rel=1e-7, abs=1e-10)
        assert lrv[t - 1] >= 0


def test_prefix_hac_is_vectorised_over_leading_axes_in_blocks(
        monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.random.default_rng(5).normal(size=(3, 4, 50))
    mean, lrv = hac_prefix(x)
    assert mean.shape == lrv.shape == (3, 4, 50)
    assert lrv[1, 2, -1] == pytest.approx(hac_estimate(x[1, 2]).lrv)
    monkeypatch.setattr(hac_module, "_CHUNK", 120)  # two rows per block
    _, blocked = hac_prefix(x)
    assert np.array_equal(blocked, lrv)


def test_degenerate_series() -> None:
    assert hac_estimate([0.01] * 50).lrv == 0.0
    assert hac_estimate([0.3]).lrv == 0.0
    mean, lrv = hac_prefix(np.zeros((2, 0)))
    assert mean.shape == lrv.shape == (2, 0)
    with pytest.raises(ValueError, match="unknown HAC method"):
        hac_prefix([1.0, 2.0], "parzen")  # type: ignore[arg-type]


def test_daily_test_and_iid_test_agree_without_autocorrelation() -> None:
    rng = np.random.default_rng(3)
    d = rng.normal(0.001, 0.01, 400)
    hac = daily_diff_test(d)
    iid = iid_diff_test(PairedStats(400, 0, 0, float(d.sum()), float((d * d).sum())))
    assert hac.estimate == pytest.approx(iid.estimate)
    assert hac.std_error == pytest.approx(iid.std_error, rel=0.1)
    ref = sps.ttest_1samp(d, 0.0)
    assert iid.p_value == pytest.approx(ref.pvalue, rel=1e-9)


def test_daily_test_widens_for_a_persistent_series() -> None:
    d = 0.002 * ar1(np.random.default_rng(6), 0.6, (1842,))
    hac = daily_diff_test(d)
    iid = iid_diff_test(PairedStats(d.size, 0, 0, float(d.sum()), float((d * d).sum())))
    # sqrt(LRV / variance) = sqrt((1 + phi) / (1 - phi)) = 2 for an AR(1) with phi = 0.6
    assert hac.std_error / iid.std_error == pytest.approx(2.0, rel=0.15)
    assert math.isfinite(hac.p_value) and hac.lower < hac.estimate < hac.upper
