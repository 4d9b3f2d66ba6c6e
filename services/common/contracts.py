"""Records that one service writes and another reads: the contract between them, defined
once (docs/api.md lists every field; docs/architecture.md, "Invitations")."""

from __future__ import annotations

from typing import TypedDict


class ServiceRef(TypedDict):
    """What an evaluation is about: ``{"kind": "ticket" | "application" | …, "id"}``."""

    kind: str
    id: str


class EvaluationInvitation(TypedDict):
    """One record of an ``evaluation_invitations`` feed (queue: 一次一评 per completed
    ticket; matters: 一事一评 per completed application), followed by rating."""

    id: str
    schema: int
    service_ref: ServiceRef
    site_code: str
    window: str | None
    staff_id: str | None
    matter_code: str | None
    department: str | None
    service_channel: str
    service_ended_at: str
    created_at: str
