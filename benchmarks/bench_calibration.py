"""Calibration of the A/B tests at production length: A/A error with daily looks, and power.

Run: ``python -m benchmarks calibration`` (or ``python -m benchmarks.bench_calibration``).
Each row simulates ``SIMS`` experiments of ``DAYS`` days (the replay: 2019-01-02 to
2026-05-01, one request a day, 30% to the challenger, the mixture tuned to ``N_PLAN``,
decisions from the 100th outcome per arm or day) through the functions the decision uses, and
names the baseline measured on the same runs: naive fixed-n peeking for the split test, the
Newey-West lag and batch means for the paired test's variance, the chi-square repeated daily
for the sample-ratio check. ``bound`` is alpha plus three binomial standard errors; ``ok``
says whether the A/A rate is within it.

Paired differences: AR(1) with phi up to 0.8, an AR(2) (the prewhitened estimator's known
limit) and an A/A built on the real IBB returns of the replay (two independent persistent
long/flat books, cost per unit of position change, so volatility clusters as it did).
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import signal
from scipy import stats as sps

from finmlops.abtest import (
    N_PLAN,
    HacMethod,
    action_codes,
    always_valid_mde,
    mde,
    mixture_arrays,
    mixture_tau2,
    paired_sequential,
    split_estimate,
    srm_concentration,
    srm_log_bf,
)
from finmlops.config import ABTestSettings

SIMS, BLOCK = 4000, 1000
DAYS, SHARE, ALPHA, MIN_SAMPLES = 1843, 0.3, 0.05, 100
SRM_ALPHA = ABTestSettings().srm_alpha
REPLAY = (dt.date(2019, 1, 2), dt.date(2026, 5, 1))
COST = 3e-4
SEED = 20261201


def bound(rate: float, sims: int = SIMS) -> float:
    return rate + 3 * math.sqrt(rate * (1 - rate) / sims)


def blocks(seed: int, fn: Callable[[np.random.Generator, int], np.ndarray]) -> np.ndarray:
    """``fn(rng, n)`` per block of at most ``BLOCK`` runs, concatenated (bounds memory)."""
    out = []
    for i, start in enumerate(range(0, SIMS, BLOCK)):
        out.append(fn(np.random.default_rng([seed, i]), min(BLOCK, SIMS - start)))
    return np.concatenate(out, axis=0)


# --- split -------------------------------------------------------------------------------

def _split_block(rng: np.random.Generator, n: int, effect: float, metric: str) -> np.ndarray:
    """Per run: [always-valid decided any day, naive z any day, always-valid promote on the
    last day, naive z on the last day, always-valid promoted any day, var at the last day]."""
    shape = (n, DAYS)
    chal = rng.random(shape) < SHARE
    ret = np.where(rng.random(shape) < 0.6, 0.01 * rng.standard_t(4, shape) / math.sqrt(2),
                   0.0) + np.where(chal, effect, 0.0)
    hit = rng.random(shape) < 0.52

    def cum(x: np.ndarray) -> np.ndarray:
        return np.cumsum(x, axis=1).astype(float)

    c, r = chal, ~chal
    n1, n0 = cum(c), cum(r)
    est, var = split_estimate(metric, n1, cum(hit & c), cum(ret * c), cum(ret**2 * c), n0,
                              cum(hit & r), cum(ret * r), cum(ret**2 * r))
    _, _, lo, hi = mixture_arrays(est, var, mixture_tau2(var, n1 + n0, N_PLAN, ALPHA), ALPHA)
    ok = (n1 >= MIN_SAMPLES) & (n0 >= MIN_SAMPLES)
    codes = np.where(ok, action_codes(lo, hi), 0)
    naive = ok & (np.abs(est) > sps.norm.ppf(1 - ALPHA / 2) * np.sqrt(var))
    return np.stack([(codes != 0).any(axis=1), naive.any(axis=1), codes[:, -1] == 1,
                     naive[:, -1], (codes == 1).any(axis=1), var[:, -1]], axis=1)


def split_rows() -> list[dict[str, Any]]:
    rows = []
    last_var = 0.0
    for metric in ("net_return", "hit_rate"):
        t0 = time.perf_counter()
        res = blocks(SEED + 1, lambda g, n, m=metric: _split_block(g, n, 0.0, m))
        sec = time.perf_counter() - t0
        if metric == "net_return":
            last_var = float(res[:, 5].mean())
        for method, col in (("always-valid (mSPRT)", 0), ("baseline: fixed-n z, daily", 1)):
            rows.append(_row("split", f"A/A, {metric}", method, "A/A rejected, any day",
                             float(res[:, col].mean()), bound(ALPHA), sec))
    se = math.sqrt(last_var)
    for name, effect in (("always-valid MDE", always_valid_mde(se, DAYS, N_PLAN, ALPHA)),
                         ("fixed-n MDE", mde(se, ALPHA))):
        t0 = time.perf_counter()
        res = blocks(SEED + 2, lambda g, n, e=effect: _split_block(g, n, e, "net_return"))
        sec = time.perf_counter() - t0
        scen = f"effect = {name} ({effect * 1e4:.1f} bps)"
        rows.append(_row("split", scen, "always-valid (mSPRT)", "power, any day",
                         float(res[:, 4].mean()), None, sec))
        rows.append(_row("split", scen, "always-valid (mSPRT)", "power, last day",
                         float(res[:, 2].mean()), None, sec))
        rows.append(_row("split", scen, "fixed-n z, one look", "power, last day",
                         float(res[:, 3].mean()), None, sec))
    return rows


# --- paired ------------------------------------------------------------------------------

def ar(rng: np.random.Generator, n: int, coefs: tuple[float, ...], sd: float = 0.004
       ) -> np.ndarray:
    e = rng.normal(0.0, 1.0, (n, DAYS + 300))
    x = signal.lfilter([1.0], [1.0, *(-c for c in coefs)], e, axis=1)[:, 300:]
    return np.asarray(sd * x / x.std(), float)


def ibb_returns() -> np.ndarray:
    from finmlops.data import BundledSource

    bars = BundledSource().fetch(["IBB"], REPLAY[0] - dt.timedelta(days=10), REPLAY[1])
    close = bars["adj_close"].to_numpy(float)
    ret = close[1:] / close[:-1] - 1
    if ret.size < DAYS:
        raise SystemExit(f"bundled IBB has {ret.size} returns up to {REPLAY[1]}, need {DAYS}")
    return np.asarray(ret[-DAYS:], float)


def real_books(rng: np.random.Generator, n: int, ret: np.ndarray) -> np.ndarray:
    """A/A on real returns: two independent long/flat books that keep yesterday's position
    with probability 0.9 (else long with probability 0.6); net of COST per unit of change."""
    def book() -> np.ndarray:
        keep = rng.random((n, DAYS)) < 0.9
        fresh = (rng.random((n, DAYS)) < 0.6).astype(float)
        pos = np.empty((n, DAYS))
        pos[:, 0] = fresh[:, 0]
        for t in range(1, DAYS):
            pos[:, t] = np.where(keep[:, t], pos[:, t - 1], fresh[:, t])
        trade = np.abs(np.diff(pos, axis=1, prepend=0.0))
        return np.asarray(pos * ret - COST * trade, float)

    return book() - book()


def paired_block(daily: np.ndarray, method: HacMethod) -> np.ndarray:
    """Per run: [decided any day from the gate on, promoted on the last day, promoted any
    day]."""
    _, _, lo, hi = paired_sequential(daily, ALPHA, N_PLAN, method)
    gate = np.arange(1, daily.shape[1] + 1) >= MIN_SAMPLES
    codes = np.where(gate, action_codes(lo, hi), 0)
    return np.stack([(codes != 0).any(axis=1), codes[:, -1] == 1, (codes == 1).any(axis=1)],
                    axis=1)


METHODS: tuple[tuple[HacMethod, str], ...] = (
    ("andrews", "prewhitened HAC (Andrews-Monahan)"),
    ("newey_west", "baseline: Newey-West lag"),
    ("batch_means", "baseline: batch means"))


def paired_rows() -> list[dict[str, Any]]:
    ret = ibb_returns()
    scenarios: list[tuple[str, Callable[[np.random.Generator, int], np.ndarray]]] = [
        (f"A/A, AR(1) phi={phi:g}", lambda g, n, p=phi: ar(g, n, (p,)))
        for phi in (0.0, 0.3, 0.6, 0.8)]
    scenarios += [("A/A, real IBB returns 2019-2026, persistent books",
                   lambda g, n: real_books(g, n, ret)),
                  ("A/A, AR(2) 0.3, 0.3 (known limit)", lambda g, n: ar(g, n, (0.3, 0.3)))]
    rows = []
    for k, (scen, gen) in enumerate(scenarios):
        for method, label in METHODS:
            t0 = time.perf_counter()
            res = blocks(SEED + 10 + k, lambda g, n, f=gen, m=method: paired_block(f(g, n), m))
            rows.append(_row("paired", scen, label, "A/A rejected, any day",
                             float(res[:, 0].mean()), bound(ALPHA), time.perf_counter() - t0))
    phi, sd = 0.6, 0.004
    se = sd * math.sqrt((1 + phi) / (1 - phi)) / math.sqrt(DAYS)
    effect = always_valid_mde(se, DAYS, N_PLAN, ALPHA)
    t0 = time.perf_counter()
    res = blocks(SEED + 30, lambda g, n: paired_block(ar(g, n, (phi,), sd) + effect, "andrews"))
    sec = time.perf_counter() - t0
    scen = f"AR(1) phi=0.6, effect = always-valid MDE ({effect * 1e4:.2f} bps)"
    rows.append(_row("paired", scen, METHODS[0][1], "power, any day",
                     float(res[:, 2].mean()), None, sec))
    rows.append(_row("paired", scen, METHODS[0][1], "power, last day",
                     float(res[:, 1].mean()), None, sec))
    return rows


# --- sample ratio ------------------------------------------------------------------------

def _traffic(rng: np.random.Generator, n: int, shares: np.ndarray, per_day: int
             ) -> np.ndarray:
    chal = np.cumsum(rng.binomial(per_day, np.broadcast_to(shares, (n, DAYS))), axis=1)
    return np.stack([chal, per_day * np.arange(1, DAYS + 1) - chal], axis=-1).astype(float)


def _srm_block(counts: np.ndarray, shares: list[float], alpha: float) -> np.ndarray:
    log_bf = srm_log_bf(counts, shares, srm_concentration(N_PLAN, alpha))
    exp = counts.sum(axis=-1, keepdims=True) * np.asarray(shares)
    chi2 = ((counts - exp) ** 2 / exp).sum(axis=-1)
    return np.stack([(log_bf >= math.log(1 / alpha)).any(axis=1),
                     (chi2 > sps.chi2.isf(alpha, 1)).any(axis=1)], axis=1)


def srm_rows() -> list[dict[str, Any]]:
    rows = []
    shares = [SHARE, 1 - SHARE]
    cases = [(f"A/A, 70/30, {per} request(s)/day, alpha={a:g}", a, per, SHARE)
             for a, per in ((SRM_ALPHA, 1), (0.05, 1), (SRM_ALPHA, 20))]
    cases += [(f"served 25% not 30%, 1 request/day, alpha={SRM_ALPHA:g}", SRM_ALPHA, 1, 0.25),
              (f"served 28.5% not 30%, 20 requests/day, alpha={SRM_ALPHA:g}", SRM_ALPHA, 20,
               0.285)]
    for k, (scen, alpha, per, served) in enumerate(cases):
        t0 = time.perf_counter()
        res = blocks(SEED + 40 + k, lambda g, n, s=served, p=per, a=alpha:
                     _srm_block(_traffic(g, n, np.full(DAYS, s), p), shares, a))
        sec = time.perf_counter() - t0
        aa = served == SHARE
        measure = "A/A alarm, any day" if aa else "power, any day"
        for method, col in (("always-valid (Dirichlet-multinomial)", 0),
                            ("baseline: chi-square, daily", 1)):
            rows.append(_row("srm", scen, method, measure, float(res[:, col].mean()),
                             bound(alpha) if aa else None, sec))
    rows.append(_versioned_srm_row())
    return rows


def _versioned_srm_row() -> dict[str, Any]:
    """70/30 for 900 days, then 50/50: the product of the versions' Bayes factors."""
    alpha, switch = 0.05, 900
    conc = srm_concentration(N_PLAN, alpha)
    split = np.where(np.arange(DAYS) < switch, SHARE, 0.5)

    def run(g: np.random.Generator, n: int) -> np.ndarray:
        c = _traffic(g, n, split, 1)
        v1, v2 = c[:, :switch], c[:, switch:] - c[:, switch - 1:switch]
        log_bf = np.concatenate([srm_log_bf(v1, [SHARE, 1 - SHARE], conc),
                                 srm_log_bf(v1[:, -1:], [SHARE, 1 - SHARE], conc)
                                 + srm_log_bf(v2, [0.5, 0.5], conc)], axis=1)
        return np.asarray((log_bf >= math.log(1 / alpha)).any(axis=1), float)

    t0 = time.perf_counter()
    rate = float(blocks(SEED + 50, run).mean())
    return _row("srm", "A/A, weights 70/30 then 50/50 from day 900, alpha=0.05",
                "always-valid, per version (product)", "A/A alarm, any day", rate,
                bound(alpha), time.perf_counter() - t0)


def _row(test: str, scenario: str, method: str, measure: str, rate: float,
         limit: float | None, seconds: float) -> dict[str, Any]:
    return {"test": test, "scenario": scenario, "method": method, "measure": measure,
            "rate": round(rate, 4), "bound": None if limit is None else round(limit, 4),
            "ok": None if limit is None else ("yes" if rate <= limit else "NO"),
            "seconds": round(seconds, 1)}


def main() -> None:
    t0 = time.perf_counter()
    rows = split_rows() + paired_rows() + srm_rows()
    ratio = always_valid_mde(1.0, DAYS, N_PLAN, ALPHA) / mde(1.0, ALPHA)
    from benchmarks._common import write_results

    write_results("calibration", rows, {
        "sims": SIMS, "days": DAYS, "alpha": ALPHA, "srm_alpha": SRM_ALPHA, "n_plan": N_PLAN,
        "min_samples": MIN_SAMPLES, "challenger_share": SHARE, "seed": SEED,
        "bound": "alpha + 3 binomial standard errors at sims runs",
        "always_valid_over_fixed_n_mde_at_days": round(ratio, 3),
        "baseline": "same runs: naive fixed-n peeking (split), Newey-West lag and batch means "
                    "(paired variance), chi-square repeated daily (SRM)",
        "total_seconds": round(time.perf_counter() - t0, 1),
    })


if __name__ == "__main__":
    main()
