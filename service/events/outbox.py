"""The write side of events: each change and its event commit together, in one statement.

`with_event` wraps a resource's own INSERT / UPDATE / DELETE ... RETURNING into a
data-modifying CTE that also inserts the returned row into `event_outbox`: no extra round trip,
no event for a rolled-back change, no committed change without its event. The row goes in as
PostgreSQL's JSON; the relay re-encodes it with the model declared for its event type, so the
Stream carries exactly the bytes the API would send (`encode`).
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import re
from pathlib import Path

from pydantic import BaseModel

_EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")

# The model of each event type's data: declared by `crud.Crud` for its resource at import.
_MODELS: dict[str, type[BaseModel]] = {}


def with_event(statement: str, event_type: str, model: type[BaseModel]) -> str:
    """`statement` (one INSERT/UPDATE/DELETE ... RETURNING) that also writes `event_type`.

    It returns what `statement` returns; each returned row becomes one event, its data the
    row's columns (so RETURNING must name exactly the fields of `model`).
    """
    if not _EVENT_TYPE.match(event_type):
        raise ValueError(f"event type {event_type!r} is not noun.verb")
    _MODELS[event_type] = model
    return (
        f"WITH changed AS ({statement.strip()}),"
        f" event AS (INSERT INTO event_outbox (type, data)"
        f" SELECT '{event_type}', to_json(changed) FROM changed)"
        " SELECT * FROM changed"
    )


def encode(event_type: str, data: str) -> str:
    """The event's data as the API encodes its model (PostgreSQL's JSON spells timestamps and
    spaces differently); an undeclared type keeps the stored text."""
    model = _MODELS.get(event_type)
    if model is None:
        return data
    return model.model_validate_json(data).model_dump_json()


def declared_types() -> list[str]:
    """Every event type of every resource (`service/<resource>/service.py` declares its own
    when imported: all are imported first, so a scaffolded resource's count too)."""
    for info in pkgutil.iter_modules([str(Path(__file__).parent.parent)]):
        module = f"service.{info.name}.service"
        if info.ispkg and importlib.util.find_spec(module) is not None:
            importlib.import_module(module)
    return sorted(_MODELS)
