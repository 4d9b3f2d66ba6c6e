"""Rules of the matter catalog (政务服务事项目录) and of applications (办件), by concept:

- ``catalog``: the GB/T 39046 elements of a matter and the catalog rules;
- ``applications``: the 办件 state machine, the desk check, receipts, summaries, invitations;
- ``deadlines``: time limits in working days, suspension, due states;
- ``identity``: applicants' ID numbers and phones checked, normalised, hashed and masked;
- ``records``: the stored documents.

Standard library only (plus the pure parts of ``services.common``); rules raise the common
typed errors directly (docs/architecture.md, "Service template").
"""

from services.matters.domain.applications import (
    CHANNELS,
    DELIVERY_METHODS,
    DONE_STATES,
    OPEN_STATES,
    STATES,
    SUSPENSION_REASONS,
    TRANSITIONS,
    Application,
    check_materials,
    merge_materials,
)
from services.matters.domain.catalog import (
    AGENCY_NATURES,
    AUDIENCES,
    AVAILABILITY,
    CASE_TYPES,
    EXERCISE_LEVELS,
    HANDLING_FORMS,
    MATERIAL_FORMS,
    MATTER_TYPES,
    NO_MATERIALS,
    TIERS,
    Matter,
    catch_all_word,
    check_same_matter,
)
from services.matters.domain.deadlines import (
    CLOCK_NONE,
    CLOCK_RUNNING,
    CLOCK_STOPPED,
    CLOCK_SUSPENDED,
    DUE_STATES,
    due_date,
    due_soon_until,
    due_state,
    local_date,
    publish_due,
    suspended_working_days,
)
from services.matters.domain.identity import protect_applicant

__all__ = [
    "AGENCY_NATURES",
    "AUDIENCES",
    "AVAILABILITY",
    "CASE_TYPES",
    "CHANNELS",
    "CLOCK_NONE",
    "CLOCK_RUNNING",
    "CLOCK_STOPPED",
    "CLOCK_SUSPENDED",
    "DELIVERY_METHODS",
    "DONE_STATES",
    "DUE_STATES",
    "EXERCISE_LEVELS",
    "HANDLING_FORMS",
    "MATERIAL_FORMS",
    "MATTER_TYPES",
    "NO_MATERIALS",
    "OPEN_STATES",
    "STATES",
    "SUSPENSION_REASONS",
    "TIERS",
    "TRANSITIONS",
    "Application",
    "Matter",
    "catch_all_word",
    "check_materials",
    "check_same_matter",
    "due_date",
    "due_soon_until",
    "due_state",
    "local_date",
    "merge_materials",
    "protect_applicant",
    "publish_due",
    "suspended_working_days",
]
