"""``/health``'s broker check: one connection reused, one answer per second."""

from __future__ import annotations

from typing import Any

import pytest

from services.common.broker import BrokerProbe

pytestmark = pytest.mark.unit


class FakeChannel:
    def __init__(self, connection: FakeConnection) -> None:
        self.connection = connection

    def exchange_declare(self, name: str, kind: str, passive: bool) -> None:
        assert passive, "the probe must never create anything"
        self.connection.round_trips += 1
        if self.connection.broken:
            raise ConnectionResetError("connection reset by peer")


class FakeConnection:
    opened: list[FakeConnection]

    def __init__(self, uri: str, connect_timeout: float) -> None:
        self.round_trips, self.broken, self.released = 0, False, False
        FakeConnection.opened.append(self)

    def ensure_connection(self, **kwargs: Any) -> None:
        pass

    @property
    def default_channel(self) -> FakeChannel:
        return FakeChannel(self)

    def release(self) -> None:
        self.released = True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def probe() -> tuple[BrokerProbe, Clock]:
    FakeConnection.opened = []
    clock = Clock()
    return BrokerProbe("amqp://x", connect=FakeConnection, monotonic=clock), clock


def test_one_connection_and_one_answer_per_second(probe: tuple[BrokerProbe, Clock]) -> None:
    check, clock = probe
    for _ in range(50):
        assert check.problem() is None
    assert len(FakeConnection.opened) == 1
    assert FakeConnection.opened[0].round_trips == 1  # cached within the second
    clock.now += 1.0
    for _ in range(50):
        assert check.problem() is None
    assert len(FakeConnection.opened) == 1  # the same connection, reused
    assert FakeConnection.opened[0].round_trips == 2


def test_a_broken_connection_is_reported_then_replaced(probe: tuple[BrokerProbe, Clock]) -> None:
    check, clock = probe
    assert check.problem() is None
    first = FakeConnection.opened[0]
    first.broken = True
    clock.now += 1.0
    assert check.problem() == "ConnectionResetError: connection reset by peer"
    assert first.released
    clock.now += 1.0
    assert check.problem() is None
    assert len(FakeConnection.opened) == 2
