"""Open Inference Protocol V2 request parsing and response building (no HTTP here)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from finmlops.errors import BadRequestError
from finmlops.ledger import Feedback

DATATYPES = {"FP32", "FP64"}
_DTYPES: dict[str, np.dtype[Any]] = {"FP32": np.dtype("<f4"), "FP64": np.dtype("<f8")}
"""Binary tensor data is little-endian, row-major (the binary tensor extension)."""
EXTENSIONS = ["binary_tensor_data", "model_repository"]
"""Protocol extensions the service speaks (server metadata ``extensions``)."""


@dataclass(frozen=True)
class InferRequest:
    """A validated request: the float32 batch, the optional id / routing key, and how the
    client wants its output (``binary``: raw bytes after a JSON header)."""

    x: np.ndarray
    request_id: str | None
    routing_key: str | None
    binary_output: bool = False


_NUMBER = {int, float}
_FLT_MAX = float(np.finfo(np.float32).max)
MAX_ID = 256
"""Longest request id or routing key a client may send (characters)."""
MAX_FEEDBACK = 1000
"""Outcomes per feedback request."""
MIN_RETURN, MAX_RETURN = -1.0, 10.0
"""A one-day simple return: a price cannot fall more than 100%; the upper bound keeps one
absurd outcome (a client's 1e200) from turning the return sums, and with them every later
A/B figure, into infinity."""


def _only_numbers(data: list[Any], depth: int = 3) -> bool:
    """JSON numbers only (booleans and strings are not), checked in C for flat lists; nested
    at most ``depth`` levels (the tensor's rank), so a deep list is a 400, not a recursion."""
    types = set(map(type, data))
    if types <= _NUMBER:
        return True
    if types == {list} and depth > 1:
        return all(_only_numbers(d, depth - 1) for d in data)
    return False


def check_request_id(rid: Any) -> str:
    """A client-chosen request id (body ``id`` or ``x-request-id``): printable ASCII, at most
    :data:`MAX_ID` characters. It is kept beside the prediction, never used as its key (the
    ledger's key is issued by the service), so two clients sending the same id cannot touch
    each other's predictions."""
    if not (isinstance(rid, str) and 0 < len(rid) <= MAX_ID and rid.isascii()
            and rid.isprintable()):
        raise BadRequestError(f"id must be printable ASCII of 1 to {MAX_ID} characters")
    return rid


def check_routing_key(key: Any) -> str:
    """A routing key (``parameters.routing_key`` or ``x-routing-key``): a printable string of
    at most :data:`MAX_ID` characters (it is hashed, logged and indexed)."""
    if not (isinstance(key, str) and len(key) <= MAX_ID and key.isprintable()):
        raise BadRequestError(
            f"routing_key must be a printable string of at most {MAX_ID} characters")
    return key


def parse_infer(body: Any, input_name: str, window: int, n_features: int,
                output_name: str = "probability", binary: bytes = b"") -> InferRequest:
    """Check a decoded V2 body against the signature ``[-1, window, n_features]`` FP32.

    ``binary`` is what follows the JSON header in a binary tensor request
    (``Inference-Header-Content-Length``): an input with ``parameters.binary_data_size`` takes
    its values from there, little-endian. ``outputs`` may only name ``output_name``;
    ``parameters.binary_data`` on it, or ``binary_data_output`` on the request, asks for the
    output as raw bytes."""
    if not isinstance(body, dict):
        raise BadRequestError("the request body must be a JSON object")
    rid, key, binary_output = _request_fields(body, output_name)
    tensor = _the_input(body.get("inputs"), input_name)
    datatype = tensor.get("datatype")
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise BadRequestError(f"datatype must be FP32 (or FP64), got {datatype!r}")
    n, w, f = _input_shape(tensor.get("shape"), window, n_features)
    size = tensor.get("parameters", {}).get("binary_data_size")
    if size is not None:
        x = _binary_tensor(binary, size, datatype, n * w * f, "data" in tensor)
        return InferRequest(x.reshape(n, w, f), rid, key, binary_output)
    if binary:
        raise BadRequestError("binary data was sent but no input has binary_data_size")
    x = _json_tensor(tensor.get("data"), [n, w, f]).reshape(n, w, f)
    return InferRequest(x, rid, key, binary_output)


def _request_fields(body: dict[str, Any], output_name: str) -> tuple[Any, Any, bool]:
    """``(request id, routing key, binary output asked)`` of a request, checked."""
    rid = body.get("id")
    if rid is not None:
        check_request_id(rid)
    params = body.get("parameters")
    key = None
    binary_output = False
    if params is not None:
        if not isinstance(params, dict):
            raise BadRequestError("parameters must be an object")
        key = params.get("routing_key")
        if key is not None:
            check_routing_key(key)
        binary_output = params.get("binary_data_output") is True
    binary_output = _requested_outputs(body.get("outputs"), output_name) or binary_output
    return rid, key, binary_output


def _the_input(inputs: Any, input_name: str) -> dict[str, Any]:
    """The request's one input tensor, named ``input_name``."""
    if not isinstance(inputs, list) or len(inputs) != 1:
        raise BadRequestError(f"inputs must be a list holding one tensor named {input_name!r}")
    tensor = inputs[0]
    if not isinstance(tensor, dict):
        raise BadRequestError("each input must be an object")
    if not isinstance(tensor.get("parameters", {}), dict):
        raise BadRequestError("input parameters must be an object")
    if tensor.get("name") != input_name:
        raise BadRequestError(f"unknown input {tensor.get('name')!r}; expected {input_name!r}")
    return tensor


def _input_shape(shape: Any, window: int, n_features: int) -> tuple[int, int, int]:
    """``(n, window, n_features)`` of a shape that matches the model's signature."""
    if (not isinstance(shape, list) or len(shape) != 3
            or not all(type(d) is int for d in shape)):
        raise BadRequestError(f"shape must be [n, {window}, {n_features}]")
    n, w, f = shape
    if w != window or f != n_features or not 1 <= n <= 100_000:
        raise BadRequestError(f"shape {shape} does not match the model's [n, {window}, "
                              f"{n_features}] (n >= 1)")
    return n, w, f


def _json_tensor(data: Any, shape: list[int]) -> np.ndarray:
    """The float32 values of a JSON ``data`` list, checked: numbers, count, finiteness."""
    if not isinstance(data, list) or not _only_numbers(data):
        raise BadRequestError("data must be a (flat or nested) list of numbers")
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError):
        raise BadRequestError("data must be a (flat or nested) list of numbers") from None
    if arr.dtype.kind not in "fiu":
        raise BadRequestError("data must hold only numbers")
    count = shape[0] * shape[1] * shape[2]
    if arr.size != count:
        raise BadRequestError(f"data holds {arr.size} values; shape {shape} needs {count}")
    # |v| <= FLT_MAX is False for NaN and inf too, and keeps the float32 cast exact-or-finite.
    if not bool((np.abs(arr) <= _FLT_MAX).all()):
        raise BadRequestError("data must be finite numbers (no NaN, Infinity or overflow)")
    return arr.astype(np.float32, copy=False)


def _requested_outputs(outputs: Any, output_name: str) -> bool:
    """Validate ``outputs``; True when the (only) output is asked for as binary data."""
    if outputs is None:
        return False
    if not (isinstance(outputs, list) and all(isinstance(o, dict) for o in outputs)):
        raise BadRequestError("outputs must be a list of objects")
    binary = False
    for o in outputs:
        if o.get("name") != output_name:
            raise BadRequestError(f"unknown output {o.get('name')!r}; the model has "
                                  f"{output_name!r}")
        p = o.get("parameters", {})
        if not isinstance(p, dict):
            raise BadRequestError("output parameters must be an object")
        binary = binary or p.get("binary_data") is True
    return binary


def _binary_tensor(binary: bytes, size: Any, datatype: str, count: int,
                   has_data: bool) -> np.ndarray:
    """The float32 values of a binary tensor, checked: size, length, finiteness."""
    dtype = _DTYPES[datatype]
    if has_data:
        raise BadRequestError("an input has both data and binary_data_size")
    if type(size) is not int or size != count * dtype.itemsize:
        raise BadRequestError(f"binary_data_size must be {count * dtype.itemsize} for "
                              f"{count} {datatype} values, got {size!r}")
    if len(binary) != size:
        raise BadRequestError(f"the body holds {len(binary)} bytes of binary data; "
                              f"binary_data_size says {size}")
    arr: np.ndarray = np.frombuffer(binary, dtype=dtype)
    if not bool((np.abs(arr) <= _FLT_MAX).all()):
        raise BadRequestError("data must be finite numbers (no NaN, Infinity or overflow)")
    out: np.ndarray = arr.astype(np.float32)
    return out


def split_binary(body: bytes, header_length: bytes | None) -> tuple[Any, bytes]:
    """``(decoded JSON header, binary tail)`` of a request body (the binary tensor extension:
    ``Inference-Header-Content-Length`` says how long the JSON header is)."""
    import orjson

    if header_length is None:
        head, tail = body, b""
    else:
        try:
            n = int(header_length)
        except ValueError:
            raise BadRequestError("invalid Inference-Header-Content-Length") from None
        if not 0 < n <= len(body):
            raise BadRequestError(f"Inference-Header-Content-Length {n} is outside the body "
                                  f"({len(body)} bytes)")
        head, tail = body[:n], body[n:]
    try:
        return orjson.loads(head), tail
    except orjson.JSONDecodeError:
        raise BadRequestError("the body is not valid JSON") from None


def infer_response(model_name: str, version: str, request_id: str, output_name: str,
                   probabilities: list[float], params: Mapping[str, Any]) -> dict[str, Any]:
    """The V2 response; ``parameters`` holds no nulls (absent values are left out)."""
    return {
        "model_name": model_name,
        "model_version": version,
        "id": request_id,
        "parameters": {k: v for k, v in params.items() if v is not None},
        "outputs": [{"name": output_name, "datatype": "FP32",
                     "shape": [len(probabilities)], "data": probabilities}],
    }


def binary_response(model_name: str, version: str, request_id: str, output_name: str,
                    probabilities: np.ndarray, params: Mapping[str, Any]) -> tuple[bytes, int]:
    """``(body, JSON header length)``: the output as little-endian FP32 after the header."""
    import orjson

    raw = np.ascontiguousarray(probabilities, dtype="<f4").tobytes()
    head = orjson.dumps({
        "model_name": model_name, "model_version": version, "id": request_id,
        "parameters": {k: v for k, v in params.items() if v is not None},
        "outputs": [{"name": output_name, "datatype": "FP32",
                     "shape": [int(probabilities.shape[0])],
                     "parameters": {"binary_data_size": len(raw)}}]})
    return head + raw, len(head)


_OUTCOME_SHAPE = ('each outcome is {"prediction_id" | "routing_key": str, "realized_return": '
                  'number, "direction"?: 0|1}')


def parse_feedback(body: Any) -> list[Feedback]:
    """A single ``{"prediction_id" | "routing_key", "realized_return", "direction"?}`` or
    ``{"outcomes": [...]}`` (at most :data:`MAX_FEEDBACK`); ``direction`` defaults to
    ``realized_return > 0``."""
    batch = isinstance(body, dict) and "outcomes" in body
    items = body["outcomes"] if batch else [body]
    if (batch and len(body) != 1) or not isinstance(items, list) or not items \
            or len(items) > MAX_FEEDBACK:
        raise BadRequestError(f'expected {{"outcomes": [{{"prediction_id" | "routing_key", '
                              f'"realized_return"}}]}} with 1 to {MAX_FEEDBACK} outcomes')
    out: list[Feedback] = []
    for it in items:
        if not isinstance(it, dict) or set(it) - {"prediction_id", "routing_key", "direction",
                                                  "realized_return"}:
            raise BadRequestError(_OUTCOME_SHAPE)
        if ("prediction_id" in it) == ("routing_key" in it):
            raise BadRequestError("each outcome needs exactly one of prediction_id or "
                                  "routing_key")
        pid, key = it.get("prediction_id"), it.get("routing_key")
        ret, d = it.get("realized_return"), it.get("direction")
        if "prediction_id" in it and not (isinstance(pid, str) and 0 < len(pid) <= MAX_ID):
            raise BadRequestError(f"prediction_id must be a string of 1 to {MAX_ID} characters")
        if "routing_key" in it:
            if not (isinstance(key, str) and key):
                raise BadRequestError("routing_key must be a non-empty string")
            check_routing_key(key)
        if isinstance(ret, bool) or not isinstance(ret, int | float) \
                or not MIN_RETURN <= ret <= MAX_RETURN:
            raise BadRequestError(f"realized_return must be a one-day simple return within "
                                  f"{MIN_RETURN:g}..{MAX_RETURN:g}")
        if "direction" in it and (type(d) is not int or d not in (0, 1)):
            raise BadRequestError("direction must be 0 or 1")
        direction = d if isinstance(d, int) else int(ret > 0)
        out.append(Feedback(float(ret), direction, pid, key))
    return out
