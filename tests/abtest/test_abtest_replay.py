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
    decide_paired,
    from_prediction_log,
    paired_from_prediction_log,
    replay,
    served_counts,
)
from finmlops.config import Settings
from finmlops.errors import ModelNotFoundError, UnauthorizedError

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


def test_replay_sends_keyed_requests_and_daily_feedback(stub_v2: Any) -> None:
    data = replay_input()
    seen: list[tuple[int, int, str]] = []
    with stub_v2({"baseline": 70, "enhanced": 30}, token="s3cret") as stub:
        res = replay(stub.url, data, experiment="direction-ab", token="s3cret",
                     id_prefix="t1", on_progress=lambda *a: seen.append(a))
    assert res.requests == 60 and res.days == 30 and res.feedback == 58
    assert sum(res.served.values()) == 60 and set(res.served) <= {"baseline", "enhanced"}
    keys = [r["parameters"]["routing_key"] for r in stub.requests]
    assert keys[:2] == ["IBB:2020-01-01", "XBI:2020-01-01"]
    assert stub.requests[0]["inputs"][0]["shape"] == [1, W, F]
    assert stub.requests[0]["id"] == "t1:IBB:2020-01-01"
    assert len(stub.feedback) == 29  # one batch per day with a known next bar
    first = stub.feedback[0]["outcomes"][0]
    assert first["request_id"] == "t1:IBB:2020-01-01"
    assert first["direction"] == int(first["realized_return"] > 0)
    assert set(stub.auth) == {"Bearer s3cret"}
    assert seen[-1] == (30, 30, "2020-01-30") and len(seen) == 30


def test_routing_is_reproducible(stub_v2: Any) -> None:
    data = replay_input(days=10)
    with stub_v2({"baseline": 50, "enhanced": 50}) as stub:
        a = replay(stub.url, data, experiment="direction-ab", id_prefix="a")
        b = replay(stub.url, data, experiment="direction-ab", id_prefix="b")
    assert [r["arm"] for r in a.records] == [r["arm"] for r in b.records]


def test_replay_errors_are_typed(stub_v2: Any) -> None:
    data = replay_input(days=2)
    with stub_v2({"baseline": 1}, token="right") as stub:
        with pytest.raises(UnauthorizedError, match="401"):
            replay(stub.url, data, experiment="direction-ab", token="wrong")
        with pytest.raises(ModelNotFoundError, match="404"):
            replay(stub.url, data, experiment="nope", token="right")


@pytest.mark.integration
def test_replay_against_the_real_service_with_shadow_scoring(
        tmp_path: Path, settings: Callable[..., Settings],
        tiny_model: Callable[..., Path]) -> None:
    """The real ``finmlops.serving`` app on loopback: what the replay sends lands in the log
    with per-arm outcomes, and the paired statistics come out of it."""
    from finmlops.serving import create_app, run_in_thread

    names = ["ret_1", "vol_5"]
    models = {"baseline": tiny_model(tmp_path / "m" / "baseline", "baseline", W, names, 300.0),
              "enhanced": tiny_model(tmp_path / "m" / "enhanced", "enhanced", W, names,
                                     -300.0)}
    s = settings(experiment__shadow=True, serve__log_path=tmp_path / "log.db")
    data = replay_input(days=40, seed=3)
    handle = run_in_thread(create_app(s, models), "127.0.0.1", 0)
    try:
        res = replay(handle.url, data, experiment="direction-ab", id_prefix="real")
    finally:
        handle.stop()
    assert res.requests == 80 and res.feedback == 78
    served = served_counts(tmp_path / "log.db", "direction-ab")
    assert served == res.served
    stats = from_prediction_log(tmp_path / "log.db", "direction-ab")
    assert sum(a.n for a in stats.values()) == 78
    paired, daily = paired_from_prediction_log(tmp_path / "log.db", "direction-ab",
                                               "enhanced", "baseline")
    assert paired.n == 78 and daily.shape == (39,)
    # opposite models: exactly one of them calls each non-zero day right
    assert paired.b + paired.c == 78
    d = decide_paired(paired, s.abtest, challenger="enhanced", reference="baseline",
                      daily_diff=daily)
    assert d.action == "invalid"  # 78 < min_samples
