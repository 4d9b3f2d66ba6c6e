"""Two rating processes on one store (docs/architecture.md, "Replicas"): two ``RatingApp``s
on one SQLite file, or one MongoDB (mongomock), folding the same records at the same time
count every evaluation and case exactly once."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from services.common.clock import ManualClock, parse_iso
from services.rating.app import RatingApp
from services.rating.settings import RatingSettings
from tests.conftest import MakeContext

pytestmark = pytest.mark.unit

DAY = {"date_from": "2024-09-13", "date_to": "2024-09-13"}


@pytest.fixture(params=["sqlite", "mongomock"])
def shared_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared' / 'rating.db'}"
    return f"mongomock://{uuid.uuid4().hex}/hall"


def two_apps(make_context: MakeContext, uri: str) -> tuple[RatingApp, RatingApp]:
    clock = ManualClock(parse_iso("2024-09-13T02:00:00Z"))
    settings = RatingSettings(privacy_salt="test-salt-0123456789")
    return (
        RatingApp(make_context("rating", store_uri=uri), settings, clock),
        RatingApp(make_context("rating", store_uri=uri), settings, clock),
    )


def invitation(n: int) -> dict[str, Any]:
    return {
        "id": f"ticket:421302-t{n}",
        "schema": 1,
        "service_ref": {"kind": "ticket", "id": f"421302-t{n}"},
        "site_code": "421302",
        "window": "3",
        "staff_id": "staff-3",
        "matter_code": "M1",
        "department": "人社局",
        "service_channel": "window",
        "service_ended_at": "2024-09-13T01:30:00Z",
    }


def pause_after(obj: Any, method: str, reached: threading.Event, go: threading.Event) -> None:
    """Make ``obj.method`` stop once, after it returned, until ``go`` is set."""
    real: Callable[..., Any] = getattr(obj, method)
    state = {"paused": False}

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        if not state["paused"]:
            state["paused"] = True
            reached.set()
            assert go.wait(10), "never released"
        return result

    setattr(obj, method, wrapper)


def run(target: Callable[[], object]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def body() -> None:
        try:
            target()
        except BaseException as exc:  # noqa: BLE001  (re-raised by the test)
            errors.append(exc)

    thread = threading.Thread(target=body)
    thread.start()
    return thread, errors


def test_two_processes_folding_the_same_bad_rating_count_it_once(
    make_context: MakeContext, shared_uri: str
) -> None:
    a, b = two_apps(make_context, shared_uri)
    a.apply_invitations("queue", [invitation(1)])
    ev = a.submit(
        {
            "service_ref": {"kind": "ticket", "id": "421302-t1"},
            "channel": "pad",
            "level": "dissatisfied",
            "reasons": {"tags": ["等候过长"]},
        }
    )
    # A reads the new records, then stalls; meanwhile the evaluation is updated again (its
    # case outbox step, a review…), and B reads the newer version and the marks, and stalls.
    a_read, a_go, b_read, b_go = (threading.Event() for _ in range(4))
    pause_after(a.repo.folders["evaluations"].source, "changes_since", a_read, a_go)
    pause_after(b.repo.folders["evaluations"].marks, "find", b_read, b_go)
    thread_a, errors_a = run(a.fold)
    assert a_read.wait(10)
    b.repo.evaluations.update(ev["id"], {"updated_at": "2024-09-13T02:00:01.000000Z"})
    thread_b, errors_b = run(b.fold)
    assert b_read.wait(10)
    a_go.set()  # A finishes its fold first
    thread_a.join(10)
    b_go.set()  # then B, with what it read before A's fold
    thread_b.join(10)
    assert errors_a + errors_b == []
    for app in (a, b):
        total = app.stats(DAY)["total"]
        assert (total["total"], total["bad"], total["cases"]) == (1, 1, 1)
    bucket = a.repo.rollups.get("2024-09-13|421302|all")
    assert bucket is not None
    assert bucket["values"]["*"] == {"n_dissatisfied": 1, "cases": 1}


def test_two_processes_folding_under_a_mixed_load_count_exactly(
    make_context: MakeContext, shared_uri: str
) -> None:
    a, b = two_apps(make_context, shared_uri)
    a.apply_invitations("queue", [invitation(n) for n in range(1, 41)])
    stop = threading.Event()

    def fold_loop(app: RatingApp) -> None:
        while not stop.is_set():
            app.fold()

    folders = [run(lambda app=app: fold_loop(app)) for app in (a, b)]  # type: ignore[misc]
    for n in range(1, 41):
        app = a if n % 2 else b
        level = "dissatisfied" if n % 4 == 0 else "satisfied"
        app.submit(
            {
                "service_ref": {"kind": "ticket", "id": f"421302-t{n}"},
                "channel": "pad",
                "level": level,
                "reasons": {"tags": ["等候过长"]} if level == "dissatisfied" else None,
            }
        )
    stop.set()
    for thread, errors in folders:
        thread.join(30)
        assert not errors, errors
    for app in (a, b):
        total = app.stats(DAY)["total"]
        assert (total["total"], total["bad"], total["cases"]) == (40, 10, 10)
