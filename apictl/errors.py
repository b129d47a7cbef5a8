"""Exit codes of every apictl command, and the one table turning an error into a code and a hint.

code  name         meaning
0     OK           success
1     FAILURE      not found, conflict, bad configuration, any unexpected error
      UNHEALTHY      `check health`: an endpoint answered, but not 200
      PENDING        `migrate status --check`: migrations wait to be applied
2     USAGE        bad options or values on the command line
      UNREACHABLE    `check health`: nothing answered
3     DRIFT        `migrate status --check`: an applied migration was edited or deleted
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from service.errors import (
    AppError,
    BadRequest,
    Conflict,
    Forbidden,
    HeadersTooLarge,
    IdempotencyKeyReused,
    InternalError,
    MethodNotAllowed,
    MigrationError,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    RateLimited,
    RequestTimeout,
    ServiceUnavailable,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
)


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1
    USAGE = 2
    DRIFT = 3
    # the same numbers, named where one command gives them a meaning of its own
    UNHEALTHY = 1
    PENDING = 1
    UNREACHABLE = 2


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an error ends a command: its exit code and the hint printed under the message."""

    code: ExitCode
    hint: str | None = None


DEBUG_HINT = "run again with --debug for the traceback"
CONFIG_HINT = "see `apictl check config` and docs/reference/configuration.md"

# Every AppError the service raises, as a CLI command reports it (its message is the line).
APP_ERRORS: dict[type[AppError], Outcome] = {
    AppError: Outcome(ExitCode.FAILURE),
    BadRequest: Outcome(ExitCode.FAILURE),
    Unauthorized: Outcome(ExitCode.FAILURE),
    Forbidden: Outcome(ExitCode.FAILURE),
    NotFound: Outcome(ExitCode.FAILURE),
    MethodNotAllowed: Outcome(ExitCode.FAILURE),
    RequestTimeout: Outcome(ExitCode.FAILURE),
    Conflict: Outcome(ExitCode.FAILURE),
    PreconditionFailed: Outcome(ExitCode.FAILURE),
    PayloadTooLarge: Outcome(ExitCode.FAILURE),
    UnsupportedMediaType: Outcome(ExitCode.FAILURE),
    ValidationFailed: Outcome(ExitCode.FAILURE),
    IdempotencyKeyReused: Outcome(ExitCode.FAILURE),
    RateLimited: Outcome(ExitCode.FAILURE, "wait a moment, then try again"),
    HeadersTooLarge: Outcome(ExitCode.FAILURE),
    InternalError: Outcome(ExitCode.FAILURE, DEBUG_HINT),
    ServiceUnavailable: Outcome(
        ExitCode.FAILURE, "check that PostgreSQL and Redis are up (`apictl check config`)"
    ),
    MigrationError: Outcome(ExitCode.FAILURE),
}
CONFIG_ERROR = Outcome(ExitCode.FAILURE, CONFIG_HINT)  # service.config.ConfigError
INVALID_INPUT = Outcome(ExitCode.USAGE)  # pydantic.ValidationError: bad command-line values
UNEXPECTED = Outcome(ExitCode.FAILURE, DEBUG_HINT)


@dataclass(frozen=True, slots=True)
class Failure:
    """What a command prints (one message, a hint) and exits with; `unexpected` is a bug."""

    message: str
    outcome: Outcome
    unexpected: bool = False


def explain(exc: Exception) -> Failure:
    """The failure `exc` ends a command with, read from the tables above."""
    # Imported here: pydantic and pydantic-settings are heavy, and a failure has loaded them.
    from pydantic import ValidationError

    from service.config import ConfigError
    from service.validation import error_details

    if isinstance(exc, ConfigError):
        return Failure("invalid configuration:\n  " + "\n  ".join(exc.problems), CONFIG_ERROR)
    if isinstance(exc, ValidationError):
        problems = [f"{d['field']}: {d['message']}" for d in error_details(exc.errors())]
        return Failure("invalid input:\n  " + "\n  ".join(problems), INVALID_INPUT)
    if isinstance(exc, AppError):
        # the nearest class in the table: a subclass added later falls back to its parent
        kind = min((k for k in APP_ERRORS if isinstance(exc, k)), key=type(exc).__mro__.index)
        return Failure(str(exc), APP_ERRORS[kind])
    return Failure(f"{type(exc).__name__}: {exc}", UNEXPECTED, unexpected=True)
