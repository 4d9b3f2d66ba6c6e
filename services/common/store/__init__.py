"""Open the store named by ``STORE_URI``; every service persists through the port only.

- ``sqlite:///rel/path`` (relative to the working directory) or ``sqlite:////abs/path``
  (SQLAlchemy's convention). A path ending in ``.db`` is that file; any other path is a
  directory holding one file per namespace, ``<dir>/<namespace>.db``.
  Option: ``?synchronous=FULL`` (default) ``|NORMAL|EXTRA|OFF``.
- ``mongodb://…`` or ``mongodb+srv://…``: the database is the URI's path (default ``hall``),
  collections are ``<namespace>.<name>``. Option: ``feed_lease=<seconds>`` (default 60),
  how long an in-flight marker of a vanished writer holds the change feed back.
- ``mongomock://<server>/<database>``: the Mongo adapter over in-process ``mongomock``, for
  tests only; stores naming the same ``<server>`` share data.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from services.common.errors import InvalidInput
from services.common.store.port import Collection, Doc, Filter, Index, Sort, Store, check_name

__all__ = [
    "Collection",
    "Doc",
    "Filter",
    "Index",
    "Sort",
    "Store",
    "open_store",
    "validate_store_uri",
]

_FIELD = "STORE_URI"
_MONGO_SCHEMES = ("mongodb", "mongodb+srv", "mongomock")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,19}\Z")


@dataclass(frozen=True)
class _Sqlite:
    path: str
    synchronous: str

    def file(self, namespace: str) -> str:
        if self.path.endswith(".db"):
            return self.path
        return os.path.join(self.path, f"{namespace}.db")


@dataclass(frozen=True)
class _Mongo:
    scheme: str
    uri: str  # as given, minus the options only this adapter reads
    host: str
    database: str
    feed_lease_s: float


def validate_store_uri(uri: str) -> None:
    """Check a ``STORE_URI``'s scheme and shape, touching neither disk nor network."""
    _parse(uri)


def open_store(uri: str, namespace: str) -> Store:
    """Open (creating on first use) the store for ``namespace``, e.g. ``"rating"``."""
    target = _parse(uri)
    check_name(namespace, "namespace")
    if isinstance(target, _Sqlite):
        from services.common.store.sqlite import SqliteStore

        return SqliteStore(target.file(namespace), namespace, target.synchronous)
    from services.common.store.mongo import MongoStore

    if target.scheme == "mongomock":
        return MongoStore.mock(target.host, target.database, namespace, target.feed_lease_s)
    from pymongo import MongoClient

    client: MongoClient[Doc] = MongoClient(target.uri)
    database = client.get_default_database(target.database).name
    return MongoStore(client, database, namespace, target.feed_lease_s)


def _invalid(rule: str) -> InvalidInput:
    return InvalidInput.field(_FIELD, rule)


def _options(query: str, known: set[str]) -> dict[str, str]:
    options = dict(parse_qsl(query, keep_blank_values=True))
    if unknown := sorted(set(options) - known):
        raise _invalid(f"不认识的参数 {', '.join(unknown)}; 可用 {', '.join(sorted(known))}")
    return options


def _parse(uri: str) -> _Sqlite | _Mongo:
    if not isinstance(uri, str):
        raise _invalid("应为字符串")
    scheme, sep, _ = uri.partition("://")
    scheme = scheme.lower()
    if scheme == "sqlite":
        return _parse_sqlite(uri)
    if sep and scheme in _MONGO_SCHEMES:
        return _parse_mongo(uri, scheme)
    shown = scheme if sep and _SCHEME.match(scheme) else "（无）"  # never echo credentials
    raise _invalid(f"不支持的存储类型 {shown}; 可用 sqlite:/// 或 mongodb://")


def _parse_sqlite(uri: str) -> _Sqlite:
    prefix = "sqlite:///"
    if uri[: len(prefix)].lower() != prefix:
        raise _invalid("SQLite 地址应为 sqlite:///相对路径 或 sqlite:////绝对路径")
    path, _, query = uri[len(prefix) :].partition("?")
    if not path or path in (".db", "/") or path == ":memory:":
        raise _invalid("SQLite 地址缺少文件或目录路径")
    synchronous = _options(query, {"synchronous"}).get("synchronous", "FULL").upper()
    if synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise _invalid("synchronous 应为 FULL、NORMAL、EXTRA 或 OFF")
    return _Sqlite(path, synchronous)


def _parse_mongo(uri: str, scheme: str) -> _Mongo:
    try:
        parts = urlsplit(uri)
    except ValueError as exc:
        raise _invalid(f"{scheme} 地址格式有误") from exc
    host = parts.netloc.rpartition("@")[2]
    if not host:
        raise _invalid(f"{scheme} 地址缺少主机")
    if scheme == "mongodb+srv" and ("," in host or ":" in host):
        raise _invalid("mongodb+srv 地址只能有一个主机名，且不带端口")
    database = parts.path.strip("/") or "hall"
    if re.search(r"[/\\. \"$]", database):
        raise _invalid(f"数据库名不合法：{database}")
    lease = dict(parse_qsl(parts.query)).get("feed_lease", "60")  # other options: pymongo's
    try:
        feed_lease_s = float(lease)
    except ValueError:
        feed_lease_s = 0.0
    if not 0 < feed_lease_s < 86400:
        raise _invalid("feed_lease 应为 0 到 86400 之间的秒数")
    # pymongo warns about options it does not know, so ours is taken out, the rest kept verbatim.
    query = "&".join(p for p in parts.query.split("&") if p.split("=", 1)[0] != "feed_lease")
    rest = uri.split("?", 1)[0] + (f"?{query}" if query else "")
    return _Mongo(scheme, rest, host, database, feed_lease_s)
