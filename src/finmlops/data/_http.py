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
from typing import Any

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
    """A minimal HTTP client with polite retries; one instance per source or service.

    Each call opens its own connection pool unless the client is used as a context manager
    (``with client: ...``), which keeps one pool open for every call inside it."""

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
    trust_env: bool = True
    """Whether proxy variables apply (a service on loopback is reached directly)."""
    _open: httpx.Client | None = field(default=None, init=False, repr=False)

    def __enter__(self) -> RetryingClient:
        if self._open is None:
            self._open = self._client()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._open is not None:
            self._open.close()
            self._open = None

    def get(self, url: str, *, params: Mapping[str, str | int] | None = None,
            what: str) -> httpx.Response:
        """The first non-retryable response (status < 400, or a 4xx other than 429).

        ``what`` names the request in errors ("yahoo QQQ"). Raises :class:`SourceError` once
        retries are exhausted, or at once when the host name does not resolve.
        """
        response, attempts, last = self._send("GET", url, what, params=params)
        if response is None or response.status_code in RETRY_STATUSES:
            raise SourceError(f"{what}: giving up after {attempts} attempt"
                              f"{'s' if attempts != 1 else ''} ({last})")
        return response

    def request(self, method: str, url: str, *, what: str, json: Any = None,
                content: bytes | None = None, headers: Mapping[str, str] | None = None,
                retry: bool = True) -> httpx.Response:
        """The first non-retryable response, else the last one once retries are exhausted
        (``retry=False``: the only one; a request that must not be repeated). The body is
        ``json`` encoded, or ``content`` as it is. Raises :class:`SourceError` when no attempt
        got an answer, at once when the host name does not resolve."""
        body: dict[str, Any] = {"json": json} if content is None else {"content": content}
        response, attempts, last = self._send(method, url, what, headers=headers,
                                              retries=self.max_retries if retry else 0, **body)
        if response is None:
            raise SourceError(f"{what}: no answer after {attempts} attempt"
                              f"{'s' if attempts != 1 else ''} ({last})")
        return response

    def _client(self) -> httpx.Client:
        return httpx.Client(timeout=self.timeout_s, transport=self.transport,
                            headers=dict(self.headers), follow_redirects=True,
                            trust_env=self.trust_env)

    def _send(self, method: str, url: str, what: str, *, retries: int | None = None,
              **kwargs: Any) -> tuple[httpx.Response | None, int, str]:
        """``(last response or None, attempts made, what went wrong last)``."""
        retries = self.max_retries if retries is None else retries
        attempts = retries + 1
        last = ""
        response: httpx.Response | None = None
        client = self._open or self._client()
        try:
            for attempt in range(attempts):
                try:
                    response = client.request(method, url, **kwargs)
                except httpx.TransportError as exc:
                    _fail_unresolved(exc, url, what)
                    response = None
                    last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                    delay = self._backoff(attempt)
                else:
                    if response.status_code not in RETRY_STATUSES:
                        return response, attempt + 1, ""
                    last = f"HTTP {response.status_code}"
                    delay = self._retry_after(response) or self._backoff(attempt)
                if attempt + 1 < attempts:
                    self.notify(f"{what}: {last}; retry {attempt + 1} of {retries} "
                                f"in {delay:.1f} s")
                    self.sleep(delay)
        finally:
            if client is not self._open:
                client.close()
        return response, attempts, last

    def _backoff(self, attempt: int) -> float:
        return float(min(self.backoff_s * 2.0**attempt, self.max_retry_after_s))

    def _retry_after(self, response: httpx.Response) -> float | None:
        value = response.headers.get("retry-after")
        return None if value is None else parse_retry_after(
            value, now=self.clock(), cap=self.max_retry_after_s)


def _fail_unresolved(exc: httpx.TransportError, url: str, what: str) -> None:
    """Raise :class:`SourceError` at once when ``exc`` is a failed host-name lookup."""
    unresolved = name_resolution_error(exc)
    if unresolved is not None:
        host = httpx.URL(url).host
        raise SourceError(f"{what}: cannot resolve {host} ({unresolved}): check the network "
                          "connection and DNS (not retried)") from None


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
