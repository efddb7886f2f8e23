"""``finmlops abtest feedback``: the realised forward return of (ticker, as-of date), computed
from the store's bars and posted by routing key to a real service (and to stubs for the
retry and error paths), or written straight into the experiment ledger."""

from __future__ import annotations

import datetime as dt
import getpass
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from abtest_support import LONG, Row, write_ledger
from hypothesis import given, settings
from hypothesis import strategies as st

from finmlops.abtest import read_evidence, realised_outcomes
from finmlops.config import load_settings
from finmlops.errors import (
    ConfigError,
    ConflictError,
    DataValidationError,
    NotReadyError,
    SourceError,
    StoreError,
    UnauthorizedError,
)
from finmlops.ledger import Feedback, open_ledger


def bars_of(ticker: str, dates: list[dt.date], prices: list[float],
            opens: list[float] | None = None) -> pd.DataFrame:
    n = len(dates)
    return pd.DataFrame({"ticker": ticker, "date": pd.to_datetime(dates),
                         "open": opens if opens is not None else prices, "high": prices,
                         "low": prices, "close": prices,
                         "adj_close": np.asarray(prices, dtype=np.float64),
                         "volume": np.ones(n, dtype=np.int64)})


HELD = {"same_close": 1, "next_open": 2, "next_close": 2}
"""Bars after the as-of date until the exit price exists."""


def by_hand(execution: str, i: int, prices: list[float], opens: list[float]) -> float:
    """The one-day return of a position decided at close i, as each fill defines it."""
    if execution == "same_close":
        return prices[i + 1] / prices[i] - 1.0
    if execution == "next_close":
        return prices[i + 2] / prices[i + 1] - 1.0
    # next open, dividend-adjusted: open * adj_close / close (here close == adj_close)
    return opens[i + 2] / opens[i + 1] - 1.0


@st.composite
def series(draw: st.DrawFn) -> tuple[list[dt.date], list[float], list[float], str, int]:
    """Trading dates with random gaps, positive prices and opens, a fill and an as-of index."""
    execution = draw(st.sampled_from(sorted(HELD)))
    held = HELD[execution]
    n = draw(st.integers(held + 1, 30))
    gaps = draw(st.lists(st.integers(1, 4), min_size=n, max_size=n))
    start = dt.date(2020, 1, 1)
    dates = [start + dt.timedelta(days=int(g)) for g in np.cumsum(gaps)]
    price = st.floats(0.01, 1e5, allow_nan=False)
    prices = draw(st.lists(price, min_size=n, max_size=n))
    opens = draw(st.lists(price, min_size=n, max_size=n))
    i = draw(st.integers(0, n - 1 - held))
    return dates, prices, opens, execution, i


@given(series(), st.lists(st.floats(0.01, 1e5), min_size=0, max_size=5))
@settings(max_examples=150, deadline=None)
def test_the_outcome_is_the_fills_return_and_never_reads_later_bars(
        case: tuple[list[dt.date], list[float], list[float], str, int],
        later: list[float]) -> None:
    dates, prices, opens, execution, i = case
    bars = bars_of("IBB", dates, prices, opens)
    (got,) = realised_outcomes(bars, ["IBB"], dates[i], execution)
    j = i + HELD[execution]
    assert got.forward_return == pytest.approx(by_hand(execution, i, prices, opens),
                                               rel=1e-12)
    assert (got.date, got.until) == (dates[i], dates[j])
    assert got.routing_key == f"IBB:{dates[i].isoformat()}"
    assert got.payload() == {"routing_key": got.routing_key,
                             "realized_return": got.forward_return,
                             "direction": int(got.forward_return > 0)}
    # Bars after ``until``: changed, dropped or added, the answer is the same.
    cut = bars.iloc[:j + 1]
    extra = [dates[-1] + dt.timedelta(days=k + 1) for k in range(len(later))]
    after = [p * 3.0 for p in prices[j + 1:]] + later
    changed = pd.concat([cut, bars_of("IBB", dates[j + 1:] + extra, after)],
                        ignore_index=True)
    for other in (cut, changed):
        assert realised_outcomes(other, ["IBB"], dates[i], execution) == [got]
    # No date given: the newest date whose return is known.
    (newest,) = realised_outcomes(cut, ["IBB"], None, execution)
    assert (newest.date, newest.until) == (dates[j - HELD[execution]], dates[j])


def test_each_ticker_gets_its_own_newest_date_and_errors_are_readable() -> None:
    days = [dt.date(2026, 4, d) for d in (27, 28, 29, 30)]
    bars = pd.concat([bars_of("IBB", days, [100.0, 101.0, 99.0, 99.0]),
                      bars_of("SPY", days[:3], [10.0, 11.0, 12.1])], ignore_index=True)
    ibb, spy = realised_outcomes(bars, ["IBB", "SPY"], execution="same_close")
    assert (ibb.date, ibb.forward_return, ibb.direction) == (days[2], 0.0, 0)
    assert (spy.date, spy.until) == (days[1], days[2])
    assert spy.forward_return == pytest.approx(0.1)
    (late,) = realised_outcomes(bars, ["SPY"])  # next open: two bars after the as-of date
    assert (late.date, late.until) == (days[0], days[2])
    with pytest.raises(DataValidationError, match="not known yet"):
        realised_outcomes(bars, ["SPY"], days[1])
    with pytest.raises(DataValidationError, match="no bar on 2026-05-02"):
        realised_outcomes(bars, ["IBB"], dt.date(2026, 5, 2))
    with pytest.raises(DataValidationError, match="no bars for QQQ"):
        realised_outcomes(bars, ["QQQ"])
    with pytest.raises(DataValidationError, match="no return is known yet"):
        realised_outcomes(bars.iloc[:2], ["IBB"])
    zero = bars_of("IBB", days, [0.0, 1.0, 1.0, 1.0])
    with pytest.raises(DataValidationError, match="positive"):
        realised_outcomes(zero, ["IBB"], days[0])


CONFIG = {"data__start": "2019-11-01", "data__end": "2020-02-28",
          "evaluation__execution": "same_close"}
"""Close-to-close fills keep these tests' days simple (one bar after the as-of date); every
fill's return is checked against a hand computation above."""


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
    finally:
        handle.stop()
    ledger = open_ledger(ingested.ledger_url, create=False)
    try:
        pid = {r["client_id"]: r["prediction_id"] for r in ledger.predictions()}
        rows = {r["prediction_id"]: r for r in ledger.feedback()}
    finally:
        ledger.close()
    assert set(rows) == {pid["a"], pid["b"], pid["c"]}
    assert rows[pid["a"]]["realized_return"] == rows[pid["b"]]["realized_return"] == expected
    assert rows[pid["c"]]["realized_return"] == pytest.approx(
        float(ibb.iloc[-2]) / float(ibb.iloc[-3]) - 1.0, abs=0)
    assert {(r["via"], r["caller"]) for r in rows.values()} == {("routing_key", "anonymous")}
    served = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                 if line.startswith("finmlops_feedback_total{"))
    # b repeats a's key on the same day: one decision per entity and day, so it has an
    # outcome in the ledger but is no trade of its own and counts in no counter.
    assert served == 2


@pytest.mark.integration
def test_feedback_cli_errors_are_one_line_and_5xx_is_retried(
        cli: Callable[..., Any], ingested: Any, stub_v2: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import finmlops.abtest.client as service

    monkeypatch.setattr(service, "RETRY_BACKOFF_S", 0.0)
    with stub_v2({"baseline": 1}, fail_status=503) as stub:
        result, _ = cli("feedback", "--url", stub.url, **CONFIG)
    assert isinstance(result.exception, NotReadyError) and len(stub.auth) == 4
    assert "answered 503" in str(result.exception)
    tokens = {"infer": "i-right", "feedback": "f-right"}
    with stub_v2({"baseline": 1}, tokens=tokens) as stub:
        result, _ = cli("feedback", "--url", stub.url, serve__tokens__feedback="i-right",
                        serve__tokens__inference="i-right", **CONFIG)
    assert isinstance(result.exception, UnauthorizedError)
    assert stub.auth == [("/v2/feedback", "Bearer i-right")]  # refused: not retried
    with stub_v2({"baseline": 1}, tokens=tokens) as stub:
        result, _ = cli("feedback", "--url", stub.url, serve__tokens__feedback="f-right",
                        **CONFIG)
        assert result.exit_code == 0, result.output
        assert stub.feedback[0]["outcomes"][0]["routing_key"] == "IBB:2020-02-27"
    result, _ = cli("feedback", "--url", "http://127.0.0.1:9", **CONFIG)
    assert isinstance(result.exception, SourceError)
    assert "unreachable" in str(result.exception) and "\n" not in str(result.exception)
    result, _ = cli("feedback", "--url", "http://127.0.0.1:9", "--date", "2020-02-29",
                    **CONFIG)
    assert isinstance(result.exception, DataValidationError)
    assert "IBB has no bar on 2020-02-29" in str(result.exception)


@pytest.mark.integration
def test_feedback_cli_writes_outcomes_straight_into_the_ledger_once(
        cli: Callable[..., Any], ingested: Any) -> None:
    """``--ledger`` (the daily job next to the ledger, no service needed): the outcome joins
    every prediction under its key, as this user's, once; a contradicting outcome already in
    the ledger refuses the whole batch and changes nothing."""
    from finmlops.data import read_bars

    bars = read_bars(ingested)
    ibb = bars[bars["ticker"] == "IBB"].set_index("date")["adj_close"]
    expected = float(ibb.iloc[-1]) / float(ibb.iloc[-2]) - 1.0
    day = dt.date(2020, 2, 27)
    url = ingested.ledger_url
    config = {**CONFIG, "ledger__url": url}
    result, _ = cli("feedback", "--ledger", **config)
    assert isinstance(result.exception, StoreError)
    assert str(result.exception).startswith("no experiment ledger at ")
    pids = write_ledger(url, [
        Row(day, "baseline", {"baseline": LONG, "enhanced": LONG}, None),
        Row(day, "enhanced", {"enhanced": LONG}, None, assignment="pinned"),
        Row(day - dt.timedelta(days=1), "baseline", {"baseline": LONG}, None)], ingested)
    result, _ = cli("feedback", "--ledger", "--json", **config)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["target"] == url
    assert [o["routing_key"] for o in out["posted"]] == ["IBB:2020-02-27"]
    assert out["answer"] == {"accepted": 2, "duplicates": 0, "unknown": []}
    again, _ = cli("feedback", "--ledger", **config)
    assert again.exit_code == 0, again.output
    assert "accepted 0, duplicates 2, unknown none" in again.output
    ledger = open_ledger(url, create=False)
    try:
        rows = ledger.feedback()
        outcomes = read_evidence(ledger, ingested).outcomes
        # Another job recorded a different outcome for the day before: refused, unchanged.
        ledger.apply_feedback([Feedback(0.5, 1, prediction_id=pids[2])], "other-job",
                              ingested.evaluation)
    finally:
        ledger.close()
    conflict, _ = cli("feedback", "--ledger", "--date", "2020-02-26", **config)
    assert isinstance(conflict.exception, ConflictError)
    assert "nothing was applied" in str(conflict.exception)
    assert "\n" not in str(conflict.exception)
    ledger = open_ledger(url, create=False)
    try:
        assert [(r["realized_return"], r["caller"]) for r in ledger.feedback(pids[2])] == [
            (0.5, "other-job")]
    finally:
        ledger.close()
    assert [(r["prediction_id"], r["realized_return"], r["caller"], r["via"]) for r in rows] == [
        (pid, expected, f"cli:{getpass.getuser()}", "routing_key") for pid in pids[:2]]
    served = outcomes[outcomes["served"]]
    assert served["request_id"].tolist() == [pids[0]]  # the pinned one decides nothing
    # baseline went long on the 26th (its outcome not known yet): no trade on the 27th
    assert served["net_return"].iloc[0] == expected


def test_feedback_needs_exactly_one_target(cli: Callable[..., Any]) -> None:
    for args in ((), ("--url", "http://127.0.0.1:9", "--ledger")):
        result, _ = cli("feedback", *args)
        assert isinstance(result.exception, ConfigError)
        assert "exactly one of --url" in str(result.exception)
