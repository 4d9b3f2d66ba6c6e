"""Export profiles: one canonical enum is stored; each upstream target gets its own explicit
table. The tables live in ``services/common/evaluation_coding.py``, shared with sync's
platform connector (which may not import rating); rating's ``Level`` and ``Channel`` are
``StrEnum``s, so they index those tables as themselves."""

from __future__ import annotations

from services.common.evaluation_coding import (
    EXPORT_PROFILES,
    GBT39046,
    PROVINCIAL_DEFAULT,
    PROVINCIAL_PHONE,
    ExportProfile,
    export_record,
)

__all__ = [
    "EXPORT_PROFILES",
    "GBT39046",
    "PROVINCIAL_DEFAULT",
    "PROVINCIAL_PHONE",
    "ExportProfile",
    "export_record",
]
