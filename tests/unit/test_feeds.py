from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.common.errors import InvalidInput, NotFound
from services.common.feeds import FeedFollower, read_feed
from services.common.store import Doc, Store, open_store

pytestmark = pytest.mark.unit


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    source = open_store(f"sqlite:///{tmp_path}", "source")
    target = open_store(f"sqlite:///{tmp_path}", "target")
    yield source, target
    source.close()
    target.close()


def test_read_feed_pages_and_refuses_unpublished(stores: tuple[Store, Store]) -> None:
    source, _ = stores
    source.collection("outbox").insert_many({"id": f"r{i}", "n": i} for i in range(5))
    page = read_feed(source, ("outbox",), "outbox", 0, 3)
    assert [d["id"] for d in page["items"]] == ["r0", "r1", "r2"]
    assert page["high_water"] == 5
    rest = read_feed(source, ("outbox",), "outbox", page["last_seq"], 3)
    assert [d["id"] for d in rest["items"]] == ["r3", "r4"]
    empty = read_feed(source, ("outbox",), "outbox", rest["last_seq"], 3)
    assert empty["items"] == []
    assert empty["last_seq"] == rest["last_seq"]
    with pytest.raises(NotFound):
        read_feed(source, ("outbox",), "secrets", 0, 3)
    with pytest.raises(InvalidInput) as caught:
        read_feed(source, ("outbox",), "outbox", -1, 3)
    assert "since" in caught.value.fields
    with pytest.raises(InvalidInput) as caught:
        read_feed(source, ("outbox",), "outbox", 0, 0)
    assert "limit" in caught.value.fields


def test_follower_applies_everything_once_and_resumes_after_crash(
    stores: tuple[Store, Store],
) -> None:
    source, target = stores
    outbox = source.collection("outbox")
    outbox.insert_many({"id": f"r{i}"} for i in range(7))
    applied: list[str] = []

    def fetch(since: int, limit: int) -> dict[str, Any]:
        return read_feed(source, ("outbox",), "outbox", since, limit)

    def crash_on_r5(items: list[Doc]) -> None:
        for item in items:
            if item["id"] == "r5":
                raise RuntimeError("worker died mid-page")
            applied.append(item["id"])

    follower = FeedFollower(target, "source", "outbox")
    with pytest.raises(RuntimeError):
        follower.pull(fetch, crash_on_r5, limit=2)
    # pages [r0 r1] [r2 r3] were checkpointed; the page holding r5 was not
    assert follower.checkpoint() == 4
    assert applied == ["r0", "r1", "r2", "r3", "r4"]

    seen: list[str] = []
    again = FeedFollower(target, "source", "outbox")  # as after a restart
    assert again.pull(fetch, lambda items: seen.extend(i["id"] for i in items), limit=2) == 3
    assert seen == ["r4", "r5", "r6"]  # r4 replayed: the handler must be idempotent
    assert again.pull(fetch, lambda items: seen.extend(i["id"] for i in items), limit=2) == 0
    outbox.update("r0", {"note": "changed"})
    assert again.pull(fetch, lambda items: seen.extend(i["id"] for i in items), limit=2) == 1
    assert seen[-1] == "r0"


def test_checkpoint_never_moves_back(stores: tuple[Store, Store]) -> None:
    _, target = stores
    follower = FeedFollower(target, "source", "outbox")
    follower._advance(0, 10)
    follower._advance(0, 4)  # a slower concurrent puller finishing an older page
    assert follower.checkpoint() == 10


@pytest.mark.parametrize("since", [10**30, 2**53 + 1, -1, True, "0", 1.5])
def test_a_feed_position_the_store_cannot_hold_is_invalid_input(tmp_path: Path, since: Any) -> None:
    store = open_store(f"sqlite:///{tmp_path}", "feeds")
    try:
        with pytest.raises(InvalidInput) as caught:
            read_feed(store, ("items",), "items", since, 10)
        assert list(caught.value.fields) == ["since"]
    finally:
        store.close()


@pytest.mark.parametrize("reincarnate", [True, False])
def test_a_follower_starts_again_after_its_source_is_restored(
    tmp_path: Path, reincarnate: bool
) -> None:
    """A restore rolls ``_seq`` back below the follower's checkpoint: new writes after it
    must still be applied (a new incarnation, or a high-water mark below the checkpoint)."""
    import shutil

    uri = f"sqlite:///{tmp_path}/source"
    source = open_store(uri, "source")
    source.collection("outbox").insert_many({"id": f"r{i}", "n": 1} for i in range(3))
    source.close()
    shutil.copy(tmp_path / "source" / "source.db", tmp_path / "backup.db")  # the backup
    source = open_store(uri, "source")
    outbox = source.collection("outbox")
    outbox.insert_many({"id": f"late{i}", "n": 1} for i in range(4))
    target = open_store(f"sqlite:///{tmp_path}/target", "target")
    seen: dict[str, int] = {}

    def fetch(since: int, limit: int) -> dict[str, Any]:
        return read_feed(source, ("outbox",), "outbox", since, limit)

    def apply(items: list[Doc]) -> None:
        seen.update({item["id"]: item["n"] for item in items})

    follower = FeedFollower(target, "source", "outbox")
    assert follower.pull(fetch, apply, limit=2) == 7
    assert follower.checkpoint() == 7
    source.close()
    shutil.copy(tmp_path / "backup.db", tmp_path / "source" / "source.db")  # the restore
    source = open_store(uri, "source")
    if reincarnate:
        source.reincarnate()  # hallctl restore
    outbox = source.collection("outbox")
    outbox.insert({"id": "after", "n": 1})
    outbox.update("r1", {"n": 2})
    if reincarnate:  # with a new incarnation even a source grown past the checkpoint is read
        outbox.insert_many({"id": f"more{i}", "n": 1} for i in range(6))
    follower.pull(fetch, apply, limit=2)
    assert seen["after"] == 1
    assert seen["r1"] == 2
    assert follower.checkpoint() == outbox.last_seq()
    source.close()
    target.close()
