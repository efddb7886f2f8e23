"""Open Inference Protocol V2 request parsing and response building (no HTTP here)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
ROUTING_KEY_INPUT = "routing_key"
"""An optional second input, BYTES of shape ``[n]``: one routing key per row. A day's
universe then travels in one request and each row is assigned, recorded and answered as its
own prediction; the answer adds the :data:`ROW_OUTPUTS`."""
ROW_OUTPUTS = ("arm", "prediction_id")
"""BYTES outputs of shape ``[n]`` answering a request with per-row routing keys."""


@dataclass(frozen=True)
class InferRequest:
    """A validated request: the float32 batch, the optional id / routing key, and how the
    client wants its output (``binary``: raw bytes after a JSON header)."""

    x: np.ndarray
    request_id: str | None
    routing_key: str | None
    binary_output: bool = False
    row_keys: tuple[str, ...] | None = None
    """One routing key per row (the :data:`ROUTING_KEY_INPUT` input): each row is routed on
    its own key, as if it had been sent alone."""


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
    (``Inference-Header-Content-Length``): each input with ``parameters.binary_data_size``
    takes that many bytes of it, in the order of ``inputs`` (FP32/FP64 little-endian; BYTES as
    4-byte little-endian lengths, each followed by its bytes). ``outputs`` may only name
    ``output_name`` (and the :data:`ROW_OUTPUTS`); ``parameters.binary_data`` on it, or
    ``binary_data_output`` on the request, asks for the output as raw bytes. A second input
    named :data:`ROUTING_KEY_INPUT` carries one routing key per row."""
    if not isinstance(body, dict):
        raise BadRequestError("the request body must be a JSON object")
    rid, key, binary_output = _request_fields(body, output_name)
    tensors = _the_inputs(body.get("inputs"), input_name)
    parts = _binary_parts(tensors, binary)
    tensor = tensors[input_name]
    datatype = tensor.get("datatype")
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise BadRequestError(f"datatype must be FP32 (or FP64), got {datatype!r}")
    n, w, f = _input_shape(tensor.get("shape"), window, n_features)
    raw = parts.get(input_name)
    if raw is not None:
        x = _binary_tensor(raw, datatype, n * w * f).reshape(n, w, f)
    else:
        x = _json_tensor(tensor.get("data"), [n, w, f]).reshape(n, w, f)
    row_keys = None
    if ROUTING_KEY_INPUT in tensors:
        if key is not None:
            raise BadRequestError("send routing_key as a parameter or as an input, not both")
        row_keys = _row_keys(tensors[ROUTING_KEY_INPUT], parts.get(ROUTING_KEY_INPUT), n)
    return InferRequest(x, rid, key, binary_output, row_keys)


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


def _the_inputs(inputs: Any, input_name: str) -> dict[str, dict[str, Any]]:
    """The request's input tensors by name, in order: ``input_name`` and optionally
    :data:`ROUTING_KEY_INPUT`."""
    allowed = (input_name, ROUTING_KEY_INPUT)
    if not isinstance(inputs, list) or not 1 <= len(inputs) <= 2:
        raise BadRequestError(f"inputs must be a list holding one tensor named {input_name!r} "
                              f"(and optionally {ROUTING_KEY_INPUT!r})")
    out: dict[str, dict[str, Any]] = {}
    for tensor in inputs:
        if not isinstance(tensor, dict):
            raise BadRequestError("each input must be an object")
        if not isinstance(tensor.get("parameters", {}), dict):
            raise BadRequestError("input parameters must be an object")
        name = tensor.get("name")
        if name not in allowed:
            raise BadRequestError(f"unknown input {name!r}; expected {input_name!r}"
                                  f"{' or ' + repr(ROUTING_KEY_INPUT) if len(inputs) > 1 else ''}")
        if name in out:
            raise BadRequestError(f"input {name!r} appears twice")
        out[name] = tensor
    if input_name not in out:
        raise BadRequestError(f"no input named {input_name!r}")
    return out


def _binary_parts(tensors: Mapping[str, Mapping[str, Any]], binary: bytes) -> dict[str, bytes]:
    """Each binary input's bytes: ``binary_data_size`` bytes of the tail, in input order."""
    parts: dict[str, bytes] = {}
    offset = 0
    for name, tensor in tensors.items():
        size = tensor.get("parameters", {}).get("binary_data_size")
        if size is None:
            continue
        if type(size) is not int or size < 0:
            raise BadRequestError(f"binary_data_size of {name!r} must be a byte count")
        if "data" in tensor:
            raise BadRequestError(f"input {name!r} has both data and binary_data_size")
        if offset + size > len(binary):
            raise BadRequestError(f"the body holds {len(binary)} bytes of binary data; the "
                                  f"inputs' binary_data_size need at least {offset + size}")
        parts[name] = binary[offset:offset + size]
        offset += size
    if offset != len(binary):
        raise BadRequestError(
            "binary data was sent but no input has binary_data_size" if not parts else
            f"the body holds {len(binary)} bytes of binary data; the inputs' "
            f"binary_data_size add up to {offset}")
    return parts


def _row_keys(tensor: Mapping[str, Any], raw: bytes | None, n: int) -> tuple[str, ...]:
    """The per-row routing keys: BYTES of shape ``[n]``, each a valid routing key."""
    if tensor.get("datatype") != "BYTES" or tensor.get("shape") != [n]:
        raise BadRequestError(f"input {ROUTING_KEY_INPUT!r} must be BYTES of shape [{n}] "
                              "(one key per row)")
    keys = _bytes_elements(raw) if raw is not None else tensor.get("data")
    if not isinstance(keys, list) or len(keys) != n:
        raise BadRequestError(f"input {ROUTING_KEY_INPUT!r} must hold {n} strings")
    return tuple(check_routing_key(k) for k in keys)


def _bytes_elements(raw: bytes) -> list[str]:
    """A binary BYTES tensor's elements: each a 4-byte little-endian length, then the bytes."""
    out: list[str] = []
    i = 0
    while i < len(raw):
        if i + 4 > len(raw):
            raise BadRequestError("a BYTES tensor ends inside an element's length")
        size = int.from_bytes(raw[i:i + 4], "little")
        chunk = raw[i + 4:i + 4 + size]
        if len(chunk) != size:
            raise BadRequestError("a BYTES tensor ends inside an element")
        try:
            out.append(chunk.decode("utf-8"))
        except UnicodeDecodeError:
            raise BadRequestError("a routing key must be UTF-8 text") from None
        i += 4 + size
    return out


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
        if o.get("name") in ROW_OUTPUTS:
            continue
        if o.get("name") != output_name:
            raise BadRequestError(f"unknown output {o.get('name')!r}; the model has "
                                  f"{output_name!r}")
        p = o.get("parameters", {})
        if not isinstance(p, dict):
            raise BadRequestError("output parameters must be an object")
        binary = binary or p.get("binary_data") is True
    return binary


def _binary_tensor(binary: bytes, datatype: str, count: int) -> np.ndarray:
    """The float32 values of a binary tensor, checked: length, finiteness."""
    dtype = _DTYPES[datatype]
    if len(binary) != count * dtype.itemsize:
        raise BadRequestError(f"binary_data_size must be {count * dtype.itemsize} for "
                              f"{count} {datatype} values, got {len(binary)}")
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
                   probabilities: list[float], params: Mapping[str, Any],
                   rows: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """The V2 response; ``parameters`` holds no nulls (absent values are left out). ``rows``:
    the :data:`ROW_OUTPUTS` of a request routed row by row (BYTES outputs)."""
    return {
        "model_name": model_name,
        "model_version": version,
        "id": request_id,
        "parameters": {k: v for k, v in params.items() if v is not None},
        "outputs": [{"name": output_name, "datatype": "FP32",
                     "shape": [len(probabilities)], "data": probabilities},
                    *_row_outputs(rows)],
    }


def binary_response(model_name: str, version: str, request_id: str, output_name: str,
                    probabilities: np.ndarray, params: Mapping[str, Any],
                    rows: Mapping[str, Sequence[str]] | None = None) -> tuple[bytes, int]:
    """``(body, JSON header length)``: the output as little-endian FP32 after the header (the
    ``rows`` outputs stay JSON data in the header, as the binary extension allows)."""
    import orjson

    raw = np.ascontiguousarray(probabilities, dtype="<f4").tobytes()
    head = orjson.dumps({
        "model_name": model_name, "model_version": version, "id": request_id,
        "parameters": {k: v for k, v in params.items() if v is not None},
        "outputs": [{"name": output_name, "datatype": "FP32",
                     "shape": [int(probabilities.shape[0])],
                     "parameters": {"binary_data_size": len(raw)}},
                    *_row_outputs(rows)]})
    return head + raw, len(head)


def _row_outputs(rows: Mapping[str, Sequence[str]] | None) -> list[dict[str, Any]]:
    return [{"name": name, "datatype": "BYTES", "shape": [len(values)], "data": list(values)}
            for name, values in (rows or {}).items()]


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
