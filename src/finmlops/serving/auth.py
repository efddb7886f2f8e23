"""Bearer tokens by scope: ``inference``, ``feedback`` and ``admin``, each with its own token.

With no token configured, every route is open (meant for loopback; ``finmlops serve`` warns
otherwise). Once any token is configured, each scope accepts its own token only: the inference
token can neither post outcomes nor change the experiment, and a scope left without a token
refuses everyone. A missing or unknown token is a 401 carrying ``WWW-Authenticate``; a valid
token of another scope is a 403. Tokens are compared in constant time; the caller recorded
with an outcome is the scope and an 8-hex fingerprint of the token, never the token.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal

from finmlops.config import TokenSettings
from finmlops.errors import ConfigError, ForbiddenError, UnauthorizedError

Scope = Literal["inference", "feedback", "admin"]
SCOPES: tuple[Scope, ...] = ("inference", "feedback", "admin")
REALM = 'Bearer realm="finmlops"'


class AuthError(UnauthorizedError):
    """A 401 with the challenge the response must carry."""

    def __init__(self, message: str, challenge: str) -> None:
        super().__init__(message)
        self.challenge = challenge


class ScopeError(ForbiddenError):
    def __init__(self, message: str, challenge: str) -> None:
        super().__init__(message)
        self.challenge = challenge


def _tokens(settings: TokenSettings) -> dict[Scope, bytes]:
    out: dict[Scope, bytes] = {}
    for scope in SCOPES:
        secret = getattr(settings, scope)
        if secret is None:
            continue
        value = secret.get_secret_value().strip()
        if not value:
            raise ConfigError(f"serve.tokens.{scope} is set but empty: set a token or remove "
                              "the key")
        out[scope] = value.encode()
    return out


class Auth:
    """Checks an ``Authorization`` header against the scope a route needs."""

    def __init__(self, settings: TokenSettings) -> None:
        self._tokens = _tokens(settings)
        self._callers = {scope: f"{scope}-token:{hashlib.sha256(t).hexdigest()[:8]}"
                         for scope, t in self._tokens.items()}

    @property
    def enabled(self) -> bool:
        return bool(self._tokens)

    def scopes(self) -> tuple[Scope, ...]:
        return tuple(self._tokens)

    def check(self, scope: Scope, authorization: bytes | None) -> str:
        """The caller's name when ``authorization`` may use ``scope``; else 401/403."""
        if not self._tokens:
            return "anonymous"
        challenge = f'{REALM}, scope="{scope}"'
        header = authorization or b""
        # The scheme is case-insensitive (RFC 9110 11.1); the token is compared whole.
        if header[:7].lower() != b"bearer " or not header[7:].strip(b" "):
            raise AuthError("missing bearer token", challenge)
        token = header[7:].strip(b" ")
        matched: Scope | None = None
        for name, expected in self._tokens.items():
            if hmac.compare_digest(token, expected):
                matched = name
        if matched is None:
            raise AuthError("wrong bearer token", f'{challenge}, error="invalid_token"')
        if matched != scope:
            if scope not in self._tokens:
                raise ScopeError(f"no token is configured for {scope}: it is disabled",
                                 f'{challenge}, error="insufficient_scope"')
            raise ScopeError(f"this token may not be used for {scope}",
                             f'{challenge}, error="insufficient_scope"')
        return self._callers[matched]
