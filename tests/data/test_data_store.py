"""The versioned store: content-named versions, no-op re-ingest, integrity checks, the CLI."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from finmlops.cli import main
from finmlops.config import Settings
from finmlops.data import (
    DatasetStore,
    Manifest,
    TickerRange,
    content_version,
    get_manifest,
    ingest,
    list_versions,
    read_bars,
)
from finmlops.errors import StoreError
from finmlops.pipeline import RunContext, SilentReporter

SHORT = {"data__start": dt.date(2020, 1, 1), "data__end": dt.date(2020, 3, 31)}


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config file rooting the CLI's home in tmp_path (and no FINMLOPS_* leaking in)."""
    for key in [k for k in __import__("os").environ if k.startswith("FINMLOPS_")]:
        monkeypatch.delenv(key)
    path = tmp_path / "finmlops.yaml"
    path.write_text(f"home: {tmp_path / 'home'}\n")
    return path


def listing(config: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    capsys.readouterr()
    assert main(["--config", str(config), "data", "list", "--json"]) == 0
    out: list[dict[str, object]] = json.loads(capsys.readouterr().out)
    return out


def test_bundled_ingest_twice_is_one_version(config: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--config", str(config), "ingest", "--source", "bundled", "--tickers", "IBB,SPY",
            "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(args) == 0
    second = json.loads(capsys.readouterr().out)
    assert first["created"] is True and second["created"] is False
    assert first["version"] == second["version"]
    (only,) = listing(config, capsys)
    assert only["version"] == first["version"]
    assert only["tickers"] == ["IBB", "SPY"]
    # defaults: data.start 2001-01-01 trims SPY; both bundled files end on 2026-05-01
    assert only["rows"] == 6342 + 6602 - 232 and only["start"] == "2001-01-02"
    assert only["end"] == "2026-05-01"


def test_new_days_make_a_new_latest_version(settings: Callable[..., Settings]) -> None:
    s = settings(**SHORT)
    old = ingest(s, tickers=["IBB"], end=dt.date(2020, 2, 28))
    new = ingest(s, tickers=["IBB"])
    assert old.created and new.created and old.version != new.version
    assert [m.version for m in list_versions(s)] == [new.version, old.version]
    assert get_manifest(s).version == new.version
    assert read_bars(s)["date"].max() == pd.Timestamp("2020-03-31")
    assert read_bars(s, version=old.version)["date"].max() == pd.Timestamp("2020-02-28")


def test_read_bars_contract(settings: Callable[..., Settings]) -> None:
    s = settings(**SHORT)
    result = ingest(s)
    bars = read_bars(s)
    assert list(bars.columns) == ["ticker", "date", "open", "high", "low", "close",
                                  "adj_close", "volume"]
    assert bars["date"].dtype == np.dtype("datetime64[ns]")
    assert bars["volume"].dtype == np.dtype("int64")
    assert all(bars[c].dtype == np.dtype("float64") for c in ["open", "close", "adj_close"])
    assert bars.equals(bars.sort_values(["ticker", "date"]).reset_index(drop=True))
    assert content_version(bars) == result.version
    spy = read_bars(s, tickers=["spy"])
    assert set(spy["ticker"]) == {"SPY"} and len(spy) == result.manifest.ranges["SPY"].rows
    assert spy.set_index("date").loc["2020-02-19", "close"] == pytest.approx(338.34, abs=0.01)
    with pytest.raises(StoreError, match="has no QQQ"):
        read_bars(s, tickers=["QQQ"])
    with pytest.raises(StoreError, match="'ffff' not found"):
        read_bars(s, version="ffff")


def test_empty_store_is_a_store_error(settings: Callable[..., Settings]) -> None:
    with pytest.raises(StoreError, match="run `finmlops ingest` first"):
        read_bars(settings())


def test_manifest_records_files_and_tamper_is_detected(
        settings: Callable[..., Settings]) -> None:
    s = settings(**SHORT)
    m = ingest(s).manifest
    vdir = Path(s.store_uri) / "versions" / m.version
    on_disk = json.loads((vdir / "manifest.json").read_text())
    assert on_disk["source"] == "bundled" and on_disk["finmlops_version"]
    assert set(on_disk["files"]) == {"bars-IBB.parquet", "bars-SPY.parquet"}
    assert on_disk["ranges"]["IBB"]["start"] == "2020-01-02"
    assert on_disk["rows"] == sum(r["rows"] for r in on_disk["ranges"].values())
    data = (vdir / "bars-IBB.parquet").read_bytes()
    (vdir / "bars-IBB.parquet").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(StoreError, match=r"bars-IBB\.parquet does not match its manifest"):
        read_bars(s, version=m.version)


def test_unpublished_and_staging_dirs_are_ignored_then_cleaned(
        settings: Callable[..., Settings], make_bars: Callable[..., pd.DataFrame]) -> None:
    s = settings(**SHORT)
    root = Path(s.store_uri)
    half = root / "versions" / "0123456789abcdef"
    half.mkdir(parents=True)
    (half / "bars-IBB.parquet").write_bytes(b"partial")
    (root / "staging" / "deadbeef").mkdir(parents=True)
    (root / "staging" / "deadbeef" / "bars-IBB.parquet").write_bytes(b"partial")
    assert list_versions(s) == []
    store = DatasetStore.from_settings(s)
    result = store.publish(make_bars([("IBB", "2020-01-02", 5.0)]), source="test")
    assert [m.version for m in store.list_versions()] == [result.version]
    assert not (root / "staging").exists() or not any((root / "staging").iterdir())


def test_publish_is_deterministic_across_stores(settings: Callable[..., Settings],
                                                tmp_path: Path,
                                                make_bars: Callable[..., pd.DataFrame]) -> None:
    bars = make_bars([("IBB", "2020-01-02", 5.0), ("IBB", "2020-01-03", 5.5)])
    a = DatasetStore(str(tmp_path / "a")).publish(bars, source="x")
    b = DatasetStore(str(tmp_path / "b")).publish(bars.iloc[::-1], source="x")
    assert a.version == b.version
    assert a.manifest.files == b.manifest.files  # same bytes, same sha256


def test_bad_csv_fails_with_every_row_and_leaves_store_unchanged(
        config: Path, capsys: pytest.CaptureFixture[str],
        write_csv: Callable[[str, list[str]], Path]) -> None:
    assert main(["--config", str(config), "ingest", "--tickers", "IBB",
                 "--start", "2020-01-01", "--end", "2020-01-31"]) == 0
    before = listing(config, capsys)
    bad = write_csv("bad.csv", [
        "IBB,2020-01-02,10,11,9,10.5,10.4,100",
        "IBB,2020-01-03,10,11,9,-10.5,10.4,100",   # line 3: negative price
        "IBB,2020-01-06,10,9,11,10.5,10.4,100",    # line 4: high < low
        "IBB,2020-01-06,10,11,9,10.5,10.4,100",    # line 5: duplicate date
    ])
    code = main(["--config", str(config), "ingest", "--csv", str(bad), "--tickers", "IBB"])
    err = capsys.readouterr().err
    assert code == 3
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "row 3 (IBB 2020-01-03): close <= 0" in err
    assert "row 4 (IBB 2020-01-06): high < low" in err
    assert "row 5 (IBB 2020-01-06): duplicate (ticker, date)" in err
    assert listing(config, capsys) == before


def test_data_show_and_unknown_version(config: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(config), "ingest", "--tickers", "SPY", "--start",
                 "2020-01-01", "--end", "2020-01-31", "--json"]) == 0
    version = json.loads(capsys.readouterr().out)["version"]
    assert main(["--config", str(config), "data", "show", version[:6], "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["version"] == version and shown["ranges"]["SPY"]["end"] == "2020-01-31"
    assert main(["--config", str(config), "data", "show", "latest"]) == 0
    assert version in capsys.readouterr().out
    assert main(["--config", str(config), "data", "show", "nope"]) == StoreError.exit_code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'nope' not found" in err


def test_pipeline_stage(settings: Callable[..., Settings]) -> None:
    from finmlops.pipeline._ingest import run

    reporter = SilentReporter()
    result = run(RunContext(settings=settings(**SHORT), reporter=reporter))
    version = result.outputs["dataset_version"]
    assert result.summary.startswith(f"version {version} (2 tickers, ")
    assert "2020-01-02..2020-03-31" in result.summary
    assert ("progress", "fetching IBB from bundled") in reporter.events


def test_per_ticker_csv_ingests_its_own_ticker(config: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "xbi.csv"
    path.write_text("date,open,high,low,close,adj_close,volume\n"
                    "2020-01-02,90,91,89,90.5,90.1,1000\n2020-01-03,90,92,88,91.5,91.1,1200\n")
    assert main(["--config", str(config), "ingest", "--csv", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tickers"] == ["XBI"] and out["rows"] == 2 and out["source"] == "csv"
    assert main(["--config", str(config), "ingest", "--csv", str(path), "--ticker", "abc",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tickers"] == ["ABC"]


def test_version_prefixes_ambiguous_short_and_unknown(tmp_path: Path) -> None:
    from finmlops.data.store import manifest_bytes

    store = DatasetStore(str(tmp_path / "store"))
    for version in ("abcd000000000001", "abcd000000000002", "ef01000000000003"):
        m = Manifest(version=version, source="csv", tickers=["IBB"],
                     ranges={"IBB": TickerRange("2020-01-02", "2020-01-03", 2)}, rows=2,
                     files={}, created_at=f"2026-01-01T00:00:00.00000{version[-1]}+00:00",
                     finmlops_version="0")
        folder = tmp_path / "store" / "versions" / version
        folder.mkdir(parents=True)
        (folder / "manifest.json").write_bytes(manifest_bytes(m))
    with pytest.raises(StoreError, match=r"'abcd' is ambiguous.*abcd000000000002, "
                                         r"abcd000000000001; give more characters"):
        store.resolve("abcd")
    with pytest.raises(StoreError, match="'ef0' is too short: give at least 4"):
        store.resolve("ef0")
    with pytest.raises(StoreError, match="'9999' not found"):
        store.resolve("9999")
    assert store.resolve("ef01").version == "ef01000000000003"
    assert store.resolve("abcd000000000001").version == "abcd000000000001"
