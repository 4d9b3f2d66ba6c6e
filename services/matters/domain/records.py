"""The stored documents of matters, one ``TypedDict`` each (store.py names the collections).

``version`` and ``_seq`` are managed by the storage port; ``matter`` is the GB/T 39046
content as validated by ``schemas.MatterSchema`` (a plain mapping: its elements are many
and read by name only in ``catalog.Matter``).
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

MatterData = dict[str, Any]


class Draft(TypedDict):
    """``drafts``: the working copy of one matter's next change (catalog source only)."""

    id: str
    code: str
    state: str  # draft → approved → published
    change_id: str
    matter: MatterData
    approved_at: str | None
    approved_by: str | None
    publish_due: str | None
    site_code: str
    created_at: str
    updated_at: str
    version: int
    published_version: NotRequired[int]
    _seq: NotRequired[int]


class CatalogVersion(TypedDict):
    """``catalog``: one immutable published or retired version, id ``<code>@<n>``."""

    id: str
    schema: int
    code: str
    matter_version: int
    status: str  # published | retired
    matter: MatterData
    site_code: str
    published_at: str | None
    retired_at: str | None
    created_at: str
    updated_at: str
    version: NotRequired[int]
    approved_at: NotRequired[str | None]
    approved_by: NotRequired[str | None]
    change_id: NotRequired[str]
    retire_reason: NotRequired[str]
    _seq: NotRequired[int]


class ProtectedApplicant(TypedDict):
    """The applicant as stored: masked forms and keyed hashes, never the clear values."""

    kind: str  # person | organisation
    name: str  # masked for a person; an organisation's registered name is public
    id_hash: str
    id_masked: str
    phone_hash: str | None
    phone_masked: str | None


class HistoryEntry(TypedDict):
    action: str
    state: str
    at: str


class ApplicationFacts(TypedDict):
    """What an application and its upstream summary both say of the 办件 and its matter."""

    id: str
    schema: int
    number: str
    site_code: str
    matter_code: str
    matter_version: int
    matter_name: str
    matter_type: str
    department: str | None
    case_type: str
    version: int


class ApplicationRecord(ApplicationFacts):
    """``applications``: one 办件, handled under one published version of a matter."""

    promised_limit_days: int
    legal_limit_days: int
    channel: str
    window: str | None
    staff_id: str | None
    applicant: ProtectedApplicant
    applicant_hash: str
    # the ID number's last six, keyed and bound to ``number`` (the citizen's progress
    # page); applications stored before it have none and are never found that way
    applicant_suffix_hash: NotRequired[str]
    materials: list[dict[str, Any]]
    notices: list[dict[str, Any]]
    state: str
    clock: str
    due_date: str | None
    suspensions: list[dict[str, Any]]
    suspended_days: int
    history: list[HistoryEntry]
    created_at: str
    updated_at: str
    outbox_pending: bool
    refusal: NotRequired[dict[str, Any]]
    supplement_notice: NotRequired[dict[str, Any] | None]
    receipt: NotRequired[dict[str, Any]]
    accepted_at: NotRequired[str]
    accepted_on: NotRequired[str]
    review_started_at: NotRequired[str]
    decision: NotRequired[str]
    decision_reason: NotRequired[str | None]
    decided_at: NotRequired[str]
    completed_at: NotRequired[str]
    completed_on: NotRequired[str]
    overdue: NotRequired[bool]
    overdue_reason: NotRequired[str | None]
    result: NotRequired[str | None]
    delivery: NotRequired[dict[str, Any]]
    delivered_on: NotRequired[str]
    # 代办 (domain/proxy.py), at the proxy site: the site handling it, the version of the
    # request sent, the proxy site's acceptance day, and the last outcome mirrored
    handled_by: NotRequired[str]
    request_version: NotRequired[int]
    received_on: NotRequired[str]
    handling_version: NotRequired[int]
    handling_clock: NotRequired[str]
    handling_history: NotRequired[list[HistoryEntry]]
    # at the handling site: {site_code, request_version, received_on} of the proxy site
    proxy: NotRequired[dict[str, Any]]
    _seq: NotRequired[int]


class ApplicationSummary(ApplicationFacts):
    """``application_summaries`` (feed, replicated up): no names, ID numbers or phones."""

    state: str
    channel: str
    accepted_on: str | None
    due_date: str | None
    completed_on: str | None
    delivered_on: str | None
    suspended_days: int
    overdue: bool
    overdue_reason: str | None
    created_at: str
    updated_at: str
    handled_by: NotRequired[str]  # 代办: the site that handled it
