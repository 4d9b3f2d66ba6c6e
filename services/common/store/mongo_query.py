"""The MongoDB adapter's mapping between the port's documents and queries and BSON: the
port's ``id`` is Mongo's ``_id`` (never returned as such), and ``$in`` takes a list."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.common.store.port import Doc, Filter


def from_bson(stored: Mapping[str, Any]) -> Doc:
    """A stored document as the port returns it."""
    doc = dict(stored)
    return {"id": doc.pop("_id"), **doc}


def bson_field(field: str) -> str:
    return "_id" if field == "id" else field


def bson_query(filter: Filter | None) -> Doc:
    """A filter of the port's subset as a Mongo query."""
    found: Doc = {}
    for field, cond in (filter or {}).items():
        if isinstance(cond, Mapping):  # BSON needs a list for $in, not a tuple or set
            cond = {op: list(v) if op == "$in" else v for op, v in cond.items()}
        found[bson_field(field)] = cond
    return found
