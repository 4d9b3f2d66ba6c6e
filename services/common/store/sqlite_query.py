"""The SQLite adapter's translation of the port's query subset into SQL: a field's
expression (columns for the managed fields, ``json_extract`` for the others) and a filter's
WHERE clause, with every value a parameter."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.common.store.port import Filter

COLUMNS = {"id": "id", "version": "version", "_seq": "seq"}
RANGES = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def expr(field: str) -> str:
    """The SQL for a field; indexes and queries use this same text so the planner matches."""
    return COLUMNS.get(field) or f"json_extract(doc, '$.{field}')"


def where(filter: Filter | None) -> tuple[str, list[Any]]:
    """A filter of the port's subset as a WHERE clause and its parameters."""
    clauses: list[str] = []
    params: list[Any] = []
    for field, cond in (filter or {}).items():
        sql = expr(field)
        ops = cond.items() if isinstance(cond, Mapping) else [("$eq", cond)]
        for op, value in ops:
            if op in ("$eq", "$ne") and value is None:
                clauses.append(f"{sql} IS {'' if op == '$eq' else 'NOT '}NULL")
            elif op == "$eq":
                clauses.append(f"{sql} = ?")
                params.append(value)
            elif op == "$ne":  # like Mongo, a missing field is "not equal"
                clauses.append(f"{sql} IS NOT ?")
                params.append(value)
            elif op == "$in":
                values = [item for item in value if item is not None]
                test = f"{sql} IN ({', '.join('?' * len(values))})" if values else "0"
                clauses.append(f"({test} OR {sql} IS NULL)" if None in value else test)
                params.extend(values)
            else:  # a range compares within its type, as Mongo does (no "5" > 3)
                kinds = "'text'" if isinstance(value, str) else "'integer', 'real'"
                clauses.append(f"{sql} {RANGES[op]} ? AND typeof({sql}) IN ({kinds})")
                params.append(value)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params
