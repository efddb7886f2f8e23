"""The whole evaluation of OOS predictions, as the evaluate stage writes it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from finmlops.config import EvaluationSettings
from finmlops.errors import DataValidationError
from finmlops.evaluation import (
    Trials,
    TrialStats,
    backtests_for,
    buy_and_hold,
    clean_predictions,
    evaluate_predictions,
    run_backtest,
    summarize,
    trial_returns,
)


def test_single_ticker_matches_a_direct_backtest(predictions):
    s = EvaluationSettings()
    out = evaluate_predictions({"baseline": predictions}, s)
    v = out.variants["baseline"]
    direct = run_backtest(predictions["probability"], predictions["forward_return"], s)
    assert v.metrics["strategy"].total_return == pytest.approx(direct.equity[-1] - 1,
                                                                     rel=1e-12)
    bh = buy_and_hold(predictions["forward_return"])
    assert v.metrics["buy_and_hold"].total_return == pytest.approx(bh.equity[-1] - 1)
    # always-long pays exactly one entry cost more than buy-and-hold
    r = predictions["forward_return"].to_numpy()
    assert v.metrics["always_long"].total_return == pytest.approx(
        (1 + r[0] - 3e-4) * np.prod(1 + r[1:]) - 1, rel=1e-12)
    # exposure-matched holds buy-and-hold at the strategy's mean position
    e = direct.position.mean()
    assert v.relative.exposure == pytest.approx(e)
    assert v.metrics["exposure_matched"].total_return == pytest.approx(
        np.prod(1 + e * r) - 1, rel=1e-12)
    assert out.trials.n == 1 and out.trials.source == "variants"
    assert out.trials.sr_variance is None
    assert "null variance" in out.trials.sr_variance_source
    assert out.notes and "variants evaluated" in out.notes[0]
    assert out.execution.setting == "next_open"
    json.dumps(out.to_json(), allow_nan=False)  # plain, valid JSON


def test_active_statistics_against_buy_and_hold(predictions):
    s = EvaluationSettings()
    v = evaluate_predictions({"a": predictions}, s).variants["a"]
    strat = run_backtest(predictions["probability"], predictions["forward_return"], s)
    r = predictions["forward_return"].to_numpy()
    active = strat.net - r
    rel = v.relative.buy_and_hold
    assert rel.active_total == pytest.approx(strat.equity[-1] / np.prod(1 + r) - 1)
    assert rel.active_annual == pytest.approx(active.mean() * 252)
    assert rel.information_ratio == pytest.approx(active.mean() / active.std(ddof=1)
                                                     * np.sqrt(252))
    assert rel.sharpe_per_period == pytest.approx(active.mean() / active.std(ddof=1))
    assert rel.dsr == pytest.approx(rel.psr)  # one trial: nothing to deflate
    capm = v.relative.capm
    assert capm.alpha_annual == pytest.approx(252 * capm.alpha)
    assert 0 < capm.beta < 1 and capm.lags == 5  # floor(4 (600/100)^(2/9)) = 5
    assert v.forecast.mcnemar_vs_always_up.n == len(predictions)
    dm = v.forecast.diebold_mariano
    assert dm.coin.n == dm.base_rate.n == len(predictions)  # one ticker: a row a day
    assert v.dsr_by_trials.trials == [1, 2, 10, 50, 100]
    dsr = v.dsr_by_trials.absolute
    assert dsr == sorted(dsr, reverse=True)  # more trials, a higher bar


def test_break_even_cost_brings_mean_active_return_to_zero(make_preds):
    s = EvaluationSettings()
    p = make_preds(1500, seed=4, edge=0.45)  # enough skill to beat buy-and-hold at 0 cost
    v = evaluate_predictions({"a": p}, s).variants["a"]
    be = v.relative.buy_and_hold.break_even_bps
    assert be is not None and be > 0 and v.break_even_bps == be
    strat = run_backtest(p["probability"], p["forward_return"], s)
    r = p["forward_return"].to_numpy()
    at = strat.repriced(be / 1e4)
    assert (at.net - r).mean() == pytest.approx(0.0, abs=1e-15)
    assert (strat.repriced((be - 0.1) / 1e4).net - r).mean() > 0
    assert [row.cost_bps for row in v.cost_sweep] == s.cost_sweep_bps
    assert v.stress["gfc_2008"]["strategy"].days > 100


def test_no_break_even_when_active_return_is_negative_at_zero_cost(make_preds):
    p = make_preds(800, seed=1, edge=0.0)
    p["probability"] = 0.4  # always flat: it earns nothing while the market rises
    v = evaluate_predictions({"a": p}, EvaluationSettings()).variants["a"]
    assert v.relative.buy_and_hold.break_even_bps is None


def test_stress_window_active_returns_are_compounded(predictions):
    v = evaluate_predictions({"a": predictions}, EvaluationSettings()).variants["a"]
    row = v.stress["gfc_2008"]
    expected = (1 + row["strategy"].total_return) / (1 + row["buy_and_hold"].total_return)
    assert v.stress_active["gfc_2008"]["buy_and_hold"] == pytest.approx(expected - 1)
    assert v.stress_active["bear_2022"] == {"buy_and_hold": None, "exposure_matched": None}
    lines = ("strategy", "buy_and_hold", "always_long", "exposure_matched")
    assert v.stress["bear_2022"] == dict.fromkeys(lines)


def test_ledger_trials_deflate_more(predictions):
    s = EvaluationSettings()
    other = predictions.assign(probability=np.clip(predictions["probability"] + 0.03, 0, 1))
    two = evaluate_predictions({"a": predictions, "b": other}, s)
    stats = TrialStats(n_trials=50, recorded=50, prior=0,
                       sr_variance=two.trials.sr_variance,
                       active_sr_variance=two.trials.active_sr_variance)
    many = evaluate_predictions({"a": predictions, "b": other}, s,
                                trials=Trials(stats, "ledger", ["50 trials"], None, "n/a"))
    assert two.trials.n == 2 and many.trials.source == "ledger"
    assert many.trials.counted == ["50 trials"]
    m2 = two.variants["a"].metrics["strategy"]
    m50 = many.variants["a"].metrics["strategy"]
    assert m50.dsr < m2.dsr <= m2.psr
    a2 = two.variants["a"].relative.buy_and_hold
    a50 = many.variants["a"].relative.buy_and_hold
    assert a50.dsr < a2.dsr <= a2.psr and a50.n_trials == 50
    assert summarize(many)["a"].dsr == m50.dsr
    assert summarize(many)["a"].active_dsr == a50.dsr
    bh = many.variants["a"].metrics["buy_and_hold"]
    assert bh.dsr == bh.psr and bh.n_trials == 1  # benchmarks are not trials
    gfc = many.variants["a"].stress["gfc_2008"]
    assert gfc["strategy"].n_trials == 50 and gfc["always_long"].n_trials == 1


def test_risk_free_rate_is_earned_while_flat_and_removed_from_sharpe(predictions):
    s = EvaluationSettings()
    rf = pd.Series(1e-4, index=pd.DatetimeIndex(predictions["date"]))
    with_rf = evaluate_predictions({"a": predictions}, s, rf=rf).variants["a"]
    plain = evaluate_predictions({"a": predictions}, s).variants["a"]
    strat = run_backtest(predictions["probability"], predictions["forward_return"], s,
                         rf=np.full(len(predictions), 1e-4))
    m = with_rf.metrics["strategy"]
    assert m.total_return == pytest.approx(strat.equity[-1] - 1, rel=1e-12)
    assert m.total_return > plain.metrics["strategy"].total_return
    excess = strat.net - 1e-4
    assert m.sharpe_per_period == pytest.approx(excess.mean() / excess.std(ddof=1))
    with pytest.raises(DataValidationError, match="risk-free series"):
        evaluate_predictions({"a": predictions}, s, rf=rf.iloc[10:])


def test_trial_returns_are_what_the_ledger_keeps(predictions):
    frame, _ = clean_predictions(predictions)
    runs = backtests_for(frame, EvaluationSettings())
    tr = trial_returns(runs)
    assert list(tr.columns) == ["date", "net", "benchmark", "rf"]
    np.testing.assert_array_equal(tr["net"], runs["strategy"].net)
    np.testing.assert_array_equal(tr["benchmark"], frame["forward_return"])
    assert (tr["rf"] == 0).all()


def test_universe_is_equal_weight_per_day(make_preds):
    a = make_preds(300, seed=1, ticker="AAA")
    b = make_preds(300, seed=2, ticker="BBB").iloc[50:]
    s = EvaluationSettings()
    out = evaluate_predictions({"u": pd.concat([b, a])}, s)
    v = out.variants["u"]
    assert v.tickers == ["AAA", "BBB"] and v.days == 300
    ra = run_backtest(a["probability"], a["forward_return"], s).net
    rb = run_backtest(b["probability"], b["forward_return"], s).net
    port = np.r_[ra[:50], (ra[50:] + rb) / 2]
    assert v.metrics["strategy"].total_return == pytest.approx(np.prod(1 + port) - 1,
                                                                     rel=1e-12)


def test_rows_without_forward_return_are_dropped_and_counted(predictions):
    predictions.loc[len(predictions) - 1, "forward_return"] = np.nan
    out = evaluate_predictions({"a": predictions}, EvaluationSettings())
    assert out.variants["a"].dropped_rows == 1
    assert out.variants["a"].days == len(predictions) - 1


def test_direction_summary_has_ci_and_naive_baselines(predictions):
    d = evaluate_predictions({"a": predictions}, EvaluationSettings()).variants["a"].direction
    acc = ((predictions["probability"] > 0.5) == predictions["label"]).mean()
    assert d.accuracy == pytest.approx(acc)
    assert d.accuracy_ci[0] < acc < d.accuracy_ci[1]
    assert d.always_up == pytest.approx(predictions["label"].mean())
    assert sum(b.count for b in d.reliability) == len(predictions)


def test_bad_predictions_raise_typed_errors(predictions):
    with pytest.raises(DataValidationError, match="lack columns: label"):
        evaluate_predictions({"a": predictions.drop(columns="label")}, EvaluationSettings())
    with pytest.raises(DataValidationError, match="repeat"):
        evaluate_predictions({"a": pd.concat([predictions, predictions])}, EvaluationSettings())


def test_identical_variants_are_still_deflated_by_the_trial_count(predictions):
    # Two variants with the same Sharpe ratio have zero spread; 50 trials must still raise
    # the bar above SR 0 (before, the DSR then equalled the undeflated PSR).
    stats = TrialStats(50, 2, 48, 0.0, 0.0)
    out = evaluate_predictions({"a": predictions, "b": predictions.copy()},
                               EvaluationSettings(), trials=Trials(stats, "ledger"))
    assert out.trials.sr_variance == 0.0
    m = out.variants["a"].metrics["strategy"]
    assert m.dsr_benchmark_sharpe > 0.0 and m.dsr < m.psr
    gfc = out.variants["a"].stress["gfc_2008"]["strategy"]
    assert gfc.dsr_benchmark_sharpe > m.dsr_benchmark_sharpe
