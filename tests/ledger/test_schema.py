"""The ledger's schema is the one docs/CONTRACTS.md writes down, on both databases."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from finmlops.errors import ConfigError, StoreError
from finmlops.ledger import SCHEMA_VERSION, Ledger, open_ledger

CONTRACTS = Path(__file__).resolve().parents[2] / "docs" / "CONTRACTS.md"


def contract_columns() -> dict[str, list[str]]:
    text = CONTRACTS.read_text(encoding="utf-8")
    block = text.split("## Experiment ledger", 1)[1].split("```sql", 1)[1].split("```", 1)[0]
    out: dict[str, list[str]] = {}
    for table, cols in re.findall(r"^(\w+)\((.*?)\)\s*(?:--|$)", block, re.M | re.S):
        out[table] = [c.strip().split()[0] for c in cols.replace("\n", " ").split(",")
                      if c.strip()]
    return out


def test_tables_match_the_contract(ledger: Ledger) -> None:
    expected = contract_columns()
    assert set(expected) == {"experiment_versions", "predictions", "scores", "feedback"}
    tables = ledger.tables()
    for table, columns in expected.items():
        assert tables[table] == columns, table
    assert set(tables) == {*expected, "ledger_meta"}


def test_opening_twice_migrates_once_and_readers_need_an_existing_ledger(
        ledger_url: str, tmp_path: Path) -> None:
    open_ledger(ledger_url).close()
    again = open_ledger(ledger_url)
    assert again.counts() == {"predictions": 0, "scores": 0, "feedback": 0}
    again.close()
    reader = open_ledger(ledger_url, create=False)
    reader.close()
    missing = tmp_path / "nothing-here.db"
    with pytest.raises(StoreError, match="no experiment ledger at "):
        open_ledger(f"sqlite:///{missing}", create=False)
    assert not missing.exists()


def test_a_newer_schema_is_refused(sqlite_ledger: Ledger, tmp_path: Path) -> None:
    with sqlite_ledger.db.transaction() as cur:
        cur.execute("UPDATE ledger_meta SET value = ? WHERE key = 'schema_version'",
                    (str(SCHEMA_VERSION + 1),))
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with pytest.raises(StoreError, match="newer than this finmlops"):
        open_ledger(url)
    with pytest.raises(StoreError, match="not a finmlops ledger of schema version"):
        open_ledger(url, create=False)


def test_sqlite_runs_in_wal_mode(sqlite_ledger: Ledger) -> None:
    with sqlite_ledger.db.reading() as cur:
        assert cur.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert cur.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL


def test_postgres_sessions_commit_synchronously(pg_url: str) -> None:
    led = open_ledger(pg_url)
    try:
        with led.db.reading() as cur:
            assert cur.execute("SHOW synchronous_commit").fetchone() == ("on",)
    finally:
        led.close()


@pytest.mark.parametrize("url", ["mysql://x", "sqlite://host/x.db", "sqlite:///", "ledger.db"])
def test_unsupported_urls_name_the_setting(url: str) -> None:
    with pytest.raises(ConfigError, match=r"ledger\.url"):
        open_ledger(url)


def test_an_unreachable_postgres_is_one_line_without_the_password() -> None:
    with pytest.raises(StoreError) as err:
        open_ledger("postgresql://u:s3cret@127.0.0.1:1/db", timeout_s=0.5)
    assert "s3cret" not in str(err.value) and "\n" not in str(err.value)
