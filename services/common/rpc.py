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

It is also the boundary's last line (docs/architecture.md, "Validation"): arguments that do
not fit the method's signature come back as ``InvalidInput`` naming the argument, and an
unexpected exception (anything but a ``HallError``) is answered as ``InternalError``. Nameko
has already logged it with its traceback (through the LOGGING filter that masks personal
data) and ``EntrypointMetrics`` counts it in ``hall_entrypoint_errors_total``.
"""

from __future__ import annotations

import inspect
import re
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

from services.common.errors import HallError, InternalError, InvalidInput


class ReplyPublisher(Publisher):  # type: ignore[misc]
    use_confirms = False


class ReplyResponder(nameko_rpc.Responder):  # type: ignore[misc]
    publisher_cls = ReplyPublisher


class Rpc(nameko_rpc.Rpc):  # type: ignore[misc]
    """``@rpc`` replying through ``ReplyResponder``, with settings and signature read once.

    It shares Nameko's RPC consumer, so it mixes with plain ``nameko.rpc.rpc`` methods, and
    keeps Nameko's class name, which metrics and dashboards show as the entrypoint ``kind``."""

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

    def check_signature(self, args: Any, kwargs: Any) -> None:
        if not isinstance(args, list | tuple) or not isinstance(kwargs, dict):
            raise InvalidInput.field("参数", "应为参数列表与命名参数")
        try:
            self.signature.bind(None, *args, **kwargs)  # None: the unbound method's self
        except TypeError as exc:
            raise signature_refusal(str(exc)) from None

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
