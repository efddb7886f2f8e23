"""The prediction log: exact CONTRACTS schema, batched writes, idempotent feedback."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from finmlops.errors import BadRequestError
from finmlops.serving.log import Feedback, PredictionLog, Served, parse_feedback
from finmlops.serving.outcomes import Policy

CONTRACTS = Path(__file__).resolve().parents[2] / "docs" / "CONTRACTS.md"


def contract_columns() -> dict[str, list[str]]:
    text = CONTRACTS.read_text(encoding="utf-8")
    out: dict[str, list[str]] = {}
    for table, cols in re.findall(r"^(\w+)\((.*?)\)\s*(?:--|$)", text, re.M | re.S):
        cols = cols.replace("\n", " ").split("PRIMARY KEY (")[0]
        out[table] = [c.strip().split()[0] for c in cols.split(",") if c.strip()]
    return out


def test_schema_matches_docs_contracts(tmp_path: Path) -> None:
    PredictionLog(tmp_path / "p.db")
    con = sqlite3.connect(tmp_path / "p.db")
    expected = contract_columns()
    assert set(expected) >= {"predictions", "scores", "feedback", "outcomes"}
    for table in ("predictions", "scores", "feedback", "outcomes"):
        cols = [r[1] for r in con.execute(f"PRAGMA table_info({table})")]
        assert cols == expected[table], table
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def served(rid: str, arm: str = "a", p: float = 0.8, also: tuple[str, ...] = ()) -> Served:
    return Served(1.0, [rid], "exp", arm, "1", None, np.zeros((1, 2, 3), np.float32),
                  np.array([p], np.float32), also)


def test_writer_batches_and_flushes_and_shadow_scores(tmp_path: Path) -> None:
    written: list[int] = []

    def scorer(arm: str, x: np.ndarray) -> tuple[str, np.ndarray]:
        return "9", np.full(len(x), 0.2, np.float32)

    plog = PredictionLog(tmp_path / "p.db", Policy(), batch_size=4, flush_interval_s=10.0,
                         scorer=scorer, on_written=written.append)
    plog.start()
    for i in range(10):
        plog.put(served(f"r{i}", also=("b",)))
    plog.flush()
    assert plog.counts()["predictions"] == 10
    assert sum(written) == 10 and max(written) <= 4 + 1
    rows = plog.scores("r3")
    assert [(r["arm"], r["served"], r["model_version"]) for r in rows] == [
        ("a", 1, "1"), ("b", 0, "9")]
    plog.put(served("late"))
    plog.close()
    assert plog.counts()["predictions"] == 11


def test_feedback_joins_every_scored_arm_once(tmp_path: Path) -> None:
    plog = PredictionLog(tmp_path / "p.db", Policy("long_flat", 0.5, 1e-4),
                         scorer=lambda arm, x: ("2", np.full(len(x), 0.1, np.float32)))
    plog.start()
    plog.put(served("r1", p=0.9, also=("b",)))
    first = plog.apply_feedback([Feedback("r1", 0.02), Feedback("nope", 0.01)])
    assert (first.accepted, first.duplicates, first.unknown) == (1, 0, ["nope"])
    got = {o.arm: o for o in first.outcomes}
    assert got["a"].served and got["a"].hit == 1
    assert got["a"].net_return == pytest.approx(0.02 - 2e-4)
    assert not got["b"].served and got["b"].hit == 0 and got["b"].net_return == 0.0
    again = plog.apply_feedback([Feedback("r1", 0.02), Feedback("r1", -0.5)])
    assert (again.accepted, again.duplicates, again.outcomes) == (0, 2, [])
    assert plog.counts()["outcomes"] == 2 and plog.counts()["feedback"] == 1
    assert len(plog.arm_outcomes("exp")) == 2
    plog.close()


@pytest.mark.parametrize("bad", [None, {}, {"outcomes": []},
                                 {"request_id": "", "realized_return": 0},
                                 {"request_id": "a", "realized_return": "1"},
                                 {"request_id": "a", "realized_return": 0.1, "direction": 2},
                                 {"request_id": "a", "realized_return": 0.1, "direction": None},
                                 {"request_id": "a", "realized_return": 0.1, "x": 1},
                                 {"outcomes": [{"request_id": "a"}]},
                                 {"outcomes": [{"request_id": "a", "realized_return": 0}],
                                  "x": 1},
                                 {"request_id": "a", "routing_key": "IBB:2026-04-30",
                                  "realized_return": 0.1},
                                 {"realized_return": 0.1, "direction": 1},
                                 {"routing_key": "", "realized_return": 0.1},
                                 {"routing_key": None, "realized_return": 0.1},
                                 {"outcomes": [{"routing_key": "k", "realized_return": 0},
                                               {"realized_return": 0}]}])
def test_bad_feedback_is_a_bad_request(bad: object) -> None:
    with pytest.raises(BadRequestError):
        parse_feedback(bad)


def test_feedback_addressed_by_routing_key(tmp_path: Path) -> None:
    assert parse_feedback({"outcomes": [
        {"routing_key": "IBB:2026-04-30", "realized_return": 1, "direction": 0},
        {"request_id": "r", "realized_return": 0.5}]}) == [
        Feedback(None, 1.0, 0, "IBB:2026-04-30"), Feedback("r", 0.5)]
    with pytest.raises(ValueError, match="exactly one"):
        Feedback("r", 0.1, routing_key="k")
    plog = PredictionLog(tmp_path / "p.db", Policy("long_flat", 0.5, 0.0))
    for rid in ("x1", "x2"):
        plog.put(served(rid, p=0.9)._replace(routing_key="IBB:2026-04-30"))
    got = plog.apply_feedback([Feedback(None, 0.01, routing_key="IBB:2026-04-30"),
                               Feedback(None, 0.01, routing_key="IBB:2026-05-01")])
    assert (got.accepted, got.duplicates, got.unknown) == (2, 0, ["IBB:2026-05-01"])
    assert sorted(o.request_id for o in got.outcomes) == ["x1", "x2"]
    again = plog.apply_feedback([Feedback(None, 0.01, routing_key="IBB:2026-04-30")])
    assert (again.accepted, again.duplicates, again.outcomes) == (0, 2, [])
    plog.close()


@pytest.mark.parametrize("ret", [1e200, -1e200, -1.5, 10.5, 2 ** 70])
def test_feedback_returns_outside_a_day_are_bad_requests(ret: float) -> None:
    """One absurd return would make the sum-of-squares gauges (and every later A/B decision
    read from them) infinite; a simple return is never below -1."""
    with pytest.raises(BadRequestError, match="realized_return"):
        parse_feedback({"request_id": "a", "realized_return": ret})
    for edge in (-1.0, 10.0, 0):
        assert parse_feedback({"request_id": "a", "realized_return": edge})[0].realized_return \
            == edge


def test_a_reused_request_id_is_not_logged_twice_and_says_so(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    written: list[int] = []
    plog = PredictionLog(tmp_path / "p.db", Policy(), on_written=written.append)
    plog.put(served("same", p=0.8))
    plog.put(served("same", p=0.1))
    plog.put(served("other"))
    with caplog.at_level("WARNING", logger="finmlops.serving"):
        plog.flush()
    assert [r["probability"] for r in plog.predictions() if r["request_id"] == "same"] == [
        pytest.approx(0.8)]
    assert written == [2]  # rows written, not rows offered
    assert "1 prediction(s) not logged" in caplog.text
