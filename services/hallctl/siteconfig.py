"""The one writer of a service's Nameko YAML: the demo's configs (:mod:`topology`), a site's
configs (``hallctl site-init``, ``add-town``, ``add-village``) and the container configs of
the deploy files all come from :func:`render`, so they share keys, order and ``LOGGING``.

A value is either written as YAML or, as an :class:`Env`, left to ``nameko run`` to take
from the environment (``${NAME:default}``, ``!raw_env_var`` to keep it text).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

# version 1 of logging.config.dictConfig. Existing loggers stay enabled: nameko creates
# its loggers (e.g. ``nameko.containers``, which logs an entrypoint's unexpected error)
# before it applies this, and a disabled one would leave no trace of such an error. Every
# record passes the filter that masks phones and ID numbers (services/common/logs.py).
LOGGING = """LOGGING:
  version: 1
  disable_existing_loggers: false
  formatters: {plain: {format: '%(asctime)s %(levelname)s %(name)s %(message)s'}}
  filters: {personal: {(): services.common.logs.ScrubPersonalData}}
  handlers: {console: {class: logging.StreamHandler, formatter: plain, filters: [personal]}}
  root: {level: INFO, handlers: [console]}
"""


@dataclass(frozen=True)
class Env:
    """A value ``nameko run`` reads from the environment variable ``name``."""

    name: str
    default: str | None = None  # None: the variable is required
    raw: bool = False  # !raw_env_var: kept as text (a site code stays "0421…", not a number)
    note: str = ""  # a comment written after the value

    def __str__(self) -> str:
        ref = "${" + self.name + ("" if self.default is None else f":{self.default}") + "}"
        text = f"!raw_env_var {ref}" if self.raw else ref
        return f"{text}  # {self.note}" if self.note else text


@dataclass(frozen=True)
class ServiceConfig:
    """The keys every service reads (README, Configuration), plus its own section."""

    amqp_uri: str | Env
    web_address: str | Env
    site: Mapping[str, str | Env]  # code, tier, name, upstream
    upstream_amqp_uri: str | Env
    store_uri: str | Env
    access_key_file: str | Env  # the site's access keys (docs/security.md)
    section: Mapping[str, Any] | None = None  # MATTERS, QUEUE, RATING or SYNC; None: none


def render(service: str, config: ServiceConfig, comments: Sequence[str]) -> str:
    """The YAML text of ``service``'s config, headed by ``comments`` (one per line)."""
    entries: list[tuple[str, Any]] = [
        ("AMQP_URI", config.amqp_uri),
        ("WEB_SERVER_ADDRESS", config.web_address),
        ("SITE", config.site),
        ("UPSTREAM_AMQP_URI", config.upstream_amqp_uri),
        ("STORE_URI", config.store_uri),
        ("ACCESS_KEY_FILE", config.access_key_file),
        ("CALENDAR_OVERRIDE", Env("CALENDAR_OVERRIDE", "", raw=True)),
    ]
    if config.section is not None:
        entries.append((service.upper(), config.section))
    head = "".join(f"# {line}\n" for line in comments)
    return head + "".join(_entry(key, value) for key, value in entries) + LOGGING


def _entry(key: str, value: Any, indent: str = "") -> str:
    if isinstance(value, Env):
        return f"{indent}{key}: {value}\n"
    if isinstance(value, Mapping) and _has_env(value):
        return f"{indent}{key}:\n" + "".join(
            _entry(str(k), v, indent + "  ") for k, v in value.items()
        )
    text = yaml.safe_dump({key: value}, allow_unicode=True, sort_keys=False)
    return "".join(f"{indent}{line}\n" for line in text.splitlines())


def _has_env(value: Any) -> bool:
    if isinstance(value, Env):
        return True
    return isinstance(value, Mapping) and any(_has_env(v) for v in value.values())


# --- the SYNC section of a written config, edited in place -----------------------------------

_TOP_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*:")


def read_sync_section(text: str) -> dict[str, Any]:
    block = _split_sync(text)[1]
    loaded = yaml.safe_load(block) if block else None
    section = (loaded or {}).get("SYNC") or {}
    return dict(section)


def replace_sync_section(text: str, section: dict[str, Any]) -> str:
    """``text`` with its top-level ``SYNC:`` block replaced (or appended); the rest, env
    references included, is kept byte for byte."""
    before, _, after = _split_sync(text)
    head = before if before.endswith("\n") or not before else before + "\n"
    return head + _entry("SYNC", section) + after


def _split_sync(text: str) -> tuple[str, str, str]:
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.startswith("SYNC:")), None)
    if start is None:
        return text, "", ""
    end = next((i for i in range(start + 1, len(lines)) if _TOP_KEY.match(lines[i])), len(lines))
    return "".join(lines[:start]), "".join(lines[start:end]), "".join(lines[end:])


def sync_snippet(section: dict[str, Any]) -> str:
    """A ``SYNC:`` block for an operator to paste into a config."""
    return _entry("SYNC", section)
