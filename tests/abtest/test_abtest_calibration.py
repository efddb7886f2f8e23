"""Calibration by simulation at the production horizon (seeded, vectorised): the decisions'
error rates are what they claim over a 1,843-day replay looked at every day.

Every simulation runs the functions ``decide``/``decide_paired`` and the timelines use
(``split_estimate``, ``mixture_tau2``, ``mixture_arrays``, ``action_codes``,
``paired_sequential``, ``srm_log_bf``) on cumulative sums, one row per simulated experiment
and one column per day: 2,000 experiments of 1,843 days, one request a day (the replay's one
target ticker), 30% to the challenger, decisions from the 100th outcome per arm (split) or
day (paired), the mixture tuned to ``N_PLAN``. "Within alpha" means at most alpha plus three
binomial standard errors at 2,000 runs; each check is paired with one the simulation must
fail (naive peeking, an understated variance, the old Newey-West lag, a chi-square repeated
daily), so it can see the problem it guards against. ``python -m benchmarks calibration``
prints the rates.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from functools import cache

import numpy as np
import pytest
from scipy import signal as sps_signal
from scipy import stats as sps

from finmlops.abtest import (
    N_PLAN,
    ArmStats,
    HacMethod,
    action_codes,
    always_valid_mde,
    decide,
    fixed_n_power,
    hac_prefix,
    mde,
    mixture_arrays,
    mixture_tau2,
    paired_sequential,
    running_min,
    split_estimate,
    srm_concentration,
    srm_log_bf,
)
from finmlops.config import ABTestSettings, ExperimentSettings

SIMS, DAYS, SHARE, ALPHA, MIN_SAMPLES = 2000, 1843, 0.3, 0.05, 100
SRM_ALPHA = ABTestSettings().srm_alpha


def upper_bound(rate: float = ALPHA, sims: int = SIMS) -> float:
    """A 3-sigma binomial upper bound on an observed rate whose true value is ``rate``."""
    return rate + 3 * math.sqrt(rate * (1 - rate) / sims)


# --- split test ----------------------------------------------------------------------------

def split_sims(seed: int, effect: float = 0.0) -> dict[str, np.ndarray]:
    """Cumulative per-arm sums after each day for SIMS split experiments (fat-tailed,
    zero-inflated long/flat strategy returns; the challenger gets SHARE of requests)."""
    rng = np.random.default_rng(seed)
    shape = (SIMS, DAYS)
    challenger = rng.random(shape) < SHARE
    in_market = rng.random(shape) < 0.6
    ret = np.where(in_market, 0.01 * rng.standard_t(4, shape) / math.sqrt(2), 0.0)
    ret = ret + np.where(challenger, effect, 0.0)
    hit = rng.random(shape) < 0.52

    def cum(x: np.ndarray) -> np.ndarray:
        return np.cumsum(x, axis=1).astype(float)

    c, r = challenger, ~challenger
    return {"n1": cum(c), "h1": cum(hit & c), "s1": cum(ret * c), "q1": cum(ret**2 * c),
            "n0": cum(r), "h0": cum(hit & r), "s0": cum(ret * r), "q0": cum(ret**2 * r)}


def split_codes(sim: dict[str, np.ndarray], metric: str = "net_return",
                var_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sequential decision codes per day (gated by MIN_SAMPLES), naive z rejections, variance.

    ``var_scale`` deliberately mis-states the variance (to show these checks would see it)."""
    est, var = split_estimate(metric, sim["n1"], sim["h1"], sim["s1"], sim["q1"], sim["n0"],
                              sim["h0"], sim["s0"], sim["q0"])
    var = var * var_scale
    tau2 = mixture_tau2(var, sim["n1"] + sim["n0"], N_PLAN, ALPHA)
    _, _, lo, hi = mixture_arrays(est, var, tau2, ALPHA)
    ok = (sim["n1"] >= MIN_SAMPLES) & (sim["n0"] >= MIN_SAMPLES)
    codes = np.where(ok, action_codes(lo, hi), 0)
    z = est / np.sqrt(np.where(var > 0, var, np.inf))
    naive = ok & (np.abs(z) > sps.norm.ppf(1 - ALPHA / 2))
    return codes, naive, var


@pytest.fixture(scope="module")
def aa_split() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return split_codes(split_sims(seed=11))


def test_split_aa_single_look_is_within_alpha(aa_split: tuple[np.ndarray, ...]) -> None:
    codes, naive, _ = aa_split
    assert (codes[:, -1] != 0).mean() <= upper_bound()
    # the fixed-n z-test at one planned look is itself calibrated
    assert abs(naive[:, -1].mean() - ALPHA) <= 3 * math.sqrt(ALPHA * (1 - ALPHA) / SIMS)


def test_split_daily_peeking_does_not_inflate_always_valid_but_does_naive(
        aa_split: tuple[np.ndarray, ...]) -> None:
    codes, naive, _ = aa_split
    always_valid = (codes != 0).any(axis=1).mean()
    naive_peeking = naive.any(axis=1).mean()
    assert always_valid <= upper_bound(), always_valid
    assert naive_peeking > 4 * ALPHA, naive_peeking  # proof the simulation can see the problem


@pytest.mark.parametrize("var_scale", [0.5, 0.25])
def test_an_understated_variance_would_fail_the_split_calibration(var_scale: float) -> None:
    """The check above has teeth: the same A/A runs with the variance understated by half
    (what e.g. dividing by the total instead of per-arm counts does) break the bound."""
    codes, _, _ = split_codes(split_sims(seed=11), var_scale=var_scale)
    assert (codes != 0).any(axis=1).mean() > upper_bound()


def test_split_hit_rate_aa_with_peeking() -> None:
    codes, naive, _ = split_codes(split_sims(seed=12), metric="hit_rate")
    assert (codes != 0).any(axis=1).mean() <= upper_bound()
    assert naive.any(axis=1).mean() > 4 * ALPHA


@pytest.fixture(scope="module")
def split_se(aa_split: tuple[np.ndarray, ...]) -> float:
    """The standard error of the net-return difference at the last day."""
    return float(np.sqrt(aa_split[2][:, -1].mean()))


def test_split_power_at_the_always_valid_mde(split_se: float) -> None:
    """Plant the always-valid MDE at the last day (what ``decide`` prints as
    ``mde_always_valid``): the sequence promotes in about 80% of runs at that look and in at
    least 80% by then with daily looks; it never rolls back."""
    effect = always_valid_mde(split_se, DAYS, N_PLAN, ALPHA)
    codes, _, _ = split_codes(split_sims(seed=14, effect=effect))
    last = (codes[:, -1] == 1).mean()
    ever = (codes == 1).any(axis=1).mean()
    assert abs(last - 0.8) < 3 * math.sqrt(0.16 / SIMS) + 0.02, last
    assert ever >= 0.8 - 3 * math.sqrt(0.16 / SIMS), ever
    assert (codes == 2).any(axis=1).mean() < 0.005


def test_split_fixed_n_mde_is_not_enough_for_the_always_valid_test(split_se: float) -> None:
    """The fixed-n MDE gives the fixed-n test its 80% at one look, and the always-valid test
    (the price of peeking) a lower power: why both MDEs are printed."""
    effect = mde(split_se, ALPHA)
    codes, naive, _ = split_codes(split_sims(seed=13, effect=effect))
    analytic = fixed_n_power(effect, split_se, ALPHA)
    fixed = naive[:, -1].mean()
    sequential = (codes == 1).any(axis=1).mean()
    assert analytic == pytest.approx(0.8, abs=0.01)
    assert abs(fixed - analytic) < 4 * math.sqrt(0.16 / SIMS) + 0.02, (fixed, analytic)
    assert 0.3 < sequential < fixed - 0.1, (sequential, fixed)


def test_decide_agrees_with_the_vectorised_simulation() -> None:
    sim = split_sims(seed=15, effect=0.0012)
    codes, _, _ = split_codes(sim)
    abtest = ABTestSettings(alpha=ALPHA, min_samples=MIN_SAMPLES)
    experiment = ExperimentSettings()
    names = {0: "continue", 1: "promote", 2: "rollback"}
    seen = set()
    for i in range(0, SIMS, 97):
        stats = {"enhanced": ArmStats(int(sim["n1"][i, -1]), int(sim["h1"][i, -1]),
                                      sim["s1"][i, -1], sim["q1"][i, -1]),
                 "baseline": ArmStats(int(sim["n0"][i, -1]), int(sim["h0"][i, -1]),
                                      sim["s0"][i, -1], sim["q0"][i, -1])}
        served = {"enhanced": stats["enhanced"].n, "baseline": stats["baseline"].n}
        d = decide(stats, abtest, experiment, served=served, n_plan=N_PLAN)
        assert d.action == names[int(codes[i, -1])]
        seen.add(d.action)
    assert {"continue", "promote"} <= seen


# --- paired test ---------------------------------------------------------------------------

@cache
def ar1(seed: int, phi: float, sd: float = 0.004, effect: float = 0.0) -> np.ndarray:
    """SIMS daily difference series of DAYS days: AR(1) with marginal sd ``sd``."""
    rng = np.random.default_rng(seed)
    e = rng.normal(0, sd * math.sqrt(1 - phi**2), (SIMS, DAYS + 200))
    out = sps_signal.lfilter([1.0], [1.0, -phi], e, axis=1)[:, 200:] + effect
    out.setflags(write=False)
    return out


@pytest.fixture(scope="module", autouse=True)
def _release_cached_series() -> Iterator[None]:
    yield
    ar1.cache_clear()


def true_se(phi: float, sd: float = 0.004, days: int = DAYS) -> float:
    """Standard error of the mean of an AR(1) over ``days``: sqrt(LRV / days)."""
    return sd * math.sqrt((1 + phi) / (1 - phi)) / math.sqrt(days)


GATE = np.arange(1, DAYS + 1) >= MIN_SAMPLES


def paired_rejects(daily: np.ndarray, method: HacMethod = "andrews") -> np.ndarray:
    """Per run: did the always-valid paired test decide (either way) on any day from the
    gate on?"""
    _, _, lo, hi = paired_sequential(daily, ALPHA, N_PLAN, method)
    return ((action_codes(lo, hi) != 0) & GATE).any(axis=1)


@pytest.mark.parametrize("phi", [0.0, 0.3, 0.6])
def test_paired_aa_with_persistent_differences_and_daily_peeking(phi: float) -> None:
    rate = paired_rejects(ar1(21, phi)).mean()
    assert rate <= upper_bound(), rate


@pytest.mark.parametrize("method", ["newey_west", "batch_means"])
def test_an_under_corrected_or_noisy_variance_fails_the_paired_calibration(
        method: HacMethod) -> None:
    """The same A/A runs at phi = 0.6 with the Newey-West lag (it misses a quarter of the
    long-run variance) or with batch means (too few batches at the first decision days):
    both break the bound the prewhitened estimator keeps."""
    rate = paired_rejects(ar1(21, 0.6), method).mean()
    assert rate > upper_bound(), rate


def test_paired_power_at_the_always_valid_mde() -> None:
    phi = 0.6
    effect = always_valid_mde(true_se(phi), DAYS, N_PLAN, ALPHA)
    _, _, lo, _ = paired_sequential(ar1(23, phi, effect=effect), ALPHA, N_PLAN)
    last = (lo[:, -1] > 0).mean()
    ever = ((lo > 0) & GATE).any(axis=1).mean()
    assert abs(last - 0.8) < 3 * math.sqrt(0.16 / SIMS) + 0.02, last
    assert ever >= 0.8 - 3 * math.sqrt(0.16 / SIMS), ever


def test_paired_fixed_n_hac_test_at_one_look_is_calibrated_and_naive_peeking_is_not() -> None:
    mean, lrv = hac_prefix(ar1(22, 0.6))
    t = np.arange(1, DAYS + 1)
    z = mean / np.sqrt(np.maximum(lrv, 1e-300) / t)
    reject = np.abs(z) > sps.t.ppf(1 - ALPHA / 2, t - 1)
    assert abs(reject[:, -1].mean() - ALPHA) <= 3 * math.sqrt(ALPHA * (1 - ALPHA) / SIMS)
    assert (reject & GATE).any(axis=1).mean() > 4 * ALPHA


def test_reported_running_min_p_value_is_valid_only_from_the_gate_on() -> None:
    """The timeline's always-valid p-value (running minimum) starts at ``min_samples``: the
    plug-in variance of the first few days is noise, and a minimum over them rejects an A/A
    experiment far more often than alpha."""
    _, p, _, _ = paired_sequential(ar1(24, 0.3), ALPHA, N_PLAN)
    gated = running_min(p, np.broadcast_to(GATE, p.shape))[:, -1]
    assert (gated < ALPHA).mean() <= upper_bound()
    assert (running_min(p)[:, -1] < ALPHA).mean() > 2 * ALPHA  # what an ungated minimum does


def test_paired_hit_rate_with_several_tickers_a_day_is_calibrated_per_day() -> None:
    """Five tickers a day move mostly together, so their hits are not independent: one
    observation per day (what decide_paired and the timeline use) keeps an A/A experiment
    within alpha, while counting each request as independent (McNemar's counts) does not."""
    k, sims = 5, SIMS // 2
    rng = np.random.default_rng(41)
    day_dir = rng.random((sims, DAYS, 1)) < 0.53
    dirs = np.where(rng.random((sims, DAYS, k)) < 0.9, day_dir, ~day_dir)
    calls = rng.random((2, sims, DAYS, 1)) < 0.6
    h1, h0 = calls[0] == dirs, calls[1] == dirs
    _, _, lo, hi = paired_sequential((h1.astype(float) - h0).mean(axis=2), ALPHA, N_PLAN)
    assert ((action_codes(lo, hi) != 0) & GATE).any(axis=1).mean() <= upper_bound(sims=sims)
    b = np.cumsum((h1 & ~h0).sum(axis=2), axis=1).astype(float)
    c = np.cumsum((h0 & ~h1).sum(axis=2), axis=1).astype(float)
    n = k * np.arange(1, DAYS + 1, dtype=float)
    est = (b - c) / n
    var = np.maximum((b + c) / n - est**2, 0) / n
    _, _, lo, hi = mixture_arrays(est, var, mixture_tau2(var, n, N_PLAN * k, ALPHA), ALPHA)
    per_request = ((action_codes(lo, hi) != 0) & (n >= MIN_SAMPLES)).any(axis=1).mean()
    assert per_request > 4 * ALPHA, per_request


def test_paired_iid_variance_would_be_fooled_by_autocorrelation() -> None:
    """Why HAC: with the iid variance the same A/A paired series rejects far too often."""
    d = ar1(22, 0.3)
    mean = d.mean(axis=1)
    z_iid = mean / (d.std(axis=1, ddof=1) / math.sqrt(DAYS))
    _, lrv = hac_prefix(d)
    z_hac = mean / np.sqrt(lrv[:, -1] / DAYS)
    crit = sps.norm.ppf(1 - ALPHA / 2)
    assert (np.abs(z_iid) > crit).mean() > 0.10
    assert (np.abs(z_hac) > crit).mean() <= upper_bound()


def test_pairing_decides_sooner_than_splitting_the_same_traffic() -> None:
    """Issue 9: both arms face the same market; pairing cancels it, splitting cannot."""
    rng = np.random.default_rng(31)
    sims, days = 1000, 250
    market = 0.012 * rng.standard_normal((sims, days))
    pos_ref = rng.random((sims, days)) < 0.6
    pos_ch = np.where(rng.random((sims, days)) < 0.8, pos_ref, ~pos_ref)  # mostly agree
    r_ref = market * pos_ref
    r_ch = market * pos_ch + 0.0008
    served_ch = rng.random((sims, days)) < 0.5
    c, r = served_ch, ~served_ch

    def cum(x: np.ndarray) -> np.ndarray:
        return np.cumsum(x, axis=1).astype(float)

    est, var = split_estimate("net_return", cum(c), 0, cum(r_ch * c), cum(r_ch**2 * c),
                              cum(r), 0, cum(r_ref * r), cum(r_ref**2 * r))
    tau2 = mixture_tau2(var, cum(c) + cum(r), days, ALPHA)
    _, _, lo, _ = mixture_arrays(est, var, tau2, ALPHA)
    split_power = ((lo > 0) & (np.arange(1, days + 1) >= 50)).any(axis=1).mean()
    _, _, plo, _ = paired_sequential(r_ch - r_ref, ALPHA, days)
    paired_power = ((plo > 0) & (np.arange(1, days + 1) >= 50)).any(axis=1).mean()
    assert paired_power > split_power + 0.2, (paired_power, split_power)


# --- sample-ratio test ---------------------------------------------------------------------

def assignments(seed: int, shares: np.ndarray, per_day: int = 1) -> np.ndarray:
    """Cumulative challenger and reference assignments ``[SIMS, DAYS, 2]``; day ``d`` routes
    to the challenger with probability ``shares[d]``."""
    rng = np.random.default_rng(seed)
    chal = np.cumsum(rng.binomial(per_day, np.broadcast_to(shares, (SIMS, DAYS))), axis=1)
    total = per_day * np.arange(1, DAYS + 1)
    return np.stack([chal, total - chal], axis=-1).astype(float)


def srm_alarms(counts: np.ndarray, shares: list[float], alpha: float) -> np.ndarray:
    """Per run: did the always-valid SRM test (running minimum, every day) ever alarm?"""
    log_bf = srm_log_bf(counts, shares, srm_concentration(N_PLAN, alpha))
    return (log_bf >= math.log(1 / alpha)).any(axis=1)


def chi2_alarms(counts: np.ndarray, shares: list[float], alpha: float) -> np.ndarray:
    """Per run: did the fixed-n chi-square test, repeated every day, ever alarm?"""
    exp = counts.sum(axis=-1, keepdims=True) * np.asarray(shares)
    chi2 = ((counts - exp) ** 2 / exp).sum(axis=-1)
    return (chi2 > sps.chi2.isf(alpha, 1)).any(axis=1)


@pytest.fixture(scope="module")
def aa_traffic() -> np.ndarray:
    return assignments(51, np.full(DAYS, SHARE))


@pytest.mark.parametrize("alpha", [SRM_ALPHA, 0.05])
def test_srm_aa_with_daily_looks_is_within_alpha_and_the_daily_chi_square_is_not(
        aa_traffic: np.ndarray, alpha: float) -> None:
    shares = [SHARE, 1 - SHARE]
    assert srm_alarms(aa_traffic, shares, alpha).mean() <= upper_bound(alpha)
    assert chi2_alarms(aa_traffic, shares, alpha).mean() > upper_bound(alpha)


def test_srm_aa_with_heavier_traffic() -> None:
    counts = assignments(52, np.full(DAYS, SHARE), per_day=20)
    assert srm_alarms(counts, [SHARE, 1 - SHARE], 0.05).mean() <= upper_bound(0.05)


@pytest.mark.parametrize(("served_share", "per_day", "power"), [(0.25, 1, 0.75),
                                                                (0.285, 20, 0.9)])
def test_srm_power_with_a_planted_skew(served_share: float, per_day: int,
                                       power: float) -> None:
    """A router serving the challenger 25% instead of 30% (one request a day), or 28.5% at
    twenty a day, is caught by the end of the replay in most runs."""
    counts = assignments(53, np.full(DAYS, served_share), per_day)
    assert srm_alarms(counts, [SHARE, 1 - SHARE], SRM_ALPHA).mean() > power


def test_srm_per_version_aa_when_the_weights_change_mid_experiment() -> None:
    """70/30 for 900 days, then 50/50: the product of the two versions' Bayes factors stays
    within alpha; the pooled counts against either set of weights alarm in every run."""
    alpha, switch = 0.05, 900
    shares = np.where(np.arange(DAYS) < switch, SHARE, 0.5)
    pooled = assignments(54, shares)
    v1 = pooled[:, :switch]
    v2 = pooled[:, switch:] - pooled[:, switch - 1:switch]
    conc = srm_concentration(N_PLAN, alpha)
    log_bf = np.concatenate([srm_log_bf(v1, [SHARE, 1 - SHARE], conc),
                             srm_log_bf(v1[:, -1:], [SHARE, 1 - SHARE], conc)
                             + srm_log_bf(v2, [0.5, 0.5], conc)], axis=1)
    assert (log_bf >= math.log(1 / alpha)).any(axis=1).mean() <= upper_bound(alpha)
    assert srm_alarms(pooled, [0.5, 0.5], alpha).mean() > 0.99
    assert srm_alarms(pooled, [SHARE, 1 - SHARE], alpha).mean() > 0.99
