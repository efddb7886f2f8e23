"""One client of a running V2 service (finmlops, or anything that speaks its protocol):
inference, feedback and the experiment's weights, each with its scope's bearer token.

Built on :class:`finmlops.data._http.RetryingClient`. Inference is sent once: the service
records every answered prediction, so a retry after a lost answer would record it twice.
Feedback is retried on 429, 5xx and transport errors: an outcome is recorded once per
prediction, so a repeated post counts nothing twice. An error answer becomes the typed error
of its status (:func:`raise_for`), with the service's ``error`` text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Self

import httpx

from finmlops.config import Settings
from finmlops.data._http import RetryingClient
from finmlops.errors import (
    BadRequestError,
    ModelNotFoundError,
    NotReadyError,
    PayloadTooLargeError,
    SourceError,
    UnauthorizedError,
)

Scope = Literal["inference", "feedback", "admin"]
RETRIES = 3
RETRY_BACKOFF_S = 0.5
"""First wait before a retry (then doubled: 0.5, 1, 2 s)."""
_BY_STATUS: dict[int, type[Exception]] = {
    400: BadRequestError, 401: UnauthorizedError, 404: ModelNotFoundError,
    413: PayloadTooLargeError, 503: NotReadyError}


def raise_for(resp: httpx.Response, what: str) -> None:
    """Nothing for a success; else the typed error of the status, with the answer's
    ``error`` text (:class:`SourceError` for a status without one of its own)."""
    if resp.status_code < 400:
        return
    try:
        msg = resp.json().get("error", resp.text)
    except (ValueError, AttributeError):
        msg = resp.text
    raise _BY_STATUS.get(resp.status_code, SourceError)(
        f"{what} answered {resp.status_code}: {msg}")


@dataclass(frozen=True)
class Answer:
    """One inference answer: its body and the headers that name the arm and prediction."""

    body: dict[str, Any]
    headers: Mapping[str, str]

    @property
    def prediction_id(self) -> str:
        params = self.body.get("parameters") or {}
        pid = params.get("prediction_id") or self.headers.get("x-prediction-id")
        if not isinstance(pid, str) or not pid:
            raise SourceError("the service's answer carries no prediction_id (is it finmlops?)")
        return pid

    @property
    def arm(self) -> str:
        """The arm that served: ``parameters.arm``, else Seldon's route header, else the
        model's name."""
        arm = (self.body.get("parameters") or {}).get("arm")
        if isinstance(arm, str) and arm:
            return arm
        parts = [p for p in self.headers.get("x-seldon-route", "").split(":") if p]
        return str(parts[-1]) if parts else str(self.body.get("model_name", "unknown"))

    @property
    def probability(self) -> float | None:
        outputs = self.body.get("outputs") or [{}]
        value = (outputs[0].get("data") or [None])[0]
        return None if value is None else float(value)

    def rows(self) -> list[RowAnswer]:
        """Per row of a request with per-row routing keys: its prediction id, arm and
        probability (the ``prediction_id`` and ``arm`` BYTES outputs beside the first)."""
        outputs = {o.get("name"): o.get("data") for o in self.body.get("outputs") or []}
        first = (self.body.get("outputs") or [{}])[0].get("data")
        ids, arms = outputs.get("prediction_id"), outputs.get("arm")
        if not (isinstance(ids, list) and isinstance(arms, list) and isinstance(first, list)
                and len(ids) == len(arms) == len(first)):
            raise SourceError("the service's answer has no per-row prediction_id and arm "
                              "outputs (does it route rows by key? finmlops does)")
        return [RowAnswer(str(i), str(a), float(p))
                for i, a, p in zip(ids, arms, first, strict=True)]


@dataclass(frozen=True, slots=True)
class RowAnswer:
    """One row of a request routed row by row."""

    prediction_id: str
    arm: str
    probability: float


@dataclass
class ServiceClient:
    """A running service at ``url``; ``tokens`` per scope (``None``: no Authorization)."""

    url: str
    tokens: Mapping[Scope, str | None] = field(default_factory=dict)
    http: RetryingClient = field(default_factory=lambda: ServiceClient.retrying())
    seldon: bool = False
    """Also send ``seldon-model: <experiment>.experiment`` with inference, so the calls drive
    a Seldon Core v2 Experiment behind its mesh."""

    @classmethod
    def of(cls, settings: Settings, url: str, *, seldon: bool = False,
           timeout_s: float = 30.0, transport: httpx.BaseTransport | None = None) -> Self:
        """A client with the tokens of ``settings.serve.tokens``."""
        t = settings.serve.tokens

        def plain(secret: Any) -> str | None:
            return secret.get_secret_value() if secret is not None else None

        tokens: dict[Scope, str | None] = {"inference": plain(t.inference),
                                           "feedback": plain(t.feedback),
                                           "admin": plain(t.admin)}
        return cls(url, tokens, cls.retrying(timeout_s, transport), seldon)

    @staticmethod
    def retrying(timeout_s: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> RetryingClient:
        return RetryingClient(timeout_s=timeout_s, max_retries=RETRIES,
                              backoff_s=RETRY_BACKOFF_S, transport=transport, trust_env=False)

    @property
    def base(self) -> str:
        return self.url.rstrip("/")

    def __enter__(self) -> Self:
        self.http.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.__exit__(*exc)

    def infer(self, model: str, body: Mapping[str, Any], *, what: str | None = None,
              binary: bytes = b"") -> Answer:
        """``POST /v2/models/<model>/infer`` once (never retried). ``binary``: the tensors'
        bytes after the JSON header (the binary tensor extension; the body's inputs say how
        many bytes each takes with ``binary_data_size``)."""
        headers = self._auth("inference")
        if self.seldon:
            headers["seldon-model"] = f"{model}.experiment"
        path = f"/v2/models/{model}/infer"
        if binary:
            import orjson

            head = orjson.dumps(body)
            headers |= {"Inference-Header-Content-Length": str(len(head)),
                        "Content-Type": "application/octet-stream"}
            resp = self._call("POST", path, None, headers, retry=False, content=head + binary)
        else:
            resp = self._call("POST", path, body, headers, retry=False)
        raise_for(resp, what or f"inference on {model}")
        return Answer(resp.json(), resp.headers)

    def feedback(self, outcomes: Sequence[Mapping[str, Any]], *, what: str | None = None
                 ) -> dict[str, Any]:
        """``POST /v2/feedback`` of ``{"outcomes": [...]}``, retried; the service's count of
        accepted, duplicate and unknown outcomes."""
        resp = self._call("POST", "/v2/feedback", {"outcomes": list(outcomes)},
                          self._auth("feedback"), retry=True)
        what = what or f"feedback to {self.url}"
        raise_for(resp, what)
        return self._json(resp, what)

    def metadata(self, model: str) -> dict[str, Any]:
        """``GET /v2/models/<model>``: its inputs, outputs and versions (inference scope;
        retried, it changes nothing)."""
        resp = self._call("GET", f"/v2/models/{model}", None, self._auth("inference"),
                          retry=True)
        raise_for(resp, f"metadata of {model} at {self.url}")
        return self._json(resp, f"metadata of {model} at {self.url}")

    def experiment(self) -> dict[str, Any]:
        """``GET /admin/experiment``: the experiment in force (admin scope)."""
        resp = self._call("GET", "/admin/experiment", None, self._auth("admin"), retry=True)
        raise_for(resp, f"the experiment at {self.url}")
        return self._json(resp, f"the experiment at {self.url}")

    def set_weights(self, candidates: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """``PUT /admin/experiment`` with new candidate weights (admin scope); sent once,
        since each accepted change is a new experiment version."""
        resp = self._call("PUT", "/admin/experiment", {"candidates": list(candidates)},
                          self._auth("admin"), retry=False)
        raise_for(resp, f"new weights for {self.url}")
        return self._json(resp, f"new weights for {self.url}")

    def _auth(self, scope: Scope) -> dict[str, str]:
        token = self.tokens.get(scope)
        return {"Authorization": f"Bearer {token}"} if token else {}

    def _call(self, method: str, path: str, body: Any, headers: Mapping[str, str], *,
              retry: bool, content: bytes | None = None) -> httpx.Response:
        try:
            return self.http.request(method, f"{self.base}{path}", json=body, content=content,
                                     headers=headers, what=f"{method} {path}", retry=retry)
        except SourceError as exc:
            raise SourceError(f"service at {self.base} is unreachable: {exc.message}") from None

    @staticmethod
    def _json(resp: httpx.Response, what: str) -> dict[str, Any]:
        try:
            data = resp.json()
        except ValueError:
            raise SourceError(f"{what} answered {resp.status_code} with non-JSON: "
                              f"{resp.text[:200]}") from None
        if not isinstance(data, dict):
            raise SourceError(f"{what} answered {resp.status_code} with {type(data).__name__}")
        return data
