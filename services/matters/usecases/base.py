"""What every use-case mixin of ``MattersApp`` shares (declared once, for mypy)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

from marshmallow import Schema

from services.common.calendar import WorkingCalendar
from services.common.clock import Clock, iso
from services.common.errors import InvalidInput
from services.common.runtime import SiteContext
from services.common.site import SiteIdentity
from services.common.store import Collection, Doc
from services.common.validation import load
from services.matters.domain import Matter, local_date
from services.matters.domain.records import ApplicationRecord, CatalogVersion
from services.matters.metrics import MattersMetrics
from services.matters.search import CatalogIndex
from services.matters.settings import MattersSettings
from services.matters.store import MattersRepository

Handler = Callable[[list[Doc]], None]
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

    def follow(self, collection: Collection, checkpoint: str, handle: Handler) -> int:
        """Hand every record of this store's ``collection`` after the ``checkpoint`` kept in
        ``settings`` to ``handle`` (idempotent), page by page; how many were handled."""
        mark = self.repo.settings.get(checkpoint)
        since = int(mark["seq"]) if mark else 0
        done = 0
        while records := collection.changes_since(since, 500):
            handle(records)
            last = int(records[-1]["_seq"])
            # Compare-and-set: a concurrent follower (another process of this site) that got
            # further first is never moved back; it handled what it moved past.
            if mark is None:
                self.repo.insert_once(self.repo.settings, {"id": checkpoint, "seq": last})
            else:
                self.repo.settings.update(checkpoint, {"seq": last}, expect={"seq": since})
            mark = {"seq": last}
            since, done = last, done + len(records)
        return done

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

    def _desk_check(
        self,
        doc: Mapping[str, Any],
        matter: Matter,
        presented: list[dict[str, Any]],
        notices: list[dict[str, Any]],
        on: date | None = None,
    ) -> dict[str, Any]:
        raise NotImplementedError

    def _version_matter(self, doc: ApplicationRecord) -> Matter:
        raise NotImplementedError

    def _transition(
        self,
        app_id: str,
        action: str,
        make: Callable[[ApplicationRecord], dict[str, Any]],
        at_desk: bool = True,
    ) -> tuple[dict[str, Any], list[str]]:
        raise NotImplementedError

    def _count_completed(self, doc: ApplicationRecord) -> None:
        raise NotImplementedError

    def forward(self, doc: dict[str, Any], current: Mapping[str, Any], refusal: Any) -> None:
        raise NotImplementedError

    def resent(self, doc: ApplicationRecord, merged: list[dict[str, Any]]) -> dict[str, Any]:
        raise NotImplementedError
