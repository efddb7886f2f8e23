"""Selection among many trials: what the deflated Sharpe ratio needs from them, and the
probability of backtest overfitting (PBO) by combinatorially symmetric cross-validation.

CSCV (Bailey, Borwein, López de Prado & Zhu, 2017, "The probability of backtest
overfitting"): split the common days into ``S`` blocks; for every way of taking half of
them as in-sample, pick the trial with the best in-sample Sharpe ratio and find its rank
out of sample. PBO is the share of splits where that pick lands at or below the median out
of sample: near 0.5 for trials that are all noise, near 0 when one trial really is better.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import rankdata

from finmlops.errors import DataValidationError
from finmlops.evaluation.backtest import FloatArray
from finmlops.evaluation.performance import null_sharpe_variance, sharpe_moments

if TYPE_CHECKING:
    import pandas as pd

TRIAL_COLUMNS = ("date", "net", "benchmark", "rf")
"""A trial's daily returns: strategy net, buy-and-hold on the same days, risk-free."""


@dataclass(frozen=True)
class TrialStats:
    """What deflation needs: how many trials, and how much their Sharpe ratios spread."""

    n_trials: int
    """Trials in the ledger plus ``prior``."""
    recorded: int
    prior: int
    sr_variance: float | None
    """Sample variance of the recorded trials' per-period Sharpe ratios (None with < 2)."""
    active_sr_variance: float | None
    """The same of their active returns against buy-and-hold."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PBOResult:
    pbo: float
    n_trials: int
    n_days: int
    n_splits: int
    n_combinations: int
    logits: list[float]
    """lambda = log(w / (1 - w)) per split, w the IS-best trial's OOS relative rank."""
    oos_below_zero: float
    """Share of splits where the IS-best trial's OOS Sharpe ratio is negative."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Trials:
    """The trials a deflated Sharpe ratio corrects for, and how they were counted."""

    stats: TrialStats
    source: str
    """``ledger`` (the tracking store's trial ledger) or ``variants`` (only those evaluated)."""
    counted: list[str] = field(default_factory=list)
    """What counted as a trial, in words, for the report."""
    pbo: dict[str, Any] | None = None
    pbo_note: str = ""


def trials_from_returns(returns: Mapping[str, pd.DataFrame], *, prior: int = 0,
                        pbo_splits: int = 16, pbo_min_trials: int = 4,
                        counted: Sequence[str] = ()) -> Trials:
    """The trial set of a ledger: per trial id, a frame of :data:`TRIAL_COLUMNS`.

    Each trial's Sharpe ratio (of ``net - rf``) and active Sharpe ratio (``net -
    benchmark``) use all its days; PBO uses the active returns on the days every trial has,
    once there are ``pbo_min_trials`` trials and enough common days.
    """
    srs, act, aligned = [], [], {}
    for tid, f in returns.items():
        missing = [c for c in TRIAL_COLUMNS if c not in f.columns]
        if missing:
            raise DataValidationError(f"trial {tid} lacks columns: {', '.join(missing)}")
        net = f["net"].to_numpy(np.float64)
        a = net - f["benchmark"].to_numpy(np.float64)
        s = sharpe_moments(net - f["rf"].to_numpy(np.float64))[0]
        sa = sharpe_moments(a)[0]
        srs.append(math.nan if s is None else s)
        act.append(math.nan if sa is None else sa)
        aligned[tid] = f.assign(active=a).set_index("date")["active"]
    stats = trial_stats(srs, act, prior)
    pbo, note = None, ""
    if len(aligned) < pbo_min_trials:
        note = (f"PBO needs at least {pbo_min_trials} trials with daily returns; the ledger "
                f"has {len(aligned)}")
    else:
        import pandas as pd

        common = pd.concat(aligned, axis=1, join="inner").dropna()
        if common.shape[0] < 2 * pbo_splits:
            note = f"PBO not computed: only {common.shape[0]} days common to every trial"
        else:
            res = pbo_cscv(common.to_numpy(np.float64), pbo_splits)
            pbo = {k: v for k, v in res.as_dict().items() if k != "logits"}
            pbo["metric"] = "Sharpe ratio of active returns vs buy-and-hold"
            pbo["start"] = str(common.index[0].date())
            pbo["end"] = str(common.index[-1].date())
            pbo["logit_histogram"] = logit_histogram(res.logits)
            note = (f"PBO by CSCV over {res.n_trials} trials on {res.n_days} common days, "
                    f"{res.n_splits} blocks ({res.n_combinations} splits)")
    return Trials(stats, "ledger", list(counted), pbo, note)


def trial_stats(sharpes: ArrayLike, active_sharpes: ArrayLike | None = None,
                prior: int = 0) -> TrialStats:
    """Count and Sharpe-ratio variance of recorded trials (per-period SRs, NaN ignored)."""
    sr = np.asarray(sharpes, dtype=np.float64)
    sr = sr[np.isfinite(sr)]
    act = None if active_sharpes is None else np.asarray(active_sharpes, dtype=np.float64)
    act = None if act is None else act[np.isfinite(act)]
    return TrialStats(
        n_trials=int(sr.size) + prior, recorded=int(sr.size), prior=prior,
        sr_variance=float(np.var(sr, ddof=1)) if sr.size >= 2 else None,
        active_sr_variance=(float(np.var(act, ddof=1))
                            if act is not None and act.size >= 2 else None),
    )


def floored_variance(variance: float | None, n_days: int) -> float:
    """A trial variance never below the null sampling variance of an SR over ``n_days``."""
    null = null_sharpe_variance(n_days)
    return null if variance is None else max(variance, null)


def per_period_sharpe(returns: ArrayLike) -> float | None:
    return sharpe_moments(np.asarray(returns, dtype=np.float64))[0]


def pbo_cscv(returns: ArrayLike, n_splits: int = 16) -> PBOResult:
    """PBO of selecting the best-Sharpe column of ``returns`` (days x trials, common days).

    The days are cut into ``n_splits`` contiguous blocks of (nearly) equal size; every one
    of the C(S, S/2) halves is an in-sample set, its complement the out-of-sample set.
    """
    x = np.asarray(returns, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 2:
        raise DataValidationError("PBO needs a days x trials matrix with at least 2 trials")
    if n_splits < 2 or n_splits % 2:
        raise DataValidationError("the number of CSCV blocks must be even and at least 2")
    if x.shape[0] < 2 * n_splits:
        raise DataValidationError(f"PBO needs at least {2 * n_splits} common days")
    if not np.isfinite(x).all():
        raise DataValidationError("trial returns must be finite")
    t, n = x.shape
    blocks = np.array_split(np.arange(t), n_splits)
    s1 = np.stack([x[b].sum(axis=0) for b in blocks])  # (S, N)
    s2 = np.stack([(x[b] ** 2).sum(axis=0) for b in blocks])
    cnt = np.array([b.size for b in blocks], dtype=np.float64)
    combos = np.array(list(itertools.combinations(range(n_splits), n_splits // 2)))
    is_mask = np.zeros((combos.shape[0], n_splits))
    np.put_along_axis(is_mask, combos, 1.0, axis=1)

    def sharpe(mask: FloatArray) -> FloatArray:
        k = (mask @ cnt)[:, None]
        mean = (mask @ s1) / k
        var = ((mask @ s2) - k * mean**2) / (k - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out: FloatArray = np.where(var > 0, mean / np.sqrt(np.maximum(var, 0)), 0.0)
        return out

    sr_is, sr_oos = sharpe(is_mask), sharpe(1.0 - is_mask)
    best = np.argmax(sr_is, axis=1)
    ranks = rankdata(sr_oos, axis=1)  # 1 = worst, ties averaged
    w = ranks[np.arange(best.size), best] / (n + 1.0)
    logits = np.log(w / (1.0 - w))
    return PBOResult(
        pbo=float((logits <= 0).mean()), n_trials=n, n_days=t, n_splits=n_splits,
        n_combinations=int(combos.shape[0]),
        logits=[float(v) for v in logits],
        oos_below_zero=float((sr_oos[np.arange(best.size), best] < 0).mean()),
    )


def logit_histogram(logits: list[float], bins: int = 20) -> dict[str, list[float]]:
    """Counts of the CSCV logits, for the report."""
    if not logits:
        return {"edges": [], "counts": []}
    lo, hi = min(logits), max(logits)
    if math.isclose(lo, hi):
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(np.asarray(logits), bins=bins, range=(lo, hi))
    return {"edges": [float(e) for e in edges], "counts": [float(c) for c in counts]}
