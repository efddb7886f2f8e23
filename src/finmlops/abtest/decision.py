"""The A/B decision: promote, roll back, continue, or invalid — with its numbers and a reason.

Decisions use the always-valid sequential test (:mod:`finmlops.abtest.sequential`), so the
experiment can be decided every day: ``promote`` when the confidence sequence for the
challenger-minus-reference difference lies above ``min_effect``, ``rollback`` when it lies
below zero, ``continue`` otherwise. Fixed-n tests are reported alongside for reading, never
used to decide. ``invalid`` when traffic does not match the configured split (the always-valid
sample-ratio test, per experiment version when the traffic is versioned) or an arm has fewer
than ``min_samples`` outcomes.

Minimum detectable effects (80% power) come in pairs: ``mde`` is the fixed-n test's,
``mde_always_valid`` the confidence sequence's, both at the current sample size; ``mde_at_plan``
gives both at the planned size ``n_plan`` the mixture is tuned for.

Why rollback is "upper bound below zero" and not "below ``-min_effect``": ``min_effect`` is the
smallest gain worth a switch, not a tolerated loss. The reference is the incumbent, so keeping
it costs nothing; a challenger proven worse by any amount should stop taking traffic, and a
``-min_effect`` margin would keep a proven loser serving. A sequence inside ``[0, min_effect]``
stays ``continue``: neither proven worse nor (yet) worth switching.

The reference is ``experiment.default`` (the arm the router falls back to); the registry's
champion starts as that arm's version (:func:`finmlops.tracking.baseline_variant`), and
``finmlops abtest decide --apply`` acts on the versions behind the two arms' variant aliases.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from finmlops.abtest.hac import HacMethod, hac_estimate, hac_prefix
from finmlops.abtest.paired import PairedStats, daily_diff_test, iid_diff_test, mcnemar
from finmlops.abtest.sequential import N_PLAN, always_valid_mde, mixture_arrays, mixture_tau2
from finmlops.abtest.stats import (
    ArmStats,
    SRMResult,
    TestResult,
    hit_rate_test,
    mde,
    mean_return_test,
    srm_by_version,
    srm_test,
)
from finmlops.config import ABTestSettings, ExperimentSettings
from finmlops.contracts.abtest import (
    Action,
    ArmNumbers,
    DailyDiffNumbers,
    DecisionNumbers,
    DecisionRecord,
    HacNumbers,
    MdeAtPlan,
    PairedNumbers,
    SequentialNumbers,
    SrmNumbers,
    SrmVersion,
    TestNumbers,
)

ACTIONS: tuple[Action, ...] = ("continue", "promote", "rollback", "invalid")
"""Index = the integer code used by the vectorised functions."""


def arms_of(experiment: ExperimentSettings, challenger: str | None = None) -> tuple[str, str]:
    """``(challenger, reference)``: the reference is the default (champion) arm."""
    reference = experiment.reference
    if challenger is None:
        others = [n for n in experiment.candidate_names if n != reference]
        if not others:
            raise ValueError("the experiment has no challenger arm")
        challenger = others[0]
    return challenger, reference


def split_estimate(metric: str, n1: ArrayLike, h1: ArrayLike, s1: ArrayLike, q1: ArrayLike,
                   n0: ArrayLike, h0: ArrayLike, s0: ArrayLike, q0: ArrayLike
                   ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Vectorised difference (challenger minus reference) and its variance, for ``metric``."""
    a1, a0 = np.maximum(np.asarray(n1, float), 1), np.maximum(np.asarray(n0, float), 1)
    if metric == "hit_rate":
        p1, p0 = np.asarray(h1, float) / a1, np.asarray(h0, float) / a0
        return p1 - p0, p1 * (1 - p1) / a1 + p0 * (1 - p0) / a0
    m1, m0 = np.asarray(s1, float) / a1, np.asarray(s0, float) / a0
    v1 = np.maximum(np.asarray(q1, float) - a1 * m1**2, 0) / np.maximum(a1 - 1, 1)
    v0 = np.maximum(np.asarray(q0, float) - a0 * m0**2, 0) / np.maximum(a0 - 1, 1)
    return m1 - m0, v1 / a1 + v0 / a0


def action_codes(lower: ArrayLike, upper: ArrayLike, min_effect: float = 0.0) -> NDArray[np.int64]:
    """0 continue, 1 promote (CS above ``min_effect``), 2 rollback (CS below 0)."""
    lo, hi = np.asarray(lower, float), np.asarray(upper, float)
    return np.where(lo > min_effect, 1, np.where(hi < 0, 2, 0)).astype(np.int64)


def _arm_numbers(s: ArmStats, alpha: float) -> ArmNumbers:
    from scipy import stats as sps

    z = float(sps.norm.ppf(1 - alpha / 2))
    if s.n == 0:
        return ArmNumbers(n=0, hits=0)
    p = s.hit_rate
    se_p = math.sqrt(p * (1 - p) / s.n)
    se_m = math.sqrt(s.variance / s.n)
    return ArmNumbers(n=s.n, hits=s.hits, hit_rate=p, hit_rate_ci=[p - z * se_p, p + z * se_p],
                      mean_return=s.mean, mean_return_ci=[s.mean - z * se_m, s.mean + z * se_m],
                      sd_return=math.sqrt(s.variance))


def _test_numbers(r: TestResult) -> TestNumbers:
    return TestNumbers(**asdict(r))


def _srm_numbers(srm: SRMResult) -> SrmNumbers:
    """The sample-ratio test as a decision reports it (per version: no chi-square statistic)."""
    versions = {v: SrmVersion(counts=seg.counts, expected_share=seg.expected_share,
                              log_bayes_factor=seg.log_bayes_factor, p_value=seg.p_value,
                              chi2_p_value=seg.chi2_p_value)
                for v, seg in srm.versions.items()}
    return SrmNumbers(counts=srm.counts, expected_share=srm.expected_share,
                      log_bayes_factor=srm.log_bayes_factor, p_value=srm.p_value,
                      mismatch=srm.mismatch, chi2=srm.chi2, chi2_p_value=srm.chi2_p_value,
                      versions=versions)


def _paired_numbers(stats: PairedStats) -> PairedNumbers:
    return PairedNumbers(n=stats.n, b=stats.b, c=stats.c, sum_diff=stats.sum_diff,
                         sum_sq_diff=stats.sum_sq_diff, mean_diff=stats.mean_diff,
                         hit_diff=stats.hit_diff)


def _verdict(code: int, metric: str, lower: float, upper: float, min_effect: float,
             alpha: float, challenger: str, reference: str) -> tuple[Action, str]:
    ci = f"{100 * (1 - alpha):g}% CS [{lower:.3g}, {upper:.3g}]"
    margin = f" by more than {min_effect:g}" if min_effect > 0 else ""
    if code == 1:
        return "promote", f"{challenger} beats {reference} on {metric}{margin} ({ci})"
    if code == 2:
        return "rollback", f"{challenger} is worse than {reference} on {metric} ({ci})"
    bound = f"0 or {min_effect:g}" if min_effect > 0 else "0"
    return "continue", f"no decision yet on {metric}: {ci} includes {bound}"


@dataclass(frozen=True)
class _Mdes:
    """Fixed-n and always-valid minimum detectable effects per metric, now and at plan."""

    now: dict[str, float]
    always_valid: dict[str, float]
    at_plan: MdeAtPlan


def _mde_numbers(se: Mapping[str, float], n: float, n_plan: int, alpha: float) -> _Mdes:
    """Fixed-n and always-valid MDEs per metric now (standard errors ``se`` after ``n``
    observations) and at ``n_plan`` (the standard error scaled by ``sqrt(n / n_plan)``)."""
    scale = math.sqrt(n / n_plan) if n > 0 else math.nan
    return _Mdes(
        now={k: mde(v, alpha) for k, v in se.items()},
        always_valid={k: always_valid_mde(v, n, n_plan, alpha) for k, v in se.items()},
        at_plan=MdeAtPlan(n=n_plan,
                          fixed_n={k: mde(v * scale, alpha) for k, v in se.items()},
                          always_valid={k: always_valid_mde(v * scale, n_plan, n_plan, alpha)
                                        for k, v in se.items()}),
    )


def _srm(abtest: ABTestSettings, experiment: ExperimentSettings,
         counts: Mapping[str, int], served_by_version: Mapping[Any, Mapping[str, int]] | None,
         weights_by_version: Mapping[Any, Mapping[str, float]] | None, n_plan: int
         ) -> SRMResult:
    weights = {name: float(w) for name, w in experiment.weights.items()}
    if served_by_version is None:
        return srm_test(counts, weights, abtest.srm_alpha, n_plan=n_plan)
    by_version = (weights_by_version if weights_by_version is not None
                  else dict.fromkeys(served_by_version, weights))
    return srm_by_version(served_by_version, by_version, abtest.srm_alpha, n_plan=n_plan)


def _srm_reason(srm: SRMResult, alpha: float) -> str:
    share = ", ".join(f"{a} {c}" for a, c in srm.counts.items())
    where = ""
    if len(srm.versions) > 1:
        worst = min(srm.versions, key=lambda v: srm.versions[v].p_value)
        where = f"; most off: version {worst} (p={srm.versions[worst].p_value:.2g})"
    return (f"sample ratio mismatch (always-valid p={srm.p_value:.2g} < {alpha:g}): "
            f"served {share}{where}")


def decide(stats: Mapping[str, ArmStats], abtest: ABTestSettings,
           experiment: ExperimentSettings, *, served: Mapping[str, int] | None = None,
           served_by_version: Mapping[Any, Mapping[str, int]] | None = None,
           weights_by_version: Mapping[Any, Mapping[str, float]] | None = None,
           challenger: str | None = None, n_plan: int = N_PLAN) -> DecisionRecord:
    """Decide the split experiment from per-arm sufficient statistics (served outcomes).

    The sample-ratio check reads ``served`` (requests served per arm, default: the outcome
    counts) against ``experiment``'s weights; or, when traffic is versioned,
    ``served_by_version[v]`` (assignments per arm under version ``v``) against
    ``weights_by_version[v]`` (default: ``experiment``'s weights for every version), tested
    per version and combined by :func:`finmlops.abtest.stats.srm_by_version`.
    """
    if served is not None and served_by_version is not None:
        raise ValueError("pass served or served_by_version, not both")
    chal, ref = arms_of(experiment, challenger)
    alpha = abtest.alpha
    counts = dict(served) if served is not None else {a: s.n for a, s in stats.items()}
    srm = _srm(abtest, experiment, counts, served_by_version, weights_by_version, n_plan)
    empty = ArmStats(0, 0, 0.0, 0.0)
    s1, s0 = stats.get(chal, empty), stats.get(ref, empty)
    arms = {a: _arm_numbers(s, alpha) for a, s in sorted(stats.items())}
    if srm.mismatch:
        return DecisionRecord(
            action="invalid", reason=_srm_reason(srm, abtest.srm_alpha),
            numbers=DecisionNumbers(metric=abtest.metric, alpha=alpha,
                                    min_effect=abtest.min_effect, challenger=chal,
                                    reference=ref, arms=arms, srm=_srm_numbers(srm)))
    hit = hit_rate_test(s1, s0, alpha)
    mean = mean_return_test(s1, s0, alpha)
    mdes = _mde_numbers({"hit_rate": hit.std_error, "net_return": mean.std_error},
                        s1.n + s0.n, n_plan, alpha)
    est, var = split_estimate(abtest.metric, s1.n, s1.hits, s1.sum_return, s1.sum_sq_return,
                              s0.n, s0.hits, s0.sum_return, s0.sum_sq_return)
    tau2 = mixture_tau2(var, s1.n + s0.n, n_plan, alpha)
    _log_lr, p, lo, hi = mixture_arrays(est, var, tau2, alpha)
    numbers = DecisionNumbers(
        metric=abtest.metric, alpha=alpha, min_effect=abtest.min_effect, challenger=chal,
        reference=ref, arms=arms, srm=_srm_numbers(srm), hit_rate=_test_numbers(hit),
        net_return=_test_numbers(mean), mde=mdes.now, mde_always_valid=mdes.always_valid,
        mde_at_plan=mdes.at_plan,
        sequential=SequentialNumbers(estimate=float(est), variance=float(var),
                                     tau2=float(tau2), n_plan=n_plan, p_value=float(p),
                                     lower=float(lo), upper=float(hi)))
    short = [f"{a} has {s.n}" for a, s in ((chal, s1), (ref, s0)) if s.n < abtest.min_samples]
    if short:
        return DecisionRecord(action="invalid", reason=f"too few outcomes: {', '.join(short)} "
                              f"(need {abtest.min_samples} per arm)", numbers=numbers)
    code = int(action_codes(lo, hi, abtest.min_effect))
    action, reason = _verdict(code, abtest.metric, float(lo), float(hi), abtest.min_effect,
                              alpha, chal, ref)
    return DecisionRecord(action=action, reason=reason, numbers=numbers)


def paired_sequential(daily_diff: ArrayLike, alpha: float = 0.05, n_plan: int = N_PLAN,
                      method: HacMethod = "andrews"
                      ) -> tuple[NDArray[np.float64], NDArray[np.float64],
                                 NDArray[np.float64], NDArray[np.float64]]:
    """Always-valid test of the daily paired difference after every day (HAC variance,
    :mod:`finmlops.abtest.hac`). Returns ``(estimate, p_value, lower, upper)`` per prefix;
    arrays over the last axis."""
    mean, lrv = hac_prefix(daily_diff, method)
    t = np.arange(1, mean.shape[-1] + 1, dtype=float)
    var = lrv / t
    tau2 = mixture_tau2(var, t, n_plan, alpha)
    _, p, lo, hi = mixture_arrays(mean, np.where(t >= 2, var, 0.0), tau2, alpha)
    return mean, p, lo, hi


PAIRED_DAILY_BASIS = "days (HAC)"
"""``numbers.sequential.basis`` of a paired decision made on the daily series."""


def decide_paired(stats: PairedStats, abtest: ABTestSettings, *, challenger: str,
                  reference: str, daily_diff: ArrayLike | None = None,
                  daily_hit_diff: ArrayLike | None = None, n_plan: int = N_PLAN) -> DecisionRecord:
    """Decide from paired (shadow-scored) outcomes.

    Each metric uses its daily series (``daily_diff`` of net returns, ``daily_hit_diff`` of
    hits: one observation per day however many tickers, HAC variance) when given, else the
    per-request statistics (the iid paired test, McNemar's counts). ``min_samples`` counts
    what the variance is estimated from: days for a daily series, else paired outcomes.
    """
    alpha = abtest.alpha
    daily = None if daily_diff is None else np.asarray(daily_diff, float)
    daily_hit = None if daily_hit_diff is None else np.asarray(daily_hit_diff, float)
    parts: dict[str, DailyDiffNumbers | HacNumbers] = {}
    """What the daily series allow (a part left out is left out of the JSON)."""
    if daily is not None and daily.size >= 2:
        parts["daily_diff"] = DailyDiffNumbers(**asdict(daily_diff_test(daily, alpha)),
                                               days=daily.size)
    series = daily_hit if abtest.metric == "hit_rate" else daily
    observed = (stats.n, "paired outcomes") if series is None else (int(series.size),
                                                                     "paired days")
    if series is not None and series.size >= 2:
        est_a, p_a, lo_a, hi_a = paired_sequential(series, alpha, n_plan)
        est, p, lo, hi = est_a[-1], p_a[-1], lo_a[-1], hi_a[-1]
        h = hac_estimate(series)
        n_obs, var = float(series.size), h.lrv / series.size
        parts["hac"] = HacNumbers(method="andrews-monahan", lrv=h.lrv, rho=h.rho,
                                  bandwidth=h.bandwidth, days=int(series.size))
        basis = PAIRED_DAILY_BASIS
    elif abtest.metric == "hit_rate":
        est = stats.hit_diff if stats.n else 0.0
        var = max((stats.b + stats.c) / max(stats.n, 1) - est**2, 0.0) / max(stats.n, 1)
        tau2 = mixture_tau2(var, stats.n, n_plan, alpha)
        _, p, lo, hi = mixture_arrays(est, var, tau2, alpha)
        n_obs, basis = float(stats.n), "requests"
    else:
        est = stats.mean_diff if stats.n else 0.0
        var = stats.var_diff / max(stats.n, 1)
        tau2 = mixture_tau2(var, stats.n, n_plan, alpha)
        _, p, lo, hi = mixture_arrays(est, var, tau2, alpha)
        n_obs, basis = float(stats.n), "requests (iid)"
    mdes = _mde_numbers({abtest.metric: math.sqrt(max(float(var), 0.0))}, n_obs, n_plan,
                        alpha)
    numbers = DecisionNumbers(
        metric=abtest.metric, alpha=alpha, min_effect=abtest.min_effect, challenger=challenger,
        reference=reference, paired=_paired_numbers(stats),
        mcnemar=_test_numbers(mcnemar(stats, alpha)),
        iid_diff=_test_numbers(iid_diff_test(stats, alpha)), **parts,
        mde=mdes.now, mde_always_valid=mdes.always_valid, mde_at_plan=mdes.at_plan,
        sequential=SequentialNumbers(estimate=float(est), p_value=float(p), lower=float(lo),
                                     upper=float(hi), basis=basis, n_plan=n_plan))
    count, what = observed
    if count < abtest.min_samples:
        return DecisionRecord(action="invalid", reason=f"too few {what}: {count} "
                              f"(need {abtest.min_samples})", numbers=numbers)
    code = int(action_codes(lo, hi, abtest.min_effect))
    action, reason = _verdict(code, abtest.metric, float(lo), float(hi), abtest.min_effect,
                              alpha, challenger, reference)
    return DecisionRecord(action=action, reason=f"paired: {reason}", numbers=numbers)


def weights_after(action: str, experiment: ExperimentSettings, challenger: str,
                  reference: str) -> list[dict[str, Any]]:
    """Traffic after acting on a decision: a promoted challenger takes the champion's share
    (the arms swap weights); a rolled-back challenger gets nothing and the champion all."""
    current = experiment.weights
    if action == "promote":
        current[challenger], current[reference] = current[reference], current[challenger]
    elif action == "rollback":
        current = {n: (100 if n == reference else 0) for n in current}
    return [{"name": n, "weight": w} for n, w in current.items()]
