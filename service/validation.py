"""Input rules shared by every boundary (HTTP bodies and CLI arguments alike)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, Field, Strict


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
