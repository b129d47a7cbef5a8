"""The error hierarchy drawn in service/errors.py is the one in the code (httpx's
test_exported_members is the model): a reader of the docstring sees every error truly."""

from __future__ import annotations

import re

import service.errors
from service.errors import AppError
from service.http.errors import ERROR_RESPONSES, error_for_status

# "    ├── Name   400 code" at any depth; the depth is the position of the branch
_ROW = re.compile(r"^ {4}([│ ]*)[├└]── (\w+)\s+(\d{3}) (\w+)", re.MULTILINE)


def _every(cls: type[AppError]) -> list[type[AppError]]:
    return [sub for child in cls.__subclasses__() for sub in (child, *_every(child))]


def test_the_drawn_tree_is_the_class_tree_with_statuses_and_codes() -> None:
    drawn = {
        name: (len(indent) // 4, int(status), code)
        for indent, name, status, code in _ROW.findall(service.errors.__doc__ or "")
    }
    depth = {cls: len(cls.__mro__) - len(AppError.__mro__) - 1 for cls in _every(AppError)}
    assert drawn == {cls.__name__: (depth[cls], cls.status, cls.code) for cls in _every(AppError)}


def test_every_error_is_defined_with_the_tree() -> None:
    assert {cls.__module__ for cls in _every(AppError)} == {"service.errors"}


def test_each_status_maps_back_to_one_error_of_the_first_level() -> None:
    children = AppError.__subclasses__()
    assert len({cls.status for cls in children}) == len(children)
    for cls in children:
        assert type(error_for_status(cls.status)) is cls
    # a deeper error refines its parent: same status, its own code
    assert all(cls.status == child.status for child in children for cls in _every(child))


def test_every_error_an_operation_can_answer_is_documented() -> None:
    protocol_or_router = {400, 405, 431}  # answered before or beside any operation
    documented = {cls.status for cls in AppError.__subclasses__()} - protocol_or_router
    assert set(ERROR_RESPONSES) == documented
