"""``finmlops abtest feedback``: the realised forward return of (ticker, as-of date), computed
from the store's bars and posted by routing key to a real service (and to stubs for the
retry and error paths)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finmlops.abtest import realised_outcomes
from finmlops.config import load_settings
from finmlops.errors import DataValidationError, NotReadyError, SourceError, UnauthorizedError


def bars_of(ticker: str, dates: list[dt.date], prices: list[float]) -> pd.DataFrame:
    n = len(dates)
    return pd.DataFrame({"ticker": ticker, "date": pd.to_datetime(dates),
                         "open": prices, "high": prices, "low": prices, "close": prices,
                         "adj_close": np.asarray(prices, dtype=np.float64),
                         "volume": np.ones(n, dtype=np.int64)})


@st.composite
def series(draw: st.DrawFn) -> tuple[list[dt.date], list[float], int, int]:
    """Trading dates with random gaps, positive prices, a horizon and an as-of index."""
    horizon = draw(st.integers(1, 3))
    n = draw(st.integers(horizon + 1, 30))
    gaps = draw(st.lists(st.integers(1, 4), min_size=n, max_size=n))
    start = dt.date(2020, 1, 1)
    dates = [start + dt.timedelta(days=int(g)) for g in np.cumsum(gaps)]
    prices = draw(st.lists(st.floats(0.01, 1e5, allow_nan=False), min_size=n, max_size=n))
    i = draw(st.integers(0, n - 1 - horizon))
    return dates, prices, horizon, i


@given(series(), st.lists(st.floats(0.01, 1e5), min_size=0, max_size=5))
@settings(max_examples=150, deadline=None)
def test_forward_return_is_next_over_day_and_never_reads_later_bars(
        case: tuple[list[dt.date], list[float], int, int], later: list[float]) -> None:
    dates, prices, horizon, i = case
    bars = bars_of("IBB", dates, prices)
    (got,) = realised_outcomes(bars, ["IBB"], dates[i], horizon)
    assert got.forward_return == prices[i + horizon] / prices[i] - 1.0  # exactly
    assert (got.date, got.until) == (dates[i], dates[i + horizon])
    assert got.routing_key == f"IBB:{dates[i].isoformat()}"
    assert got.payload() == {"routing_key": got.routing_key,
                             "realized_return": got.forward_return,
                             "direction": int(got.forward_return > 0)}
    # Bars after ``until``: changed, dropped or added, the answer is the same.
    j = i + horizon
    cut = bars.iloc[:j + 1]
    extra = [dates[-1] + dt.timedelta(days=k + 1) for k in range(len(later))]
    changed = pd.concat([cut, bars_of("IBB", dates[j + 1:] + extra,
                                      [p * 3.0 for p in prices[j + 1:]] + later)],
                        ignore_index=True)
    for other in (cut, changed):
        assert realised_outcomes(other, ["IBB"], dates[i], horizon) == [got]
    # No date given: the newest date whose forward return is known.
    (newest,) = realised_outcomes(cut, ["IBB"], None, horizon)
    assert (newest.date, newest.until) == (dates[j - horizon], dates[j])


def test_each_ticker_gets_its_own_newest_date_and_errors_are_readable() -> None:
    days = [dt.date(2026, 4, d) for d in (27, 28, 29, 30)]
    bars = pd.concat([bars_of("IBB", days, [100.0, 101.0, 99.0, 99.0]),
                      bars_of("SPY", days[:3], [10.0, 11.0, 12.1])], ignore_index=True)
    ibb, spy = realised_outcomes(bars, ["IBB", "SPY"])
    assert (ibb.date, ibb.forward_return, ibb.direction) == (days[2], 0.0, 0)
    assert (spy.date, spy.until) == (days[1], days[2])
    assert spy.forward_return == pytest.approx(0.1)
    with pytest.raises(DataValidationError, match="not known yet"):
        realised_outcomes(bars, ["SPY"], days[2])
    with pytest.raises(DataValidationError, match="no bar on 2026-05-02"):
        realised_outcomes(bars, ["IBB"], dt.date(2026, 5, 2))
    with pytest.raises(DataValidationError, match="no bars for QQQ"):
        realised_outcomes(bars, ["QQQ"])
    with pytest.raises(DataValidationError, match="no forward return over 5"):
        realised_outcomes(bars, ["IBB"], None, 5)
    zero = bars_of("IBB", days, [0.0, 1.0, 1.0, 1.0])
    with pytest.raises(DataValidationError, match="positive"):
        realised_outcomes(zero, ["IBB"], days[0])


CONFIG = {"data__start": "2019-11-01", "data__end": "2020-02-28"}


@pytest.fixture
def ingested(cli: Callable[..., Any]) -> Any:
    """A store ingested from the bundled data (Nov 2019 - Feb 2020) in tmp_path."""
    from finmlops.data import ingest

    _, cfg = cli("--help", **CONFIG)
    settings = load_settings(cfg, environ={})
    ingest(settings)
    return settings


@pytest.mark.integration
def test_feedback_cli_posts_realised_returns_to_the_real_service(
        cli: Callable[..., Any], ingested: Any, tmp_path: Path,
        tiny_model: Callable[..., Path]) -> None:
    from finmlops.data import read_bars
    from finmlops.serving import create_app, run_in_thread

    bars = read_bars(ingested)
    ibb = bars[bars["ticker"] == "IBB"].set_index("date")["adj_close"]
    day, nxt = ibb.index[-2], ibb.index[-1]
    assert (day.date(), nxt.date()) == (dt.date(2020, 2, 27), dt.date(2020, 2, 28))
    expected = float(ibb[nxt]) / float(ibb[day]) - 1.0
    names = ["ret_1", "vol_5"]
    dirs = {arm: tiny_model(tmp_path / "m" / arm, arm, 2, names, w)
            for arm, w in (("baseline", 1.0), ("enhanced", -1.0))}
    handle = run_in_thread(create_app(ingested, dirs), "127.0.0.1", 0)
    try:
        with httpx.Client(base_url=handle.url, trust_env=False, timeout=10.0) as c:
            for rid, key in (("a", "IBB:2020-02-27"), ("b", "IBB:2020-02-27"),
                             ("c", "IBB:2020-02-26")):
                body = {"id": rid, "parameters": {"routing_key": key},
                        "inputs": [{"name": "features", "datatype": "FP32",
                                    "shape": [1, 2, 2], "data": [0.1, 0.2, 0.3, 0.4]}]}
                assert c.post("/v2/models/direction-ab/infer", json=body).status_code == 200
        result, _ = cli("feedback", "--url", handle.url, "--json", **CONFIG)
        assert result.exit_code == 0, result.output
        out = json.loads(result.output)
        assert out["posted"] == [{"ticker": "IBB", "date": "2020-02-27", "until": "2020-02-28",
                                  "routing_key": "IBB:2020-02-27",
                                  "realized_return": expected,
                                  "direction": int(expected > 0)}]
        assert out["answer"] == {"accepted": 2, "duplicates": 0, "unknown": []}
        again, _ = cli("feedback", "--url", handle.url, **CONFIG)
        assert again.exit_code == 0, again.output
        assert "posted IBB:2020-02-27" in again.output
        assert "accepted 0, duplicates 2, unknown none" in again.output
        other, _ = cli("feedback", "--url", handle.url, "--json", "--date", "2020-02-26",
                       "--tickers", "ibb,SPY", **CONFIG)
        assert other.exit_code == 0, other.output
        answer = json.loads(other.output)["answer"]
        assert answer == {"accepted": 1, "duplicates": 0, "unknown": ["SPY:2020-02-26"]}
        text = httpx.get(f"{handle.url}/metrics", trust_env=False).text
        plog = handle.app.log
        rows = {r["request_id"]: r for r in plog._query("SELECT * FROM feedback")}
    finally:
        handle.stop()
    assert set(rows) == {"a", "b", "c"}
    assert rows["a"]["realized_return"] == rows["b"]["realized_return"] == expected
    assert rows["c"]["realized_return"] == pytest.approx(
        float(ibb.iloc[-2]) / float(ibb.iloc[-3]) - 1.0, abs=0)
    served = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                 if line.startswith("finmlops_feedback_total{"))
    assert served == 3


@pytest.mark.integration
def test_feedback_cli_errors_are_one_line_and_5xx_is_retried(
        cli: Callable[..., Any], ingested: Any, stub_v2: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import finmlops.cli.abtest as shell

    monkeypatch.setattr(shell, "FEEDBACK_BACKOFF_S", (0.0, 0.0, 0.0))
    with stub_v2({"baseline": 1}, fail_status=503) as stub:
        result, _ = cli("feedback", "--url", stub.url, **CONFIG)
    assert isinstance(result.exception, NotReadyError) and len(stub.auth) == 4
    assert "answered 503" in str(result.exception)
    with stub_v2({"baseline": 1}, token="right") as stub:
        result, _ = cli("feedback", "--url", stub.url, serve__api_token="wrong", **CONFIG)
    assert isinstance(result.exception, UnauthorizedError) and stub.auth == ["Bearer wrong"]
    with stub_v2({"baseline": 1}, token="right") as stub:
        result, _ = cli("feedback", "--url", stub.url, serve__api_token="right", **CONFIG)
        assert result.exit_code == 0, result.output
        assert stub.feedback[0]["outcomes"][0]["routing_key"] == "IBB:2020-02-27"
    result, _ = cli("feedback", "--url", "http://127.0.0.1:9", **CONFIG)
    assert isinstance(result.exception, SourceError)
    assert "unreachable" in str(result.exception) and "\n" not in str(result.exception)
    result, _ = cli("feedback", "--url", "http://127.0.0.1:9", "--date", "2020-02-29",
                    **CONFIG)
    assert isinstance(result.exception, DataValidationError)
    assert "IBB has no bar on 2020-02-29" in str(result.exception)
