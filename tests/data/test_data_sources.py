"""Sources parse real recorded responses offline; the HTTP client retries politely."""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from finmlops.config import Settings
from finmlops.data import BundledSource, CsvSource, ingest, list_versions, make_source
from finmlops.data._http import RetryingClient, parse_retry_after
from finmlops.data.stooq import parse_csv
from finmlops.data.yahoo import parse_chart
from finmlops.errors import ConfigError, SourceError

Handler = Callable[[httpx.Request], httpx.Response]


def network_source(settings: Callable[..., Settings], name: str, handler: Handler,
                   sleeps: list[float] | None = None) -> Any:
    s = settings(data__source=name, data__max_retries=3, data__backoff_s=0.5)
    record = sleeps if sleeps is not None else []
    return make_source(s, transport=httpx.MockTransport(handler), sleep=record.append), s


def test_yahoo_parses_recorded_qqq(settings: Callable[..., Settings],
                                   yahoo_body: Callable[[str], dict[str, Any]]) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=yahoo_body("QQQ"))

    source, _ = network_source(settings, "yahoo", handler)
    bars = source.fetch(["QQQ"], dt.date(2020, 1, 1), dt.date(2020, 1, 3))
    assert len(bars) == 1
    row = bars.iloc[0]
    assert (row["ticker"], row["date"]) == ("QQQ", pd.Timestamp("2020-01-02"))
    assert row["close"] == pytest.approx(216.16) and row["adj_close"] == pytest.approx(209.638)
    assert row["volume"] == 30969400
    url = seen[0].url
    assert url.path == "/v8/finance/chart/QQQ"
    assert url.params["period1"] == "1577836800" and url.params["period2"] == "1578096000"
    assert url.params["interval"] == "1d" and url.params["events"] == "div,split"


def test_yahoo_aapl_days_are_exchange_dates(yahoo_body: Callable[[str], dict[str, Any]]) -> None:
    bars = parse_chart(json.dumps(yahoo_body("AAPL")), "AAPL")
    assert len(bars) == 49
    assert bars["date"].iloc[0] == pd.Timestamp("2020-08-31")  # 13:30 UTC is 09:30 New York
    assert bars["date"].is_monotonic_increasing and bars["date"].is_unique
    assert (bars["date"].dt.day_of_week < 5).all()


def test_yahoo_nulls_are_dropped(yahoo_body: Callable[[str], dict[str, Any]]) -> None:
    body = yahoo_body("AAPL")
    body = json.loads(json.dumps(body))
    body["chart"]["result"][0]["indicators"]["quote"][0]["close"][3] = None
    assert len(parse_chart(json.dumps(body), "AAPL")) == 48


def test_retry_after_503_then_200(settings: Callable[..., Settings],
                                  yahoo_body: Callable[[str], dict[str, Any]]) -> None:
    calls = iter([httpx.Response(503, headers={"Retry-After": "7"}),
                  httpx.Response(200, json=yahoo_body("QQQ"))])
    sleeps: list[float] = []
    source, _ = network_source(settings, "yahoo", lambda r: next(calls), sleeps)
    assert len(source.fetch(["QQQ"], dt.date(2020, 1, 1), dt.date(2020, 1, 3))) == 1
    assert sleeps == [7.0]


def test_backoff_is_exponential_and_gives_up(settings: Callable[..., Settings]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    sleeps: list[float] = []
    source, _ = network_source(settings, "stooq", handler, sleeps)
    with pytest.raises(SourceError, match=r"stooq SPY: giving up after 4 attempts \(ConnectError"):
        source.fetch(["SPY"], None, None)
    assert sleeps == [0.5, 1.0, 2.0]


def test_retry_after_http_date_is_capped() -> None:
    now = 1_700_000_000.0
    soon = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(soon, now=now, cap=60) == pytest.approx(30)
    assert parse_retry_after(email.utils.formatdate(now + 3600, usegmt=True),
                             now=now, cap=60) == 60
    assert parse_retry_after("120", now=now, cap=60) == 60
    assert parse_retry_after("soon", now=now, cap=60) is None
    client = RetryingClient(max_retries=1, transport=httpx.MockTransport(
        lambda r: httpx.Response(429, headers={"Retry-After": "soon"})))
    waits: list[float] = []
    client.sleep = waits.append
    with pytest.raises(SourceError, match="HTTP 429"):
        client.get("https://example.invalid/x", what="test")
    assert waits == [1.0]  # unparseable Retry-After falls back to the backoff


def test_truncated_body_is_an_error_and_writes_nothing(
        settings: Callable[..., Settings], yahoo_body: Callable[[str], dict[str, Any]]) -> None:
    text = json.dumps(yahoo_body("QQQ"))[:700]
    source, s = network_source(settings, "yahoo", lambda r: httpx.Response(200, text=text))
    with pytest.raises(SourceError, match="not valid JSON"):
        ingest(s, source=source, tickers=["QQQ"])
    assert list_versions(s) == []
    assert not (s.home / "store" / "versions").exists()


def test_404_is_a_source_error(settings: Callable[..., Settings]) -> None:
    body = {"chart": {"result": None, "error": {"code": "Not Found",
                                                 "description": "No data found"}}}
    source, _ = network_source(settings, "yahoo", lambda r: httpx.Response(404, json=body))
    with pytest.raises(SourceError, match=r"yahoo NOPE: HTTP 404 \(No data found\)"):
        source.fetch(["NOPE"], None, None)


def test_stooq_parses_recorded_crlf_csv(settings: Callable[..., Settings],
                                        stooq_text: str) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text=stooq_text)

    source, _ = network_source(settings, "stooq", handler)
    bars = source.fetch(["SPY"], dt.date(2020, 2, 19), dt.date(2020, 3, 31))
    assert str(seen[0].url) == "https://stooq.com/q/d/l/?s=spy.us&i=d"
    first = bars.iloc[0]
    assert first["date"] == pd.Timestamp("2020-02-19")
    assert first["close"] == pytest.approx(312.697) == first["adj_close"]
    assert bars["date"].iloc[-1] == pd.Timestamp("2020-03-31")
    assert len(bars) == 30


@pytest.mark.parametrize(("name", "ticker", "path"), [
    ("yahoo", "QQQ", "/v8/finance/chart/QQQ"), ("stooq", "SPY", "/q/d/l/")])
def test_source_url_moves_the_host_and_keeps_the_path(settings: Callable[..., Settings],
                                                      name: str, ticker: str,
                                                      path: str) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(404)

    s = settings(data__source=name, data__source_url="http://mirror.test:8080/")
    source = make_source(s, transport=httpx.MockTransport(handler), sleep=lambda _: None)
    with pytest.raises(SourceError, match=rf"^{name} {ticker}: HTTP 404$"):
        source.fetch([ticker.lower()], None, None)
    assert (seen[0].url.host, seen[0].url.port, seen[0].url.path) == ("mirror.test", 8080, path)


@pytest.mark.parametrize("body", ["No data", "<html><body>Exceeded the daily hits limit</body>"
                                  "</html>", ""])
def test_stooq_non_csv_is_a_source_error(body: str) -> None:
    with pytest.raises(SourceError, match="not Stooq's daily CSV"):
        parse_csv(body, "SPY")


def test_stooq_truncated_line_is_a_source_error(stooq_text: str) -> None:
    with pytest.raises(SourceError, match="malformed line 33"):
        parse_csv(stooq_text[:-20], "SPY")


def test_bundled_filters_and_rejects_unknown() -> None:
    bars = BundledSource().fetch(["IBB"], dt.date(2020, 2, 19), dt.date(2020, 3, 16))
    assert bars["date"].min() == pd.Timestamp("2020-02-19")
    assert bars.set_index("date").loc["2020-03-16", "close"] == pytest.approx(94.39, abs=0.01)
    with pytest.raises(SourceError, match="not bundled: QQQ"):
        BundledSource().fetch(["IBB", "QQQ"], None, None)


def test_csv_long_and_per_ticker_formats(tmp_path: Path,
                                         write_csv: Callable[[str, list[str]], Path]) -> None:
    long = write_csv("bars.csv", ["ibb,2020-01-02,1,2,1,1.5,1.4,10",
                                  "SPY,2020-01-02,3,4,3,3.5,3.4,20"])
    bars = CsvSource(long).fetch(["IBB"], None, None)
    assert list(bars["ticker"]) == ["IBB"] and list(bars.index) == [2]
    single = tmp_path / "xbi.csv"
    single.write_text("date,open,high,low,close,volume\n2020-01-02,1,2,1,1.5,10\n")
    bars = CsvSource(single).fetch(["XBI"], None, None)
    assert bars.iloc[0]["adj_close"] == "1.5" and bars.iloc[0]["ticker"] == "XBI"
    assert CsvSource(single, ticker="abc").fetch(["ABC"], None, None).iloc[0]["ticker"] == "ABC"
    with pytest.raises(SourceError, match="no rows for QQQ"):
        CsvSource(long).fetch(["QQQ"], None, None)
    with pytest.raises(SourceError, match="csv file not found"):
        CsvSource(tmp_path / "missing.csv").fetch(["IBB"], None, None)


def test_csv_source_needs_a_path(settings: Callable[..., Settings]) -> None:
    with pytest.raises(ConfigError, match="csv_path"):
        make_source(settings(data__source="csv"))


def test_csv_with_many_tickers_is_read_once_per_ingest(
        settings: Callable[..., Settings], write_csv: Callable[[str, list[str]], Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    tickers = [f"T{i}" for i in range(6)]
    path = write_csv("bars.csv", [f"{t},2020-01-0{d},1,2,1,1.5,1.4,10"
                                  for t in tickers for d in (2, 3)])
    reads: list[object] = []
    real = pd.read_csv

    def counting(*args: Any, **kwargs: Any) -> pd.DataFrame:
        reads.append(args[0] if args else kwargs.get("filepath_or_buffer"))
        return real(*args, **kwargs)

    monkeypatch.setattr(pd, "read_csv", counting)
    s = settings(data__source="csv", data__csv_path=path, data__start=dt.date(2020, 1, 1))
    result = ingest(s, tickers=tickers)
    assert result.manifest.tickers == tickers and result.manifest.rows == 12
    assert [r for r in reads if r == path] == [path]  # not once per ticker


def test_csv_path_that_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="is a directory"):
        CsvSource(tmp_path).fetch(["IBB"], None, None)


def test_ingest_refuses_an_end_before_the_start(settings: Callable[..., Settings]) -> None:
    s = settings()
    with pytest.raises(ConfigError, match="end date 2020-01-01 is before the start date"):
        ingest(s, start=dt.date(2020, 1, 10), end=dt.date(2020, 1, 1))
    assert list_versions(s) == []


@pytest.mark.parametrize("ticker", ["SPY?interval=1m", "../etc", "A B", "#"])
def test_ingest_refuses_odd_tickers_before_any_request(settings: Callable[..., Settings],
                                                      ticker: str) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(500)

    s = settings(data__source="yahoo")
    source = make_source(s, transport=httpx.MockTransport(handler), sleep=lambda _: None)
    with pytest.raises(ConfigError, match="invalid ticker"):
        ingest(s, source=source, tickers=[ticker])
    assert calls == [] and list_versions(s) == []


# ---- name resolution fails fast; transient errors retry visibly ----------------------------

UNRESOLVABLE = "https://nonexistent.invalid/v8/finance/chart/{ticker}"
"""``.invalid`` never resolves (RFC 2606): a real, offline and deterministic DNS failure."""


def test_an_unresolvable_host_fails_at_once() -> None:
    sleeps: list[float] = []
    notices: list[str] = []
    client = RetryingClient(max_retries=4, sleep=sleeps.append, notify=notices.append)
    with pytest.raises(SourceError) as err:
        client.get("https://nonexistent.invalid/x", what="yahoo IBB")
    assert str(err.value).startswith("yahoo IBB: cannot resolve nonexistent.invalid (")
    assert str(err.value).endswith("): check the network connection and DNS (not retried)")
    assert sleeps == [] and notices == []


def test_a_resolver_failure_in_the_cause_chain_is_not_retried(
        settings: Callable[..., Settings]) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        try:
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        except socket.gaierror as exc:
            raise httpx.ConnectError("[Errno -3] Temporary failure", request=request) from exc

    sleeps: list[float] = []
    source, _ = network_source(settings, "stooq", handler, sleeps)
    with pytest.raises(SourceError, match=r"stooq SPY: cannot resolve stooq\.com \(Temporary "
                                          r"failure in name resolution\)"):
        source.fetch(["SPY"], None, None)
    assert len(calls) == 1 and sleeps == []


def test_ingest_without_dns_is_one_line_and_exit_4(capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    from finmlops.cli import main
    from finmlops.data import yahoo

    monkeypatch.setattr(yahoo, "CHART_URL", UNRESOLVABLE)
    monkeypatch.setenv("FINMLOPS_HOME", str(tmp_path / "home"))
    assert main(["ingest", "--source", "yahoo", "--tickers", "IBB"]) == 4
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1, captured.err  # no retry lines: nothing was retried
    assert captured.err.startswith("error: yahoo IBB: cannot resolve nonexistent.invalid")
    assert not (tmp_path / "home" / "store" / "versions").exists()


def test_each_retry_is_announced(settings: Callable[..., Settings],
                                 yahoo_body: Callable[[str], dict[str, Any]]) -> None:
    calls = iter([httpx.Response(503, headers={"Retry-After": "7"}), httpx.Response(502),
                  httpx.Response(200, json=yahoo_body("QQQ"))])
    sleeps: list[float] = []
    source, _ = network_source(settings, "yahoo", lambda r: next(calls), sleeps)
    notices: list[str] = []
    source.client.notify = notices.append
    assert len(source.fetch(["QQQ"], dt.date(2020, 1, 1), dt.date(2020, 1, 3))) == 1
    assert notices == ["yahoo QQQ: HTTP 503; retry 1 of 3 in 7.0 s",
                       "yahoo QQQ: HTTP 502; retry 2 of 3 in 1.0 s"]
    assert sleeps == [7.0, 1.0]


def test_retries_are_announced_on_stderr_by_default(settings: Callable[..., Settings],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    source, _ = network_source(settings, "stooq", handler)
    with pytest.raises(SourceError, match="giving up after 4 attempts"):
        source.fetch(["SPY"], None, None)
    assert capsys.readouterr().err.splitlines() == [
        f"stooq SPY: ConnectError: connection refused; retry {i} of 3 in {w} s"
        for i, w in ((1, "0.5"), (2, "1.0"), (3, "2.0"))]
