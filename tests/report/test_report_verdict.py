"""The verdict at the top of the report: significance against buy-and-hold decides."""

from __future__ import annotations

from finmlops.report import verdict


def _ev(active_dsr, p, pbo=None, acc=0.512, ci=(0.498, 0.526), up=0.531, be=None):
    return {"cost_bps": 3.0, "settings": {"alpha": 0.05},
            "trials": {"n": 4, "pbo": None if pbo is None else {"pbo": pbo}},
            "variants": {"m": {
                "direction": {"accuracy": acc, "accuracy_ci": list(ci), "always_up": up},
                "forecast": {"mcnemar_vs_always_up": {"p_value": 0.2}},
                "metrics": {"strategy": {"sharpe": 0.6, "dsr": 0.97, "total_return": 0.5},
                            "buy_and_hold": {"sharpe": 0.5, "total_return": 0.4}},
                "relative": {"buy_and_hold": {"active_total": 0.1, "active_annual": 0.004,
                                              "information_ratio": 0.3, "dsr": active_dsr,
                                              "sharpe_difference": {"p_value": p},
                                              "break_even_bps": be},
                             "capm": {"alpha_annual": 0.01, "alpha_t": 1.1, "beta": 0.8}},
                "break_even_bps": be}}}


def test_a_high_absolute_dsr_is_not_enough():
    """The finding on main: absolute DSR 0.93+ while nothing beats buy-and-hold."""
    v = verdict(_ev(0.13, 0.74))
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


def test_significant_active_performance_is_worth_a_look():
    v = verdict(_ev(0.97, 0.01, be=12.34))
    assert v.worth and v.headline.startswith("Worth a closer look: m")
    assert v.headline.endswith("deflated over 4 trials.")
    assert v.variants[0].lines[-1] == "break-even cost 12.3 bps per unit traded (configured 3 bps)"


def test_each_condition_is_needed():
    assert not verdict(_ev(0.94, 0.001)).worth  # active DSR
    assert not verdict(_ev(0.99, 0.06)).worth  # Sharpe difference
    assert not verdict(_ev(0.99, 0.001, pbo=0.6)).worth  # overfit
    good = verdict(_ev(0.99, 0.001, pbo=0.2))
    assert good.worth and any("overfitting 0.20 — acceptable" in x for x in
                              good.variants[0].lines)


def test_missing_numbers_do_not_break_it():
    v = verdict({"variants": {"x": {}}})
    assert not v.worth and v.variants[0].lines
    assert verdict({}).headline == "Nothing was evaluated."
