"""Logging that leaves no personal data behind: every record a service writes passes
``ScrubPersonalData``, which masks mobile and ID numbers in the message and in the
traceback (an exception's text may quote an argument). Installed on the handlers of every
generated LOGGING config (services/hallctl/siteconfig.py).

``RefusalsWithoutTraceback`` sits on Nameko's container logger in every service process:
a typed refusal (``InvalidInput``, ``NotFound``, …) is the caller's mistake, answered and
counted, so it is logged as one INFO line, scrubbed, without a traceback; an unexpected
exception keeps its ERROR and its traceback."""

from __future__ import annotations

import logging
import re

from services.common.errors import HallError
from services.common.privacy import scrub_text

# The request line of the HTTP access log (eventlet's, through ``nameko.web.server``): the
# query string may hold a search term or a partial number no scrubber recognises.
_QUERY = re.compile(r'("[A-Z]+ [^ ?"]*)\?[^ "]*')


class ScrubPersonalData(logging.Filter):
    """Masks phones and ID numbers in a record's message and traceback, and drops query
    strings from the HTTP access log; keeps the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.name.startswith("nameko.web"):
            message = _QUERY.sub(r"\1?…", message)
        record.msg = scrub_text(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub_text(record.exc_text)
        return True


class RefusalsWithoutTraceback(logging.Filter):
    """A record about a ``HallError`` becomes one scrubbed INFO line without traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], HallError):
            record.msg = scrub_text(record.getMessage())
            record.args = None
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def quiet_refusals() -> None:
    """Install ``RefusalsWithoutTraceback`` on the logger of Nameko's containers (once)."""
    containers = logging.getLogger("nameko.containers")
    if not any(isinstance(f, RefusalsWithoutTraceback) for f in containers.filters):
        containers.addFilter(RefusalsWithoutTraceback())
