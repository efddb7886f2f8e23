"""Performance metrics of daily returns, and the Sharpe ratio's statistics (PSR, MinTRL, DSR).

PSR, minimum track-record length and the deflated Sharpe ratio follow Bailey & López de
Prado (2012, "The Sharpe Ratio Efficient Frontier"; 2014, "The Deflated Sharpe Ratio"):
they use the per-period (not annualised) Sharpe ratio, per-period skewness ``g3`` and
non-excess kurtosis ``g4`` (3 for a normal distribution).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from finmlops.contracts import PerformanceMetrics
from finmlops.evaluation.backtest import BacktestResult, FloatArray

EULER_GAMMA = 0.5772156649015329
_N = NormalDist()


def sharpe_moments(returns: FloatArray) -> tuple[float | None, float | None, float | None]:
    """Per-period Sharpe ratio (sample std), skewness and non-excess kurtosis."""
    return _moments(returns, np.empty_like(returns), np.empty_like(returns))[:3]


def _moments(returns: FloatArray, work: FloatArray, work2: FloatArray
             ) -> tuple[float | None, float | None, float | None, float]:
    """:func:`sharpe_moments` plus the sample std, using two scratch arrays (fresh large
    arrays cost page faults, which dominate at a million bars)."""
    n = returns.shape[0]
    if n < 2:
        return None, None, None, 0.0
    m = float(returns.mean())
    d = np.subtract(returns, m, out=work)
    ss = float(d @ d)
    std = math.sqrt(ss / (n - 1))
    if ss <= n * (1e-10 * m) ** 2:  # constant up to rounding: no meaningful ratio
        return None, None, None, std
    d2 = np.multiply(d, d, out=work2)
    var_b = ss / n
    skew = float(d2 @ d) / n / var_b**1.5
    kurt = float(d2 @ d2) / n / var_b**2
    return m / std, skew, kurt, std


def probabilistic_sharpe_ratio(sr: float, n: int, skew: float, kurtosis: float,
                               sr_benchmark: float = 0.0) -> float | None:
    """PSR(SR*) = Phi((SR - SR*) sqrt(n-1) / sqrt(1 - g3 SR + (g4-1)/4 SR^2)), per-period SRs."""
    var = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr
    if n < 2 or var <= 0.0:
        return None
    return _N.cdf((sr - sr_benchmark) * math.sqrt(n - 1) / math.sqrt(var))


def min_track_record_length(sr: float, skew: float, kurtosis: float,
                            sr_benchmark: float = 0.0, confidence: float = 0.95) -> float | None:
    """MinTRL = 1 + (1 - g3 SR + (g4-1)/4 SR^2) (z_conf / (SR - SR*))^2, in periods."""
    if sr <= sr_benchmark:
        return None
    var = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr
    z = _N.inv_cdf(confidence)
    return 1.0 + var * (z / (sr - sr_benchmark)) ** 2


def expected_max_sharpe(n_trials: int, sr_variance: float) -> float:
    """E[max SR] of ``n_trials`` independent unskilled trials whose SRs have ``sr_variance``:
    sqrt(V) ((1-c) Phi^-1(1-1/N) + c Phi^-1(1-1/(N e))), c the Euler-Mascheroni constant."""
    if n_trials <= 1 or sr_variance <= 0.0:
        return 0.0
    a = _N.inv_cdf(1.0 - 1.0 / n_trials)
    b = _N.inv_cdf(1.0 - 1.0 / (n_trials * math.e))
    return math.sqrt(sr_variance) * ((1.0 - EULER_GAMMA) * a + EULER_GAMMA * b)


def deflated_sharpe_ratio(sr: float, n: int, skew: float, kurtosis: float, n_trials: int,
                          sr_variance: float) -> float | None:
    """DSR: the PSR against the expected maximum SR of ``n_trials`` unskilled trials."""
    return probabilistic_sharpe_ratio(sr, n, skew, kurtosis,
                                      expected_max_sharpe(n_trials, sr_variance))


def null_sharpe_variance(n: int) -> float:
    """Sampling variance of a per-period SR near zero, 1/(n-1): the variance across trials
    when fewer than two trials' Sharpe ratios are known, and its floor otherwise (unskilled
    trials' estimated SRs scatter at least this much from estimation noise alone, so two
    variants that happen to agree must not make the deflation vanish)."""
    return 1.0 / max(n - 1, 1)


def max_drawdown(equity: FloatArray, work: FloatArray | None = None) -> tuple[float, int]:
    """Deepest fall from a running peak (negative fraction; the start counts as a peak at 1)
    and the longest time spent below a previous peak, in periods."""
    n = equity.shape[0]
    if n == 0:
        return 0.0, 0
    peak = np.maximum.accumulate(equity, out=work)
    np.maximum(peak, 1.0, out=peak)
    # days at a peak; the longest gap between two of them (or the ends) is the duration
    at_peak = np.flatnonzero(equity >= peak)
    bounds = np.concatenate([[-1], at_peak, [n]])
    dd = float(np.divide(equity, peak, out=peak).min()) - 1.0
    return min(dd, 0.0), int(np.diff(bounds).max()) - 1


def performance_metrics(result: BacktestResult, periods_per_year: int = 252,
                        n_trials: int = 1, sr_variance: float | None = None) -> PerformanceMetrics:
    """Every metric of ``result``'s net returns; the DSR deflates by ``n_trials`` trials
    whose per-period SRs vary with ``sr_variance``, never less than
    :func:`null_sharpe_variance` of ``result``'s length (the default).

    Returns, drawdowns and costs are of the net returns; volatility, Sharpe, Sortino, the
    moments and PSR/DSR/MinTRL of the returns above the risk-free rate (``result.excess``).
    """
    r = result.excess
    n = r.shape[0]
    ppy = float(periods_per_year)
    total = float(result.equity[-1]) - 1.0 if n else 0.0
    annual = (1.0 + total) ** (ppy / n) - 1.0 if n and total > -1.0 else (-1.0 if n else 0.0)
    work, work2 = np.empty_like(r), np.empty_like(r)
    sr, skew, kurt, std = _moments(r, work, work2)
    mean = float(r.mean()) if n else 0.0
    vol = std * math.sqrt(ppy)
    losses = np.minimum(r, 0.0, out=work)
    downside = math.sqrt(float(losses @ losses) / n) if n else 0.0
    mdd, mdd_days = max_drawdown(result.equity, work)
    n_active = int(np.count_nonzero(result.position))
    # a day beats cash only while holding a position (a flat day's excess is exactly 0)
    gross_excess = result.gross if result.rf is None else np.subtract(
        result.gross, result.rf, out=work2)
    hit = np.count_nonzero(gross_excess > 0.0) / n_active if n_active else None
    psr = min_trl = dsr = None
    sr0 = 0.0
    if sr is not None and skew is not None and kurt is not None:
        psr = probabilistic_sharpe_ratio(sr, n, skew, kurt)
        min_trl = min_track_record_length(sr, skew, kurt)
        var = null_sharpe_variance(n) if sr_variance is None else max(
            sr_variance, null_sharpe_variance(n))
        sr0 = expected_max_sharpe(n_trials, var)
        dsr = probabilistic_sharpe_ratio(sr, n, skew, kurt, sr0)
    return PerformanceMetrics(
        days=n,
        total_return=total,
        annual_return=annual,
        volatility=vol,
        sharpe=sr * math.sqrt(ppy) if sr is not None else None,
        sortino=mean / downside * math.sqrt(ppy) if downside > 0 else None,
        calmar=annual / -mdd if mdd < 0 else None,
        max_drawdown=mdd,
        max_drawdown_days=mdd_days,
        hit_rate=hit,
        exposure=float(np.abs(result.position, out=work).mean()) if n else 0.0,
        turnover=float(result.turnover.mean()) * ppy if n else 0.0,
        cost_drag=float(result.cost.mean()) * ppy if n else 0.0,
        skew=skew,
        kurtosis=kurt,
        sharpe_per_period=sr,
        psr=psr,
        min_trl=min_trl,
        dsr=dsr,
        dsr_benchmark_sharpe=sr0,
        n_trials=n_trials,
    )
