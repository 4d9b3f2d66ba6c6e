"""Replication rules between tiers (同步), by concept: signing, masking, feeds and batches,
the retry schedule, reconciliation, and the stored documents. Pure: standard library and
``services.common`` only, no I/O (docs/architecture.md, "Replication")."""

from services.sync.domain.feeds import (
    MAX_VERSION,
    FeedRef,
    Span,
    acknowledge,
    encoded_size,
    owner_of,
    ownership_problem,
    record_problem,
    rejection,
    spans,
)
from services.sync.domain.masking import DEFAULT_MASK_KEYS, mask_record, personal_keys
from services.sync.domain.reconcile import (
    Counts,
    Digests,
    age_seconds,
    day_of,
    differences,
    digest,
    first_day,
    shortfalls,
    tally,
    tally_digests,
)
from services.sync.domain.signing import (
    SCHEMA,
    canonical_json,
    matching_key,
    sign,
    signature,
    verify,
)
from services.sync.domain.tasks import Backoff, Task

__all__ = [
    "DEFAULT_MASK_KEYS",
    "MAX_VERSION",
    "SCHEMA",
    "Backoff",
    "Counts",
    "Digests",
    "FeedRef",
    "Span",
    "Task",
    "acknowledge",
    "age_seconds",
    "canonical_json",
    "day_of",
    "differences",
    "digest",
    "encoded_size",
    "first_day",
    "mask_record",
    "matching_key",
    "owner_of",
    "ownership_problem",
    "personal_keys",
    "record_problem",
    "rejection",
    "shortfalls",
    "sign",
    "signature",
    "spans",
    "tally",
    "tally_digests",
    "verify",
]
