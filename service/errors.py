"""Domain errors: what went wrong, as values with a status and a code.

    AppError                      (status, code)
    ├── BadRequest                400 bad_request
    ├── Unauthorized              401 unauthorized
    ├── Forbidden                 403 forbidden
    ├── NotFound                  404 not_found
    ├── MethodNotAllowed          405 method_not_allowed
    ├── RequestTimeout            408 request_timeout
    ├── Conflict                  409 conflict
    ├── PreconditionFailed        412 precondition_failed
    ├── PayloadTooLarge           413 payload_too_large
    ├── UnsupportedMediaType      415 unsupported_media_type
    ├── ValidationFailed          422 validation_error
    │   └── IdempotencyKeyReused  422 idempotency_key_reused
    ├── RateLimited               429 rate_limited       (Retry-After)
    ├── HeadersTooLarge           431 request_headers_too_large
    ├── InternalError             500 internal_error
    │   └── MigrationError        500 migration_error    (service.ops.migrations, CLI only)
    └── ServiceUnavailable        503 service_unavailable (Retry-After)

The domain raises these and knows nothing of HTTP or the CLI: `service.http.errors` renders
them as the unified error body, `apictl.errors` as an exit code and one line.
"""

from __future__ import annotations

from typing import Any, ClassVar


class AppError(Exception):
    """Base of every error the service reports on purpose."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    message: ClassVar[str] = "internal server error"
    default_headers: ClassVar[dict[str, str]] = {}

    def __init__(
        self,
        message: str | None = None,
        *,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message or self.message)
        self.details = details
        self.headers = {**self.default_headers, **(headers or {})}


class BadRequest(AppError):
    """Not HTTP at all: answered by the protocol before any route runs."""

    status, code, message = 400, "bad_request", "the request is not valid HTTP"


class Unauthorized(AppError):
    status, code, message = 401, "unauthorized", "authentication required"
    default_headers = {"WWW-Authenticate": "Bearer"}


class Forbidden(AppError):
    status, code, message = 403, "forbidden", "you are not allowed to do this"


class NotFound(AppError):
    status, code, message = 404, "not_found", "not found"


class MethodNotAllowed(AppError):
    status, code, message = 405, "method_not_allowed", "method not allowed"


class RequestTimeout(AppError):
    status, code, message = 408, "request_timeout", "the request did not arrive in time"


class Conflict(AppError):
    status, code, message = 409, "conflict", "conflict"


class PreconditionFailed(AppError):
    """If-Match named another version of the item than the current one: nothing changed."""

    status, code, message = 412, "precondition_failed", "the item has changed"


class PayloadTooLarge(AppError):
    status, code, message = 413, "payload_too_large", "request body too large"


class UnsupportedMediaType(AppError):
    status, code, message = 415, "unsupported_media_type", "unsupported content type"


class ValidationFailed(AppError):
    status, code, message = 422, "validation_error", "the request is invalid"


class IdempotencyKeyReused(ValidationFailed):
    """An Idempotency-Key sent again with another body: a client bug, never a retry."""

    code, message = "idempotency_key_reused", "this Idempotency-Key was used for another request"


class RateLimited(AppError):
    status, code, message = 429, "rate_limited", "too many requests"
    default_headers = {"Retry-After": "1"}


class HeadersTooLarge(AppError):
    status, code, message = 431, "request_headers_too_large", "the request headers are too large"


class InternalError(AppError):
    """An unexpected failure; its message never reaches the client."""


class ServiceUnavailable(AppError):
    status, code, message = 503, "service_unavailable", "service temporarily unavailable"
    default_headers = {"Retry-After": "1"}


class MigrationError(InternalError):
    """A migration could not be planned, applied or rolled back."""

    code, message = "migration_error", "migration failed"
