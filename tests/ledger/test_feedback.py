"""Feedback joins once per prediction, refuses contradictions whole, and counts once however
many writers post it at the same time."""

from __future__ import annotations

import threading

import pytest
from ledger_support import EXPERIMENT, record, served

from finmlops.config import EvaluationSettings
from finmlops.errors import ConflictError
from finmlops.evaluation import cost_per_unit
from finmlops.ledger import Feedback, Ledger, open_ledger

EVAL = EvaluationSettings()
C = cost_per_unit(EVAL.costs)


def by_key(key: str, r: float) -> Feedback:
    return Feedback(r, int(r > 0), routing_key=key)


def test_an_outcome_by_key_reaches_every_prediction_under_it_once(ledger: Ledger) -> None:
    record(ledger, [served("p1", "IBB:2020-01-02", p=0.9, shadow={"enhanced": 0.2}),
                    served("p2", "IBB:2020-01-02", arm="enhanced", p=0.3, assignment="pinned"),
                    served("p3", "IBB:2020-01-03", p=0.9)])
    first = ledger.apply_feedback([by_key("IBB:2020-01-02", 0.02), by_key("XBI:2020-01-02", 0.01)],
                                  "tester", EVAL)
    assert (first.accepted, first.duplicates, first.unknown) == (2, 0, ["XBI:2020-01-02"])
    # counters: the served arm and the shadow arm of p1; the pinned p2 counts nowhere
    assert sorted((o.prediction_id, o.arm, o.served) for o in first.outcomes) == [
        ("p1", "baseline", True), ("p1", "enhanced", False)]
    got = {o.arm: o for o in first.outcomes}
    assert got["baseline"].net_return == pytest.approx(0.02 - C) and got["baseline"].hit == 1
    assert got["enhanced"].net_return == 0.0 and got["enhanced"].hit == 0
    # p1 addressed twice in one request is one prediction: two duplicates (p1, p2)
    again = ledger.apply_feedback([by_key("IBB:2020-01-02", 0.02),
                                   Feedback(0.02, 1, prediction_id="p1")], "tester", EVAL)
    assert (again.accepted, again.duplicates, again.outcomes) == (0, 2, [])
    assert ledger.counts()["feedback"] == 2
    rows = ledger.feedback("p1")
    assert rows[0]["caller"] == "tester" and rows[0]["via"] == "routing_key"


def test_the_next_days_outcome_pays_only_the_change_of_position(ledger: Ledger) -> None:
    record(ledger, [served("d1", "IBB:2020-01-02", p=0.9), served("d2", "IBB:2020-01-03", p=0.9),
                    served("d3", "IBB:2020-01-06", p=0.2)])
    got = ledger.apply_feedback([by_key("IBB:2020-01-02", 0.01), by_key("IBB:2020-01-03", 0.01),
                                 by_key("IBB:2020-01-06", 0.01)], "t", EVAL)
    nets = {o.prediction_id: o.net_return for o in got.outcomes}
    assert nets == pytest.approx({"d1": 0.01 - C, "d2": 0.01, "d3": -C})
    frame = ledger.outcomes(EXPERIMENT, EVAL)
    assert dict(zip(frame["request_id"], frame["net_return"], strict=True)) == pytest.approx(nets)


def test_a_different_value_refuses_the_whole_request(ledger: Ledger) -> None:
    record(ledger, [served("p1", "IBB:2020-01-02"), served("p2", "IBB:2020-01-03")])
    ledger.apply_feedback([Feedback(0.01, 1, prediction_id="p1")], "first", EVAL)
    with pytest.raises(ConflictError) as err:
        ledger.apply_feedback([Feedback(0.03, 1, prediction_id="p2"),
                               Feedback(-0.01, 0, prediction_id="p1")], "second", EVAL)
    assert err.value.http_status == 409 and "p1" in err.value.details[0]
    assert [r["prediction_id"] for r in ledger.feedback()] == ["p1"]
    assert ledger.feedback("p1")[0]["realized_return"] == pytest.approx(0.01)


def test_unknown_ids_are_listed_not_recorded(ledger: Ledger) -> None:
    got = ledger.apply_feedback([Feedback(0.01, 1, prediction_id="nobody")], "t", EVAL)
    assert (got.accepted, got.unknown) == (0, ["nobody"])
    assert ledger.counts()["feedback"] == 0


def test_concurrent_posts_of_one_outcome_count_once(ledger_url: str) -> None:
    """Three writers (as three replicas would) post the same 200 outcomes at once, in
    different orders: each prediction is accepted by exactly one of them."""
    setup = open_ledger(ledger_url)
    keys = [f"T{i:03d}:2020-01-02" for i in range(200)]
    record(setup, [served(f"p{i}", k, shadow={"enhanced": 0.4}) for i, k in enumerate(keys)])
    setup.close()
    results: list[int] = []
    outcomes: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def post(order: list[str]) -> None:
        led = open_ledger(ledger_url, timeout_s=30.0)
        try:
            start.wait()
            got = led.apply_feedback([by_key(k, 0.01) for k in order], "replica", EVAL)
            results.append(got.accepted)
            outcomes.append(len(got.outcomes))
            assert got.accepted + got.duplicates == len(order)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            led.close()

    orders = [keys, keys[::-1], keys[100:] + keys[:100]]
    threads = [threading.Thread(target=post, args=(o,)) for o in orders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sum(results) == 200 and sum(outcomes) == 400
    check = open_ledger(ledger_url, create=False)
    assert check.counts()["feedback"] == 200
    check.close()
