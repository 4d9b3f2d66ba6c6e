"""The stored documents of the rating service, one ``TypedDict`` each (collections in
``services/rating/store.py``). ``version`` and ``_seq`` are managed by the store.

``evaluations`` and ``cases`` are published feeds and replicated upstream: they never hold
a phone or a name (``rater`` keeps masked forms only); the clear contact of a real-name
rater is a ``RaterContact``, which never leaves the site."""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

from services.common.contracts import ServiceRef


class Rater(TypedDict):
    real_name: bool
    phone_masked: str | None
    name_masked: str | None


class Reasons(TypedDict):
    tags: list[str]
    text: str | None


class HoldReason(TypedDict):
    code: str
    text: str


class Exclusion(TypedDict):
    kind: str  # suspicious, not_adopted, appeal_upheld
    reason: str
    at: NotRequired[str]
    case_id: NotRequired[str]


class Evaluation(TypedDict):
    """``evaluations``: one rating (first or supplementary) of one service."""

    id: str
    schema: int
    site_code: str
    recorded_at_site: str
    service_ref: ServiceRef
    invitation_id: str | None
    sequence: int
    window: str | None
    staff_id: str | None
    matter_code: str | None
    department: str | None
    service_channel: str | None
    service_ended_at: str | None
    channel: str
    level: str
    level_zh: str
    bad: bool
    details: dict[str, Any]
    reasons: Reasons
    comment: str | None
    rater: Rater
    entered_by: str | None
    submitted_at: str
    day: str
    held: bool
    hold_reasons: list[HoldReason]
    hold_review: NotRequired[dict[str, Any]]
    excluded: Exclusion | None
    case_id: str | None
    case_pending: bool
    contact_token: str | None
    request_id: NotRequired[str]  # the submitting client's idempotency key
    created_at: str
    updated_at: str
    version: NotRequired[int]


class Escalation(TypedDict):
    step: str
    at: str
    to: str


class Case(TypedDict):
    """``cases``: the rectification of one bad rating (差评整改)."""

    id: str
    schema: int
    evaluation_id: str
    site_code: str
    recorded_at_site: str
    unit: str
    handler: str | None
    level: str
    real_name: bool
    day: str
    window: str | None
    staff_id: str | None
    matter_code: str | None
    department: str | None
    channel: str
    state: str
    opened_at: str
    callback_due: str | None
    appeal_due: str | None
    deadlines_unknown: bool
    close_due: str | None
    classification: str | None
    called_back: bool
    callback_on_time: bool | None
    closed_at: str | None
    on_time: bool | None
    overdue: list[str]
    escalations: list[Escalation]
    appeal: dict[str, Any] | None
    exclusion: Exclusion | None
    pending_exclusion: Exclusion | None
    management_notified: NotRequired[bool]
    steps: list[dict[str, Any]]
    created_at: str
    updated_at: str
    version: NotRequired[int]


class Invitation(TypedDict):
    """``invitations``: a completed ticket or application that may be rated, pulled from
    the ``evaluation_invitations`` feed of queue or matters."""

    id: str
    schema: int
    service_ref: ServiceRef
    site_code: str
    window: str | None
    staff_id: str | None
    matter_code: str | None
    department: str | None
    service_channel: str | None
    service_ended_at: str
    created_at: str | None
    source: str
    state: str  # open, answered
    received_at: str
    evaluation_id: NotRequired[str]
    version: NotRequired[int]


class RaterContact(TypedDict):
    """``rater_contacts``: the clear phone and name of a real-name rater of a bad rating
    (never published), one per evaluation (its id); ``token`` must match the evaluation's
    ``contact_token``. Purged (phone and name cleared) ``RATING.contact_retention_days``
    after its case closes: ``purge_after`` is set then, ``purged_at`` when done."""

    id: str
    phone: str | None
    name: str | None
    token: str
    case_id: NotRequired[str | None]
    created_at: NotRequired[str]
    state: NotRequired[str]  # kept, scheduled (purge_after known), purged
    purge_after: NotRequired[str | None]
    purged_at: NotRequired[str | None]


class RevealAudit(TypedDict):
    """``reveal_audit``: one reveal of a rater's phone to a case's handler."""

    id: str
    schema: int
    case_id: str
    evaluation_id: str
    by: str
    site_code: str
    at: str
    created_at: str


class Contribution(TypedDict):
    """What one record adds to the rollups: day, site, (dimension, value) pairs, counters."""

    d: str
    s: str
    v: list[list[str]]
    n: dict[str, int]


class RollupMark(TypedDict):
    """``rollup_marks``: what a record (``<feed>:<id>``) currently contributes."""

    id: str
    version: int
    c: Contribution | None
