"""The ranked long/short book: neutrality, exact turnover costs, the participation cap,
capacity, IC and quantile spreads."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import spearmanr

from finmlops.config import EvaluationSettings, PortfolioSettings
from finmlops.errors import DataValidationError
from finmlops.evaluation import (
    benchmark_returns,
    capacity_curve,
    evaluate_book,
    information_coefficient,
    quantile_returns,
    simulate,
    target_weights,
)

DATES = np.arange("2020-01-01", "2020-03-01", dtype="datetime64[D]").astype("datetime64[ns]")

scores_st = arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(2, 25)),
                   elements=st.one_of(st.floats(-5, 5), st.just(np.nan)))


@settings(max_examples=80, deadline=None)
@given(scores=scores_st, q=st.sampled_from([0.1, 0.2, 0.3, 0.5]),
       weighting=st.sampled_from(["equal", "volatility"]))
def test_dollar_neutral_book_nets_to_zero_with_gross_one(scores: np.ndarray, q: float,
                                                         weighting: str) -> None:
    vol = np.abs(np.nan_to_num(scores)) * 0.01 + 0.01
    w = target_weights(scores, quantile=q, weighting=weighting,  # type: ignore[arg-type]
                       neutral="dollar", volatility=vol)
    n = np.isfinite(scores).sum(axis=1)
    traded_days = n >= 2
    np.testing.assert_allclose(w.sum(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(np.abs(w).sum(axis=1)[traded_days], 1.0, atol=1e-12)
    assert (w[~np.isfinite(scores)] == 0).all()
    # longs are the highest scores: every long scores at least as high as every short
    for row, s in zip(w, scores, strict=True):
        if (row > 0).any() and (row < 0).any():
            assert s[row > 0].min() >= s[row < 0].max()


@settings(max_examples=60, deadline=None)
@given(scores=scores_st, beta=st.floats(0.2, 3.0), spread=st.floats(0.0, 0.95))
def test_beta_neutral_book_has_zero_beta(scores: np.ndarray, beta: float, spread: float) -> None:
    b = beta * (1 + spread * np.tanh(np.nan_to_num(scores)))  # high scores, high beta (> 0)
    w = target_weights(scores, quantile=0.3, neutral="beta", beta=b)
    np.testing.assert_allclose((w * b).sum(axis=1), 0.0, atol=1e-10)
    n = np.isfinite(scores).sum(axis=1)
    np.testing.assert_allclose(np.abs(w).sum(axis=1)[n >= 2], 1.0, atol=1e-12)


def test_beta_neutral_falls_back_to_dollar_neutral_when_a_leg_has_no_positive_beta() -> None:
    w = target_weights(np.array([[-1.0, 1.0]]), quantile=0.5, neutral="beta",
                       beta=np.array([[-0.3, 1.2]]))
    np.testing.assert_allclose(w, [[-0.5, 0.5]])


@settings(max_examples=60, deadline=None)
@given(scores=scores_st, data=st.data())
def test_sector_neutral_book_nets_to_zero_in_every_sector(scores: np.ndarray,
                                                          data: st.DataObject) -> None:
    sectors = np.array(data.draw(st.lists(st.integers(0, 2), min_size=scores.shape[1],
                                          max_size=scores.shape[1])))
    w = target_weights(scores, quantile=0.5, neutral="sector", sectors=sectors)
    for code in np.unique(sectors):
        np.testing.assert_allclose(w[:, sectors == code].sum(axis=1), 0.0, atol=1e-12)
    gross = np.abs(w).sum(axis=1)
    assert np.all((np.abs(gross - 1.0) < 1e-12) | (gross == 0.0))


def test_long_only_book_and_its_benchmark() -> None:
    scores = np.array([[1.0, 2.0, 3.0, 4.0, np.nan]])
    returns = np.array([[0.01, 0.02, 0.03, 0.04, 0.5]])
    w = target_weights(scores, quantile=0.5, neutral="long_only")
    np.testing.assert_allclose(w, [[0, 0, 0.5, 0.5, 0]])
    np.testing.assert_allclose(benchmark_returns("long_only", scores, returns), [0.025])
    np.testing.assert_allclose(benchmark_returns("dollar", scores, returns), [0.0])


@settings(max_examples=60, deadline=None)
@given(target=arrays(np.float64, st.tuples(st.integers(1, 8), st.integers(1, 6)),
                     elements=st.floats(-1, 1)),
       c=st.floats(0, 0.01), k=st.floats(0, 1))
def test_costs_are_exactly_the_traded_units_times_their_price(target: np.ndarray, c: float,
                                                              k: float) -> None:
    rng = np.random.default_rng(0)
    returns = rng.normal(0, 0.02, target.shape)
    sigma = rng.uniform(0.01, 0.05, target.shape)
    adv = rng.uniform(1e6, 1e8, target.shape)
    book = simulate(target, returns, dates=DATES[: target.shape[0]], cost_per_unit=c,
                    impact_coefficient=k, capital=1e7, volatility=sigma, adv=adv)
    trades = np.abs(np.diff(target, axis=0, prepend=0.0))
    impact = (trades * k * sigma * np.sqrt(trades * 1e7 / adv)).sum(axis=1)
    np.testing.assert_allclose(book.traded, trades.sum(axis=1), atol=1e-12)
    np.testing.assert_allclose(book.cost, c * trades.sum(axis=1) + impact, atol=1e-12)
    np.testing.assert_allclose(book.net, (target * returns).sum(axis=1) - book.cost, atol=1e-12)


def test_participation_cap_limits_every_trade_and_the_book_catches_up() -> None:
    target = np.array([[0.5, -0.5]] * 6)
    adv = np.full(target.shape, 1e6)
    book = simulate(target, np.zeros_like(target), dates=DATES[:6], cost_per_unit=0.0,
                    capital=1e7, participation=0.1, volatility=np.full(target.shape, 0.02),
                    adv=adv)
    step = 0.1 * 1e6 / 1e7  # 1% of the book per day
    trades = np.abs(np.diff(book.weights, axis=0, prepend=0.0))
    assert trades.max() <= step + 1e-15
    np.testing.assert_allclose(book.weights[-1], [6 * step, -6 * step])
    assert book.unfilled[0] > book.unfilled[-1] > 0


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.floats(0.01, 2.0))
def test_capacity_mean_net_return_never_rises_with_capital(seed: int, k: float) -> None:
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(40, 12))
    returns = rng.normal(0.0, 0.02, scores.shape) + 0.002 * scores
    target = target_weights(scores, quantile=0.25)
    rows = capacity_curve(target, returns, dates=DATES[:40], capitals=[1e9, 1e5, 1e7, 1e11],
                          cost_per_unit=2e-4, impact_coefficient=k, participation=None,
                          volatility=np.full(scores.shape, 0.02),
                          adv=rng.uniform(1e6, 1e8, scores.shape))
    assert [r["capital"] for r in rows] == [1e5, 1e7, 1e9, 1e11]
    means = [r["mean_net"] for r in rows]
    assert all(a >= b for a, b in itertools.pairwise(means))
    assert means[0] > means[-1]


def test_information_coefficient_is_the_daily_spearman_correlation() -> None:
    rng = np.random.default_rng(3)
    s = rng.normal(size=(20, 30))
    r = 0.3 * s + rng.normal(size=s.shape)
    s[0, :5] = np.nan
    r[1, 3] = np.nan
    ic = information_coefficient(s, r)
    for t in range(20):
        ok = np.isfinite(s[t]) & np.isfinite(r[t])
        assert ic[t] == pytest.approx(spearmanr(s[t, ok], r[t, ok]).statistic, abs=1e-12)


def test_quantile_returns_bucket_by_score() -> None:
    s = np.array([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]])
    r = np.array([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6]])
    np.testing.assert_allclose(quantile_returns(s, r, 3), [[0.15, 0.35, 0.55]])


def test_evaluate_book_finds_a_planted_signal_and_reports_every_figure() -> None:
    rng = np.random.default_rng(11)
    t, n = 500, 60
    signal = rng.normal(size=(t, n))
    market = rng.normal(0.0004, 0.01, t)
    returns = market[:, None] + 0.004 * signal + rng.normal(0, 0.02, (t, n))
    dates = np.arange("2019-01-01", t, dtype="datetime64[D]").astype("datetime64[ns]")
    dates = (np.datetime64("2019-01-01") + np.arange(t).astype("timedelta64[D]")).astype(
        "datetime64[ns]")
    rep = evaluate_book(signal, returns, dates=dates, market=market,
                        portfolio=PortfolioSettings(capacity_capitals=[1e6, 1e9]),
                        evaluation=EvaluationSettings(),
                        volatility=np.full((t, n), 0.02), adv=np.full((t, n), 5e7))
    f = rep.figures
    assert f["ic"]["mean"] > 0.1 and f["ic"]["t"] > 5
    assert f["quantiles"]["spread"]["t"] > 5
    assert f["metrics"]["sharpe"] > 3
    assert abs(f["capm"]["beta"]) < 0.1  # dollar-neutral: the market cancels
    assert f["relative"]["active_total"] == pytest.approx(f["metrics"]["total_return"])
    assert f["capacity"][0]["net_sharpe"] > f["capacity"][1]["net_sharpe"]
    noise = evaluate_book(rng.normal(size=(t, n)), returns, dates=dates, market=market,
                          portfolio=PortfolioSettings(), evaluation=EvaluationSettings(),
                          capacity=False)
    assert abs(noise.figures["ic"]["t"]) < 3.5
    assert rep.trial_returns().shape == (t, 4)


def test_bad_shapes_and_options_are_refused() -> None:
    with pytest.raises(DataValidationError, match="panel"):
        target_weights(np.zeros(3))
    with pytest.raises(DataValidationError, match="quantile"):
        target_weights(np.zeros((2, 3)), quantile=0.7)
    with pytest.raises(DataValidationError, match="sectors"):
        target_weights(np.zeros((2, 3)), neutral="sector")
