"""The verdict at the top of the report: significance against buy-and-hold decides."""

from __future__ import annotations

from typing import Any

import pytest

from finmlops.contracts import EvaluationFile
from finmlops.report import verdict

PBO = {"n_trials": 8, "n_days": 500, "n_splits": 16, "n_combinations": 12870,
       "oos_below_zero": 0.3, "metric": "Sharpe ratio of active returns vs buy-and-hold",
       "start": "2010-01-04", "end": "2011-12-30",
       "logit_histogram": {"edges": [-1.0, 0.0, 1.0], "counts": [3.0, 5.0]}}


@pytest.fixture
def ev(evaluation: EvaluationFile):
    """The real evaluation's ``enhanced`` variant as ``m``, with the figures the verdict
    reads set to chosen values (4 trials, 3 bps)."""
    def make(active_dsr: float | None, p: float | None, pbo: float | None = None,
             be: float | None = None) -> EvaluationFile:
        data: dict[str, Any] = evaluation.to_json()
        m = data["variants"]["enhanced"]
        data["variants"] = {"m": m}
        data["cost_bps"] = 3.0
        data["trials"] |= {"n": 4, "pbo": None if pbo is None else {**PBO, "pbo": pbo}}
        m["direction"] |= {"accuracy": 0.512, "accuracy_ci": [0.498, 0.526],
                           "always_up": 0.531}
        m["forecast"]["mcnemar_vs_always_up"]["p_value"] = 0.2
        m["metrics"]["strategy"] |= {"sharpe": 0.6, "dsr": 0.97}
        m["metrics"]["buy_and_hold"]["sharpe"] = 0.5
        rel = m["relative"]
        rel["buy_and_hold"] |= {"active_total": 0.1, "active_annual": 0.004,
                                "information_ratio": 0.3, "dsr": active_dsr,
                                "break_even_bps": be}
        rel["buy_and_hold"]["sharpe_difference"]["p_value"] = p
        rel["capm"] |= {"alpha_annual": 0.01, "alpha_t": 1.1, "beta": 0.8}
        m["break_even_bps"] = be
        return EvaluationFile.model_validate(data)
    return make


def test_a_high_absolute_dsr_is_not_enough(ev):
    """The finding on main: absolute DSR 0.93+ while nothing beats buy-and-hold."""
    v = verdict(ev(0.13, 0.74))
    assert not v.worth and v.headline.startswith("Not worth trading")
    lines = v.variants[0].lines
    assert lines[0] == ("active return vs buy-and-hold 10.0% in total, 0.4% a year, IR 0.30; "
                        "active DSR 0.130 over 4 trials — not significant (needs ≥ 0.95)")
    assert lines[1] == ("net Sharpe 0.60 vs buy-and-hold 0.50: difference p = 0.740 "
                        "(Ledoit-Wolf, one-sided) — not significant (needs < 0.05)")
    assert lines[2] == "alpha 1.0% a year (HAC t 1.10), beta 0.80"
    assert "McNemar p = 0.200" in lines[3]
    assert "absolute DSR 0.970" in lines[4] and "not used" in lines[4]
    assert lines[5] == "active return is negative even at zero cost: no break-even cost"


def test_significant_active_performance_is_worth_a_look(ev):
    v = verdict(ev(0.97, 0.01, be=12.34))
    assert v.worth and v.headline.startswith("Worth a closer look: m")
    assert v.headline.endswith("deflated over 4 trials.")
    assert v.variants[0].lines[-1] == "break-even cost 12.3 bps per unit traded (configured 3 bps)"


def test_each_condition_is_needed(ev):
    assert not verdict(ev(0.94, 0.001)).worth  # active DSR
    assert not verdict(ev(0.99, 0.06)).worth  # Sharpe difference
    assert not verdict(ev(0.99, 0.001, pbo=0.6)).worth  # overfit
    good = verdict(ev(0.99, 0.001, pbo=0.2))
    assert good.worth and any("overfitting 0.20 — acceptable" in x for x in
                              good.variants[0].lines)


def test_undefined_statistics_are_not_significant(ev):
    v = verdict(ev(None, None))
    assert not v.worth
    assert "active DSR n/a over 4 trials — not significant" in v.variants[0].lines[0]
    assert "difference p = n/a" in v.variants[0].lines[1]


def test_nothing_evaluated(evaluation):
    empty = evaluation.model_copy(update={"variants": {}})
    assert verdict(empty).headline == "Nothing was evaluated."
