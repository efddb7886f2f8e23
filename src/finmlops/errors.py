"""Typed errors, mapped once: to an HTTP response (service), to one line and an exit code (CLI)."""

from __future__ import annotations


class FinmlopsError(Exception):
    """Base of every error a user can cause or fix; never shown with a traceback."""

    http_status: int = 500
    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(FinmlopsError):
    """A configuration key is unknown or its value is invalid."""

    http_status = 500
    exit_code = 2


class DataValidationError(FinmlopsError):
    """Bars broke the schema; the message lists every violation (row and rule)."""

    http_status = 400
    exit_code = 3

    def __init__(self, message: str, violations: list[str] | None = None) -> None:
        super().__init__(message)
        self.violations = violations or []


class SourceError(FinmlopsError):
    """An upstream data source failed or answered something unusable."""

    http_status = 502
    exit_code = 4


class StoreError(FinmlopsError):
    """The dataset store is missing a version or cannot be read/written."""

    http_status = 500
    exit_code = 5


class ModelNotFoundError(FinmlopsError):
    """No model, version, alias or experiment of that name."""

    http_status = 404
    exit_code = 6


class BadRequestError(FinmlopsError):
    """A client sent something malformed (serving)."""

    http_status = 400
    exit_code = 7


class UnauthorizedError(FinmlopsError):
    http_status = 401
    exit_code = 7


class PayloadTooLargeError(FinmlopsError):
    http_status = 413
    exit_code = 7


class NotReadyError(FinmlopsError):
    """A model or the service is not loaded yet."""

    http_status = 503
    exit_code = 8


class StageError(FinmlopsError):
    """A pipeline stage cannot run (e.g. a stage it needs has not produced its output)."""

    exit_code = 9


class TrackingError(FinmlopsError):
    """The tracking server or registry refused or failed a request."""

    http_status = 502
    exit_code = 10


class ForbiddenError(FinmlopsError):
    """A valid token of another scope (e.g. the inference token on feedback)."""

    http_status = 403
    exit_code = 7


class ConflictError(FinmlopsError):
    """The request contradicts what the ledger already holds (e.g. a second, different outcome
    for the same prediction); nothing was changed."""

    http_status = 409
    exit_code = 12

    def __init__(self, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.details = details or []


class LedgerUnavailableError(FinmlopsError):
    """The experiment ledger cannot take the write now (queue full, database failing or
    locked); the request was refused and nothing about it was recorded."""

    http_status = 503
    exit_code = 11
