"""Replay held-out days as live traffic against any Open Inference Protocol V2 endpoint.

Each day and ticker is one request to the experiment with ``parameters.routing_key =
"<ticker>:<YYYY-MM-DD>"``, so the arm that serves it is a pure function of the key and the
experiment version (the same on every replica). After a day's requests, the realised one-day
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


def replay(client: ServiceClient, data: ReplayInput, *, experiment: str,
           id_prefix: str = "replay", input_name: str = "features",
           on_progress: ProgressFn | None = None) -> ReplayResult:
    """Send every (day, ticker) as a V2 request, then that day's outcomes as feedback.

    ``id_prefix`` prefixes the client ids sent (kept beside each prediction in the ledger).
    The client's connections stay open for the whole replay.
    """
    order = sorted(range(len(data.dates)), key=lambda i: (data.dates[i], data.tickers[i]))
    days = sorted(set(data.dates))
    by_day: dict[dt.date, list[int]] = {}
    for i in order:
        by_day.setdefault(data.dates[i], []).append(i)
    result = ReplayResult()
    t0 = time.perf_counter()
    w, f = int(data.windows.shape[1]), int(data.windows.shape[2])
    try:
        with client:
            for d_i, day in enumerate(days):
                outcomes = []
                for i in by_day[day]:
                    key = routing_key(data.tickers[i], day)
                    body = {"id": f"{id_prefix}:{key}", "parameters": {"routing_key": key},
                            "inputs": [{"name": input_name, "datatype": "FP32",
                                        "shape": [1, w, f],
                                        "data": data.windows[i].astype(float).ravel().tolist()}]}
                    answer = client.infer(experiment, body, what=f"inference for {key}")
                    pid, arm = answer.prediction_id, answer.arm
                    result.requests += 1
                    result.served[arm] = result.served.get(arm, 0) + 1
                    result.records.append({"prediction_id": pid, "routing_key": key,
                                           "arm": arm, "probability": answer.probability})
                    fwd = float(data.forward_returns[i])
                    if np.isfinite(fwd):
                        outcomes.append({"prediction_id": pid, "realized_return": fwd,
                                         "direction": int(fwd > 0)})
                if outcomes:
                    client.feedback(outcomes, what=f"feedback for {day}")
                    result.feedback += len(outcomes)
                result.days += 1
                if on_progress is not None:
                    on_progress(d_i + 1, len(days), day.isoformat())
    finally:
        result.seconds = time.perf_counter() - t0
    return result
