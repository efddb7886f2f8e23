"""The verdict at the top of the report, from the numbers."""

from __future__ import annotations

from finmlops.report import verdict


def _ev(acc, ci, up, sr, bh_sr, dsr, be=None):
    return {"cost_bps": 3.0, "trials": {"n": 4}, "variants": {"m": {
        "direction": {"accuracy": acc, "accuracy_ci": ci, "always_up": up},
        "metrics": {"strategy": {"sharpe": sr, "dsr": dsr, "total_return": 0.5},
                    "buy_and_hold": {"sharpe": bh_sr, "total_return": 0.4}},
        "break_even_bps": be}}}


def test_indistinguishable_accuracy_is_not_worth_trading():
    v = verdict(_ev(0.512, [0.498, 0.526], 0.531, 0.4, 0.55, 0.31))
    assert not v.worth and v.headline.startswith("Not worth trading")
    lines = v.variants[0].lines
    assert lines[0] == "accuracy 51.2% [49.8%, 52.6%] — below always-up 53.1%"
    assert "net Sharpe 0.40 vs buy-and-hold 0.55" in lines[1]
    assert "0.310 over 4 trials — not significant" in lines[2]
    assert lines[3] == "never beats buy-and-hold, even at zero cost"


def test_every_test_passed_is_worth_a_look():
    v = verdict(_ev(0.56, [0.545, 0.575], 0.53, 1.2, 0.5, 0.97, 12.34))
    assert v.worth and v.headline.startswith("Worth a closer look: m")
    assert "above always-up" in v.variants[0].lines[0]
    assert v.variants[0].lines[3] == "break-even cost 12.3 bps per unit traded (configured 3 bps)"


def test_one_failing_test_is_enough_to_say_no():
    assert not verdict(_ev(0.56, [0.545, 0.575], 0.53, 1.2, 0.5, 0.90)).worth  # DSR
    assert not verdict(_ev(0.56, [0.545, 0.575], 0.53, 0.4, 0.5, 0.99)).worth  # Sharpe
    assert not verdict(_ev(0.54, [0.52, 0.56], 0.53, 1.2, 0.5, 0.99)).worth  # CI spans


def test_missing_numbers_do_not_break_it():
    v = verdict({"variants": {"x": {}}})
    assert not v.worth and v.variants[0].lines
    assert verdict({}).headline == "Nothing was evaluated."
