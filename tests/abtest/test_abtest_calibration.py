"""Calibration by simulation (seeded, vectorised): the decision's error rates are what it claims.

Every simulation runs the same functions ``decide``/``decide_paired`` use (``split_estimate``,
``mixture_tau2``, ``mixture_arrays``, ``action_codes``, ``paired_sequential``) on cumulative
sums, one row per simulated experiment and one column per day.

Figures measured with these seeds (2,000 simulations, 250 days, 4 requests a day, alpha 0.05,
decisions only once each arm has 100 outcomes):
split A/A, net return: one look 0.2%; daily peeking: always-valid 1.1%, naive z 18.5%.
split A/A, hit rate: daily peeking: always-valid 2.2%, naive z 19.2%.
planted effect = fixed-n MDE at day 250: fixed-n power 0.80 analytic, 0.796 simulated;
always-valid 0.55 (ever, with daily peeking), 0.42 at the last day alone.
paired A/A, AR(1) phi=0.3: always-valid with daily peeking 4.1%, naive HAC t peeking 24.9%
(the fixed-n HAC t at one look is 7.2%: Newey-West underestimates at n=250, phi=0.3);
paired planted effect at the MDE: fixed-n 0.83, always-valid 0.64.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import signal as sps_signal
from scipy import stats as sps

from finmlops.abtest import (
    ArmStats,
    action_codes,
    decide,
    fixed_n_power,
    hac_prefix,
    mde,
    mixture_arrays,
    mixture_tau2,
    paired_sequential,
    running_min,
    split_estimate,
)
from finmlops.config import ABTestSettings, ExperimentSettings

SIMS, DAYS, PER_DAY, SHARE, ALPHA, MIN_SAMPLES = 2000, 250, 4, 0.3, 0.05, 100


def upper_bound(rate: float = ALPHA, sims: int = SIMS) -> float:
    """A 3-sigma binomial upper bound on an observed rate whose true value is ``rate``."""
    return rate + 3 * math.sqrt(rate * (1 - rate) / sims)


def split_sims(seed: int, effect: float = 0.0) -> dict[str, np.ndarray]:
    """Cumulative per-arm sums after each day for SIMS split experiments (fat-tailed,
    zero-inflated long/flat strategy returns; the challenger gets SHARE of requests)."""
    rng = np.random.default_rng(seed)
    shape = (SIMS, DAYS, PER_DAY)
    challenger = rng.random(shape) < SHARE
    in_market = rng.random(shape) < 0.6
    ret = np.where(in_market, 0.01 * rng.standard_t(4, shape) / math.sqrt(2), 0.0)
    ret = ret + np.where(challenger, effect, 0.0)
    hit = rng.random(shape) < 0.52

    def cum(x: np.ndarray) -> np.ndarray:
        return np.cumsum(x.sum(axis=2), axis=1).astype(float)

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
    tau2 = mixture_tau2(var, sim["n1"] + sim["n0"], DAYS * PER_DAY, ALPHA)
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
    assert always_valid <= upper_bound()
    assert naive_peeking > 2 * ALPHA, naive_peeking  # proof the simulation can see the problem


@pytest.mark.parametrize("var_scale", [0.5, 0.25])
def test_an_understated_variance_would_fail_the_split_calibration(var_scale: float) -> None:
    """The check above has teeth: the same A/A runs with the variance understated by half
    (what e.g. dividing by the total instead of per-arm counts does) break the bound."""
    codes, _, _ = split_codes(split_sims(seed=11), var_scale=var_scale)
    assert (codes != 0).any(axis=1).mean() > upper_bound()


def test_split_hit_rate_aa_with_peeking() -> None:
    codes, naive, _ = split_codes(split_sims(seed=12), metric="hit_rate")
    assert (codes != 0).any(axis=1).mean() <= upper_bound()
    assert naive.any(axis=1).mean() > 2 * ALPHA


def test_split_power_at_the_fixed_n_mde() -> None:
    """Plant the effect the fixed-n test detects with 80% power at the last day; the fixed-n
    test reaches that power in simulation, and the always-valid test (the price of peeking)
    reaches a lower but substantial power, never the wrong direction."""
    _, _, var = split_codes(split_sims(seed=13))
    se = float(np.sqrt(var[:, -1].mean()))
    effect = mde(se, ALPHA)
    codes, naive, _ = split_codes(split_sims(seed=14, effect=effect))
    analytic = fixed_n_power(effect, se, ALPHA)
    fixed = naive[:, -1].mean()
    sequential = (codes == 1).any(axis=1).mean()
    assert analytic == pytest.approx(0.8, abs=0.01)
    assert abs(fixed - analytic) < 4 * math.sqrt(0.16 / SIMS) + 0.02, (fixed, analytic)
    assert 0.3 < sequential < fixed, (sequential, fixed)
    assert (codes == 2).any(axis=1).mean() < 0.005


def test_decide_agrees_with_the_vectorised_simulation() -> None:
    sim = split_sims(seed=15, effect=0.0015)
    codes, _, _ = split_codes(sim)
    abtest = ABTestSettings(alpha=ALPHA, min_samples=MIN_SAMPLES)
    experiment = ExperimentSettings()
    names = {0: "continue", 1: "promote", 2: "rollback"}
    for i in range(0, SIMS, 97):
        stats = {"enhanced": ArmStats(int(sim["n1"][i, -1]), int(sim["h1"][i, -1]),
                                      sim["s1"][i, -1], sim["q1"][i, -1]),
                 "baseline": ArmStats(int(sim["n0"][i, -1]), int(sim["h0"][i, -1]),
                                      sim["s0"][i, -1], sim["q0"][i, -1])}
        d = decide(stats, abtest, experiment, n_plan=DAYS * PER_DAY)
        assert d.action == names[int(codes[i, -1])]


def ar1(seed: int, phi: float, sd: float, effect: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    e = rng.normal(0, sd * math.sqrt(1 - phi**2), (SIMS, DAYS + 50))
    return sps_signal.lfilter([1.0], [1.0, -phi], e, axis=1)[:, 50:] + effect


def paired_codes(daily: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    _, _, lo, hi = paired_sequential(daily, ALPHA, DAYS)
    ok = np.arange(1, DAYS + 1) >= MIN_SAMPLES
    codes = np.where(ok, action_codes(lo, hi), 0)
    mean, lrv = hac_prefix(daily)
    t = np.arange(1, DAYS + 1)
    z = mean / np.sqrt(np.maximum(lrv, 1e-300) / t)
    naive = ok & (np.abs(z) > sps.t.ppf(1 - ALPHA / 2, t - 1))
    return codes, naive, lrv


def test_paired_aa_with_autocorrelation_and_daily_peeking() -> None:
    codes, naive, _ = paired_codes(ar1(seed=21, phi=0.3, sd=0.004))
    always_valid = (codes != 0).any(axis=1).mean()
    assert always_valid <= upper_bound(), always_valid
    assert naive.any(axis=1).mean() > 2 * ALPHA


def test_reported_running_min_p_value_is_valid_only_from_the_gate_on() -> None:
    """The timeline's always-valid p-value (running minimum) starts at ``min_samples``: the
    plug-in variance of the first few days is noise, and a minimum over them rejects an A/A
    experiment far more often than alpha."""
    _, p, _, _ = paired_sequential(ar1(seed=24, phi=0.3, sd=0.004), ALPHA, DAYS)
    gate = np.arange(1, DAYS + 1) >= MIN_SAMPLES
    assert (running_min(p, np.broadcast_to(gate, p.shape))[:, -1] < ALPHA).mean() \
        <= upper_bound()
    assert (running_min(p)[:, -1] < ALPHA).mean() > 2 * ALPHA  # what an ungated minimum does


def test_paired_hit_rate_with_several_tickers_a_day_is_calibrated_per_day() -> None:
    """Five tickers a day move mostly together, so their hits are not independent: one
    observation per day (what decide_paired and the timeline use) keeps an A/A experiment
    within alpha, while counting each request as independent (McNemar's counts) does not."""
    k = 5
    rng = np.random.default_rng(41)
    day_dir = rng.random((SIMS, DAYS, 1)) < 0.53
    dirs = np.where(rng.random((SIMS, DAYS, k)) < 0.9, day_dir, ~day_dir)
    calls = rng.random((2, SIMS, DAYS, 1)) < 0.6
    h1, h0 = calls[0] == dirs, calls[1] == dirs
    _, _, lo, hi = paired_sequential((h1.astype(float) - h0).mean(axis=2), ALPHA, DAYS)
    gate = np.arange(1, DAYS + 1) >= MIN_SAMPLES
    assert ((action_codes(lo, hi) != 0) & gate).any(axis=1).mean() <= upper_bound()
    b = np.cumsum((h1 & ~h0).sum(axis=2), axis=1).astype(float)
    c = np.cumsum((h0 & ~h1).sum(axis=2), axis=1).astype(float)
    n = k * np.arange(1, DAYS + 1, dtype=float)
    est = (b - c) / n
    var = np.maximum((b + c) / n - est**2, 0) / n
    _, _, lo, hi = mixture_arrays(est, var, mixture_tau2(var, n, DAYS * k, ALPHA), ALPHA)
    per_request = ((action_codes(lo, hi) != 0) & (n >= MIN_SAMPLES)).any(axis=1).mean()
    assert per_request > 4 * ALPHA, per_request


def test_paired_iid_variance_would_be_fooled_by_autocorrelation() -> None:
    """Why HAC: with the iid variance the same A/A paired series rejects far too often."""
    d = ar1(seed=22, phi=0.3, sd=0.004)
    mean = d.mean(axis=1)
    z_iid = mean / (d.std(axis=1, ddof=1) / math.sqrt(DAYS))
    _, lrv = hac_prefix(d)
    z_hac = mean / np.sqrt(lrv[:, -1] / DAYS)
    crit = sps.norm.ppf(1 - ALPHA / 2)
    assert (np.abs(z_iid) > crit).mean() > 0.10
    assert (np.abs(z_hac) > crit).mean() < (np.abs(z_iid) > crit).mean()


def test_paired_power_at_the_fixed_n_mde() -> None:
    phi, sd = 0.3, 0.004
    se = sd * math.sqrt((1 + phi) / (1 - phi)) / math.sqrt(DAYS)  # true long-run SE at DAYS
    effect = mde(se, ALPHA)
    codes, naive, _ = paired_codes(ar1(seed=23, phi=phi, sd=sd, effect=effect))
    sequential = (codes == 1).any(axis=1).mean()
    fixed = naive[:, -1].mean()
    assert fixed > 0.7
    assert 0.3 < sequential < fixed, (sequential, fixed)


def test_pairing_decides_sooner_than_splitting_the_same_traffic() -> None:
    """Issue 9: both arms face the same market; pairing cancels it, splitting cannot."""
    rng = np.random.default_rng(31)
    sims, days = 1000, DAYS
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
