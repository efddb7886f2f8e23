"""Split-test statistics from per-arm sufficient statistics.

Everything here takes counts and sums, never raw rows, so the same numbers can come from the
local prediction log or from Prometheus counters summed across replicas.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

POWER = 0.8
"""Power at which minimum detectable effects are quoted."""


@dataclass(frozen=True)
class ArmStats:
    """Sufficient statistics of one arm's outcomes: count, hits, sum and sum of squares of
    net returns."""

    n: int
    hits: int
    sum_return: float
    sum_sq_return: float

    def __post_init__(self) -> None:
        if self.n < 0 or self.hits < 0 or self.hits > self.n:
            raise ValueError(f"invalid counts: n={self.n}, hits={self.hits}")

    @property
    def hit_rate(self) -> float:
        return self.hits / self.n if self.n else math.nan

    @property
    def mean(self) -> float:
        return self.sum_return / self.n if self.n else math.nan

    @property
    def variance(self) -> float:
        """Unbiased sample variance of the net return (0 below two outcomes)."""
        if self.n < 2:
            return 0.0
        ss = self.sum_sq_return - self.sum_return**2 / self.n
        return max(ss, 0.0) / (self.n - 1)

    def __add__(self, other: ArmStats) -> ArmStats:
        return ArmStats(self.n + other.n, self.hits + other.hits,
                        self.sum_return + other.sum_return,
                        self.sum_sq_return + other.sum_sq_return)

    @classmethod
    def from_arrays(cls, hits: Any, returns: Any) -> ArmStats:
        h = np.asarray(hits, dtype=np.int64)
        r = np.asarray(returns, dtype=np.float64)
        return cls(int(h.size), int(h.sum()), float(r.sum()), float((r * r).sum()))


@dataclass(frozen=True)
class TestResult:
    """A difference (challenger minus reference) with its standard error, test and CI."""

    estimate: float
    std_error: float
    statistic: float
    p_value: float
    lower: float
    upper: float
    df: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: _finite(v) for k, v in asdict(self).items()}


def _finite(v: Any) -> Any:
    """JSON has no inf/nan: such values become ``None``."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _z(alpha: float) -> float:
    return float(sps.norm.ppf(1 - alpha / 2))


def hit_rate_test(challenger: ArmStats, reference: ArmStats, alpha: float = 0.05) -> TestResult:
    """Two-proportion z-test (pooled SE for the test, unpooled for the CI)."""
    n1, n0 = challenger.n, reference.n
    if n1 == 0 or n0 == 0:
        return TestResult(math.nan, math.nan, math.nan, 1.0, -math.inf, math.inf)
    p1, p0 = challenger.hit_rate, reference.hit_rate
    diff = p1 - p0
    pooled = (challenger.hits + reference.hits) / (n1 + n0)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
    se = math.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
    z = diff / se0 if se0 > 0 else 0.0
    p = float(2 * sps.norm.sf(abs(z)))
    h = _z(alpha) * se
    return TestResult(diff, se, z, p, diff - h, diff + h)


def mean_return_test(challenger: ArmStats, reference: ArmStats,
                     alpha: float = 0.05) -> TestResult:
    """Welch's t-test on the difference in mean net return, with Welch-Satterthwaite df."""
    n1, n0 = challenger.n, reference.n
    if n1 < 2 or n0 < 2:
        return TestResult(math.nan, math.nan, math.nan, 1.0, -math.inf, math.inf)
    diff = challenger.mean - reference.mean
    v1, v0 = challenger.variance / n1, reference.variance / n0
    var = v1 + v0
    if var <= 0:
        return TestResult(diff, 0.0, 0.0 if diff == 0 else math.copysign(math.inf, diff),
                          1.0 if diff == 0 else 0.0, diff, diff)
    se = math.sqrt(var)
    df = var**2 / (v1**2 / (n1 - 1) + v0**2 / (n0 - 1))
    t = diff / se
    p = float(2 * sps.t.sf(abs(t), df))
    h = float(sps.t.ppf(1 - alpha / 2, df)) * se
    return TestResult(diff, se, t, p, diff - h, diff + h, df)


def mde(std_error: float, alpha: float = 0.05, power: float = POWER) -> float:
    """Smallest true difference a two-sided fixed-n test at ``alpha`` detects with ``power``."""
    return (_z(alpha) + float(sps.norm.ppf(power))) * std_error


def fixed_n_power(effect: float, std_error: float, alpha: float = 0.05) -> float:
    """Analytic power of the two-sided fixed-n z-test for a true ``effect``."""
    if std_error <= 0:
        return 1.0 if effect != 0 else alpha
    z = _z(alpha)
    shift = effect / std_error
    return float(sps.norm.sf(z - shift) + sps.norm.cdf(-z - shift))


@dataclass(frozen=True)
class SRMResult:
    """Sample-ratio mismatch: observed served counts against the configured weights."""

    counts: dict[str, int]
    expected_share: dict[str, float]
    statistic: float
    p_value: float
    mismatch: bool

    def to_dict(self) -> dict[str, Any]:
        return {k: _finite(v) if isinstance(v, float) else v for k, v in asdict(self).items()}


def srm_test(counts: Mapping[str, int], weights: Mapping[str, float],
             alpha: float = 0.001) -> SRMResult:
    """Chi-square goodness of fit of served counts per arm to the configured weights.

    Arms with weight 0 must have no traffic: any count there is a mismatch.
    """
    arms = sorted(weights)
    total_w = float(sum(weights[a] for a in arms))
    share = {a: weights[a] / total_w for a in arms}
    obs = {a: int(counts.get(a, 0)) for a in arms}
    stray = sum(int(v) for a, v in counts.items() if a not in share or share[a] == 0)
    live = [a for a in arms if share[a] > 0]
    total = sum(obs[a] for a in live)
    if stray:
        return SRMResult(obs, share, math.inf, 0.0, True)
    if total == 0 or len(live) < 2:
        return SRMResult(obs, share, 0.0, 1.0, False)
    f_obs = np.array([obs[a] for a in live], dtype=float)
    f_exp = np.array([share[a] for a in live]) * total
    chi2 = float(((f_obs - f_exp) ** 2 / f_exp).sum())
    p = float(sps.chi2.sf(chi2, len(live) - 1))
    return SRMResult(obs, share, chi2, p, p < alpha)
