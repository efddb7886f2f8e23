"""GET with timeouts and polite retries, shared by the network sources.

Retries 429, 5xx and transport errors with exponential backoff, honouring ``Retry-After``
(seconds or an HTTP date, capped), and says so: one line per retry (to stderr unless told
otherwise). A host name that does not resolve fails at once: that is no network, no DNS or
a wrong host, none of which a retry within seconds mends. The transport, the sleep and the
notice functions are injectable so tests run offline and instantly.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import socket
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import httpx

from finmlops.errors import SourceError

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
USER_AGENT = "finmlops/0.1 (+https://github.com/finmlops/finmlops)"


def stderr_line(message: str) -> None:
    """Write one line to the current ``sys.stderr`` (looked up per call, so a progress
    display that redirects stderr, or pytest, sees it)."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


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
    notify: Callable[[str], None] = stderr_line
    """Told one line before each retry (what failed, which retry, how long the wait)."""

    def get(self, url: str, *, params: Mapping[str, str | int] | None = None,
            what: str) -> httpx.Response:
        """The first non-retryable response (status < 400, or a 4xx other than 429).

        ``what`` names the request in errors ("yahoo QQQ"). Raises :class:`SourceError` once
        retries are exhausted, or at once when the host name does not resolve.
        """
        attempts = self.max_retries + 1
        last = ""
        with httpx.Client(timeout=self.timeout_s, transport=self.transport,
                          headers=dict(self.headers), follow_redirects=True) as client:
            for attempt in range(attempts):
                try:
                    response = client.get(url, params=params)
                except httpx.TransportError as exc:
                    unresolved = name_resolution_error(exc)
                    if unresolved is not None:
                        host = httpx.URL(url).host
                        raise SourceError(
                            f"{what}: cannot resolve {host} ({unresolved}): check the network "
                            "connection and DNS (not retried)") from None
                    last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                    delay = self._backoff(attempt)
                else:
                    if response.status_code not in RETRY_STATUSES:
                        return response
                    last = f"HTTP {response.status_code}"
                    delay = self._retry_after(response) or self._backoff(attempt)
                if attempt + 1 < attempts:
                    self.notify(f"{what}: {last}; retry {attempt + 1} of {self.max_retries} "
                                f"in {delay:.1f} s")
                    self.sleep(delay)
        raise SourceError(f"{what}: giving up after {attempts} attempt"
                          f"{'s' if attempts != 1 else ''} ({last})")

    def _backoff(self, attempt: int) -> float:
        return float(min(self.backoff_s * 2.0**attempt, self.max_retry_after_s))

    def _retry_after(self, response: httpx.Response) -> float | None:
        value = response.headers.get("retry-after")
        return None if value is None else parse_retry_after(
            value, now=self.clock(), cap=self.max_retry_after_s)


def name_resolution_error(exc: BaseException) -> str | None:
    """The resolver's reason when ``exc`` was caused by a failed host-name lookup
    (``socket.gaierror`` anywhere in its chain), else ``None``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, socket.gaierror):
            return current.strerror or str(current) or "name resolution failed"
        current = current.__cause__ or current.__context__
    return None


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
