"""Always-valid inference: the normal-mixture sequential probability ratio test (mSPRT).

For an asymptotically normal estimate ``d`` of a difference with variance ``V`` (which shrinks
like 1/n), mixing the likelihood ratio of ``N(theta, V)`` vs ``N(theta0, V)`` over a prior
``theta ~ N(theta0, tau2)`` gives

    Lambda = sqrt(V / (V + tau2)) * exp(tau2 * (d - theta0)^2 / (2 V (V + tau2)))

which is a (super)martingale under ``theta = theta0`` in information time; by Ville's
inequality ``P(sup_t Lambda_t >= 1/alpha) <= alpha``. So ``p_t = min(1, 1/Lambda_t)`` (and its
running minimum) is an always-valid p-value, and inverting the test gives a confidence
sequence ``d +- sqrt(V (V + tau2) / tau2 * (2 log(1/alpha) + log((V + tau2) / V)))`` that covers
the true difference at every time simultaneously (Johari et al. 2017; Howard et al. 2021).
The experiment can therefore be looked at every day without inflating the error rate.

``tau2`` is tuned so the boundary is tightest near a planned sample size ``n_plan``
(Howard et al. 2021, eq. 3.7, in the estimate's own units).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

N_PLAN = 500
"""Default sample size (outcomes, or days for the paired test) the mixture is tuned for."""


@dataclass(frozen=True)
class SequentialResult:
    """The always-valid p-value and confidence-sequence bounds at one time."""

    estimate: float
    variance: float
    tau2: float
    log_lr: float
    p_value: float
    lower: float
    upper: float


def mixture_tau2(variance: ArrayLike, n: ArrayLike, n_plan: int = N_PLAN,
                 alpha: float = 0.05) -> NDArray[np.float64]:
    """Mixing variance tuned to ``n_plan``: ``V * n`` is the per-observation variance."""
    la = 2 * math.log(1 / alpha)
    c = la + math.log(1 + la)
    return np.asarray(c * np.asarray(variance, float) * np.asarray(n, float) / n_plan)


def mixture_arrays(estimate: ArrayLike, variance: ArrayLike, tau2: ArrayLike,
                   alpha: float = 0.05, theta0: float = 0.0
                   ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64],
                              NDArray[np.float64]]:
    """Vectorised mSPRT: ``(log_lr, p_value, lower, upper)`` for arrays of any shape.

    Where the variance is not positive there is no evidence: p = 1, bounds infinite.
    """
    d = np.asarray(estimate, float)
    v = np.asarray(variance, float)
    t2 = np.asarray(tau2, float)
    ok = (v > 0) & (t2 > 0) & np.isfinite(d)
    vs = np.where(ok, v, 1.0)
    t2s = np.where(ok, t2, 1.0)
    ds = np.where(ok, d, 0.0)
    log_lr = 0.5 * np.log(vs / (vs + t2s)) + t2s * (ds - theta0) ** 2 / (2 * vs * (vs + t2s))
    log_lr = np.where(ok, log_lr, 0.0)
    p = np.minimum(1.0, np.exp(-log_lr))
    half = _half_width(vs, t2s, alpha)
    lower = np.where(ok, ds - half, -np.inf)
    upper = np.where(ok, ds + half, np.inf)
    return log_lr, p, lower, upper


def _half_width(v: Any, t2: Any, alpha: float) -> Any:
    """The confidence sequence's half-width at variance ``v`` with mixing variance ``t2``."""
    return np.sqrt(v * (v + t2) / t2 * (2 * math.log(1 / alpha) + np.log((v + t2) / v)))


def always_valid_mde(std_error: float, n: float, n_plan: int = N_PLAN, alpha: float = 0.05,
                     power: float = 0.8) -> float:
    """Smallest true difference the confidence sequence excludes zero for with probability
    ``power`` at a look where the estimate has ``std_error`` after ``n`` observations.

    The estimate is normal around the effect ``delta``, and the sequence excludes zero when it
    is beyond the half-width ``h``, so ``delta = h + z_power * std_error`` (the opposite tail,
    below ``-h``, is ignored). It is the always-valid counterpart of the fixed-n
    :func:`finmlops.abtest.stats.mde`, which has ``z_(1 - alpha/2)`` in place of ``h / se``:
    the price of looking every day. Looking every day up to ``n`` can only reach the bound
    sooner, so the power with daily looks is at least ``power``.
    """
    if not (std_error > 0 and n > 0):
        return math.nan
    v = std_error**2
    t2 = float(mixture_tau2(v, n, n_plan, alpha))
    z = NormalDist().inv_cdf(power)
    return float(_half_width(v, t2, alpha)) + z * std_error


def mixture_test(estimate: float, variance: float, n: float, alpha: float = 0.05,
                 n_plan: int = N_PLAN) -> SequentialResult:
    """The always-valid test of ``difference == 0`` at one time, for a ``n``-sample estimate."""
    tau2 = float(mixture_tau2(variance, n, n_plan, alpha))
    log_lr, p, lo, hi = mixture_arrays(estimate, variance, tau2, alpha)
    return SequentialResult(float(estimate), float(variance), tau2, float(log_lr), float(p),
                            float(lo), float(hi))


def running_min(p_values: ArrayLike, valid: ArrayLike | None = None) -> NDArray[np.float64]:
    """The always-valid p-value over a history: the running minimum of the per-time values.

    ``valid`` (same shape, bool) marks the times monitoring has started (e.g. each arm has
    ``min_samples`` outcomes): earlier values count as 1. The plug-in variance of the first
    few observations is noise, and a minimum taken over them is not a valid p-value (an A/A
    paired series reaches p < 0.05 in about a fifth of runs from days 2-5 alone).
    """
    p = np.asarray(p_values, float)
    if valid is not None:
        p = np.where(np.asarray(valid, bool), p, 1.0)
    return np.minimum.accumulate(p, axis=-1)
