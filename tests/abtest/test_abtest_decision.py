"""The decision rules: invalid (SRM, per version too; too few), promote, rollback, continue;
the MDE numbers; and after-weights."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from finmlops.abtest import (
    PAIRED_DAILY_BASIS,
    ArmStats,
    PairedStats,
    always_valid_mde,
    decide,
    decide_paired,
    hac_estimate,
    mde,
    weights_after,
)
from finmlops.config import Settings


def arms(rng: np.random.Generator, n_ref: int, n_ch: int, mu_ch: float,
         sd: float = 0.01) -> dict[str, ArmStats]:
    return {"baseline": ArmStats.from_arrays(rng.random(n_ref) < 0.5, rng.normal(0, sd, n_ref)),
            "enhanced": ArmStats.from_arrays(rng.random(n_ch) < 0.5,
                                             rng.normal(mu_ch, sd, n_ch))}


def test_clear_improvement_promotes(settings: Callable[..., Settings]) -> None:
    s = settings()
    d = decide(arms(np.random.default_rng(0), 7000, 3000, 0.003), s.abtest, s.experiment)
    assert d.action == "promote"
    assert "enhanced beats baseline" in d.reason
    assert d.numbers.sequential.lower > 0
    assert d.numbers.net_return.p_value < 1e-6
    assert set(d.to_json()) == {"action", "reason", "numbers"}


def test_clear_loss_rolls_back(settings: Callable[..., Settings]) -> None:
    s = settings()
    d = decide(arms(np.random.default_rng(1), 7000, 3000, -0.003), s.abtest, s.experiment)
    assert d.action == "rollback" and d.numbers.sequential.upper < 0


def test_no_difference_continues(settings: Callable[..., Settings]) -> None:
    s = settings()
    d = decide(arms(np.random.default_rng(2), 700, 300, 0.0), s.abtest, s.experiment)
    assert d.action == "continue"
    assert d.numbers.mde["net_return"] > 0


def test_min_effect_holds_back_a_small_improvement(settings: Callable[..., Settings]) -> None:
    stats = arms(np.random.default_rng(0), 7000, 3000, 0.003)
    s = settings(abtest__min_effect=0.01)
    assert decide(stats, s.abtest, s.experiment).action == "continue"


def test_too_few_outcomes_is_invalid(settings: Callable[..., Settings]) -> None:
    s = settings()
    d = decide(arms(np.random.default_rng(3), 140, 60, 0.05), s.abtest, s.experiment)
    assert d.action == "invalid" and "enhanced has 60" in d.reason


def test_sample_ratio_mismatch_is_invalid_even_with_a_big_effect(
        settings: Callable[..., Settings]) -> None:
    s = settings()
    d = decide(arms(np.random.default_rng(4), 5000, 5000, 0.01), s.abtest, s.experiment)
    assert d.action == "invalid" and "sample ratio mismatch" in d.reason
    served = {"baseline": 7000, "enhanced": 3000}
    assert decide(arms(np.random.default_rng(4), 5000, 5000, 0.01), s.abtest, s.experiment,
                  served=served).action == "promote"


def test_hit_rate_metric(settings: Callable[..., Settings]) -> None:
    s = settings(abtest__metric="hit_rate")
    stats = {"baseline": ArmStats(7000, 3500, 0.0, 0.01), "enhanced": ArmStats(3000, 1800, 0.0,
                                                                                 0.01)}
    d = decide(stats, s.abtest, s.experiment)
    assert d.action == "promote" and "hit_rate" in d.reason


def test_paired_decisions(settings: Callable[..., Settings]) -> None:
    s = settings()
    rng = np.random.default_rng(5)
    good = rng.normal(0.002, 0.005, 300)
    stats = PairedStats(300, 40, 20, float(good.sum()), float((good**2).sum()))
    d = decide_paired(stats, s.abtest, challenger="enhanced", reference="baseline",
                      daily_diff=good)
    assert d.action == "promote" and d.reason.startswith("paired:")
    assert d.numbers.sequential.basis == PAIRED_DAILY_BASIS
    hac = hac_estimate(good)
    assert d.numbers.hac.to_json() == {"method": "andrews-monahan", "lrv": hac.lrv,
                                       "rho": hac.rho, "bandwidth": hac.bandwidth, "days": 300}
    assert d.numbers.daily_diff.std_error == pytest.approx((hac.lrv / 300) ** 0.5)
    bad = decide_paired(PairedStats(300, 20, 40, float(-good.sum()), float((good**2).sum())),
                        s.abtest, challenger="enhanced", reference="baseline")
    assert bad.action == "rollback" and bad.numbers.sequential.basis == "requests (iid)"
    few = decide_paired(PairedStats(50, 5, 1, 0.1, 0.01), s.abtest, challenger="enhanced",
                        reference="baseline")
    assert few.action == "invalid"
    hit = decide_paired(PairedStats(2000, 300, 150, 0.0, 1.0),
                        settings(abtest__metric="hit_rate").abtest,
                        challenger="enhanced", reference="baseline")
    assert hit.action == "promote" and hit.numbers.mcnemar.p_value < 1e-6


def test_numbers_are_json_clean(settings: Callable[..., Settings]) -> None:
    import json

    s = settings()
    d = decide({"baseline": ArmStats(0, 0, 0.0, 0.0)}, s.abtest, s.experiment)
    assert d.action == "invalid"
    assert d.numbers.net_return.lower is None  # -inf: no evidence, null in JSON
    json.dumps(d.to_json(), allow_nan=False)


@pytest.mark.parametrize(("action", "expected"), [
    ("promote", {"baseline": 30, "enhanced": 70}),
    ("rollback", {"baseline": 100, "enhanced": 0}),
    ("continue", {"baseline": 70, "enhanced": 30}),
])
def test_weights_after(settings: Callable[..., Settings], action: str,
                       expected: dict[str, int]) -> None:
    got = weights_after(action, settings().experiment, "enhanced", "baseline")
    assert {c["name"]: c["weight"] for c in got} == expected


def test_daily_paired_test_counts_days_not_requests(settings: Callable[..., Settings]) -> None:
    """Two tickers a day are one observation of the daily series: 60 days of 2 requests do
    not meet min_samples=100, whatever the request count says."""
    s = settings()
    daily = np.random.default_rng(6).normal(0.004, 0.002, 60)
    stats = PairedStats(120, 30, 10, float(2 * daily.sum()), float(2 * (daily**2).sum()))
    d = decide_paired(stats, s.abtest, challenger="enhanced", reference="baseline",
                      daily_diff=daily)
    assert d.action == "invalid" and "too few paired days: 60" in d.reason
    assert d.numbers.sequential.basis == PAIRED_DAILY_BASIS
    more = np.random.default_rng(6).normal(0.004, 0.002, 120)
    ok = decide_paired(stats, s.abtest, challenger="enhanced", reference="baseline",
                       daily_diff=more)
    assert ok.action == "promote"


def test_split_decision_carries_fixed_n_and_always_valid_mdes(
        settings: Callable[..., Settings]) -> None:
    s = settings()
    d = decide(arms(np.random.default_rng(2), 700, 300, 0.0), s.abtest, s.experiment,
               n_plan=500)
    n = d.numbers
    for metric, test in (("net_return", n.net_return), ("hit_rate", n.hit_rate)):
        se = test.std_error
        assert n.mde[metric] == pytest.approx(mde(se))
        assert n.mde_always_valid[metric] == pytest.approx(always_valid_mde(se, 1000, 500))
        assert n.mde_always_valid[metric] > 1.3 * n.mde[metric]
        at_plan = n.mde_at_plan
        assert at_plan.n == 500
        # half the outcomes: standard error up by sqrt(2)
        assert at_plan.fixed_n[metric] == pytest.approx(mde(se * 2**0.5))
        assert at_plan.always_valid[metric] == pytest.approx(
            always_valid_mde(se * 2**0.5, 500, 500))


def test_paired_decision_carries_the_mdes_of_its_daily_series(
        settings: Callable[..., Settings]) -> None:
    s = settings()
    daily = np.random.default_rng(7).normal(0.0, 0.004, 400)
    stats = PairedStats(400, 30, 30, float(daily.sum()), float((daily**2).sum()))
    d = decide_paired(stats, s.abtest, challenger="enhanced", reference="baseline",
                      daily_diff=daily, n_plan=500)
    se = (hac_estimate(daily).lrv / 400) ** 0.5
    assert d.numbers.mde["net_return"] == pytest.approx(mde(se))
    assert d.numbers.mde_always_valid["net_return"] == pytest.approx(
        always_valid_mde(se, 400, 500))


def test_sample_ratio_is_checked_per_experiment_version(
        settings: Callable[..., Settings]) -> None:
    """The weights moved from 70/30 to 50/50 mid-experiment. Per version the traffic is what
    was configured, so the decision goes on; pooled against today's weights it would be an
    SRM. A skewed version is invalid, and named."""
    s = settings()
    stats = arms(np.random.default_rng(0), 12000, 8000, 0.003)
    weights = {1: {"baseline": 70, "enhanced": 30}, 2: {"baseline": 50, "enhanced": 50}}
    fine = {1: {"baseline": 7000, "enhanced": 3000}, 2: {"baseline": 5000, "enhanced": 5000}}
    d = decide(stats, s.abtest, s.experiment, served_by_version=fine,
               weights_by_version=weights)
    assert d.action == "promote"
    assert set(d.numbers.srm.versions) == {"1", "2"}
    pooled = decide(stats, s.abtest, s.experiment, served={"baseline": 12000, "enhanced": 8000})
    assert pooled.action == "invalid"
    skewed = {1: {"baseline": 7000, "enhanced": 3000}, 2: {"baseline": 5600, "enhanced": 4400}}
    bad = decide(stats, s.abtest, s.experiment, served_by_version=skewed,
                 weights_by_version=weights)
    assert bad.action == "invalid" and "most off: version 2" in bad.reason
    # without per-version weights every version is held to the experiment's
    same = decide(stats, s.abtest, s.experiment,
                  served_by_version={1: {"baseline": 8400, "enhanced": 3600},
                                     2: {"baseline": 5600, "enhanced": 2400}})
    assert same.action == "promote"
    with pytest.raises(ValueError, match="not both"):
        decide(stats, s.abtest, s.experiment, served={"baseline": 1},
               served_by_version=fine)
