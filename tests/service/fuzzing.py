"""The boundary fuzzer's parts (tests/service/test_boundary_fuzz.py): every RPC of a service
class found by introspection, Hypothesis strategies for its arguments (junk mixed with
plausible values built from the services' marshmallow schemas), a read-only snapshot of a
site's SQLite stores, and the verdict on one call's outcome."""

from __future__ import annotations

import importlib
import inspect
import math
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from marshmallow import Schema, fields, validate
from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR
from nameko.rpc import Rpc as NamekoRpc

from services.common.errors import HallError, InternalError, InvalidInput
from services.common.rpc import Rpc

# --- discovery ----------------------------------------------------------------------------

CALLABLE_KINDS = {
    inspect.Parameter.POSITIONAL_OR_KEYWORD,
    inspect.Parameter.KEYWORD_ONLY,
    inspect.Parameter.VAR_KEYWORD,
    inspect.Parameter.VAR_POSITIONAL,
}


def rpc_methods(cls: type) -> dict[str, inspect.Signature]:
    """Every RPC entrypoint of ``cls`` (inherited ones included): name → signature."""
    found: dict[str, inspect.Signature] = {}
    for name, member in inspect.getmembers(cls, inspect.isfunction):
        entrypoints: set[object] = getattr(member, ENTRYPOINT_EXTENSIONS_ATTR, set())
        if any(isinstance(e, NamekoRpc) for e in entrypoints):
            found[name] = inspect.signature(member)
    return found


def uncallable(cls: type) -> list[str]:
    """The RPCs of ``cls`` this suite cannot call as meant: not the project's ``@rpc`` (so
    no typed refusal of a bad signature), or a parameter kind it does not generate."""
    problems = []
    for name, member in inspect.getmembers(cls, inspect.isfunction):
        entrypoints: set[object] = getattr(member, ENTRYPOINT_EXTENSIONS_ATTR, set())
        if any(isinstance(e, NamekoRpc) and not isinstance(e, Rpc) for e in entrypoints):
            problems.append(f"{cls.__name__}.{name}: nameko.rpc.rpc, not services.common.rpc")
    for name, signature in rpc_methods(cls).items():
        params = list(signature.parameters.values())
        if not params or params[0].name != "self":
            problems.append(f"{cls.__name__}.{name}: not an instance method")
        problems.extend(
            f"{cls.__name__}.{name}({param.name}): kind {param.kind}"
            for param in params[1:]
            if param.kind not in CALLABLE_KINDS
        )
    return problems


# --- values -------------------------------------------------------------------------------

BIG = (10**30, -(10**30), 2**63, -(2**63) - 1, 2**53 + 1, 2**64)
TEXT_JUNK = (
    "",
    " ",
    "\x00",
    "a\x07b",
    "line\nbreak",
    "\ud800",
    "x\udfffy",
    "\u202eevil\u202c",
    "\u2066iso\u2069",
    "x" * 10_000,
    "汉" * 10_000,
    "${HOME}",
    "'; DROP TABLE x; --",
    "../../etc/passwd",
    "１２３４５",
)
OPERATORS: tuple[dict[str, Any], ...] = (
    {"$ne": None},
    {"$gt": ""},
    {"$regex": ".*"},
    {"$where": "1"},
    {"$in": [1, "a"]},
)

scalars: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(BIG),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from((math.nan, math.inf, -math.inf)),
    st.sampled_from(TEXT_JUNK),
    st.text(max_size=30),
    st.sampled_from(OPERATORS),
)
junk: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)


@dataclass
class Plausible:
    """Values that look real for one service: ids seen at its site, field names and
    choices from its schemas; ``values`` maps a parameter or field name to candidates."""

    schemas: list[Schema]
    values: dict[str, list[Any]] = field(default_factory=dict)
    # Applied to the dicts passed as whole arguments (sync signs some as a child would).
    finish: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        for schema in self.schemas:
            for name, spec in schema.fields.items():
                for rule in spec.validators:
                    if isinstance(rule, validate.OneOf):
                        self.add(name, *rule.choices)

    def add(self, name: str, *candidates: Any) -> None:
        known = self.values.setdefault(name, [])
        known.extend(c for c in candidates if c not in known)

    def named(self, name: str) -> st.SearchStrategy[Any]:
        """A plausible value for a field or parameter called ``name``."""
        options = self.values.get(name) or self.values.get(_family(name)) or []
        generic = st.sampled_from(["421302", "A001", "1", "S1", "2026-11-23", "测试", "x"])
        return st.sampled_from(options) | generic if options else generic

    def record(self, schema: Schema | None = None) -> st.SearchStrategy[dict[str, Any]]:
        """A dict shaped like one of the service's schemas (``schema`` when given)."""
        chosen = st.just(schema) if schema is not None else st.sampled_from(self.schemas)
        return chosen.flatmap(self._from_schema)

    def argument_record(self) -> st.SearchStrategy[dict[str, Any]]:
        """A dict passed as a whole RPC argument, finished (e.g. signed) half of the time."""
        finish = self.finish
        if finish is None:
            return self.record()
        return st.tuples(self.record(), st.booleans()).map(
            lambda pair: finish(pair[0]) if pair[1] else pair[0]
        )

    def _from_schema(self, schema: Schema) -> st.SearchStrategy[dict[str, Any]]:
        required = {n: self._field(n, f) for n, f in schema.fields.items() if f.required}
        optional = {n: self._field(n, f) for n, f in schema.fields.items() if not f.required}
        extra = st.dictionaries(st.sampled_from(["unknown", "$ne", "id", "\u202e"]), junk)
        return st.builds(
            lambda req, opt, more: {**req, **opt, **more},
            st.fixed_dictionaries(required),
            st.fixed_dictionaries({}, optional=optional),
            extra | st.just({}),
        )

    def _field(self, name: str, spec: fields.Field[Any]) -> st.SearchStrategy[Any]:
        return st.deferred(lambda: self._typed(name, spec)) | junk

    def _typed(self, name: str, spec: fields.Field[Any]) -> st.SearchStrategy[Any]:
        if isinstance(spec, fields.Nested):
            nested = spec.schema
            inner = self.record(nested) if isinstance(nested, Schema) else st.just({})
            return st.lists(inner, max_size=3) if spec.many else inner
        if isinstance(spec, fields.List):
            return st.lists(self._typed(name, spec.inner), max_size=3)
        if isinstance(spec, fields.Boolean):
            return st.booleans()
        if isinstance(spec, fields.Integer):
            low, high = _bounds(spec, 0, 100)
            return st.integers(low, high)
        if isinstance(spec, fields.Number):
            low, high = _bounds(spec, 0, 100)
            return st.floats(low, high, allow_nan=False)
        if isinstance(spec, fields.DateTime):
            return st.sampled_from(["2026-11-23T02:00:00Z", "2026-11-23T10:00:00+08:00"])
        if isinstance(spec, fields.Date):
            return st.sampled_from(["2026-11-23", "2026-11-24", "2026-02-30"])
        for rule in spec.validators:
            if isinstance(rule, validate.OneOf):
                return st.sampled_from(list(rule.choices))
        if isinstance(spec, fields.Dict):
            return st.dictionaries(st.text(max_size=8), junk, max_size=3)
        return self.named(name)


def _bounds(spec: fields.Field[Any], low: int, high: int) -> tuple[int, int]:
    for rule in spec.validators:
        if isinstance(rule, validate.Range):
            low = int(rule.min) if rule.min is not None else low
            high = int(rule.max) if rule.max is not None else max(high, low + 100)
    return low, min(high, low + 10_000)


def _family(name: str) -> str:
    """The pool a parameter draws from: ``application_id`` → ``id``, ``code`` → ``code``."""
    for suffix in ("_id", "_code", "code", "id"):
        if name.endswith(suffix):
            return suffix.lstrip("_")
    return name


def schemas_of(service: str) -> list[Schema]:
    """An instance of every marshmallow schema defined in ``services/<service>/schemas.py``."""
    module = importlib.import_module(f"services.{service}.schemas")
    found = []
    for value in vars(module).values():
        if (
            isinstance(value, type)
            and issubclass(value, Schema)
            and value.__module__ == module.__name__
        ):
            try:
                found.append(value())
            except TypeError:  # a schema that needs constructor arguments
                continue
    return found


def argument(plausible: Plausible, param: inspect.Parameter) -> st.SearchStrategy[Any]:
    """Junk or a plausible value for one parameter, guided by its name and annotation."""
    hint = str(param.annotation)
    if "dict" in hint and "list" in hint:
        typed: st.SearchStrategy[Any] = st.lists(plausible.record(), max_size=3)
    elif "dict" in hint:
        typed = plausible.argument_record()
    elif hint.startswith("int"):
        typed = st.integers(-2, 600)
    elif hint.startswith("bool"):
        typed = st.booleans() | st.sampled_from(["false", "true", 0, 1])
    else:
        typed = plausible.named(param.name)
    if "None" in hint:
        typed = typed | st.none()
    return st.one_of(typed, typed, junk)


@dataclass(frozen=True)
class Call:
    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    def __repr__(self) -> str:
        shown = [_short(a) for a in self.args] + [
            f"{k}={_short(v)}" for k, v in self.kwargs.items()
        ]
        return f"({', '.join(shown)})"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 300 else f"{text[:120]}…<{len(text)} chars>…{text[-40:]}"


@st.composite
def calls(draw: st.DrawFn, plausible: Plausible, signature: inspect.Signature) -> Call:
    """A call of ``signature``: usually well-formed, sometimes with too many or too few
    arguments or unknown keywords; each value junk or plausible."""
    params = list(signature.parameters.values())[1:]
    named = [p for p in params if p.kind is not p.VAR_KEYWORD and p.kind is not p.VAR_POSITIONAL]
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    shape = draw(st.sampled_from(["positional", "keyword", "mixed", "mixed", "keyword"]))
    positional = shape == "positional"
    for param in named:
        required = param.default is inspect.Parameter.empty
        left_out = draw(st.integers(0, 9)) == 0 if required else draw(st.booleans())
        if left_out:
            positional = False  # later arguments go by name, or they would shift
            continue
        value = draw(argument(plausible, param))
        by_position = param.kind is not param.KEYWORD_ONLY and (
            positional or (shape == "mixed" and not kwargs and draw(st.booleans()))
        )
        if by_position:
            args.append(value)
        else:
            kwargs[param.name] = value
    if any(p.kind is p.VAR_KEYWORD for p in params):
        names = sorted({n for s in plausible.schemas for n in s.fields})
        kwargs.update(draw(st.dictionaries(st.sampled_from(names), junk, max_size=3)))
    extra = draw(st.integers(0, 9))
    if extra == 0:
        args.extend(draw(st.lists(junk, min_size=1, max_size=3)))
    elif extra == 1:
        kwargs.update(draw(st.dictionaries(st.sampled_from(["bogus", "_x", "limit"]), junk)))
    return Call(tuple(args), kwargs)


# --- the store, seen read-only ------------------------------------------------------------

Snapshot = dict[str, tuple[int, int]]


class StoreWatch:
    """Row count and ``max(seq)`` (or the sum of a counter table's values) of every table of
    every SQLite file under ``directory``, through read-only connections. A file is read
    again only when another connection committed to it (``PRAGMA data_version``)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.connections: dict[Path, sqlite3.Connection] = {}
        self.seen: dict[Path, tuple[int, Snapshot]] = {}

    def _open(self) -> Iterable[tuple[Path, sqlite3.Connection]]:
        for path in sorted(self.directory.rglob("*")):
            if not path.is_file() or path.name.endswith(("-wal", "-shm", "-journal")):
                continue
            if path not in self.connections:
                uri = f"file:{path}?mode=ro"
                self.connections[path] = sqlite3.connect(uri, uri=True, isolation_level=None)
            yield path, self.connections[path]

    def snapshot(self) -> Snapshot:
        taken: Snapshot = {}
        for path, conn in self._open():
            try:
                ((version,),) = _rows(conn, "PRAGMA data_version")
                if path in self.seen and self.seen[path][0] == version:
                    taken.update(self.seen[path][1])
                    continue
                counts = _counts(path, conn)
            except sqlite3.DatabaseError:
                continue  # not a SQLite file
            self.seen[path] = (int(version), counts)
            taken.update(counts)
        return taken

    def close(self) -> None:
        for conn in self.connections.values():
            conn.close()
        self.connections.clear()
        self.seen.clear()


def _counts(path: Path, conn: sqlite3.Connection) -> Snapshot:
    counts: Snapshot = {}
    for (table,) in _rows(conn, "SELECT name FROM sqlite_master WHERE type = 'table'"):
        quoted = '"' + str(table).replace('"', '""') + '"'
        columns = {r[1]: str(r[2]).upper() for r in _rows(conn, f"PRAGMA table_info({quoted})")}
        probe = "MAX(seq)" if "seq" in columns else "0"
        # Counters sum their values; a text ``value`` (the store's incarnation, a hex string
        # SQLite would read as a number such as 5e123) is compared by its row count alone.
        if columns.get("value") == "INTEGER" and "seq" not in columns:
            probe = "SUM(value)"
        ((count, top),) = _rows(conn, f"SELECT COUNT(*), {probe} FROM {quoted}")  # noqa: S608
        counts[f"{path.name}:{table}"] = (int(count), int(top or 0))
    return counts


def _rows(conn: sqlite3.Connection, sql: str) -> list[Any]:
    """All rows, the statement closed at once: a cursor left open holds a read lock that
    makes the service's writers wait (and, under eventlet, blocks the whole process)."""
    cursor = conn.execute(sql)
    try:
        return cursor.fetchall()
    finally:
        cursor.close()


def changes(before: Snapshot, after: Snapshot) -> dict[str, tuple[Any, Any]]:
    return {
        key: (before.get(key), after.get(key))
        for key in sorted({*before, *after})
        if before.get(key) != after.get(key)
    }


# --- the verdict --------------------------------------------------------------------------


def refusal_problem(error: BaseException) -> str | None:
    """Why ``error`` is not an acceptable refusal, or None when it is one."""
    if isinstance(error, TypeError) and "InternalError.__init__" in str(error):
        return "InternalError (and the client cannot even rebuild it: TypeError)"
    if isinstance(error, InternalError) or not isinstance(error, HallError):
        return f"{type(error).__module__}.{type(error).__name__}: {_short(str(error))}"
    if isinstance(error, InvalidInput) and not error.fields:
        return f"InvalidInput names no field: {error.message}"
    return None


Invoke = Callable[[Call], Any]


def outcome(invoke: Invoke, call: Call) -> tuple[Any, BaseException | None]:
    try:
        return invoke(call), None
    except Exception as exc:  # noqa: BLE001  (judged by the caller)
        return None, exc


def harvest(plausible: Plausible, result: Any, depth: int = 0) -> None:
    """Remember the ids and codes an accepted call answered, for later calls."""
    if depth > 3:
        return
    if isinstance(result, Mapping):
        for key, value in result.items():
            if isinstance(value, str) and len(value) <= 64 and _family(str(key)) in {"id", "code"}:
                plausible.add(_family(str(key)), value)
            else:
                harvest(plausible, value, depth + 1)
    elif isinstance(result, list):
        for item in result[:5]:
            harvest(plausible, item, depth + 1)
