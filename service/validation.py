"""Input rules shared by every boundary (HTTP bodies and CLI arguments alike)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, ConfigDict


def no_nul(value: str) -> str:
    """PostgreSQL text cannot hold NUL (SQLSTATE 22021): refuse it as invalid input."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Text = Annotated[str, AfterValidator(no_nul)]

# Request bodies refuse unknown fields, so a typo or a smuggled `is_admin` is an error.
STRICT_BODY = ConfigDict(extra="forbid", str_strip_whitespace=False)
