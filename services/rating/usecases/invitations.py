"""Evaluation invitations (docs/architecture.md, "Invitations"): followed from the
``evaluation_invitations`` feeds of queue and matters, shown on a window's evaluator pad."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from services.common.clock import iso, parse_iso
from services.common.errors import InvalidInput
from services.common.feeds import FeedFollower
from services.common.store import Doc
from services.common.validation import load
from services.rating import domain, schemas
from services.rating.usecases.base import RatingBase, public

log = logging.getLogger(__name__)

INVITATION_FEED = "evaluation_invitations"
SOURCES = ("queue", "matters")


class Invitations(RatingBase):
    def pending_for_window(self, window: str) -> dict[str, Any] | None:
        """The most recent open invitation at this site's window, for its evaluator pad."""
        window = load(schemas.WindowArgs, {"window": window})["window"]
        while True:
            found = self.repo.find_invitations(
                {"site_code": self.site, "window": window, "state": "open"},
                sort=[("service_ended_at", -1)],
                limit=1,
            )
            if not found:
                return None
            invitation = found[0]
            kind, ref = invitation["service_ref"]["kind"], invitation["service_ref"]["id"]
            first = self._stored_evaluation(kind, ref, domain.FIRST)
            if first is None:
                return public(invitation)
            # answered but the flag was not cleared (crash between steps): repair and go on
            self.repo.invitations.update(
                invitation["id"], {"state": "answered", "evaluation_id": first["id"]}
            )

    def invitation_status(
        self, kind: str, ref_id: str, request_id: str | None = None
    ) -> dict[str, Any]:
        """Whether a ticket or an application may be rated now: ``none`` (no invitation
        yet: the service has not ended), ``open``, or ``answered`` (its first rating is
        stored; ``mine`` when that rating came with ``request_id``, i.e. a retry)."""
        args = {"kind": kind, "ref_id": ref_id, "request_id": request_id}
        data = load(schemas.InvitationStatusArgs, args)
        first = self._stored_evaluation(data["kind"], data["ref_id"], domain.FIRST)
        if first is not None:
            mine = data["request_id"] is not None and first.get("request_id") == data["request_id"]
            return {"state": "answered", "mine": mine}
        invited = self.repo.invitation(f"{data['kind']}:{data['ref_id']}") is not None
        return {"state": "open" if invited else "none", "mine": False}

    def pull_invitations(self, source: str, fetch: Callable[[int, int], dict[str, Any]]) -> int:
        """Follow ``source``'s invitation feed from the checkpoint; ``fetch(since, limit)``
        is the RPC call (``adapters/sources.py``)."""
        follower = FeedFollower(self.context.store, source, INVITATION_FEED)

        def apply(items: list[Doc]) -> None:
            self.apply_invitations(source, items)

        return follower.pull(fetch, apply)

    def apply_invitations(self, source: str, items: Iterable[Mapping[str, Any]]) -> int:
        good = []
        for item in items:
            try:
                data = load(schemas.InvitationSchema, item)
                data["service_ended_at"] = iso(parse_iso(data["service_ended_at"]))
            except (InvalidInput, ValueError) as exc:
                log.warning(
                    "rating: skipped a malformed invitation %s from %s: %s",
                    item.get("id"),
                    source,
                    exc,
                )
                continue
            good.append(data)
        added = self.repo.add_invitations(good, source, iso(self.clock()))
        if added:
            self.metrics.invitations.labels(**self.metrics.labels(source=source)).inc(added)
        return added
