"""The experiment day by day: what the sequential tests said after every day of outcomes.

Used by the stage (``abtest.json``) and ``finmlops abtest status`` to show how many days the
split test and the paired (shadow) test needed to reach a decision on the same traffic. Each
timeline also carries per-arm cumulative sufficient statistics (``arms``: n, hits, sum_return,
sum_sq per day) so the report can draw hit rates and P&L with intervals over time.

The reported always-valid p-value is the running minimum from the first day the decision is
allowed (``min_samples``), never over the noisy first days; the paired test counts days.
The sample-ratio p-value (``srm_p``) is the always-valid multinomial test's running minimum
from the first day (its Bayes factor needs no estimated variance), per experiment version
when the outcomes carry one.

Stress-window totals compound: an arm's book puts its capital each day into that day's
requests in equal parts, so its daily return is the mean of the day's net returns and its
total is ``prod(1 + daily) - 1`` (with one ticker a day, ``prod(1 + r) - 1`` over the served
days) — the equal-weight-per-day rule of the evaluation's backtests.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from finmlops.abtest.decision import ACTIONS, action_codes, paired_sequential, split_estimate
from finmlops.abtest.sequential import N_PLAN, mixture_arrays, mixture_tau2, running_min
from finmlops.abtest.sources import arm_stats, paired_frame
from finmlops.abtest.stats import srm_concentration, srm_log_bf
from finmlops.config import ABTestSettings, ExperimentSettings
from finmlops.contracts.abtest import (
    ArmCumulative,
    StressArm,
    StressPaired,
    StressWindowResult,
    Timeline,
)


def _first_decision(codes: NDArray[np.int64]) -> int | None:
    hit = np.flatnonzero((codes == 1) | (codes == 2))
    return int(hit[0]) + 1 if hit.size else None


def _srm_p(served: pd.DataFrame, days: list[str], experiment: ExperimentSettings,
           weights_by_version: Mapping[Any, Mapping[str, float]] | None, srm_alpha: float,
           n_plan: int) -> NDArray[np.float64]:
    """Always-valid sample-ratio p-value after each day: the running minimum of
    ``1 / prod_v BF_v`` over the versions' cumulative served counts (one segment, the
    experiment's weights, without ``weights_by_version`` or a ``config_version`` column)."""
    if weights_by_version is not None and "config_version" in served.columns:
        missing = sorted(str(v) for v in set(served["config_version"]) - set(weights_by_version))
        if missing:
            raise ValueError(f"no target weights for experiment version(s) {', '.join(missing)}")
        segments = [(served[served["config_version"] == v], w)
                    for v, w in weights_by_version.items()]
    else:
        segments = [(served, {c.name: float(c.weight) for c in experiment.candidates})]
    conc = srm_concentration(n_plan, srm_alpha)
    log_bf = np.zeros(len(days))
    for rows, weights in segments:
        arms = sorted(weights)
        per_day = (rows.groupby(["day", "arm"]).size().unstack(fill_value=0)
                   .reindex(index=days, fill_value=0))
        strays = [a for a in per_day.columns if a not in weights]
        cols = per_day.reindex(columns=arms + strays, fill_value=0).to_numpy(dtype=float)
        shares = np.array([float(weights[a]) for a in arms] + [0.0] * len(strays))
        log_bf = log_bf + srm_log_bf(np.cumsum(cols, axis=0), shares, conc)
    p = np.where(log_bf > 0, np.exp(-log_bf), 1.0)
    return running_min(p)


def _arm_cumulative(rows: pd.DataFrame, days: list[str], arms: list[str]
                    ) -> dict[str, ArmCumulative]:
    """Per arm, cumulative ``n``, ``hits``, ``sum_return`` and ``sum_sq`` after each day."""
    g = rows.assign(r2=rows["net_return"] ** 2).groupby(["day", "arm"]).agg(
        n=("hit", "size"), h=("hit", "sum"), s=("net_return", "sum"), q=("r2", "sum"))
    g = g.reindex(pd.MultiIndex.from_product([days, arms]), fill_value=0)
    out: dict[str, ArmCumulative] = {}
    for arm in arms:
        per = g.xs(arm, level=1)
        out[arm] = ArmCumulative(
            n=np.cumsum(per["n"].to_numpy(dtype=np.int64)).tolist(),
            hits=np.cumsum(per["h"].to_numpy(dtype=np.int64)).tolist(),
            sum_return=np.cumsum(per["s"].to_numpy(dtype=float)).tolist(),
            sum_sq=np.cumsum(per["q"].to_numpy(dtype=float)).tolist())
    return out


def split_timeline(outcomes: pd.DataFrame, abtest: ABTestSettings,
                   experiment: ExperimentSettings, challenger: str, reference: str,
                   n_plan: int = N_PLAN, *,
                   weights_by_version: Mapping[Any, Mapping[str, float]] | None = None
                   ) -> Timeline:
    """The split test (served outcomes only) after each day.

    With ``weights_by_version`` and a ``config_version`` column in ``outcomes``, the
    sample-ratio check tests each version's served outcomes against its own weights.
    """
    served = outcomes[outcomes["served"]]
    days = sorted(set(served["day"]))
    if not days:
        return Timeline(days=[], days_to_decision=None)
    live = [name for name, w in experiment.weights.items() if w > 0]
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
    srm_p = _srm_p(served, days, experiment, weights_by_version, abtest.srm_alpha, n_plan)
    codes = action_codes(lo, hi, abtest.min_effect)
    enough = (n1 >= abtest.min_samples) & (n0 >= abtest.min_samples)
    codes = np.where(~enough | (srm_p < abtest.srm_alpha), 3, codes)
    return Timeline(days=days, n_challenger=n1.astype(int).tolist(),
                    n_reference=n0.astype(int).tolist(), estimate=est.tolist(),
                    p_value=running_min(p, enough).tolist(), lower=lo.tolist(),
                    upper=hi.tolist(), srm_p=srm_p.tolist(),
                    action=[ACTIONS[c] for c in codes], days_to_decision=_first_decision(codes),
                    arms=_arm_cumulative(served, days, arms))


def paired_timeline(outcomes: pd.DataFrame, abtest: ABTestSettings, challenger: str,
                    reference: str, n_plan: int = N_PLAN) -> Timeline:
    """The paired test (every request both arms scored) after each day.

    ``arms`` holds every arm's counterfactual cumulative outcomes over the paired requests
    (served or shadow-scored), so the arms' P&L compare on the same days.
    """
    j = paired_frame(outcomes, challenger, reference)
    if j.empty:
        return Timeline(days=[], days_to_decision=None)
    j = j.assign(diff=j["net_return"] - j["net_return_ref"],
                 hdiff=j["hit"].astype(float) - j["hit_ref"].astype(float))
    daily = j.groupby("day", sort=True).agg(diff=("diff", "mean"), n=("diff", "size"),
                                            hdiff=("hdiff", "mean"))
    n = np.cumsum(daily["n"].to_numpy(dtype=float))
    # One observation per day (however many tickers), HAC variance, as decide_paired; so the
    # gate counts days too.
    series = daily["hdiff" if abtest.metric == "hit_rate" else "diff"].to_numpy(float)
    est, p, lo, hi = paired_sequential(series, abtest.alpha, n_plan)
    enough = np.arange(1, len(n) + 1) >= abtest.min_samples
    codes = np.where(enough, action_codes(lo, hi, abtest.min_effect), 3)
    days = [str(d) for d in daily.index]
    rows = outcomes[outcomes["request_id"].isin(set(j["request_id"]))]
    return Timeline(days=days, n=n.astype(int).tolist(), daily_diff=daily["diff"].tolist(),
                    estimate=np.asarray(est).tolist(), p_value=running_min(p, enough).tolist(),
                    lower=np.asarray(lo).tolist(), upper=np.asarray(hi).tolist(),
                    action=[ACTIONS[c] for c in codes], days_to_decision=_first_decision(codes),
                    arms=_arm_cumulative(rows, days, sorted(str(a) for a in set(rows["arm"]))))


def _compounded(day: pd.Series, returns: pd.Series) -> float:
    """``prod(1 + r) - 1`` over days, each day's return the mean of its rows' returns."""
    daily = returns.groupby(day.to_numpy()).mean().to_numpy(float)
    return float(np.prod(1.0 + daily) - 1.0)


def window_breakdown(outcomes: pd.DataFrame, start: dt.date, end: dt.date, challenger: str,
                     reference: str) -> StressWindowResult | None:
    """Per-arm numbers inside a date window (e.g. a stress period), or None if no day is in it.

    Totals compound (see the module docstring); ``total_diff`` is the difference of the two
    compounded totals, ``mean_diff`` the mean per-request difference.
    """
    if outcomes.empty:
        return None
    inside = outcomes[(outcomes["day"] >= start.isoformat())
                      & (outcomes["day"] <= end.isoformat())]
    if inside.empty:
        return None
    served = inside[inside["served"]]
    arms = {}
    for a, s in arm_stats(inside).items():
        rows = served[served["arm"] == a]
        arms[a] = StressArm(n=s.n, hit_rate=s.hit_rate, mean_return=s.mean,
                            total_return=_compounded(rows["day"], rows["net_return"]))
    window = {"start": start.isoformat(), "end": end.isoformat(),
              "days": int(inside["day"].nunique()), "served": arms}
    j = paired_frame(inside, challenger, reference)
    if j.empty:
        return StressWindowResult(**window)
    d = (j["net_return"] - j["net_return_ref"]).to_numpy(float)
    total = _compounded(j["day"], j["net_return"])
    total_ref = _compounded(j["day"], j["net_return_ref"])
    return StressWindowResult(**window, paired=StressPaired(
        n=len(j), mean_diff=float(d.mean()), total_diff=total - total_ref,
        hit_rate=float(j["hit"].mean()), hit_rate_reference=float(j["hit_ref"].mean()),
        total_return=total, total_return_reference=total_ref))
