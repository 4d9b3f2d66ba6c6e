"""好差评 rules by concept, standard library only (docs/architecture.md, "Service template"):

- ``scale``: the five levels, what was rated, channels, detail questions, hold reasons;
- ``submission``: first and supplementary ratings, deadlines, who may rate, suspicion;
- ``cases`` and ``appeals``: the rectification state machine (差评整改) and appeals;
- ``rollups``, ``periods`` and ``statistics``: contributions, periods, figures, rankings;
- ``export``: the upstream targets' coding tables;
- ``records``: the stored documents; ``rules``: what the rules read from the settings.

Times are aware UTC ``datetime``s; days and deadlines are local ``date``s of the site's
time zone. The names below are the package's public surface.
"""

from services.rating.domain.appeals import file_appeal, review_appeal
from services.rating.domain.cases import (
    CLASSIFICATION_ZH,
    OPEN_STATES,
    STATE_ZH,
    CaseState,
    Classification,
    assign,
    case_deadlines,
    check_local,
    classify,
    escalate,
    fill_deadlines,
    open_case,
    overdue_steps,
    record_callback,
    record_feedback,
    record_rectification,
)
from services.rating.domain.export import (
    EXPORT_PROFILES,
    GBT39046,
    PROVINCIAL_DEFAULT,
    PROVINCIAL_PHONE,
    ExportProfile,
    export_record,
)
from services.rating.domain.periods import month_key, parse_period, plan_periods, week_key
from services.rating.domain.rollups import (
    CONTRIBUTIONS,
    COUNT_FIELDS,
    LEVEL_FIELDS,
    add_to,
    bucket_id,
    case_contribution,
    delta,
    evaluation_contribution,
    expand,
)
from services.rating.domain.rules import Calendar, Rules, local_day
from services.rating.domain.scale import (
    ALL,
    BAD_LEVELS,
    DETAIL_QUESTIONS,
    DIMENSIONS,
    FIRST,
    GOOD_LEVELS,
    HOLD_ZH,
    LEVEL_ZH,
    SATISFIED_LEVELS,
    SUGGESTION,
    SUPPLEMENTARY,
    Channel,
    Level,
    RefKind,
)
from services.rating.domain.statistics import add_counts, figures, group_key, rank, rate
from services.rating.domain.submission import (
    ServiceFacts,
    case_id,
    check_submission,
    evaluation_deadline,
    evaluation_id,
    evaluation_record,
    facts_from_invitation,
    legacy_evaluation_id,
    suspicion_reasons,
    within_calendar_days,
)

__all__ = [
    "ALL",
    "BAD_LEVELS",
    "CLASSIFICATION_ZH",
    "CONTRIBUTIONS",
    "COUNT_FIELDS",
    "DETAIL_QUESTIONS",
    "DIMENSIONS",
    "EXPORT_PROFILES",
    "FIRST",
    "GBT39046",
    "GOOD_LEVELS",
    "HOLD_ZH",
    "LEVEL_FIELDS",
    "LEVEL_ZH",
    "OPEN_STATES",
    "PROVINCIAL_DEFAULT",
    "PROVINCIAL_PHONE",
    "SATISFIED_LEVELS",
    "STATE_ZH",
    "SUGGESTION",
    "SUPPLEMENTARY",
    "Calendar",
    "CaseState",
    "Channel",
    "Classification",
    "ExportProfile",
    "Level",
    "RefKind",
    "Rules",
    "ServiceFacts",
    "add_counts",
    "add_to",
    "assign",
    "bucket_id",
    "case_contribution",
    "case_deadlines",
    "case_id",
    "check_local",
    "check_submission",
    "classify",
    "delta",
    "escalate",
    "evaluation_contribution",
    "evaluation_deadline",
    "evaluation_id",
    "evaluation_record",
    "expand",
    "export_record",
    "facts_from_invitation",
    "figures",
    "file_appeal",
    "fill_deadlines",
    "group_key",
    "legacy_evaluation_id",
    "local_day",
    "month_key",
    "open_case",
    "overdue_steps",
    "parse_period",
    "plan_periods",
    "rank",
    "rate",
    "record_callback",
    "record_feedback",
    "record_rectification",
    "review_appeal",
    "suspicion_reasons",
    "week_key",
    "within_calendar_days",
]
