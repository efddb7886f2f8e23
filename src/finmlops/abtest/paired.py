"""Paired (counterfactual) statistics: with shadow scoring every arm answers every request.

Outcomes are then paired, which removes the market's day-to-day noise that both arms share:
McNemar's test on who called the direction right, and a test on the daily difference of net
strategy returns with a HAC variance (:mod:`finmlops.abtest.hac`), since daily strategy
returns are autocorrelated (volatility clusters, positions persist).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as sps

from finmlops.abtest.hac import HacMethod, hac_estimate
from finmlops.abtest.stats import TestResult

EXACT_BELOW = 25
"""McNemar uses the exact binomial test below this many discordant pairs (the usual rule;
from 25 on, the continuity-corrected chi-square is within 0.003 of the exact p-value)."""


@dataclass(frozen=True)
class PairedStats:
    """Sufficient statistics of paired outcomes (challenger vs reference on the same requests).

    ``b``: challenger right and reference wrong; ``c``: the reverse. ``sum_diff`` and
    ``sum_sq_diff`` are over the per-request differences of net returns (challenger minus
    reference) — exactly what ``finmlops_paired_*`` counters export.
    """

    n: int
    b: int
    c: int
    sum_diff: float
    sum_sq_diff: float

    def __post_init__(self) -> None:
        if self.n < 0 or self.b < 0 or self.c < 0 or self.b + self.c > self.n:
            raise ValueError(f"invalid paired counts: n={self.n}, b={self.b}, c={self.c}")

    @property
    def mean_diff(self) -> float:
        return self.sum_diff / self.n if self.n else math.nan

    @property
    def var_diff(self) -> float:
        if self.n < 2:
            return 0.0
        return max(self.sum_sq_diff - self.sum_diff**2 / self.n, 0.0) / (self.n - 1)

    @property
    def hit_diff(self) -> float:
        """Difference in hit rate, challenger minus reference."""
        return (self.b - self.c) / self.n if self.n else math.nan

    @classmethod
    def from_arrays(cls, hits_challenger: ArrayLike, hits_reference: ArrayLike,
                    ret_challenger: ArrayLike, ret_reference: ArrayLike) -> PairedStats:
        h1 = np.asarray(hits_challenger, bool)
        h0 = np.asarray(hits_reference, bool)
        d = np.asarray(ret_challenger, float) - np.asarray(ret_reference, float)
        return cls(int(h1.size), int((h1 & ~h0).sum()), int((h0 & ~h1).sum()),
                   float(d.sum()), float((d * d).sum()))


def mcnemar(stats: PairedStats, alpha: float = 0.05) -> TestResult:
    """McNemar's test of equal hit rates on the ``m = b + c`` discordant pairs.

    Under the null each discordant pair goes either way with probability 1/2, so the exact
    test is binomial(``m``, 1/2) on ``b``; it is used below ``EXACT_BELOW`` pairs. Above, the
    continuity-corrected chi-square ``max(|b - c| - 1, 0)^2 / m`` approximates it: the
    correction stops at zero, so ``|b - c| <= 1`` gives 0 and p = 1, as the exact test does
    (without the ``max``, ``b = c`` would give ``1 / m`` and p < 1). The CI is Wald's for the
    paired difference.
    """
    b, c, n = stats.b, stats.c, stats.n
    m = b + c
    if n == 0:
        return TestResult(math.nan, math.nan, math.nan, 1.0, -math.inf, math.inf)
    diff = (b - c) / n
    se = math.sqrt(max(m - (b - c) ** 2 / n, 0.0)) / n
    h = float(sps.norm.ppf(1 - alpha / 2)) * se
    if m == 0:
        return TestResult(0.0, 0.0, 0.0, 1.0, 0.0, 0.0)
    if m < EXACT_BELOW:
        p = float(sps.binomtest(b, m, 0.5).pvalue)
        return TestResult(diff, se, float(b), p, diff - h, diff + h)
    chi2 = max(abs(b - c) - 1, 0) ** 2 / m
    p = float(sps.chi2.sf(chi2, 1))
    return TestResult(diff, se, chi2, p, diff - h, diff + h, 1.0)


def daily_diff_test(daily_diff: ArrayLike, alpha: float = 0.05,
                    method: HacMethod = "andrews") -> TestResult:
    """Fixed-n t-test of zero mean daily net-return difference with a HAC standard error."""
    d = np.asarray(daily_diff, float)
    n = d.size
    if n < 2:
        return TestResult(math.nan, math.nan, math.nan, 1.0, -math.inf, math.inf)
    se = math.sqrt(hac_estimate(d, method).lrv / n)
    return _t_test(float(d.mean()), se, n, alpha)


def _t_test(mean: float, se: float, n: int, alpha: float) -> TestResult:
    """Two-sided t-test of a zero mean with ``n - 1`` degrees of freedom."""
    if se <= 0:
        return TestResult(mean, 0.0, 0.0, 1.0, mean, mean, float(n - 1))
    t = mean / se
    p = float(2 * sps.t.sf(abs(t), n - 1))
    h = float(sps.t.ppf(1 - alpha / 2, n - 1)) * se
    return TestResult(mean, se, t, p, mean - h, mean + h, float(n - 1))


def iid_diff_test(stats: PairedStats, alpha: float = 0.05) -> TestResult:
    """Paired t-test from sufficient statistics alone (what Prometheus can give: no HAC)."""
    n = stats.n
    if n < 2:
        return TestResult(math.nan, math.nan, math.nan, 1.0, -math.inf, math.inf)
    mean = stats.mean_diff
    se = math.sqrt(stats.var_diff / n)
    return _t_test(mean, se, n, alpha)
