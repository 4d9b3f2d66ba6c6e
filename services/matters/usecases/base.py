"""What every use-case mixin of ``MattersApp`` shares (declared once, for mypy)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from marshmallow import Schema

from services.common.calendar import WorkingCalendar
from services.common.clock import Clock, iso
from services.common.errors import InvalidInput
from services.common.runtime import SiteContext
from services.common.site import SiteIdentity
from services.common.validation import load
from services.matters.domain import local_date
from services.matters.domain.records import ApplicationRecord, CatalogVersion
from services.matters.metrics import MattersMetrics
from services.matters.search import CatalogIndex
from services.matters.settings import MattersSettings
from services.matters.store import MattersRepository

# Compare-and-set attempts before a busy document is reported as a conflict.
CAS_ATTEMPTS = 8


def argument(schema: Schema, value: Any, name: str) -> dict[str, Any]:
    """The RPC argument ``name`` (an object) validated by ``schema``; its fields are named
    as they are inside it (``materials[1].name``), the argument itself when it is no object."""
    if not isinstance(value, Mapping):
        raise InvalidInput.field(name, "应为对象（键值对）")
    return load(schema, value)


class MattersBase:
    context: SiteContext
    settings: MattersSettings
    clock: Clock
    identity: SiteIdentity
    calendar: WorkingCalendar
    repo: MattersRepository
    metrics: MattersMetrics
    index: CatalogIndex
    salt: str

    def now(self) -> datetime:
        return self.clock()

    def stamp(self) -> str:
        """Now, as stored (docs/architecture.md, "Clock")."""
        return iso(self.clock())

    def today(self) -> date:
        return local_date(self.now(), self.settings.timezone)

    # Implemented by the mixins that own them; declared here so the others may call them.
    def project_catalog(self) -> int:
        raise NotImplementedError

    def flush_outbox(self, doc: ApplicationRecord) -> list[str]:
        raise NotImplementedError

    def unpublished_changes(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _current(self, code: Any) -> dict[str, Any]:
        raise NotImplementedError

    def application_view(self, doc: ApplicationRecord) -> dict[str, Any]:
        raise NotImplementedError

    def version_view(self, record: CatalogVersion) -> dict[str, Any]:
        raise NotImplementedError
