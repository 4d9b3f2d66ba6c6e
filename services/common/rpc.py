"""Nameko's RPC entrypoint without two per-call costs that buy nothing here.

Every service's ``@rpc`` comes from this module. Measured on a 2-core site server, these
two costs were a large part of a call's CPU (bench/queue.py, bench/rating.py):

- Nameko publishes each *reply* with publisher confirms: one more broker round trip and
  confirm bookkeeping per call on the service and on RabbitMQ. A reply goes to the
  caller's own auto-delete reply queue, which lives only as long as the caller's
  connection; a confirm cannot make it safer (if the broker fails, the queue and the
  waiting caller go too, and the caller times out either way). Requests keep confirms.
- Nameko checks each call's arguments with ``inspect.getcallargs``, which rebuilds the
  method's signature on every call; the signature is built once here.

It is where access is decided (docs/security.md): before a worker starts, the call's
signed identity is verified with the site's key and checked against the service's role
table (``services.common.access``); a refused call never reaches the service, is counted in
``hall_access_refused_total`` and written to the ``hall.audit`` log (account ids only).

It is also the boundary's last line (docs/architecture.md, "Validation"): arguments that do
not fit the method's signature come back as ``InvalidInput`` naming the argument, and an
unexpected exception (anything but a ``HallError``) is answered as ``InternalError``. Nameko
has already logged it with its traceback (through the LOGGING filter that masks personal
data) and ``EntrypointMetrics`` counts it in ``hall_entrypoint_errors_total``.
"""

from __future__ import annotations

import inspect
import logging
import re
import time
from functools import partial
from typing import Any

from nameko import rpc as nameko_rpc
from nameko.amqp.publish import Publisher
from nameko.constants import (
    AMQP_SSL_CONFIG_KEY,
    AMQP_URI_CONFIG_KEY,
    DEFAULT_SERIALIZER,
    LOGIN_METHOD_CONFIG_KEY,
    SERIALIZER_CONFIG_KEY,
)
from nameko.exceptions import ContainerBeingKilled, MalformedRequest

from services.common.access import Rule, Throttle, authorise
from services.common.errors import Forbidden, HallError, InternalError, InvalidInput
from services.common.identity import IDENTITY_KEY, verify
from services.common.runtime import SiteRuntime

audit = logging.getLogger("hall.audit")


class ReplyPublisher(Publisher):  # type: ignore[misc]
    use_confirms = False


class ReplyResponder(nameko_rpc.Responder):  # type: ignore[misc]
    publisher_cls = ReplyPublisher


class Rpc(nameko_rpc.Rpc):  # type: ignore[misc]
    """``@rpc`` replying through ``ReplyResponder``, with settings and signature read once.

    It shares Nameko's RPC consumer, so it mixes with plain ``nameko.rpc.rpc`` methods, and
    keeps Nameko's class name, which metrics and dashboards show as the entrypoint ``kind``."""

    site_runtime = SiteRuntime()

    def setup(self) -> None:
        super().setup()
        config = self.container.config
        self.reply_to = (
            config[AMQP_URI_CONFIG_KEY],
            nameko_rpc.get_rpc_exchange(config),
            config.get(SERIALIZER_CONFIG_KEY, DEFAULT_SERIALIZER),
        )
        self.reply_options = {
            "ssl": config.get(AMQP_SSL_CONFIG_KEY),
            "login_method": config.get(LOGIN_METHOD_CONFIG_KEY),
        }
        self.signature = inspect.signature(getattr(self.container.service_cls, self.method_name))
        self.access: dict[str, Rule] = self.container.service_cls.access
        found = self.access.get(self.method_name)
        limit = found.per_minute if found is not None else None
        self.throttle = Throttle(limit) if limit else None

    def handle_message(self, body: Any, message: Any) -> None:
        """Nameko's own steps, with the call admitted (identity, role, actor) before its
        worker is spawned; what this raises is the caller's reply."""
        try:
            args, kwargs = body["args"], body["kwargs"]
        except (KeyError, TypeError):
            raise MalformedRequest("Message missing `args` or `kwargs`") from None
        context_data = self.unpack_message_headers(message)
        arguments = self.admit(self.bind_call(args, kwargs), context_data.pop(IDENTITY_KEY, None))
        try:
            self.container.spawn_worker(
                self,
                (),
                arguments,
                context_data=context_data,
                handle_result=partial(self.handle_result, message),
            )
        except ContainerBeingKilled:
            self.rpc_consumer.requeue_message(message)

    def bind_call(self, args: Any, kwargs: Any) -> dict[str, Any]:
        """The call's arguments by name; ``InvalidInput`` naming the one that does not fit."""
        if not isinstance(args, list | tuple) or not isinstance(kwargs, dict):
            raise InvalidInput.field("参数", "应为参数列表与命名参数")
        try:
            bound = self.signature.bind(None, *args, **kwargs)  # None: the unbound self
        except TypeError as exc:
            raise signature_refusal(str(exc)) from None
        arguments: dict[str, Any] = {}
        for name, value in list(bound.arguments.items())[1:]:  # [0]: self
            if self.signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
                arguments.update(value)  # ``**filters``: passed on by name again
            else:
                arguments[name] = value
        return arguments

    def admit(self, arguments: dict[str, Any], token: object) -> dict[str, Any]:
        """``arguments`` with the actor filled in, or the refusal, counted and audited."""
        context = self.site_runtime.ready()
        principal = None
        try:
            found = self.access.get(self.method_name)
            if token is not None and not (found and found.open):
                principal = verify(
                    token, context.config.access.ring(), context.config.identity.code
                )
            authorise(self.access, self.method_name, principal, arguments)
            if self.throttle is not None and principal is not None:
                self.throttle.admit(principal.label, time.monotonic())
        except Forbidden as refusal:  # Unauthenticated and TooManyRequests included
            metrics = context.metrics
            labels = {"method": self.method_name, "reason": refusal.code}
            metrics.access_refused.labels(**metrics.site_labels(), **labels).inc()
            who = principal.label if principal else "anonymous"
            audit.warning(
                "refused %s.%s for %s: %s", context.service, self.method_name, who, refusal.code
            )
            raise
        if found is not None and found.audit:
            who = principal.label if principal else "anonymous"
            audit.info("called %s.%s by %s", context.service, self.method_name, who)
        return arguments

    def handle_result(
        self, message: Any, worker_ctx: Any, result: Any, exc_info: Any
    ) -> tuple[Any, Any]:
        # The caller gets InternalError; metrics and logs keep the real exception.
        unexpected = exc_info is not None and not isinstance(exc_info[1], HallError)
        sent = _as_internal_error() if unexpected else exc_info
        responder = ReplyResponder(*self.reply_to, message, **self.reply_options)
        result, sent_exc = responder.send_response(result, sent)
        self.rpc_consumer.queue_consumer.ack_message(message)
        return result, exc_info if sent_exc is sent else sent_exc


def _as_internal_error() -> Any:
    """The ``exc_info`` Nameko serialises for the caller (its traceback is not sent)."""
    error = InternalError()
    return (type(error), error, None)


_SIGNATURE_RULES = (
    (re.compile(r"missing a required argument: '(\w+)'"), "必填"),
    (re.compile(r"got an unexpected keyword argument '(\w+)'"), "不认识的参数"),
    (re.compile(r"multiple values for argument '(\w+)'"), "重复给出"),
)


def signature_refusal(reason: str) -> InvalidInput:
    """Python's reason for refusing a call, as ``InvalidInput`` naming the argument."""
    for pattern, rule in _SIGNATURE_RULES:
        if found := pattern.search(reason):
            return InvalidInput.field(found.group(1), rule)
    return InvalidInput.field("参数", "参数个数不对")


rpc = Rpc.decorator
