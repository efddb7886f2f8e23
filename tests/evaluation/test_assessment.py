"""The whole evaluation of OOS predictions, as the evaluate stage writes it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from finmlops.config import EvaluationSettings
from finmlops.errors import DataValidationError
from finmlops.evaluation import (
    buy_and_hold,
    evaluate_predictions,
    run_backtest,
    summarize,
    total_return_at,
)


def test_single_ticker_matches_a_direct_backtest(predictions):
    s = EvaluationSettings()
    out = evaluate_predictions({"baseline": predictions}, s)
    v = out["variants"]["baseline"]
    direct = run_backtest(predictions["probability"], predictions["forward_return"], s)
    assert v["metrics"]["strategy"]["total_return"] == pytest.approx(direct.equity[-1] - 1,
                                                                     rel=1e-12)
    bh = buy_and_hold(predictions["forward_return"])
    assert v["metrics"]["buy_and_hold"]["total_return"] == pytest.approx(bh.equity[-1] - 1)
    # always-long pays exactly one entry cost more than buy-and-hold
    r = predictions["forward_return"].to_numpy()
    assert v["metrics"]["always_long"]["total_return"] == pytest.approx(
        (1 + r[0] - 3e-4) * np.prod(1 + r[1:]) - 1, rel=1e-12)
    assert out["trials"]["n"] == 1 and out["trials"]["source"] == "variants"
    assert out["trials"]["sr_variance"] is None
    assert "null variance" in out["trials"]["sr_variance_source"]
    assert out["notes"] and "number of variants" in out["notes"][0]
    json.dumps(out)  # plain JSON-able data


def test_break_even_and_sweep_in_the_output(predictions):
    out = evaluate_predictions({"a": predictions}, EvaluationSettings())
    v = out["variants"]["a"]
    direct = run_backtest(predictions["probability"], predictions["forward_return"],
                          EvaluationSettings())
    if v["break_even_bps"] is not None:
        assert total_return_at(direct, v["break_even_bps"] / 1e4) == pytest.approx(
            v["metrics"]["buy_and_hold"]["total_return"], abs=1e-9)
    assert [r["cost_bps"] for r in v["cost_sweep"]] == EvaluationSettings().cost_sweep_bps
    assert v["stress"]["gfc_2008"]["strategy"]["days"] > 100
    assert v["stress"]["bear_2022"] == {"strategy": None, "buy_and_hold": None,
                                        "always_long": None}


def test_trials_from_the_tracking_store_deflate_more(predictions):
    s = EvaluationSettings()
    other = predictions.assign(probability=np.clip(predictions["probability"] + 0.03, 0, 1))
    two = evaluate_predictions({"a": predictions, "b": other}, s)
    many = evaluate_predictions({"a": predictions, "b": other}, s, n_trials=50,
                                trials_source="tracking")
    assert two["trials"]["n"] == 2 and many["trials"]["source"] == "tracking"
    assert many["trials"]["sr_variance"] == two["trials"]["sr_variance"] > 0
    m2 = two["variants"]["a"]["metrics"]["strategy"]
    m50 = many["variants"]["a"]["metrics"]["strategy"]
    assert m50["dsr"] < m2["dsr"] <= m2["psr"]
    assert summarize(many)["a"]["dsr"] == m50["dsr"]
    bh = many["variants"]["a"]["metrics"]["buy_and_hold"]
    assert bh["dsr"] == bh["psr"] and bh["n_trials"] == 1  # benchmarks are not trials
    gfc = many["variants"]["a"]["stress"]["gfc_2008"]
    assert gfc["strategy"]["n_trials"] == 50 and gfc["always_long"]["n_trials"] == 1


def test_universe_is_equal_weight_per_day(make_preds):
    a = make_preds(300, seed=1, ticker="AAA")
    b = make_preds(300, seed=2, ticker="BBB").iloc[50:]
    s = EvaluationSettings()
    out = evaluate_predictions({"u": pd.concat([b, a])}, s)
    v = out["variants"]["u"]
    assert v["tickers"] == ["AAA", "BBB"] and v["days"] == 300
    ra = run_backtest(a["probability"], a["forward_return"], s).net
    rb = run_backtest(b["probability"], b["forward_return"], s).net
    port = np.r_[ra[:50], (ra[50:] + rb) / 2]
    assert v["metrics"]["strategy"]["total_return"] == pytest.approx(np.prod(1 + port) - 1,
                                                                     rel=1e-12)


def test_rows_without_forward_return_are_dropped_and_counted(predictions):
    predictions.loc[len(predictions) - 1, "forward_return"] = np.nan
    out = evaluate_predictions({"a": predictions}, EvaluationSettings())
    assert out["variants"]["a"]["dropped_rows"] == 1
    assert out["variants"]["a"]["days"] == len(predictions) - 1


def test_direction_summary_has_ci_and_naive_baselines(predictions):
    d = evaluate_predictions({"a": predictions}, EvaluationSettings())["variants"]["a"]["direction"]
    acc = ((predictions["probability"] > 0.5) == predictions["label"]).mean()
    assert d["accuracy"] == pytest.approx(acc)
    assert d["accuracy_ci"][0] < acc < d["accuracy_ci"][1]
    assert d["always_up"] == pytest.approx(predictions["label"].mean())
    assert sum(b["count"] for b in d["reliability"]) == len(predictions)


def test_bad_predictions_raise_typed_errors(predictions):
    with pytest.raises(DataValidationError, match="lack columns: label"):
        evaluate_predictions({"a": predictions.drop(columns="label")}, EvaluationSettings())
    with pytest.raises(DataValidationError, match="repeat"):
        evaluate_predictions({"a": pd.concat([predictions, predictions])}, EvaluationSettings())


def test_identical_variants_are_still_deflated_by_the_trial_count(predictions):
    # Two variants with the same Sharpe ratio have zero spread; 50 tracked trials must still
    # raise the bar above SR 0 (before, the DSR then equalled the undeflated PSR).
    out = evaluate_predictions({"a": predictions, "b": predictions.copy()},
                               EvaluationSettings(), n_trials=50, trials_source="tracking")
    assert out["trials"]["sr_variance"] == 0.0
    assert "null variance" in out["trials"]["sr_variance_source"]
    m = out["variants"]["a"]["metrics"]["strategy"]
    assert m["dsr_benchmark_sharpe"] > 0.0 and m["dsr"] < m["psr"]
    # stress windows are deflated by their own (shorter, noisier) length
    gfc = out["variants"]["a"]["stress"]["gfc_2008"]["strategy"]
    assert gfc["dsr_benchmark_sharpe"] > m["dsr_benchmark_sharpe"]
