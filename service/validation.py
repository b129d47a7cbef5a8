"""Input rules shared by every boundary (HTTP bodies and CLI arguments alike)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, Field, Strict

MAX_JSON_DEPTH = 32
INT64 = range(-(2**63), 2**63)


def no_nul(value: str) -> str:
    """PostgreSQL text cannot hold NUL (SQLSTATE 22021): refuse it as invalid input."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Text = Annotated[str, AfterValidator(no_nul)]

# A PostgreSQL bigint: a JSON integer beyond 64 bits is invalid input, never an overflow in the
# database; strict, so true, 1.0 and "1" are not integers.
BigInt = Annotated[int, Strict(), Field(ge=-(2**63), le=2**63 - 1)]

# Request bodies refuse unknown fields, so a typo or a smuggled `is_admin` is an error.
STRICT_BODY = ConfigDict(extra="forbid", str_strip_whitespace=False)


class JSONRefused(ValueError):
    """A JSON body outside the limits every endpoint shares (docs/api/errors.md): why, and where
    (`field` in the dotted form of 422 details: "body.tags.3")."""

    def __init__(self, message: str, field: str = "body") -> None:
        super().__init__(message)
        self.field = field


_INT_DIGITS = 40  # longer literals are refused unparsed: int() is quadratic in the digits
_INT64_MESSAGE = "integers must fit in 64 bits"


def _bounded_int(literal: str) -> int:
    if len(literal) > _INT_DIGITS:
        raise JSONRefused(_INT64_MESSAGE)
    return int(literal)


def _not_a_number(literal: str) -> None:
    raise JSONRefused(f"{literal} is not valid JSON")


def _check_tree(value: object, field: str, depth: int) -> None:
    if depth > MAX_JSON_DEPTH:
        raise JSONRefused(f"JSON nested deeper than {MAX_JSON_DEPTH} levels", field)
    if isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, field)
            _check_tree(item, f"{field}.{key}", depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_tree(item, f"{field}.{index}", depth + 1)
    elif isinstance(value, str):
        _check_text(value, field)
    elif isinstance(value, int) and value not in INT64:
        raise JSONRefused(_INT64_MESSAGE, field)


def _check_text(value: str, field: str) -> None:
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise JSONRefused(
                "strings must be valid Unicode (a lone surrogate escape)", field
            ) from None


def check_json(body: bytes) -> None:
    """Raise JSONRefused unless `body` is UTF-8 JSON within the shared limits.

    The limits: nesting up to MAX_JSON_DEPTH, integers within 64 bits, no NaN/Infinity, no
    lone surrogates (PostgreSQL could not store them). Anything else (syntax, fields) is left
    to the endpoint's own parsing and validation.
    """
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise JSONRefused("the body is not valid UTF-8") from None
    try:
        tree = json.loads(text, parse_int=_bounded_int, parse_constant=_not_a_number)
    except RecursionError:
        raise JSONRefused(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except JSONRefused:
        raise
    except ValueError:
        return  # a syntax error: the endpoint reports it with its position
    _check_tree(tree, "body", 1)


def error_details(errors: Sequence[Any]) -> list[dict[str, str]]:
    """pydantic errors as `{"field", "message", "type"}`, for 422 bodies and CLI messages."""
    return [
        {
            "field": ".".join(str(part) for part in err["loc"]) or "input",
            "message": str(err["msg"]).removeprefix("Value error, "),
            "type": err["type"],
        }
        for err in errors
    ]
