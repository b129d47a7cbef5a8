"""apictl.errors: one exit-code table covering every error a command can end with."""

from __future__ import annotations

import importlib
import pkgutil

import pytest
from pydantic import BaseModel, ValidationError

import service
from apictl.errors import APP_ERRORS, ExitCode, explain
from service.config import ConfigError
from service.errors import AppError, Conflict, NotFound


def _subclasses(cls: type[AppError]) -> set[type[AppError]]:
    direct = set(cls.__subclasses__())
    return direct.union(*(_subclasses(sub) for sub in direct))


def test_every_app_error_has_an_exit_code() -> None:
    for module in pkgutil.walk_packages(service.__path__, "service."):
        importlib.import_module(module.name)  # every AppError of the service is defined
    missing = sorted(c.__name__ for c in _subclasses(AppError) | {AppError} if c not in APP_ERRORS)
    assert missing == []


def test_exit_codes_are_the_specs() -> None:
    assert [int(code) for code in (ExitCode.OK, ExitCode.FAILURE, ExitCode.USAGE)] == [0, 1, 2]
    assert [int(code) for code in (ExitCode.PENDING, ExitCode.UNHEALTHY)] == [1, 1]
    assert [int(code) for code in (ExitCode.UNREACHABLE, ExitCode.DRIFT)] == [2, 3]


@pytest.mark.parametrize("error", [NotFound("no user x@example.com"), Conflict("taken")])
def test_an_app_error_is_its_message_and_exit_1(error: AppError) -> None:
    failure = explain(error)
    assert (failure.message, failure.outcome.code, failure.unexpected) == (str(error), 1, False)


def test_a_subclass_added_later_falls_back_to_its_parent() -> None:
    class Gone(NotFound):
        pass

    assert explain(Gone("gone")).outcome is APP_ERRORS[NotFound]


def test_bad_configuration_exits_1_with_a_hint() -> None:
    failure = explain(ConfigError(["APICTL_PORT: bad", "DATABASE_URL: bad"]))
    assert failure.message == "invalid configuration:\n  APICTL_PORT: bad\n  DATABASE_URL: bad"
    assert failure.outcome.code == ExitCode.FAILURE
    assert failure.outcome.hint


def test_invalid_command_line_values_are_a_usage_error() -> None:
    class Model(BaseModel):
        count: int

    with pytest.raises(ValidationError) as caught:
        Model(count="many")  # type: ignore[arg-type]
    failure = explain(caught.value)
    assert failure.outcome.code == ExitCode.USAGE
    assert failure.message.startswith("invalid input:\n  count: ")


def test_anything_else_is_unexpected_and_exits_1() -> None:
    failure = explain(KeyError("x"))
    assert (failure.message, failure.outcome.code, failure.unexpected) == ("KeyError: 'x'", 1, True)
