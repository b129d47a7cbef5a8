"""Domain errors and the one unified error body every failure of the API answers with.

    AppError                      (status, code)
    ├── ValidationFailed          422 validation_error
    ├── Unauthorized              401 unauthorized
    ├── Forbidden                 403 forbidden
    ├── NotFound                  404 not_found
    ├── MethodNotAllowed          405 method_not_allowed
    ├── RequestTimeout            408 request_timeout
    ├── Conflict                  409 conflict
    ├── PayloadTooLarge           413 payload_too_large
    ├── UnsupportedMediaType      415 unsupported_media_type
    ├── RateLimited               429 rate_limited       (Retry-After)
    ├── ServiceUnavailable        503 service_unavailable (Retry-After)
    └── InternalError             500 internal_error

The domain raises these; `error_body` renders them for HTTP; the CLI maps them to exit codes.
Body: {"error": message, "code": code, "request_id": id, "details": [...]?}
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
from pydantic import BaseModel
from starlette.types import Send

from service.context import current_request_id


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


class ValidationFailed(AppError):
    status, code, message = 422, "validation_error", "the request is invalid"


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


class PayloadTooLarge(AppError):
    status, code, message = 413, "payload_too_large", "request body too large"


class UnsupportedMediaType(AppError):
    status, code, message = 415, "unsupported_media_type", "unsupported content type"


class RateLimited(AppError):
    status, code, message = 429, "rate_limited", "too many requests"
    default_headers = {"Retry-After": "1"}


class ServiceUnavailable(AppError):
    status, code, message = 503, "service_unavailable", "service temporarily unavailable"
    default_headers = {"Retry-After": "1"}


class InternalError(AppError):
    """An unexpected failure; its message never reaches the client."""


_BY_STATUS: dict[int, type[AppError]] = {
    cls.status: cls
    for cls in (
        ValidationFailed, Unauthorized, Forbidden, NotFound, MethodNotAllowed, RequestTimeout,
        Conflict,
        PayloadTooLarge, UnsupportedMediaType, RateLimited, ServiceUnavailable, InternalError,
    )
}  # fmt: skip


def error_for_status(status: int, message: str | None = None) -> AppError:
    """The AppError matching an HTTP status raised by the framework (404, 405, ...)."""
    return _BY_STATUS.get(status, InternalError)(message)


class ErrorDetail(BaseModel):
    field: str
    message: str
    type: str | None = None


class ErrorBody(BaseModel):
    """The unified error body, as the OpenAPI document describes it."""

    error: str
    code: str
    request_id: str
    details: list[ErrorDetail] | None = None


# Every status an API route may answer with besides its own success, for the OpenAPI document
# (clients and schemathesis learn the error body from it).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": cls.message}
    for status, cls in sorted(_BY_STATUS.items())
    if status != 405  # a method a route does not have is not an operation of it
}


def error_body(error: AppError, request_id: str) -> bytes:
    """The unified JSON error body."""
    body: dict[str, Any] = {"error": str(error), "code": error.code, "request_id": request_id}
    if error.details is not None:
        body["details"] = error.details
    return orjson.dumps(body)


async def send_error(send: Send, error: AppError) -> None:
    """Answer with `error` straight from ASGI middleware, before any route runs."""
    body = error_body(error, current_request_id())
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
