"""Paired (counterfactual) statistics: with shadow scoring every arm answers every request.

Outcomes are then paired, which removes the market's day-to-day noise that both arms share:
McNemar's test on who called the direction right, and a test on the daily difference of net
strategy returns with a Newey-West (HAC) variance, since daily strategy returns are
autocorrelated (volatility clusters, positions persist). The lag rule is Newey and West's
(1994) ``floor(4 * (n / 100) ** (2 / 9))`` with Bartlett weights.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats as sps

from finmlops.abtest.stats import TestResult

EXACT_BELOW = 25
"""McNemar uses the exact binomial test below this many discordant pairs."""


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
    """McNemar's test of equal hit rates: exact binomial for few discordant pairs, else
    chi-square with continuity correction. The CI is Wald's for the paired difference."""
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
    chi2 = (abs(b - c) - 1) ** 2 / m
    p = float(sps.chi2.sf(chi2, 1))
    return TestResult(diff, se, chi2, p, diff - h, diff + h, 1.0)


def nw_lag(n: int | NDArray[np.int64]) -> Any:
    """Newey-West (1994) automatic lag: ``floor(4 * (n / 100) ** (2 / 9))``."""
    arr = np.floor(4 * (np.asarray(n, float) / 100) ** (2 / 9)).astype(np.int64)
    return int(arr) if arr.ndim == 0 else arr


def newey_west_lrv(x: ArrayLike, lag: int | None = None) -> float:
    """Long-run variance of a series (Bartlett kernel), i.e. ``n * Var(mean)``."""
    a = np.asarray(x, float)
    n = a.size
    if n < 2:
        return 0.0
    lag = nw_lag(n) if lag is None else lag
    e = a - a.mean()
    lrv = float(e @ e) / n
    for k in range(1, min(lag, n - 1) + 1):
        lrv += 2 * (1 - k / (lag + 1)) * float(e[k:] @ e[:-k]) / n
    return max(lrv, 0.0)


def hac_prefix(x: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Mean and Newey-West long-run variance of every prefix ``x[..., :t]`` at once.

    Vectorised with cumulative sums over the last axis, so daily monitoring of thousands of
    simulated experiments costs O(T * lag) each. Returns arrays shaped like ``x``.
    """
    a = np.asarray(x, float)
    t_len = a.shape[-1]
    t = np.arange(1, t_len + 1, dtype=float)
    lags = nw_lag(np.arange(1, t_len + 1))
    max_lag = int(lags.max()) if t_len else 0
    s1 = np.cumsum(a, axis=-1)
    mean = s1 / t
    pad = np.concatenate([np.zeros((*a.shape[:-1], 1)), s1], axis=-1)  # pad[..., k] = sum x[:k]
    lrv = np.cumsum(a * a, axis=-1) / t - mean**2
    for k in range(1, max_lag + 1):
        if k >= t_len:
            break
        prod = np.cumsum(a[..., k:] * a[..., :-k], axis=-1)
        p_k = np.concatenate([np.zeros((*a.shape[:-1], k)), prod], axis=-1)
        head = pad[..., 1:] - pad[..., k:k + 1]                   # sum x_{k+1..t}
        tail = np.concatenate([np.zeros((*a.shape[:-1], k)), s1[..., :-k]], axis=-1)
        gamma = (p_k - mean * (head + tail) + (t - k) * mean**2) / t
        gamma = np.where(t > k, gamma, 0.0)
        w = np.where(lags >= k, 1 - k / (lags + 1), 0.0)
        lrv = lrv + 2 * w * gamma
    return mean, np.maximum(lrv, 0.0)


def daily_diff_test(daily_diff: ArrayLike, alpha: float = 0.05,
                    lag: int | None = None) -> TestResult:
    """Test of zero mean daily net-return difference with a Newey-West standard error."""
    d = np.asarray(daily_diff, float)
    n = d.size
    if n < 2:
        return TestResult(math.nan, math.nan, math.nan, 1.0, -math.inf, math.inf)
    lag = nw_lag(n) if lag is None else lag
    mean = float(d.mean())
    se = math.sqrt(newey_west_lrv(d, lag) / n)
    return _t_test(mean, se, n, alpha)


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


def paired_to_dict(stats: PairedStats) -> dict[str, Any]:
    out = asdict(stats)
    out.update(mean_diff=stats.mean_diff if stats.n else None, hit_diff=stats.hit_diff
               if stats.n else None)
    return out
