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
"""

from __future__ import annotations

import inspect
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
from nameko.exceptions import IncorrectSignature


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
        try:
            self.signature.bind(None, *args, **kwargs)  # None: the unbound method's self
        except TypeError as exc:
            raise IncorrectSignature(str(exc)) from None

    def handle_result(
        self, message: Any, worker_ctx: Any, result: Any, exc_info: Any
    ) -> tuple[Any, Any]:
        responder = ReplyResponder(*self.reply_to, message, **self.reply_options)
        result, exc_info = responder.send_response(result, exc_info)
        self.rpc_consumer.queue_consumer.ack_message(message)
        return result, exc_info


rpc = Rpc.decorator
