"""A pad retry after a dropped reply stores one evaluation: the real rating container on the
real RabbitMQ, the first call's reply lost at the broker, the pad's retry with the same
``request_id`` answered with the first result."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection, Exchange
from nameko.containers import ServiceContainer

from services.common.errors import NotFound  # registers typed errors
from services.common.identity import IDENTITY_KEY
from services.rating.service import RatingService
from tests.conftest import VhostFactory, amqp_uri, operator_context, operator_rpc, site_config
from tests.service.helpers import wait_for
from tests.service.test_rating_service import InvitationSource

pytestmark = pytest.mark.service

Start = Callable[[type, dict[str, Any]], ServiceContainer]


def call_and_drop_the_reply(vhost: str, method: str, *args: Any) -> None:
    """An RPC request (signed as the operator) whose reply goes to a queue nobody declared:
    the broker drops it, as when the pad's connection breaks after sending."""
    exchange = Exchange("nameko-rpc", type="topic", durable=True)
    with Connection(amqp_uri(vhost)) as connection:
        connection.Producer(serializer="json").publish(
            {"args": list(args), "kwargs": {}},
            exchange=exchange,
            routing_key=f"rating.{method}",
            reply_to=f"gone-{uuid.uuid4().hex}",
            correlation_id=uuid.uuid4().hex,
            headers={f"nameko.{IDENTITY_KEY}": operator_context().copy()[IDENTITY_KEY]},
            declare=[exchange],
        )


def test_a_pad_retry_after_a_dropped_reply_stores_one_evaluation(
    vhost_factory: VhostFactory, tmp_path: Path, start: Start
) -> None:
    vhost = vhost_factory("rating-retry")
    salt = {"privacy_salt": "service-test-salt-0002"}
    start(RatingService, site_config(vhost, tmp_path, "421302", "county", RATING=salt))
    start(InvitationSource, site_config(vhost, tmp_path, "421302", "county"))
    with operator_rpc(amqp_uri(vhost), timeout=20) as rpc:
        ticket = rpc.queue.complete("8", "staff-8")
        pending = wait_for(lambda: rpc.rating.pending_for_window("8"), timeout=8)
        submission = {
            "invitation_id": pending["id"],
            "service_ref": {"kind": "ticket"},
            "channel": "pad",
            "level": "dissatisfied",
            "reasons": {"tags": ["等候过长"]},
            "request_id": f"pad-8-{uuid.uuid4().hex[:8]}",
        }
        evaluation_id = f"ev:421302:ticket:{ticket}:1"
        call_and_drop_the_reply(vhost, "submit_evaluation", submission)

        def stored() -> dict[str, Any] | None:
            try:
                found: dict[str, Any] = rpc.rating.get_evaluation(evaluation_id)
                return found
            except NotFound:
                return None

        first = wait_for(stored, timeout=10)
        retry = rpc.rating.submit_evaluation(submission)  # the pad never saw the reply
        assert retry["id"] == first["id"] == evaluation_id
        assert retry["sequence"] == 1
        feed = rpc.rating.feed("evaluations", 0, 100)
        assert [d["id"] for d in feed["items"] if d["service_ref"]["id"] == ticket] == [
            evaluation_id
        ]
        cases = rpc.rating.feed("cases", 0, 100)["items"]
        assert [c["evaluation_id"] for c in cases] == [evaluation_id]
