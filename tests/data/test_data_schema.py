"""Bar validation collects every violation; versions hash content, not order or file bytes."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finmlops.data import canonical, content_version, find_violations, validate_bars
from finmlops.errors import DataValidationError


def test_valid_bars_become_canonical(make_bars: Callable[..., pd.DataFrame]) -> None:
    bars = make_bars([("SPY", "2020-01-03", 10.0), ("IBB", "2020-01-02", 5.0),
                      ("IBB", "2020-01-03", 6.0)])
    out = validate_bars(bars)
    assert list(out["ticker"]) == ["IBB", "IBB", "SPY"]
    assert out["date"].dtype == np.dtype("datetime64[ns]")
    assert out["volume"].dtype == np.dtype("int64")
    assert out["close"].dtype == np.dtype("float64")
    assert pd.api.types.is_string_dtype(out["ticker"])
    assert list(out.index) == [0, 1, 2]


def test_all_violations_are_collected(make_bars: Callable[..., pd.DataFrame]) -> None:
    bars = make_bars([("IBB", f"2020-01-{d:02d}", 10.0) for d in range(2, 16)])
    bars.index = bars.index + 2  # source line numbers
    bars.loc[3, "close"] = -1.0            # negative price, and below low
    bars.loc[5, ["high", "low"]] = [9.0, 11.0]  # high < low
    bars.loc[7, "date"] = bars.loc[6, "date"]   # duplicate day
    bars.loc[9, "volume"] = -5
    bars.loc[10, "open"] = np.nan
    bars.loc[12, "date"] = pd.Timestamp("2019-12-31")  # goes back in time
    violations = find_violations(bars)
    found = {(v.row, v.rule) for v in violations}
    assert {(3, "close <= 0"), (3, "close < low"), (5, "high < low"), (5, "open < low"),
            (5, "close > high"), (7, "duplicate (ticker, date)"), (9, "volume < 0"),
            (10, "open is missing")} <= found
    assert (12, "date is before the previous row's date (not ascending)") in found
    assert [v.row for v in violations] == sorted(v.row for v in violations)
    with pytest.raises(DataValidationError) as info:
        validate_bars(bars, source="test.csv")
    assert info.value.violations == [str(v) for v in violations]
    assert info.value.message.startswith(f"{len(violations)} violations in test.csv: row 3 ")
    assert "\n" not in info.value.message


def test_message_lists_ten_and_counts_the_rest(make_bars: Callable[..., pd.DataFrame]) -> None:
    bars = make_bars([("IBB", f"2020-02-{d:02d}", 10.0) for d in range(1, 26)])
    bars["volume"] = -1
    with pytest.raises(DataValidationError) as info:
        validate_bars(bars)
    msg = info.value.message
    assert msg.count("volume < 0") == 10 and msg.endswith("... and 15 more")
    assert len(info.value.violations) == 25


def test_types_and_missing_columns() -> None:
    raw = pd.DataFrame({"ticker": ["IBB"], "date": ["2020-13-01"], "open": ["abc"],
                        "high": ["2"], "low": ["1"], "close": ["1.5"], "adj_close": ["1.5"],
                        "volume": ["10.5"]})
    rules = {v.rule for v in find_violations(raw)}
    assert rules == {"date is missing or not a YYYY-MM-DD date", "open is not a number",
                     "volume is not a whole number"}
    raw["ticker"] = "BRK/B"
    assert "ticker is not 1-20 of A-Z 0-9 . - ^ =" in {v.rule for v in find_violations(raw)}
    assert [v.rule for v in find_violations(raw.drop(columns=["volume", "low"]))] == [
        "missing column(s): low, volume"]


_day = st.integers(min_value=0, max_value=3000)
_price = st.floats(min_value=0.01, max_value=1e5, allow_nan=False, allow_infinity=False)


@st.composite
def bar_sets(draw: st.DrawFn) -> pd.DataFrame:
    keys = draw(st.lists(st.tuples(st.sampled_from(["IBB", "SPY", "QQQ"]), _day),
                         min_size=1, max_size=30, unique=True))
    closes = draw(st.lists(_price, min_size=len(keys), max_size=len(keys)))
    vols = draw(st.lists(st.integers(0, 10**12), min_size=len(keys), max_size=len(keys)))
    base = pd.Timestamp("2000-01-03")
    return pd.DataFrame({
        "ticker": [k[0] for k in keys],
        "date": [base + pd.Timedelta(days=k[1]) for k in keys],
        "open": closes, "high": [c * 1.5 for c in closes], "low": [c / 2 for c in closes],
        "close": closes, "adj_close": closes, "volume": vols,
    })


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bars=bar_sets(), seed=st.integers(0, 2**32 - 1))
def test_version_is_order_independent(bars: pd.DataFrame, seed: int) -> None:
    shuffled = bars.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    assert content_version(shuffled) == content_version(bars)
    assert content_version(canonical(bars)) == content_version(bars)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bars=bar_sets(), data=st.data())
def test_version_is_content_sensitive(bars: pd.DataFrame, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(bars) - 1))
    col = data.draw(st.sampled_from(["open", "high", "low", "close", "adj_close", "volume",
                                     "date", "ticker"]))
    changed = bars.copy()
    if col == "volume":
        changed.loc[i, col] = int(changed.loc[i, col]) + 1
    elif col == "date":
        changed.loc[i, col] = changed.loc[i, col] + pd.Timedelta(days=5000)  # beyond the range
    elif col == "ticker":
        changed.loc[i, col] = "XBI"
    else:
        changed.loc[i, col] = float(changed.loc[i, col]) * (1 + 1e-9)
    assert content_version(changed) != content_version(bars)
    assert content_version(bars.drop(index=i)) != content_version(bars) or len(bars) == 0
