"""The one error map of the request path: every AppError becomes the unified JSON body.

    {"error": message, "code": code, "request_id": id, "details": [...]?}

Whoever answers (a route's exception handler, an ASGI middleware, the HTTP protocol before
any request exists) renders errors here, so every failure of the API has the same shape.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Send

from service.context import current_request_id
from service.errors import (
    AppError,
    InternalError,
    MethodNotAllowed,
    RateLimited,
    ServiceUnavailable,
    ValidationFailed,
)
from service.validation import error_details

# The first level of the tree: one error per status (deeper ones refine their parent's)
_BY_STATUS: dict[int, type[AppError]] = {cls.status: cls for cls in AppError.__subclasses__()}
# Answered by the protocol or the router, never by an operation: left out of the OpenAPI document
_NOT_OPERATIONS = {400, MethodNotAllowed.status, 431}


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


_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again",
        "schema": {"type": "integer"},
    }
}
# Every status an API route may answer with besides its own success, for the OpenAPI document
# (clients and schemathesis learn the error body from it).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": cls.message}
    for status, cls in sorted(_BY_STATUS.items())
    if status not in _NOT_OPERATIONS
}
for _status in (RateLimited.status, ServiceUnavailable.status):
    ERROR_RESPONSES[_status]["headers"] = _RETRY_AFTER


def error_for_status(status: int, message: str | None = None) -> AppError:
    """The AppError matching an HTTP status raised by the framework (404, 405, ...)."""
    return _BY_STATUS.get(status, InternalError)(message)


def error_body(error: AppError, request_id: str) -> bytes:
    """The unified JSON error body."""
    body: dict[str, Any] = {"error": str(error), "code": error.code, "request_id": request_id}
    if error.details is not None:
        body["details"] = error.details
    return orjson.dumps(body)


def error_response(error: AppError) -> Response:
    """`error` as a Starlette response, for exception handlers."""
    return Response(
        error_body(error, current_request_id()),
        status_code=error.status,
        media_type="application/json",
        headers=error.headers,
    )


async def send_error(send: Send, error: AppError) -> None:
    """Answer with `error` straight from ASGI middleware, before any route runs."""
    body = error_body(error, current_request_id())
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def raw_error_response(error: AppError, request_id: str) -> bytes:
    """`error` as the bytes of a whole HTTP/1.1 response that closes the connection."""
    body = error_body(error, request_id)
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        b"x-request-id: %s\r\nx-content-type-options: nosniff\r\nconnection: close\r\n\r\n%s"
        % (
            error.status,
            HTTPStatus(error.status).phrase.encode(),
            len(body),
            request_id.encode(),
            body,
        )
    )


def install_error_handlers(app: FastAPI) -> None:
    """Route errors (ours, the framework's HTTP errors, request validation) as the body above."""

    async def on_app_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AppError)
        return error_response(exc)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        # 400 comes from a body FastAPI could not decode at all (e.g. invalid UTF-8)
        if exc.status_code == 400:
            return error_response(ValidationFailed("the request body could not be parsed"))
        error = error_for_status(exc.status_code)
        error.headers.update(exc.headers or {})
        return error_response(error)

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return error_response(ValidationFailed(details=error_details(exc.errors())))

    app.add_exception_handler(AppError, on_app_error)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
