"""V2 request validation: everything malformed is a 400, never a crash."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from finmlops.errors import BadRequestError
from finmlops.serving.protocol import (
    MAX_FEEDBACK,
    check_request_id,
    check_routing_key,
    parse_feedback,
    parse_infer,
)


def body(data: Any, shape: Any = (1, 2, 3), datatype: str = "FP32", **extra: Any) -> Any:
    return {"inputs": [{"name": "features", "datatype": datatype, "shape": list(shape),
                        "data": data}], **extra}


def test_flat_and_nested_data_are_accepted() -> None:
    flat = parse_infer(body(list(range(6))), "features", 2, 3)
    nested = parse_infer(body([[[0, 1, 2], [3, 4, 5]]]), "features", 2, 3)
    assert flat.x.dtype == np.float32 and flat.x.shape == (1, 2, 3)
    np.testing.assert_array_equal(flat.x, nested.x)


def test_id_and_routing_key_are_read() -> None:
    req = parse_infer(body([0.0] * 6, id="r1", parameters={"routing_key": "k"}), "features", 2, 3)
    assert (req.request_id, req.routing_key) == ("r1", "k")


@pytest.mark.parametrize("bad", [
    None, [], "x", {"inputs": []}, {"inputs": [1]},
    body([0.0] * 6, datatype="INT64"), body([0.0] * 6, datatype="BYTES"),
    body([0.0] * 6, datatype={}), body([0.0] * 6, datatype=["FP32"]),
    body([0.0] * 5), body([0.0] * 12), body([0.0] * 6, shape=(1, 3, 2)),
    body([0.0] * 6, shape=(1, 6)), body([0.0] * 6, shape=(1, 2.0, 3)),
    body([0.0] * 6, shape=(0, 2, 3)), body([float("nan")] + [0.0] * 5),
    body([float("inf")] + [0.0] * 5), body([1e39] + [0.0] * 5),
    body(["1"] + [0.0] * 5), body([True] + [0.0] * 5), body([None] + [0.0] * 5),
    body([[0.0, 1.0], [2.0]]), body([0.0] * 6, id=5), body([0.0] * 6, id="a\nb"),
    body([0.0] * 6, parameters={"routing_key": 1}), body([0.0] * 6, parameters=[]),
    body([0.0] * 6, outputs="probability"),
    {"inputs": [{"name": "other", "datatype": "FP32", "shape": [1, 2, 3], "data": [0] * 6}]},
])
def test_malformed_requests_are_bad_requests(bad: Any) -> None:
    with pytest.raises(BadRequestError):
        parse_infer(bad, "features", 2, 3)


def _keyed(keys_raw: bytes, keys_size: int | None = None, x_size: int = 24,
           tail: bytes = b"") -> tuple[Any, bytes]:
    """A binary request: 1x2x3 FP32 features, then two BYTES routing keys."""
    x = np.arange(6, dtype="<f4").tobytes()
    head = {"inputs": [
        {"name": "features", "datatype": "FP32", "shape": [1, 2, 3],
         "parameters": {"binary_data_size": x_size}},
        {"name": "routing_key", "datatype": "BYTES", "shape": [1],
         "parameters": {"binary_data_size": len(keys_raw) if keys_size is None
                        else keys_size}}]}
    return head, x + keys_raw + tail


def test_binary_inputs_take_their_bytes_in_input_order() -> None:
    head, raw = _keyed((4).to_bytes(4, "little") + b"A:b1")
    req = parse_infer(head, "features", 2, 3, binary=raw)
    assert req.row_keys == ("A:b1",) and req.routing_key is None
    np.testing.assert_array_equal(req.x.ravel(), np.arange(6, dtype=np.float32))


@pytest.mark.parametrize(("request_", "says"), [
    (_keyed((4).to_bytes(4, "little") + b"A:b1", tail=b"x"), "add up to"),
    (_keyed((4).to_bytes(4, "little") + b"A:b1", keys_size=99), "need at least"),
    (_keyed((9).to_bytes(4, "little") + b"A:b1"), "ends inside an element"),
    (_keyed(b"\x01\x00"), "ends inside an element's length"),
    (_keyed((2).to_bytes(4, "little") + b"\xff\xfe"), "UTF-8"),
    (_keyed((4).to_bytes(4, "little") + b"A:b1", x_size=20, keys_size=12), "must be 24"),
], ids=["extra-bytes", "short-body", "short-element", "short-length", "not-utf8",
        "short-features"])
def test_a_malformed_binary_request_names_what_is_wrong(request_: tuple[Any, bytes],
                                                         says: str) -> None:
    head, raw = request_
    with pytest.raises(BadRequestError, match=says):
        parse_infer(head, "features", 2, 3, binary=raw)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=4),
    max_leaves=20)


@given(json_values)
def test_any_json_is_parsed_or_rejected_with_a_bad_request(value: Any) -> None:
    for candidate in (value, body(value), {"inputs": [value]}):
        try:
            req = parse_infer(candidate, "features", 2, 3)
        except BadRequestError:
            continue
        assert np.isfinite(req.x).all() and req.x.shape[1:] == (2, 3)


def test_deeply_nested_data_is_a_bad_request_not_a_recursion_error() -> None:
    """orjson decodes ~1000 levels; the number check must not recurse past the tensor's rank
    (it used to raise RecursionError: a 500 and a 1000-frame traceback per request)."""
    deep: Any = 1
    for _ in range(1015):
        deep = [deep]
    with pytest.raises(BadRequestError):
        parse_infer(body(deep), "features", 2, 3)
    with pytest.raises(BadRequestError):  # deeper than [n, w, f] even with the right count
        parse_infer(body([[[[0, 1, 2], [3, 4, 5]]]]), "features", 2, 3)


@pytest.mark.parametrize("rid", ["", "x" * 257, "café", "a\tb"])
def test_ids_a_client_may_not_send(rid: str) -> None:
    """Printable ASCII of 1..256 (the id is stored and echoed; it is never the ledger's key,
    so any such string is harmless)."""
    with pytest.raises(BadRequestError):
        check_request_id(rid)
    with pytest.raises(BadRequestError):
        parse_infer(body([0.0] * 6, id=rid), "features", 2, 3)


@pytest.mark.parametrize("rid", ["r1", "replay:IBB:2026-04-30", "x" * 256, "a/b", "/1x",
                                 "0123456789ABCDEF-1", "abc-1", "0123456789abcdef-1",
                                 "order/1"])
def test_ids_a_client_may_choose(rid: str) -> None:
    assert parse_infer(body([0.0] * 6, id=rid), "features", 2, 3).request_id == rid


@pytest.mark.parametrize("key", ["k" * 257, "IBB\n2026-04-30", "a\x00"])
def test_routing_keys_are_bounded_and_printable(key: str) -> None:
    with pytest.raises(BadRequestError):
        check_routing_key(key)
    with pytest.raises(BadRequestError):
        parse_infer(body([0.0] * 6, parameters={"routing_key": key}), "features", 2, 3)
    ok = "k" * 256
    assert parse_infer(body([0.0] * 6, parameters={"routing_key": ok}), "features", 2,
                       3).routing_key == ok


def test_feedback_bodies_single_or_batch_with_direction_derived() -> None:
    one = parse_feedback({"prediction_id": "p1", "realized_return": 0.01})
    assert [(f.prediction_id, f.routing_key, f.direction) for f in one] == [("p1", None, 1)]
    batch = parse_feedback({"outcomes": [
        {"routing_key": "IBB:2020-01-02", "realized_return": -0.01},
        {"routing_key": "IBB:2020-01-03", "realized_return": 0.0, "direction": 1}]})
    assert [(f.routing_key, f.direction) for f in batch] == [("IBB:2020-01-02", 0),
                                                            ("IBB:2020-01-03", 1)]


@pytest.mark.parametrize("bad", [
    {"prediction_id": "p", "routing_key": "k", "realized_return": 0.0},
    {"realized_return": 0.0}, {"request_id": "p", "realized_return": 0.0},
    {"prediction_id": "", "realized_return": 0.0}, {"routing_key": "k\n", "realized_return": 0},
    {"prediction_id": "p", "realized_return": True}, {"prediction_id": "p", "realized_return": -2},
    {"prediction_id": "p", "realized_return": 0.0, "direction": 2},
    {"outcomes": []}, {"outcomes": [{}]}, {"outcomes": "x"}, [], "x",
    {"outcomes": [{"prediction_id": "p", "realized_return": 0.0}]} | {"extra": 1},
])
def test_malformed_feedback_is_a_bad_request(bad: Any) -> None:
    with pytest.raises(BadRequestError):
        parse_feedback(bad)


def test_feedback_batches_are_bounded() -> None:
    item = {"prediction_id": "p", "realized_return": 0.0}
    assert len(parse_feedback({"outcomes": [item] * MAX_FEEDBACK})) == MAX_FEEDBACK
    with pytest.raises(BadRequestError, match="1 to 1000"):
        parse_feedback({"outcomes": [item] * (MAX_FEEDBACK + 1)})
