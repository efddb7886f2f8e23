"""Cross-sectional features and neutral labels: per-day ranks and z-scores, no look-ahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import rankdata
from tests.features.conftest import random_walk_bars

from finmlops.errors import DataValidationError
from finmlops.features import (
    CS_PREFIX,
    RAW_TARGET,
    all_universe_features,
    cross_sectional,
    neutral_target,
    universe_feature_names,
    universe_frame,
)


def _panel(values: np.ndarray) -> pd.DataFrame:
    t, n = values.shape
    return pd.DataFrame({"date": np.repeat(pd.bdate_range("2020-01-01", periods=t), n),
                         "ticker": np.tile([f"T{i}" for i in range(n)], t),
                         "x": values.ravel()})


@given(st.lists(st.lists(st.one_of(st.none(), st.integers(-3, 3)), min_size=1, max_size=7),
                min_size=1, max_size=5))
def test_rank_is_the_centred_average_rank_of_each_day(rows: list[list[int | None]]) -> None:
    width = max(len(r) for r in rows)
    values = np.array([[np.nan if v is None else float(v) for v in r + [None] * (width - len(r))]
                       for r in rows])
    out = cross_sectional(_panel(values), ["x"], "rank")[CS_PREFIX + "x"].to_numpy()
    got = out.reshape(values.shape)
    for day, row in enumerate(values):
        ok = np.isfinite(row)
        assert np.isnan(got[day][~ok]).all()
        if ok.sum() == 1:
            assert got[day][ok][0] == 0.0
        elif ok.sum() > 1:
            expect = (rankdata(row[ok]) - 1) / (ok.sum() - 1) - 0.5
            np.testing.assert_allclose(got[day][ok], expect, atol=1e-12)


def test_zscore_has_zero_mean_and_unit_spread_per_day() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(3.0, 2.0, (30, 40))
    out = cross_sectional(_panel(values), ["x"], "zscore")[CS_PREFIX + "x"].to_numpy()
    z = out.reshape(values.shape)
    np.testing.assert_allclose(z.mean(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(z.std(axis=1, ddof=1), 1.0, atol=1e-12)


def test_a_ticker_twice_in_one_day_is_refused() -> None:
    frame = pd.DataFrame({"date": pd.to_datetime(["2020-01-02"] * 2), "ticker": ["A", "A"],
                          "x": [1.0, 2.0]})
    with pytest.raises(DataValidationError, match="twice"):
        cross_sectional(frame, ["x"])


def test_neutral_targets() -> None:
    dates = pd.Series(pd.to_datetime(["2020-01-02"] * 4 + ["2020-01-03"] * 2))
    fwd = pd.Series([0.01, 0.03, -0.02, 0.06, 0.0, 0.02])
    sectors = pd.Series(["a", "a", "b", "b", "a", "b"])
    market = neutral_target(fwd, dates, "market_neutral")
    np.testing.assert_allclose(market, [-0.01, 0.01, -0.04, 0.04, -0.01, 0.01], atol=1e-15)
    sector = neutral_target(fwd, dates, "sector_neutral", sectors)
    np.testing.assert_allclose(sector, [-0.01, 0.01, -0.04, 0.04, 0.0, 0.0], atol=1e-15)
    rank = neutral_target(fwd, dates, "rank")
    np.testing.assert_allclose(rank, [-1 / 6, 1 / 6, -0.5, 0.5, -0.5, 0.5], atol=1e-15)


def _universe_bars() -> pd.DataFrame:
    days = pd.bdate_range("2018-01-01", "2018-09-28")
    return pd.concat([random_walk_bars("MKT", days, 0, 250.0)]
                     + [random_walk_bars(f"S{i}", days if i != 3 else days[40:], i + 1,
                                         10.0 * (i + 1)) for i in range(5)],
                     ignore_index=True)


BARS = _universe_bars()
TICKERS = [f"S{i}" for i in range(5)]


def test_universe_frame_columns_and_labels() -> None:
    fm = universe_frame(BARS, TICKERS, ["MKT"], sectors={"S0": "x", "S1": "x"})
    f = fm.frame
    assert set(all_universe_features(["MKT"])) <= set(f.columns)
    assert set(universe_feature_names("cs", ["MKT"])) <= set(f.columns)
    assert f.loc[f["ticker"] == "S0", "sector"].eq("x").all()
    assert f.loc[f["ticker"] == "S4", "sector"].eq("Unknown").all()
    day_mean = f.groupby("date")["forward_return"].mean().dropna()
    np.testing.assert_allclose(day_mean, 0.0, atol=1e-15)  # market-neutral target
    known = f["forward_return"].notna()
    assert (f.loc[known, "label"] == (f.loc[known, "forward_return"] > 0)).all()
    assert f[RAW_TARGET].notna().sum() == known.sum()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut=st.integers(80, 180), seed=st.integers(0, 10_000), method=st.sampled_from(
    ["rank", "zscore"]))
def test_a_feature_on_day_t_never_changes_when_a_value_after_t_changes(
        cut: int, seed: int, method: str) -> None:
    days = np.sort(BARS["date"].unique())
    day = pd.Timestamp(days[cut])
    changed = BARS.copy()
    after = changed["date"] > day
    rng = np.random.default_rng(seed)
    factor = np.exp(rng.normal(0, 0.2, after.sum()))
    for col in ("open", "high", "low", "close", "adj_close"):
        changed.loc[after, col] = changed.loc[after, col] * factor
    changed.loc[after, "volume"] = rng.integers(1, 10**8, after.sum())
    names = all_universe_features(["MKT"])
    a = universe_frame(BARS, TICKERS, ["MKT"], method=method).frame  # type: ignore[arg-type]
    b = universe_frame(changed, TICKERS, ["MKT"], method=method).frame  # type: ignore[arg-type]
    a, b = a[a["date"] <= day], b[b["date"] <= day]
    assert len(a) == len(b) and len(a) > 0
    np.testing.assert_array_equal(a[names].to_numpy(), b[names].to_numpy())
