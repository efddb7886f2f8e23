"""Replay held-out days as live traffic against any Open Inference Protocol V2 endpoint.

Each day and ticker is one prediction of the experiment under the routing key
``"<ticker>:<YYYY-MM-DD>"``, so the arm that serves it is a pure function of the key and the
experiment version (the same on every replica) — whether a day's tickers travel together, one
key per row, or one request each. After a day's requests, the realised one-day
return of each (known once the next bar exists) is posted as one feedback batch, addressed by
the ``prediction_id`` each answer carried. The requests go through a
:class:`~finmlops.abtest.client.ServiceClient` (its ``seldon=True`` drives a Seldon Core v2
Experiment behind its mesh with the same replay).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from finmlops.errors import SourceError

if TYPE_CHECKING:
    from finmlops.abtest.client import ServiceClient

ProgressFn = Callable[[int, int, str], None]
"""``(days_done, days_total, day)`` after each replayed day."""


@dataclass(frozen=True)
class ReplayInput:
    """Prepared requests: one full-feature window per (day, ticker), oldest row first."""

    windows: NDArray[np.float32]
    """``[n, W, F]`` raw feature values."""
    dates: Sequence[dt.date]
    tickers: Sequence[str]
    forward_returns: NDArray[np.float64]
    """Simple return from the day's close to the next; NaN when the next bar is unknown."""

    def __post_init__(self) -> None:
        n = self.windows.shape[0]
        if self.windows.ndim != 3 or not (len(self.dates) == len(self.tickers)
                                          == len(self.forward_returns) == n):
            raise ValueError("windows [n, W, F], dates, tickers and forward_returns must align")


@dataclass
class ReplayResult:
    requests: int = 0
    feedback: int = 0
    days: int = 0
    served: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    records: list[dict[str, Any]] = field(default_factory=list)
    """One per request: ``prediction_id, routing_key, arm, probability``."""

    def summary(self) -> dict[str, Any]:
        return {"requests": self.requests, "feedback": self.feedback, "days": self.days,
                "served": dict(sorted(self.served.items())), "seconds": round(self.seconds, 3)}


def routing_key(ticker: str, day: dt.date) -> str:
    return f"{ticker}:{day.isoformat()}"


FEEDBACK_BATCH = 1000
"""Outcomes per feedback post (the service's ``MAX_FEEDBACK``)."""
ROWS_BYTES = 512 * 1024
"""Feature bytes per request when a day's tickers travel together (well under the service's
default 1 MiB body limit)."""


def replay(client: ServiceClient, data: ReplayInput, *, experiment: str,
           id_prefix: str = "replay", input_name: str = "features",
           on_progress: ProgressFn | None = None, per_row: bool = False) -> ReplayResult:
    """Send every (day, ticker) to the experiment, then that day's outcomes as feedback.

    By default one JSON request per ticker and day, which any V2 endpoint understands.
    ``per_row=True`` (a finmlops service): a day's tickers travel together, a few hundred rows
    a request as binary FP32 with one routing key per row (the ``routing_key`` BYTES input),
    and the service routes, records and answers each row as if it had come alone. A client
    that drives a Seldon Core v2 Experiment (whose mesh routes whole requests) always sends
    one request per ticker and day. ``id_prefix`` prefixes the client ids sent (kept
    beside each prediction in the ledger). The client's connections stay open throughout.
    """
    order = sorted(range(len(data.dates)), key=lambda i: (data.dates[i], data.tickers[i]))
    days = sorted(set(data.dates))
    by_day: dict[dt.date, list[int]] = {}
    for i in order:
        by_day.setdefault(data.dates[i], []).append(i)
    send = _send_rows if per_row and not client.seldon else _send_each
    result = ReplayResult()
    t0 = time.perf_counter()
    try:
        with client:
            for d_i, day in enumerate(days):
                outcomes = []
                for i, pid, arm, prob in send(client, data, day, by_day[day], experiment,
                                              id_prefix, input_name):
                    result.requests += 1
                    result.served[arm] = result.served.get(arm, 0) + 1
                    result.records.append({"prediction_id": pid,
                                           "routing_key": routing_key(data.tickers[i], day),
                                           "arm": arm, "probability": prob})
                    fwd = float(data.forward_returns[i])
                    if np.isfinite(fwd):
                        outcomes.append({"prediction_id": pid, "realized_return": fwd,
                                         "direction": int(fwd > 0)})
                for start in range(0, len(outcomes), FEEDBACK_BATCH):
                    client.feedback(outcomes[start:start + FEEDBACK_BATCH],
                                    what=f"feedback for {day}")
                result.feedback += len(outcomes)
                result.days += 1
                if on_progress is not None:
                    on_progress(d_i + 1, len(days), day.isoformat())
    finally:
        result.seconds = time.perf_counter() - t0
    return result


Answered = tuple[int, str, str, float | None]
"""``(row of the input, prediction id, arm, probability)`` of one answered (day, ticker)."""


def _send_each(client: ServiceClient, data: ReplayInput, day: dt.date, rows: list[int],
               experiment: str, id_prefix: str, input_name: str) -> list[Answered]:
    """One JSON request per ticker, keyed ``TICKER:YYYY-MM-DD``."""
    w, f = int(data.windows.shape[1]), int(data.windows.shape[2])
    out: list[Answered] = []
    for i in rows:
        key = routing_key(data.tickers[i], day)
        body = {"id": f"{id_prefix}:{key}", "parameters": {"routing_key": key},
                "inputs": [{"name": input_name, "datatype": "FP32", "shape": [1, w, f],
                            "data": data.windows[i].astype(float).ravel().tolist()}]}
        answer = client.infer(experiment, body, what=f"inference for {key}")
        out.append((i, answer.prediction_id, answer.arm, answer.probability))
    return out


def _send_rows(client: ServiceClient, data: ReplayInput, day: dt.date, rows: list[int],
               experiment: str, id_prefix: str, input_name: str) -> list[Answered]:
    """The day's tickers in requests of at most :data:`ROWS_BYTES` of features, each row
    with its own routing key."""
    w, f = int(data.windows.shape[1]), int(data.windows.shape[2])
    per_request = max(1, ROWS_BYTES // (w * f * 4))
    out: list[Answered] = []
    for start in range(0, len(rows), per_request):
        chunk = rows[start:start + per_request]
        x = np.ascontiguousarray(data.windows[chunk], dtype="<f4").tobytes()
        keys = [routing_key(data.tickers[i], day) for i in chunk]
        body = {"id": f"{id_prefix}:{day.isoformat()}:{start // per_request}",
                "inputs": [{"name": input_name, "datatype": "FP32", "shape": [len(chunk), w, f],
                            "parameters": {"binary_data_size": len(x)}},
                           {"name": "routing_key", "datatype": "BYTES", "shape": [len(chunk)],
                            "data": keys}]}
        answer = client.infer(experiment, body, binary=x,
                              what=f"inference for {len(chunk)} tickers on {day}")
        rows_answered = answer.rows()
        if len(rows_answered) != len(chunk):
            raise SourceError(f"inference for {day} answered {len(rows_answered)} rows for "
                              f"{len(chunk)} sent")
        out += [(i, r.prediction_id, r.arm, r.probability)
                for i, r in zip(chunk, rows_answered, strict=True)]
    return out
