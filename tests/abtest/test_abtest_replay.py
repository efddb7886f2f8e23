"""The replay client over real HTTP: a stub V2 endpoint, then the real finmlops service."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from finmlops.abtest import (
    ReplayInput,
    arm_stats,
    decide_paired,
    paired_daily,
    read_evidence,
    replay,
)
from finmlops.abtest.client import ServiceClient
from finmlops.config import Settings
from finmlops.errors import ModelNotFoundError, UnauthorizedError
from finmlops.ledger import open_ledger

W, F = 3, 2


def replay_input(days: int = 30, tickers: tuple[str, ...] = ("IBB", "XBI"),
                 seed: int = 0) -> ReplayInput:
    rng = np.random.default_rng(seed)
    dates = [dt.date(2020, 1, 1) + dt.timedelta(days=k) for k in range(days)]
    rows = [(d, t) for d in dates for t in tickers]
    fwd = rng.normal(0, 0.01, len(rows))
    fwd[-len(tickers):] = np.nan  # the last day's future is unknown
    return ReplayInput(windows=rng.normal(0, 0.01, (len(rows), W, F)).astype(np.float32),
                       dates=[d for d, _ in rows], tickers=[t for _, t in rows],
                       forward_returns=fwd)


def client(url: str, inference: str | None = None,
           feedback: str | None = None) -> ServiceClient:
    return ServiceClient(url, {"inference": inference, "feedback": feedback})


def test_replay_sends_keyed_requests_and_daily_feedback_by_prediction_id(stub_v2: Any) -> None:
    data = replay_input()
    seen: list[tuple[int, int, str]] = []
    with stub_v2({"baseline": 70, "enhanced": 30},
                 tokens={"infer": "i-s3cret", "feedback": "f-s3cret"}) as stub:
        res = replay(client(stub.url, "i-s3cret", "f-s3cret"), data,
                     experiment="direction-ab", id_prefix="t1",
                     on_progress=lambda *a: seen.append(a))
    assert res.requests == 60 and res.days == 30 and res.feedback == 58
    assert sum(res.served.values()) == 60 and set(res.served) <= {"baseline", "enhanced"}
    keys = [r["parameters"]["routing_key"] for r in stub.requests]
    assert keys[:2] == ["IBB:2020-01-01", "XBI:2020-01-01"]
    assert stub.requests[0]["inputs"][0]["shape"] == [1, W, F]
    assert stub.requests[0]["id"] == "t1:IBB:2020-01-01"  # the client's id, not a key
    assert [r["prediction_id"] for r in res.records] == list(stub.issued)
    assert len(stub.feedback) == 29  # one batch per day with a known next bar
    first = stub.feedback[0]["outcomes"][0]
    assert set(first) == {"prediction_id", "realized_return", "direction"}
    assert stub.issued[first["prediction_id"]] == "IBB:2020-01-01"
    assert first["realized_return"] == data.forward_returns[0]
    assert first["direction"] == int(first["realized_return"] > 0)
    assert {(path.split("/")[-1], auth) for path, auth in stub.auth} == {
        ("infer", "Bearer i-s3cret"), ("feedback", "Bearer f-s3cret")}
    assert seen[-1] == (30, 30, "2020-01-30") and len(seen) == 30


def test_routing_is_reproducible(stub_v2: Any) -> None:
    data = replay_input(days=10)
    with stub_v2({"baseline": 50, "enhanced": 50}) as stub:
        a = replay(client(stub.url), data, experiment="direction-ab", id_prefix="a")
        b = replay(client(stub.url), data, experiment="direction-ab", id_prefix="b")
    assert [r["arm"] for r in a.records] == [r["arm"] for r in b.records]


def test_replay_errors_are_typed(stub_v2: Any) -> None:
    data = replay_input(days=2)
    with stub_v2({"baseline": 1}, tokens={"infer": "right", "feedback": "fb"}) as stub:
        with pytest.raises(UnauthorizedError, match="401"):
            replay(client(stub.url, "wrong"), data, experiment="direction-ab")
        with pytest.raises(ModelNotFoundError, match="404"):
            replay(client(stub.url, "right"), data, experiment="nope")
        # the inference token is not the feedback token
        with pytest.raises(UnauthorizedError, match="feedback for 2020-01-01 answered 401"):
            replay(client(stub.url, "right", "right"), data, experiment="direction-ab")


def test_a_seldon_replay_sends_one_request_per_ticker_even_when_rows_are_asked(
        stub_v2: Any) -> None:
    """Seldon's mesh routes whole requests: a day's tickers in one request would all go to
    one arm, so a Seldon client never batches them."""
    data = replay_input(days=3)
    with stub_v2({"baseline": 50, "enhanced": 50}) as stub:
        res = replay(ServiceClient(stub.url, seldon=True), data, experiment="direction-ab",
                     per_row=True)
    assert res.requests == len(stub.requests) == 6
    assert [r["inputs"][0]["shape"][0] for r in stub.requests] == [1] * 6
    assert set(stub.seldon_models) == {"direction-ab.experiment"}


@pytest.mark.integration
@pytest.mark.parametrize("per_row", [False, True], ids=["request-per-ticker", "rows-per-day"])
def test_replay_against_the_real_service_with_shadow_scoring(
        tmp_path: Path, settings: Callable[..., Settings],
        tiny_model: Callable[..., Path], per_row: bool) -> None:
    """The real ``finmlops.serving`` app on loopback: every (day, ticker) the replay sends is
    a prediction in the ledger under the id its answer carried, every outcome is joined to
    it, and the paired statistics come out of the ledger — whether the tickers of a day go
    one request each or together with one routing key per row."""
    from finmlops.serving import create_app, run_in_thread

    names = ["ret_1", "vol_5"]
    models = {"baseline": tiny_model(tmp_path / "m" / "baseline", "baseline", W, names, 300.0),
              "enhanced": tiny_model(tmp_path / "m" / "enhanced", "enhanced", W, names,
                                     -300.0)}
    s = settings(experiment__shadow=True, serve__tokens__inference="i-tok",
                 serve__tokens__feedback="f-tok", serve__tokens__admin="a-tok")
    data = replay_input(days=40, seed=3)
    handle = run_in_thread(create_app(s, models), "127.0.0.1", 0)
    try:
        res = replay(ServiceClient.of(s, handle.url), data, experiment="direction-ab",
                     id_prefix="real", per_row=per_row)
    finally:
        handle.stop()
    assert res.requests == 80 and res.feedback == 78
    ledger = open_ledger(s.ledger_url, create=False)
    try:
        ev = read_evidence(ledger, s)
        predictions = {r["prediction_id"]: r for r in ledger.predictions("direction-ab")}
        feedback = ledger.feedback()
    finally:
        ledger.close()
    assert list(predictions) == [r["prediction_id"] for r in res.records]
    for rec in res.records:
        row = predictions[rec["prediction_id"]]
        assert (row["routing_key"], row["arm"], row["assignment"]) == (
            rec["routing_key"], rec["arm"], "hash")
        day = rec["routing_key"].split(":")[1]
        assert row["client_id"] == (f"real:{day}:0" if per_row else
                                    f"real:{rec['routing_key']}")
    assert len(feedback) == 78 and {(f["via"], f["caller"][:15]) for f in feedback} == {
        ("prediction_id", "feedback-token:")}
    assert ev.served == res.served
    assert sum(a.n for a in arm_stats(ev.outcomes).values()) == 78
    paired, days, daily, daily_hit = paired_daily(ev.outcomes, "enhanced", "baseline")
    assert paired.n == 78 and daily.shape == (39,) and len(days) == 39
    # opposite models: exactly one of them calls each day and ticker right
    assert paired.b + paired.c == 78
    d = decide_paired(paired, s.abtest, challenger="enhanced", reference="baseline",
                      daily_diff=daily, daily_hit_diff=daily_hit)
    assert d.action == "invalid"  # 39 days < min_samples


def test_a_day_of_more_outcomes_than_one_feedback_post_takes_goes_in_several(
        stub_v2: Any) -> None:
    tickers = tuple(f"T{i:04d}" for i in range(1_201))
    data = replay_input(days=2, tickers=tickers)
    with stub_v2({"baseline": 1}) as stub:
        res = replay(client(stub.url), data, experiment="direction-ab")
    assert [len(b["outcomes"]) for b in stub.feedback] == [1_000, 201]  # the service's limit
    assert res.feedback == 1_201
