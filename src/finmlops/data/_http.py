"""GET with timeouts and polite retries, shared by the network sources.

Retries 429, 5xx and transport errors with exponential backoff, honouring ``Retry-After``
(seconds or an HTTP date, capped). The transport and the sleep function are injectable so
tests run offline and instantly.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import httpx

from finmlops.errors import SourceError

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
USER_AGENT = "finmlops/0.1 (+https://github.com/finmlops/finmlops)"


@dataclass
class RetryingClient:
    """A minimal HTTP GET client; one instance per source."""

    timeout_s: float = 20.0
    max_retries: int = 4
    backoff_s: float = 1.0
    max_retry_after_s: float = 60.0
    transport: httpx.BaseTransport | None = None
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time
    headers: Mapping[str, str] = field(default_factory=lambda: {"User-Agent": USER_AGENT})

    def get(self, url: str, *, params: Mapping[str, str | int] | None = None,
            what: str) -> httpx.Response:
        """The first non-retryable response (status < 400, or a 4xx other than 429).

        ``what`` names the request in errors ("yahoo QQQ"). Raises :class:`SourceError` once
        retries are exhausted.
        """
        attempts = self.max_retries + 1
        last = ""
        with httpx.Client(timeout=self.timeout_s, transport=self.transport,
                          headers=dict(self.headers), follow_redirects=True) as client:
            for attempt in range(attempts):
                try:
                    response = client.get(url, params=params)
                except httpx.TransportError as exc:
                    last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                    delay = self._backoff(attempt)
                else:
                    if response.status_code not in RETRY_STATUSES:
                        return response
                    last = f"HTTP {response.status_code}"
                    delay = self._retry_after(response) or self._backoff(attempt)
                if attempt + 1 < attempts:
                    self.sleep(delay)
        raise SourceError(f"{what}: giving up after {attempts} attempt"
                          f"{'s' if attempts != 1 else ''} ({last})")

    def _backoff(self, attempt: int) -> float:
        return float(min(self.backoff_s * 2.0**attempt, self.max_retry_after_s))

    def _retry_after(self, response: httpx.Response) -> float | None:
        value = response.headers.get("retry-after")
        return None if value is None else parse_retry_after(
            value, now=self.clock(), cap=self.max_retry_after_s)


def parse_retry_after(value: str, *, now: float, cap: float) -> float | None:
    """Seconds to wait for a ``Retry-After`` value (delta-seconds or HTTP date), within [0, cap]."""
    text = value.strip()
    if text.isdigit():
        return min(float(text), cap)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, min(when.timestamp() - now, cap))
