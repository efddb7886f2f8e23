"""Long-run variance (HAC) of a daily series, for every prefix at once or for one series.

The paired test's daily differences are autocorrelated (positions persist, volatility
clusters), so ``Var(mean) = LRV / n`` needs the long-run variance ``LRV = sum_k gamma(k)``.
The decision uses Andrews & Monahan's (1992) prewhitened kernel estimator:

1. fit an AR(1) to the series, ``rho = gamma(1) / gamma(0)`` (Yule-Walker), corrected for
   its small-sample bias ``-(1 + 4 rho) / n`` (Kendall 1954 for the unknown mean, plus the
   Yule-Walker denominator) and clipped to ``[-0.97, 0.97]`` as Andrews & Monahan do;
2. the residual ``u_t = e_t - rho e_{t-1}`` has autocovariances
   ``(1 + rho^2) gamma(k) - rho (gamma(k - 1) + gamma(k + 1))``;
3. its long-run variance is a Bartlett-kernel sum with Andrews' (1991) automatic bandwidth
   ``1.1447 (a(1) n)^(1/3)``, ``a(1) = 4 r^2 / ((1 - r)^2 (1 + r)^2)`` for the residual's own
   AR(1) coefficient ``r`` (at most ``MAX_LAG`` lags);
4. recolour: ``LRV = LRV_u / (1 - rho)^2``.

Why this one: at the production length (about 1,800 days, daily looks from day 100) it keeps
the always-valid paired test's A/A error within alpha for AR(1) differences up to
``phi = 0.8``, where Newey & West's (1994) fixed lag ``floor(4 (n / 100)^(2/9))`` (kept here
as ``method="newey_west"`` for comparison) under-corrects persistent series and rejects far
too often, and batch means (``method="batch_means"``, ``sqrt(n)`` batches) are too noisy at
the first decision days. ``python -m benchmarks calibration`` measures all three. Its limit:
an AR(1) filter does not whiten persistence of a higher order (e.g. AR(2) with two positive
coefficients), which the benchmark shows as well.

Every autocovariance is the biased ``1/n`` estimator around the prefix mean, so
:func:`hac_prefix` (cumulative sums over the last axis) and :func:`hac_estimate` (one series)
give the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

HacMethod = Literal["andrews", "newey_west", "batch_means"]
HAC_METHODS: tuple[HacMethod, ...] = ("andrews", "newey_west", "batch_means")

MAX_LAG = 30
"""Most kernel lags of the prewhitened residual (its bandwidth is rarely above 5)."""
RHO_MAX = 0.97
"""Prewhitening coefficient bound (Andrews & Monahan 1992), so ``1 / (1 - rho)^2`` stays finite."""
_CHUNK = 1 << 21
"""Elements per block of rows in :func:`hac_prefix` (bounds its memory)."""


@dataclass(frozen=True)
class HACEstimate:
    """One series' long-run variance with how it was estimated."""

    lrv: float
    method: HacMethod
    rho: float | None = None
    """The (bias-corrected, clipped) prewhitening coefficient (``andrews``)."""
    bandwidth: float | None = None
    """Kernel bandwidth in lags: Andrews' for ``andrews``, the lag + 1 for ``newey_west``,
    the batch size for ``batch_means``."""


def nw_lag(n: int | NDArray[np.int64]) -> Any:
    """Newey-West (1994) fixed lag rule: ``floor(4 * (n / 100) ** (2 / 9))``."""
    arr = np.floor(4 * (np.asarray(n, float) / 100) ** (2 / 9)).astype(np.int64)
    return int(arr) if arr.ndim == 0 else arr


def newey_west_lrv(x: ArrayLike, lag: int | None = None) -> float:
    """Bartlett-kernel long-run variance with a fixed lag (default :func:`nw_lag`)."""
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


def _prewhiten(g0: Any, g1: Any, n: Any) -> Any:
    """Bias-corrected, clipped AR(1) coefficient from the lag-0 and lag-1 autocovariances."""
    r = np.divide(g1, g0, out=np.zeros_like(np.asarray(g1, float)), where=np.asarray(g0) > 0)
    return np.clip(r + (1 + 4 * r) / n, -RHO_MAX, RHO_MAX)


def _residual_gamma(rho: Any, below: Any, at: Any, above: Any) -> Any:
    """Lag-k autocovariance of ``e_t - rho e_{t-1}`` from ``gamma(k-1), gamma(k), gamma(k+1)``."""
    return (1 + rho * rho) * at - rho * (below + above)


def _bandwidth(u0: Any, u1: Any, n: Any) -> Any:
    """Andrews' (1991) Bartlett bandwidth for a residual with these autocovariances."""
    r = np.divide(u1, u0, out=np.zeros_like(np.asarray(u1, float)), where=np.asarray(u0) > 0)
    r = np.clip(r, -RHO_MAX, RHO_MAX)
    a1 = 4 * r * r / ((1 - r) ** 2 * (1 + r) ** 2)
    return np.minimum(1.1447 * (a1 * n) ** (1 / 3), MAX_LAG)


def hac_estimate(x: ArrayLike, method: HacMethod = "andrews") -> HACEstimate:
    """The long-run variance of one series (``n * Var(mean)``), by ``method``."""
    a = np.asarray(x, float).ravel()
    n = a.size
    if method == "newey_west":
        return HACEstimate(newey_west_lrv(a), method, bandwidth=float(nw_lag(max(n, 1)) + 1))
    if method == "batch_means":
        _, prefix = hac_prefix(a, "batch_means")
        return HACEstimate(float(prefix[-1]) if n else 0.0, method,
                           bandwidth=float(math.isqrt(n)) if n else None)
    if method != "andrews":
        raise ValueError(f"unknown HAC method {method!r}")
    if n < 2:
        return HACEstimate(0.0, method, 0.0, 0.0)
    e = a - a.mean()
    gamma = np.zeros(MAX_LAG + 2)
    for k in range(min(MAX_LAG + 2, n)):
        gamma[k] = float(e[k:] @ e[:n - k]) / n
    rho = float(_prewhiten(gamma[0], gamma[1], n))

    def gu(k: int) -> float:
        return float(_residual_gamma(rho, gamma[abs(k - 1)], gamma[k], gamma[k + 1]))

    u0 = gu(0)
    s = float(_bandwidth(u0, gu(1), n))
    lrv = u0
    for k in range(1, MAX_LAG + 1):
        w = 1 - k / s if s > 0 else 0.0
        if w <= 0:
            break
        lrv += 2 * w * gu(k)
    return HACEstimate(max(lrv / (1 - rho) ** 2, 0.0), method, rho, s)


def _prefix_gammas(a: NDArray[np.float64], max_lag: int
                   ) -> Iterator[NDArray[np.float64]]:
    """``gamma_t(k)`` of every prefix ``a[..., :t]`` for ``k = 0, 1, ..., max_lag`` in turn
    (0 while ``t <= k``)."""
    t_len = a.shape[-1]
    t = np.arange(1, t_len + 1, dtype=float)
    s1 = np.cumsum(a, axis=-1)
    mean = s1 / t
    yield np.cumsum(a * a, axis=-1) / t - mean**2
    for k in range(1, max_lag + 1):
        gamma = np.zeros_like(a)
        if k < t_len:
            # for t > k: sum_{s=k+1..t} (a_s - m)(a_{s-k} - m), with m the prefix mean
            m, tk = mean[..., k:], t[k:]
            cross = np.cumsum(a[..., k:] * a[..., :-k], axis=-1)
            head = s1[..., k:] - s1[..., k - 1:k]            # sum a_{k+1..t}
            tail = s1[..., :t_len - k]                       # sum a_{1..t-k}
            gamma[..., k:] = (cross - m * (head + tail) + (tk - k) * m * m) / tk
        yield gamma


def _andrews_prefix(a: NDArray[np.float64]) -> NDArray[np.float64]:
    t = np.arange(1, a.shape[-1] + 1, dtype=float)
    gammas = _prefix_gammas(a, MAX_LAG + 1)
    g0, g1, g2 = next(gammas), next(gammas), next(gammas)
    rho = _prewhiten(g0, g1, t)
    u0 = _residual_gamma(rho, g1, g0, g1)
    u1 = _residual_gamma(rho, g0, g1, g2)
    s = _bandwidth(u0, u1, t)
    lrv = u0.copy()
    below, at, above = g0, g1, g2
    for k in range(1, MAX_LAG + 1):
        w = np.where(s > k, 1 - k / np.where(s > 0, s, 1.0), 0.0)
        if not (w > 0).any():
            break
        lrv += 2 * w * (u1 if k == 1 else _residual_gamma(rho, below, at, above))
        if k < MAX_LAG:
            below, at, above = at, above, next(gammas)
    out: NDArray[np.float64] = np.maximum(lrv / (1 - rho) ** 2, 0.0)
    return out


def _newey_west_prefix(a: NDArray[np.float64]) -> NDArray[np.float64]:
    t_len = a.shape[-1]
    lags = nw_lag(np.arange(1, t_len + 1))
    gammas = _prefix_gammas(a, int(lags.max()))
    lrv = next(gammas).copy()
    for k, gamma in enumerate(gammas, start=1):
        lrv += 2 * np.where(lags >= k, 1 - k / (lags + 1), 0.0) * gamma
    out: NDArray[np.float64] = np.maximum(lrv, 0.0)
    return out


def _batch_means_prefix(a: NDArray[np.float64]) -> NDArray[np.float64]:
    """``m * Var(batch means)`` over the ``t // m`` whole batches of size ``m = isqrt(t)``."""
    t_len = a.shape[-1]
    t = np.arange(1, t_len + 1)
    s1 = np.concatenate([np.zeros((*a.shape[:-1], 1)), np.cumsum(a, axis=-1)], axis=-1)
    lrv = np.zeros_like(a)
    size = np.floor(np.sqrt(t)).astype(np.int64)
    for m in np.unique(size):
        where = np.flatnonzero(size == m)
        nb = t_len // m
        sums = s1[..., m:nb * m + 1:m] - s1[..., 0:(nb - 1) * m + 1:m]
        c1, c2 = np.cumsum(sums, axis=-1), np.cumsum(sums * sums, axis=-1)
        b = t[where] // m
        ss = c2[..., b - 1] - c1[..., b - 1] ** 2 / b
        lrv[..., where] = np.where(b > 1, ss / (m * np.maximum(b - 1, 1)), 0.0)
    return np.maximum(lrv, 0.0)


_PREFIX = {"andrews": _andrews_prefix, "newey_west": _newey_west_prefix,
           "batch_means": _batch_means_prefix}


def hac_prefix(x: ArrayLike, method: HacMethod = "andrews"
               ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Mean and long-run variance of every prefix ``x[..., :t]`` at once (shaped like ``x``).

    Vectorised over leading axes with cumulative sums over the last one, so daily monitoring
    of thousands of simulated experiments costs ``O(T * lags)`` each.
    """
    if method not in _PREFIX:
        raise ValueError(f"unknown HAC method {method!r}")
    a = np.asarray(x, float)
    t_len = a.shape[-1]
    if a.size == 0:
        return np.zeros_like(a), np.zeros_like(a)
    mean = np.cumsum(a, axis=-1) / np.arange(1, t_len + 1, dtype=float)
    rows = a.reshape(-1, t_len)
    step = max(1, _CHUNK // max(t_len, 1))
    lrv = np.concatenate([_PREFIX[method](rows[i:i + step])
                          for i in range(0, rows.shape[0], step)], axis=0)
    return mean, lrv.reshape(a.shape)
