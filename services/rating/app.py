"""``RatingApp``: the use cases of 好差评 at one site, composed from ``usecases/`` by concept
(docs/architecture.md, "Service template"). No framework here: ``provider.py`` builds one
per container and ``service.py`` hands each call to it."""

from __future__ import annotations

from services.common.clock import Clock, utc_now
from services.common.runtime import SiteContext
from services.rating.metrics import RatingMetrics
from services.rating.settings import RatingSettings
from services.rating.store import RatingRepository
from services.rating.usecases.cases import Cases
from services.rating.usecases.export import Export
from services.rating.usecases.invitations import INVITATION_FEED, SOURCES, Invitations
from services.rating.usecases.rollups import Rollups
from services.rating.usecases.submission import Submission
from services.rating.usecases.sweeps import Sweeps

__all__ = ["INVITATION_FEED", "SOURCES", "RatingApp"]


class RatingApp(Submission, Invitations, Cases, Sweeps, Rollups, Export):
    """Evaluations, invitations, cases and appeals, the sweep, statistics and exports."""

    def __init__(
        self, context: SiteContext, settings: RatingSettings, clock: Clock = utc_now
    ) -> None:
        self.context = context
        self.settings = settings
        self.clock = clock
        self.site = context.identity.code
        self.calendar = context.calendar
        self.repo = RatingRepository(context.store)
        self.salt = self.repo.privacy_salt(settings.privacy_salt)
        self.metrics = RatingMetrics(context.metrics)
        self.dirty = True
        self.insert_evaluation = self.repo.evaluations.insert
