"""The experiment day by day: what the sequential tests said after every day of outcomes.

Used by the stage (``abtest.json``) and ``finmlops abtest status`` to show how many days the
split test and the paired (shadow) test needed to reach a decision on the same traffic. Each
timeline also carries per-arm cumulative sufficient statistics (``arms``: n, hits, sum_return,
sum_sq per day) so the report can draw hit rates and P&L with intervals over time.

The reported always-valid p-value is the running minimum from the first day the decision is
allowed (``min_samples``), never over the noisy first days; the paired test counts days.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import stats as sps

from finmlops.abtest.decision import ACTIONS, action_codes, paired_sequential, split_estimate
from finmlops.abtest.sequential import N_PLAN, mixture_arrays, mixture_tau2, running_min
from finmlops.abtest.sources import arm_stats, paired_frame
from finmlops.config import ABTestSettings, ExperimentSettings


def _first_decision(codes: NDArray[np.int64]) -> int | None:
    hit = np.flatnonzero((codes == 1) | (codes == 2))
    return int(hit[0]) + 1 if hit.size else None


def _srm_p(counts: NDArray[np.float64], shares: NDArray[np.float64]) -> NDArray[np.float64]:
    """Chi-square SRM p-value for each row of cumulative counts ``[days, arms]``."""
    total = counts.sum(axis=1, keepdims=True)
    exp = np.maximum(total * shares, 1e-12)
    chi2 = ((counts - exp) ** 2 / exp).sum(axis=1)
    p = sps.chi2.sf(chi2, max(len(shares) - 1, 1))
    return np.asarray(np.where(total[:, 0] > 0, p, 1.0), float)


def _arm_cumulative(rows: pd.DataFrame, days: list[str], arms: list[str]
                    ) -> dict[str, dict[str, list[Any]]]:
    """Per arm, cumulative ``n``, ``hits``, ``sum_return`` and ``sum_sq`` after each day."""
    g = rows.assign(r2=rows["net_return"] ** 2).groupby(["day", "arm"]).agg(
        n=("hit", "size"), h=("hit", "sum"), s=("net_return", "sum"), q=("r2", "sum"))
    g = g.reindex(pd.MultiIndex.from_product([days, arms]), fill_value=0)
    out: dict[str, dict[str, list[Any]]] = {}
    for arm in arms:
        per = g.xs(arm, level=1)
        out[arm] = {
            "n": np.cumsum(per["n"].to_numpy(dtype=np.int64)).tolist(),
            "hits": np.cumsum(per["h"].to_numpy(dtype=np.int64)).tolist(),
            "sum_return": np.cumsum(per["s"].to_numpy(dtype=float)).tolist(),
            "sum_sq": np.cumsum(per["q"].to_numpy(dtype=float)).tolist()}
    return out


def split_timeline(outcomes: pd.DataFrame, abtest: ABTestSettings,
                   experiment: ExperimentSettings, challenger: str, reference: str,
                   n_plan: int = N_PLAN) -> dict[str, Any]:
    """The split test (served outcomes only) after each day."""
    served = outcomes[outcomes["served"]]
    days = sorted(set(served["day"]))
    if not days:
        return {"days": [], "days_to_decision": None}
    live = [c.name for c in experiment.candidates if c.weight > 0]
    shares = np.array([c.weight for c in experiment.candidates if c.weight > 0], float)
    shares /= shares.sum()
    arms = sorted(set(served["arm"]) | set(live))
    g = served.assign(r2=served["net_return"] ** 2).groupby(["day", "arm"]).agg(
        n=("hit", "size"), h=("hit", "sum"), s=("net_return", "sum"), q=("r2", "sum"))
    g = g.reindex(pd.MultiIndex.from_product([days, arms]), fill_value=0)

    def cum(arm: str, col: str) -> NDArray[np.float64]:
        return np.cumsum(g.xs(arm, level=1)[col].to_numpy(dtype=float))

    n1, n0 = cum(challenger, "n"), cum(reference, "n")
    est, var = split_estimate(abtest.metric, n1, cum(challenger, "h"), cum(challenger, "s"),
                              cum(challenger, "q"), n0, cum(reference, "h"),
                              cum(reference, "s"), cum(reference, "q"))
    tau2 = mixture_tau2(var, n1 + n0, n_plan, abtest.alpha)
    _, p, lo, hi = mixture_arrays(est, var, tau2, abtest.alpha)
    srm_p = _srm_p(np.stack([cum(a, "n") for a in live], axis=1), shares)
    codes = action_codes(lo, hi, abtest.min_effect)
    enough = (n1 >= abtest.min_samples) & (n0 >= abtest.min_samples)
    codes = np.where(~enough | (srm_p < abtest.srm_alpha), 3, codes)
    return {"days": days, "n_challenger": n1.astype(int).tolist(),
            "n_reference": n0.astype(int).tolist(), "estimate": est.tolist(),
            "p_value": running_min(p, enough).tolist(), "lower": lo.tolist(),
            "upper": hi.tolist(), "srm_p": srm_p.tolist(),
            "action": [ACTIONS[c] for c in codes], "days_to_decision": _first_decision(codes),
            "arms": _arm_cumulative(served, days, arms)}


def paired_timeline(outcomes: pd.DataFrame, abtest: ABTestSettings, challenger: str,
                    reference: str, n_plan: int = N_PLAN) -> dict[str, Any]:
    """The paired test (every request both arms scored) after each day.

    ``arms`` holds every arm's counterfactual cumulative outcomes over the paired requests
    (served or shadow-scored), so the arms' P&L compare on the same days.
    """
    j = paired_frame(outcomes, challenger, reference)
    if j.empty:
        return {"days": [], "days_to_decision": None}
    j = j.assign(diff=j["net_return"] - j["net_return_ref"],
                 hdiff=j["hit"].astype(float) - j["hit_ref"].astype(float))
    daily = j.groupby("day", sort=True).agg(diff=("diff", "mean"), n=("diff", "size"),
                                            hdiff=("hdiff", "mean"))
    n = np.cumsum(daily["n"].to_numpy(dtype=float))
    # One observation per day (however many tickers), Newey-West variance, as decide_paired;
    # so the gate counts days too.
    series = daily["hdiff" if abtest.metric == "hit_rate" else "diff"].to_numpy(float)
    est, p, lo, hi = paired_sequential(series, abtest.alpha, n_plan)
    enough = np.arange(1, len(n) + 1) >= abtest.min_samples
    codes = np.where(enough, action_codes(lo, hi, abtest.min_effect), 3)
    days = [str(d) for d in daily.index]
    rows = outcomes[outcomes["request_id"].isin(set(j["request_id"]))]
    return {"days": days, "n": n.astype(int).tolist(),
            "daily_diff": daily["diff"].tolist(), "estimate": np.asarray(est).tolist(),
            "p_value": running_min(p, enough).tolist(), "lower": np.asarray(lo).tolist(),
            "upper": np.asarray(hi).tolist(), "action": [ACTIONS[c] for c in codes],
            "days_to_decision": _first_decision(codes),
            "arms": _arm_cumulative(rows, days, sorted(str(a) for a in set(rows["arm"])))}


def window_breakdown(outcomes: pd.DataFrame, start: dt.date, end: dt.date, challenger: str,
                     reference: str) -> dict[str, Any] | None:
    """Per-arm numbers inside a date window (e.g. a stress period), or None if no day is in it."""
    if outcomes.empty:
        return None
    inside = outcomes[(outcomes["day"] >= start.isoformat())
                      & (outcomes["day"] <= end.isoformat())]
    if inside.empty:
        return None
    arms = {a: {"n": s.n, "hit_rate": s.hit_rate, "mean_return": s.mean,
                "total_return": s.sum_return} for a, s in arm_stats(inside).items()}
    out: dict[str, Any] = {"start": start.isoformat(), "end": end.isoformat(),
                           "days": int(inside["day"].nunique()), "served": arms}
    j = paired_frame(inside, challenger, reference)
    if not j.empty:
        d = (j["net_return"] - j["net_return_ref"]).to_numpy(float)
        out["paired"] = {"n": len(j), "mean_diff": float(d.mean()), "total_diff": float(d.sum()),
                         "hit_rate": float(j["hit"].mean()),
                         "hit_rate_reference": float(j["hit_ref"].mean()),
                         "total_return": float(j["net_return"].sum()),
                         "total_return_reference": float(j["net_return_ref"].sum())}
    return out
