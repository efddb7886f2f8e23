"""Performance against a benchmark: active return, alpha and beta with a HAC t, information
ratio, and whether one Sharpe ratio really exceeds another.

A strategy that holds the market 82% of the time earns most of the market's Sharpe ratio
with no skill at all; a PSR of its absolute returns against zero mistakes that beta for
skill. These statistics ask the question against the instrument itself.

- HAC (Newey & West 1987) standard errors with Bartlett weights, ``lags`` by default
  ``floor(4 (n/100)^(2/9))``; no small-sample factor.
- The Sharpe-ratio difference test follows Ledoit & Wolf (2008, "Robust performance
  hypothesis testing with the Sharpe ratio"): the delta method on the first two moments of
  both series with a HAC covariance (Bartlett here; they prewhiten with a quadratic-spectral
  kernel). :func:`memmel_test` is the iid-normal closed form (Jobson & Korkie 1981 with
  Memmel's 2003 correction), for comparison.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import norm

from finmlops.errors import DataValidationError
from finmlops.evaluation.backtest import FloatArray


@dataclass(frozen=True)
class Regression:
    """``y = alpha + beta x + e`` by OLS, with Newey-West (HAC) standard errors.

    ``alpha`` is per period; ``beta_t`` tests beta against 1 (the benchmark itself).
    """

    n: int
    alpha: float
    beta: float
    alpha_se: float
    beta_se: float
    alpha_t: float | None
    beta_t: float | None
    alpha_p: float | None
    """Two-sided p-value of alpha = 0 (normal)."""
    r_squared: float | None
    lags: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SharpeDifference:
    """SR(a) - SR(b) per period, its standard error and one- and two-sided p-values."""

    sharpe_a: float
    sharpe_b: float
    difference: float
    se: float | None
    z: float | None
    p_value: float | None
    """One-sided: the probability of a difference this large if SR(a) <= SR(b)."""
    p_two_sided: float | None
    method: str
    lags: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def newey_west_lags(n: int) -> int:
    """The usual automatic lag count, floor(4 (n/100)^(2/9))."""
    lags: int = math.floor(4.0 * (max(n, 1) / 100.0) ** (2.0 / 9.0))
    return lags


def long_run_covariance(u: FloatArray, lags: int) -> FloatArray:
    """Bartlett-weighted sum of autocovariances of the (n, k) centred moment series ``u``,
    divided by n: Gamma_0 + sum_l (1 - l/(lags+1)) (Gamma_l + Gamma_l')."""
    n = u.shape[0]
    s: FloatArray = u.T @ u
    for lag in range(1, min(lags, n - 1) + 1):
        g = u[lag:].T @ u[:-lag]
        s += (1.0 - lag / (lags + 1.0)) * (g + g.T)
    out: FloatArray = s / n
    return out


def hac_regression(y: ArrayLike, x: ArrayLike, lags: int | None = None) -> Regression:
    """OLS of ``y`` on a constant and ``x`` with a Newey-West covariance of the estimates."""
    yy, xx = _pair(y, x)
    n = yy.shape[0]
    if n < 3:
        raise DataValidationError("a regression needs at least 3 observations")
    lags = newey_west_lags(n) if lags is None else lags
    design = np.column_stack([np.ones(n), xx])
    xtx = design.T @ design
    if abs(np.linalg.det(xtx)) < 1e-300 or float(np.var(xx)) == 0.0:
        raise DataValidationError("the benchmark's returns are constant: no beta")
    coef = np.linalg.solve(xtx, design.T @ yy)
    resid = yy - design @ coef
    inv = np.linalg.inv(xtx / n)
    cov = inv @ long_run_covariance(design * resid[:, None], lags) @ inv / n
    a_se, b_se = (math.sqrt(max(float(v), 0.0)) for v in np.diag(cov))
    tss = float(((yy - yy.mean()) ** 2).sum())
    alpha_t = float(coef[0]) / a_se if a_se > 0 else None
    return Regression(
        n=n, alpha=float(coef[0]), beta=float(coef[1]), alpha_se=a_se, beta_se=b_se,
        alpha_t=alpha_t,
        beta_t=(float(coef[1]) - 1.0) / b_se if b_se > 0 else None,
        alpha_p=float(2.0 * norm.sf(abs(alpha_t))) if alpha_t is not None else None,
        r_squared=1.0 - float(resid @ resid) / tss if tss > 0 else None,
        lags=lags,
    )


def information_ratio(active: ArrayLike, periods_per_year: int = 252) -> float | None:
    """Annualised mean active return over tracking error (``None`` for a constant series)."""
    a = np.asarray(active, dtype=np.float64)
    if a.shape[0] < 2:
        return None
    sd = float(a.std(ddof=1))
    return float(a.mean()) / sd * math.sqrt(periods_per_year) if sd > 0 else None


def exposure_matched(benchmark: ArrayLike, exposure: float,
                     rf: ArrayLike | None = None) -> FloatArray:
    """The benchmark held at a constant ``exposure`` (the strategy's mean position), the rest
    in cash: ``exposure * r + (1 - exposure) * rf``. Beating it takes timing, not beta."""
    r = np.asarray(benchmark, dtype=np.float64)
    cash = np.zeros_like(r) if rf is None else np.asarray(rf, dtype=np.float64)
    out: FloatArray = exposure * r + (1.0 - exposure) * cash
    return out


def sharpe_difference(a: ArrayLike, b: ArrayLike, lags: int | None = None) -> SharpeDifference:
    """Ledoit-Wolf test of SR(a) > SR(b) on paired per-period (excess) returns."""
    ra, rb = _pair(a, b)
    n = ra.shape[0]
    lags = newey_west_lags(n) if lags is None else lags
    mu = np.array([ra.mean(), rb.mean()])
    gamma = np.array([(ra * ra).mean(), (rb * rb).mean()])
    var = gamma - mu * mu
    sr_a, sr_b = (float(m / math.sqrt(v)) if v > 0 else math.nan for m, v in zip(mu, var,
                                                                                 strict=True))
    diff = sr_a - sr_b
    if not (var > 0).all():
        return SharpeDifference(sr_a, sr_b, diff, None, None, None, None, "ledoit_wolf", lags)
    grad = np.array([gamma[0] / var[0] ** 1.5, -gamma[1] / var[1] ** 1.5,
                     -mu[0] / (2 * var[0] ** 1.5), mu[1] / (2 * var[1] ** 1.5)])
    moments = np.column_stack([ra - mu[0], rb - mu[1], ra * ra - gamma[0], rb * rb - gamma[1]])
    psi = long_run_covariance(moments, lags)
    se = math.sqrt(max(float(grad @ psi @ grad), 0.0) / n)
    return _difference(sr_a, sr_b, se, "ledoit_wolf", lags)


def memmel_test(a: ArrayLike, b: ArrayLike) -> SharpeDifference:
    """Jobson-Korkie test with Memmel's correction (iid normal returns):
    Var(SR_a - SR_b) = (2 - 2 rho + (SR_a^2 + SR_b^2 - 2 SR_a SR_b rho^2) / 2) / n."""
    ra, rb = _pair(a, b)
    n = ra.shape[0]
    sd_a, sd_b = float(ra.std()), float(rb.std())
    if sd_a == 0 or sd_b == 0:
        return SharpeDifference(math.nan, math.nan, math.nan, None, None, None, None,
                                "jobson_korkie_memmel", 0)
    sr_a, sr_b = float(ra.mean()) / sd_a, float(rb.mean()) / sd_b
    rho = float(np.corrcoef(ra, rb)[0, 1])
    v = (2 - 2 * rho + 0.5 * (sr_a**2 + sr_b**2 - 2 * sr_a * sr_b * rho**2)) / n
    return _difference(sr_a, sr_b, math.sqrt(max(v, 0.0)), "jobson_korkie_memmel", 0)


def _difference(sr_a: float, sr_b: float, se: float, method: str, lags: int
                ) -> SharpeDifference:
    diff = sr_a - sr_b
    if not se > 0:
        return SharpeDifference(sr_a, sr_b, diff, None, None, None, None, method, lags)
    z = diff / se
    return SharpeDifference(sr_a, sr_b, diff, se, z, float(norm.sf(z)),
                            float(2 * norm.sf(abs(z))), method, lags)


def _pair(a: ArrayLike, b: ArrayLike) -> tuple[FloatArray, FloatArray]:
    ra = np.asarray(a, dtype=np.float64)
    rb = np.asarray(b, dtype=np.float64)
    if ra.ndim != 1 or ra.shape != rb.shape:
        raise DataValidationError("paired series must be one-dimensional and of equal length")
    if not (np.isfinite(ra).all() and np.isfinite(rb).all()):
        raise DataValidationError("paired series must be finite")
    return ra, rb
