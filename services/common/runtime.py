"""The Nameko glue every service shares: validated site, store, calendar, metrics, health.

``SiteRuntime`` is a shared extension (one per container): it validates the whole
configuration, checks the broker, and only then opens the store, so a bad config creates
nothing on disk. ``Runtime`` hands workers a ``SiteContext``; ``EntrypointMetrics`` times
every entrypoint.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from nameko.extensions import DependencyProvider, SharedExtension
from nameko.messaging import QueueConsumer

from services.common.broker import BrokerProbe, require_broker
from services.common.calendar import WorkingCalendar, load_calendar
from services.common.config import ConfigError, SiteConfig, load_site_config
from services.common.errors import HallError, InvalidInput
from services.common.metrics import ServiceMetrics
from services.common.site import SiteIdentity
from services.common.store import Store, open_store


@dataclass(frozen=True)
class SiteContext:
    """What a worker gets: everything is container-scoped and safe to share."""

    service: str
    config: SiteConfig
    store: Store
    calendar: WorkingCalendar
    metrics: ServiceMetrics
    # True once the container consumes its RPC and event queues: before that, a call to it
    # is refused by the broker (UnknownService) although its web server already answers.
    consuming: Callable[[], bool] = field(default=lambda: True, repr=False, compare=False)
    broker: BrokerProbe = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Connects on the first /health, not here: a context built for a test or a tool
        # never touches the broker.
        object.__setattr__(self, "broker", BrokerProbe(self.config.amqp_uri))

    @property
    def identity(self) -> SiteIdentity:
        return self.config.identity

    def site_info(self) -> dict[str, Any]:
        return {**self.identity.as_dict(), "service": self.service, "store": self.store.kind}

    def health(self) -> tuple[bool, dict[str, str]]:
        """Store and broker reachability, each as "ok" or a one-line reason."""
        checks: dict[str, str] = {}
        try:
            self.store.ping()
            checks["store"] = "ok"
        except HallError as exc:
            checks["store"] = str(exc)
        checks["broker"] = self.broker.problem() or "ok"
        checks["consumers"] = "ok" if self.consuming() else "尚未开始接收消息"
        return all(v == "ok" for v in checks.values()), checks


class SiteRuntime(SharedExtension):  # type: ignore[misc]
    """One per container: validation first, then the store (one client per container).

    Validation runs in ``bind``, which Nameko calls while it constructs the container in
    the main greenlet: a bad config raises ``ConfigError`` straight out of ``nameko run``
    (one line, see ``one_line_startup_errors``) before any extension starts, and before
    anything is created on disk.
    """

    validated: tuple[SiteConfig, WorkingCalendar] | None = None
    context: SiteContext | None = None

    def bind(self, container: Any) -> SiteRuntime:
        instance: SiteRuntime = super().bind(container)
        # Stores, logs and files the service writes hold personal data: its user's alone.
        os.umask(0o077)
        if instance.validated is None:
            config = load_site_config(container.config, container.service_name)
            calendar = _calendar(config.calendar_override)
            require_broker(config.amqp_uri)
            instance.validated = (config, calendar)
        return instance

    def setup(self) -> None:
        self.ready()

    def ready(self) -> SiteContext:
        if self.context is None:
            assert self.validated is not None, "bind() validates before any use"
            config, calendar = self.validated
            service = self.container.service_name
            store = open_store(config.store_uri, namespace=service)
            identity = config.identity
            metrics = ServiceMetrics(service, identity.code, identity.tier.value, store.kind)
            _watch_calendar(metrics, calendar)
            self.context = SiteContext(
                service, config, store, calendar, metrics, consuming=self._consuming
            )
        return self.context

    def _consuming(self) -> bool:
        consumers = [e for e in self.container.extensions if isinstance(e, QueueConsumer)]
        return all(c._consumers_ready.ready() for c in consumers)

    def stop(self) -> None:
        self._close()

    def kill(self) -> None:
        self._close()

    def _close(self) -> None:
        if self.context is not None:
            self.context.store.close()
            self.context.broker.close()
            self.context = None


class Runtime(DependencyProvider):  # type: ignore[misc]
    """Injects the container's ``SiteContext`` into each worker."""

    site_runtime = SiteRuntime()

    def get_dependency(self, worker_ctx: Any) -> SiteContext:
        return self.site_runtime.ready()


class EntrypointMetrics(DependencyProvider):  # type: ignore[misc]
    """Latency and error counters for every entrypoint of the service."""

    site_runtime = SiteRuntime()

    def setup(self) -> None:
        self._started: dict[Any, float] = {}

    def worker_setup(self, worker_ctx: Any) -> None:
        self._started[worker_ctx] = time.perf_counter()

    def worker_result(
        self, worker_ctx: Any, result: Any = None, exc_info: tuple[Any, ...] | None = None
    ) -> None:
        started = self._started.pop(worker_ctx, None)
        context = self.site_runtime.context
        if started is None or context is None:
            return
        metrics = context.metrics
        entrypoint = worker_ctx.entrypoint
        labels = {
            **metrics.site_labels(),
            "kind": type(entrypoint).__name__,
            "method": entrypoint.method_name,
        }
        metrics.rpc_latency.labels(**labels).observe(time.perf_counter() - started)
        if exc_info is not None:
            metrics.rpc_errors.labels(**labels, error=exc_info[0].__name__).inc()


def _watch_calendar(metrics: ServiceMetrics, calendar: WorkingCalendar) -> None:
    """``hall_calendar_days_ahead``, read at each scrape: working-day deadlines that run past
    the loaded holiday schedules are refused (never guessed), so operators must load next
    year's schedule in time (alert HallCalendarEndingSoon)."""
    gauge = metrics.gauge(
        "hall_calendar_days_ahead",
        "Days from today to the end of the last year with a loaded holiday schedule",
    )
    gauge.labels(**metrics.site_labels()).set_function(
        lambda: calendar.days_covered_after(datetime.now(UTC).date())
    )


def _calendar(path: str | None) -> WorkingCalendar:
    try:
        return load_calendar(path)
    except InvalidInput as exc:
        raise ConfigError(exc.message, {"CALENDAR_OVERRIDE": [exc.message]}) from None


def one_line_startup_errors() -> None:
    """Make a refused start print one line naming the key and the rule, not a traceback."""
    previous = sys.excepthook

    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if isinstance(exc, ConfigError):
            print(f"配置错误，服务拒绝启动：{exc}", file=sys.stderr)  # noqa: T201  (before logging)
            return
        previous(kind, exc, tb)

    sys.excepthook = hook
