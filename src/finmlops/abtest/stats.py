"""Split-test statistics from per-arm sufficient statistics.

Everything here takes counts and sums, never raw rows, so the same numbers can come from the
local prediction log or from Prometheus counters summed across replicas.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats as sps
from scipy.special import gammaln

from finmlops.abtest.sequential import N_PLAN

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
class SrmSegment:
    """One segment's sample-ratio numbers (a version, or all the traffic): counts and shares
    over the weighted arms, log Bayes factor and its p-value, the chi-square test."""

    counts: dict[str, int]
    expected_share: dict[str, float]
    log_bayes_factor: float
    p_value: float
    chi2: float
    chi2_p_value: float
    df: int
    total: int
    """Assignments to arms with a positive weight."""


@dataclass(frozen=True)
class SRMResult:
    """Sample-ratio mismatch: served counts against the configured weights, always-valid.

    ``p_value`` is ``min(1, 1 / BF)`` for the Dirichlet-multinomial Bayes factor ``BF``
    (:func:`srm_log_bf`), valid however often it is looked at; ``chi2`` and ``chi2_p_value``
    are the fixed-n goodness-of-fit test, for reading only (repeated daily it raises false
    alarms far above ``alpha``). ``versions`` holds each experiment version's own numbers when
    the traffic was tested per version (:func:`srm_by_version`); ``counts`` and
    ``expected_share`` are then summed over versions.
    """

    counts: dict[str, int]
    expected_share: dict[str, float]
    log_bayes_factor: float
    p_value: float
    mismatch: bool
    chi2: float
    chi2_p_value: float
    versions: dict[str, SrmSegment] = field(default_factory=dict)


def srm_concentration(n_plan: int = N_PLAN, alpha: float = 0.001) -> float:
    """Dirichlet prior concentration ``c`` (prior ``Dirichlet(c * shares)``) that makes the
    mixture tightest near ``n_plan`` assignments.

    A share ``theta`` has prior variance ``theta (1 - theta) / (c + 1)``; matching it to the
    normal mixture's tuning (:func:`finmlops.abtest.sequential.mixture_tau2`, variance
    ``k * theta (1 - theta) / n_plan``) gives ``c + 1 = n_plan / k``.
    """
    la = 2 * math.log(1 / alpha)
    return max(n_plan / (la + math.log(1 + la)) - 1, 1.0)


def srm_log_bf(counts: ArrayLike, shares: ArrayLike, concentration: float
               ) -> NDArray[np.float64]:
    """Log Bayes factor of a Dirichlet(``concentration * shares``) mixture of multinomials
    against the configured ``shares``, for counts shaped ``[..., arms]`` (Lindon & Malek 2022).

    Under the configured split it is a nonnegative martingale in the assignments with mean 1,
    so by Ville's inequality ``P(sup BF >= 1 / alpha) <= alpha``: the test may be repeated
    after every assignment or every day. It depends on the counts only. Traffic on an arm
    whose share is 0 gives ``+inf``.
    """
    x = np.asarray(counts, float)
    th = np.asarray(shares, float)
    th = th / th.sum()
    live = th > 0
    a = concentration * th[live]
    xl = x[..., live]
    log_bf = (gammaln(concentration) - gammaln(concentration + x.sum(axis=-1))
              + (gammaln(a + xl) - xl * np.log(th[live])).sum(axis=-1) - gammaln(a).sum())
    stray = x[..., ~live].sum(axis=-1) > 0
    return np.asarray(np.where(stray, np.inf, log_bf), float)


def _segment(counts: Mapping[str, int], weights: Mapping[str, float], n_plan: int,
             alpha: float) -> SrmSegment:
    """One segment's numbers: counts and shares over the weighted arms, log BF, chi-square."""
    arms = sorted(weights)
    total_w = float(sum(weights[a] for a in arms))
    share = {a: weights[a] / total_w for a in arms}
    obs = {a: int(counts.get(a, 0)) for a in arms}
    stray = sum(int(v) for a, v in counts.items() if a not in share or share[a] == 0)
    live = [a for a in arms if share[a] > 0]
    total = sum(obs[a] for a in live)
    if stray:
        log_bf, chi2, chi2_p = math.inf, math.inf, 0.0
    elif total == 0 or len(live) < 2:
        log_bf, chi2, chi2_p = 0.0, 0.0, 1.0
    else:
        f_obs = np.array([obs[a] for a in live], dtype=float)
        th = np.array([share[a] for a in live])
        log_bf = float(srm_log_bf(f_obs, th, srm_concentration(n_plan, alpha)))
        chi2 = float(((f_obs - th * total) ** 2 / (th * total)).sum())
        chi2_p = float(sps.chi2.sf(chi2, len(live) - 1))
    return SrmSegment(obs, share, log_bf, _p_from_log_bf(log_bf), chi2, chi2_p,
                      max(len(live) - 1, 0), total)


def _p_from_log_bf(log_bf: float) -> float:
    return 1.0 if log_bf <= 0 else math.exp(-log_bf)


def srm_test(counts: Mapping[str, int], weights: Mapping[str, float],
             alpha: float = 0.001, *, n_plan: int = N_PLAN) -> SRMResult:
    """Always-valid sample-ratio test of served counts per arm against the configured weights.

    Arms with weight 0 must have no traffic: any count there is a mismatch.
    """
    seg = _segment(counts, weights, n_plan, alpha)
    return SRMResult(seg.counts, seg.expected_share, seg.log_bayes_factor, seg.p_value,
                     seg.p_value < alpha, seg.chi2, seg.chi2_p_value)


def _version_order(v: Any) -> tuple[int, float, str]:
    return (0, float(v), "") if isinstance(v, int | float) else (1, 0.0, str(v))


def srm_by_version(served: Mapping[Any, Mapping[str, int]],
                   weights: Mapping[Any, Mapping[str, float]], alpha: float = 0.001, *,
                   n_plan: int = N_PLAN) -> SRMResult:
    """Always-valid sample-ratio test of traffic split into experiment versions, each with its
    own target weights: ``served[v]`` are the assignments per arm under version ``v`` (counted
    from zero when it came into force), ``weights[v]`` its weights.

    Each version is tested on its own (``versions``), and the decision multiplies their Bayes
    factors: under the hypothesis that every version's traffic follows its weights, each
    assignment multiplies exactly one factor by a term of mean 1, so the product is one test
    martingale over the whole experiment, whatever the number of versions and however they
    interleave. That is the correction for several versions: the combined p-value
    ``1 / prod BF`` is valid at ``alpha`` as it stands, needs no count of versions fixed in
    advance (versions appear during the experiment), and with one version is exactly
    :func:`srm_test`.
    """
    missing = [str(v) for v in served if v not in weights]
    if missing:
        raise ValueError(f"no target weights for experiment version(s) {', '.join(missing)}")
    segs = {str(v): _segment(served.get(v, {}), weights[v], n_plan, alpha)
            for v in sorted(weights, key=_version_order)}
    counts: dict[str, int] = {}
    expected: dict[str, float] = {}
    grand = sum(s.total for s in segs.values())
    for seg in segs.values():
        for arm, c in seg.counts.items():
            counts[arm] = counts.get(arm, 0) + c
        for arm, sh in seg.expected_share.items():
            expected[arm] = expected.get(arm, 0.0) + (sh * seg.total / grand if grand
                                                      else sh / len(segs))
    log_bf = float(sum(s.log_bayes_factor for s in segs.values()))
    chi2 = float(sum(s.chi2 for s in segs.values()))
    df = sum(s.df for s in segs.values())
    chi2_p = (0.0 if not math.isfinite(chi2) else float(sps.chi2.sf(chi2, df)) if df else 1.0)
    p = _p_from_log_bf(log_bf)
    return SRMResult(dict(sorted(counts.items())), dict(sorted(expected.items())), log_bf, p,
                     p < alpha, chi2, chi2_p, segs)
