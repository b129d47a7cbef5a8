"""The error hierarchy drawn in service/errors.py is the one in the code (httpx's
test_exported_members is the model): a reader of the docstring sees every error truly."""

from __future__ import annotations

import re

import service.errors
import service.ops.migrations
from service.errors import AppError
from service.http.errors import ERROR_RESPONSES, error_for_status

_ROW = re.compile(r"^\s+[├└]── (\w+)\s+(\d{3}) (\w+)", re.MULTILINE)
DOC = service.errors.__doc__ or ""
BESIDE = [service.ops.migrations.MigrationError]  # every AppError defined outside errors.py


def _tree() -> list[type[AppError]]:
    return [cls for cls in AppError.__subclasses__() if cls.__module__ == "service.errors"]


def test_the_drawn_tree_lists_every_error_with_its_status_and_code() -> None:
    drawn = {name: (int(status), code) for name, status, code in _ROW.findall(DOC)}
    assert drawn == {cls.__name__: (cls.status, cls.code) for cls in _tree()}


def test_errors_defined_elsewhere_are_named_beside_the_tree() -> None:
    assert [cls for cls in AppError.__subclasses__() if cls not in _tree()] == BESIDE
    for cls in BESIDE:
        assert f"{cls.__module__.removeprefix('service.')}.{cls.__name__}" in DOC


def test_every_error_is_a_direct_child_and_has_its_own_status() -> None:
    """One level: a status names exactly one error, so the framework's statuses map back."""
    children = _tree()
    assert all(not cls.__subclasses__() for cls in children)
    assert len({cls.status for cls in children}) == len(children)
    for cls in children:
        assert type(error_for_status(cls.status)) is cls


def test_every_error_an_operation_can_answer_is_documented() -> None:
    protocol_or_router = {400, 405, 431}  # answered before or beside any operation
    documented = {cls.status for cls in _tree()} - protocol_or_router
    assert set(ERROR_RESPONSES) == documented
