"""Pure replication rules: canonical JSON, signatures, masking, poison records, batching,
high-water marks, backoff, reconciliation counts."""

import itertools
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

import pytest

from services.common.clock import iso
from services.common.site import within_subtree
from services.sync import domain
from services.sync.domain import Backoff, Task

pytestmark = pytest.mark.unit

KEY = "k" * 32


def record(i: int, site: str = "421302101201", **extra: object) -> dict[str, Any]:
    return {
        "id": f"{site}-e{i}",
        "schema": 1,
        "version": 1,
        "site_code": site,
        "level": "满意",
        "created_at": "2026-11-20T08:00:00Z",
        **extra,
    }


def test_canonical_json_ignores_key_order_and_keeps_chinese() -> None:
    a = domain.canonical_json({"b": 1, "a": {"y": [1, 2.5], "x": "满意"}})
    b = domain.canonical_json({"a": {"x": "满意", "y": [1, 2.5]}, "b": 1})
    assert a == b == '{"a":{"x":"满意","y":[1,2.5]},"b":1}'.encode()
    with pytest.raises(ValueError, match="Out of range float"):
        domain.canonical_json({"x": float("nan")})


def test_signature_verifies_with_either_rotation_key_and_detects_tampering() -> None:
    batch = domain.sign({"child": "421302101201", "records": [record(1)]}, KEY)
    assert domain.verify(batch, [KEY])
    assert domain.verify(batch, ["n" * 32, KEY])  # during rotation: old and new
    assert not domain.verify(batch, ["n" * 32])
    assert not domain.verify(batch, [])
    tampered = {**batch, "records": [record(1, level="不满意")]}
    assert not domain.verify(tampered, [KEY])
    claimed = {**batch, "child": "421302101202"}
    assert not domain.verify(claimed, [KEY])
    assert not domain.verify({k: v for k, v in batch.items() if k != "signature"}, [KEY])
    # re-ordered keys (as after a JSON round trip) still verify
    assert domain.verify(dict(reversed(list(batch.items()))), [KEY])


def test_mask_drops_personal_keys_at_any_depth_and_keeps_masked_forms() -> None:
    doc = record(
        1,
        phone="13812345678",
        phone_masked="138****5678",
        real_name=True,
        name="张三",
        id_number="421302199001011234",
        applicant={"applicant_name": "李四", "mobile": "13900001111", "district": "曾都区"},
        comment="请回电 13812345678，身份证 42130219900101123X 谢谢",
        _seq=17,
    )
    masked = domain.mask_record(doc)
    assert "phone" not in masked
    assert "name" not in masked
    assert "id_number" not in masked
    assert masked["applicant"] == {"district": "曾都区"}
    assert masked["phone_masked"] == "138****5678"
    assert masked["real_name"] is True
    assert masked["comment"] == "请回电 138****5678，身份证 4213**********123X 谢谢"
    assert "_seq" not in masked
    assert masked["id"] == doc["id"]
    assert masked["site_code"] == "421302101201"
    assert domain.personal_keys(masked) == []
    assert domain.personal_keys(doc) == [
        "applicant_name", "id_number", "mobile", "name", "phone"
    ]  # fmt: skip
    assert doc["phone"] == "13812345678"  # the original is untouched


def test_mask_leaves_identifiers_and_codes_alone() -> None:
    doc = record(
        1, staff_id="13812345678", matter_code="13812345678", number="13812345678", window="3"
    )
    masked = domain.mask_record(doc)
    assert masked["staff_id"] == "13812345678"
    assert masked["matter_code"] == "13812345678"
    assert masked["number"] == "13812345678"  # an application number, not a phone
    assert "phone_number" not in domain.mask_record(record(1, phone_number="13812345678"))
    assert domain.mask_record(doc, drop=("level",)).get("level") is None


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"id": ""}, "id"),
        ({"id": 5}, "id"),
        ({"version": 0}, "version"),
        ({"version": True}, "version"),
        ({"version": "2"}, "version"),
        ({"site_code": "42130"}, "site_code"),
        ({"site_code": None}, "site_code"),
        ({"schema": "1"}, "schema"),
        ({"created_at": 20260101}, "created_at"),
        ({"blob": "x" * 2000}, "过大"),
    ],
)
def test_record_problem_names_the_rule(change: dict[str, Any], problem: str) -> None:
    assert domain.record_problem(record(1), 1000) is None
    found = domain.record_problem({**record(1), **change}, 1000)
    assert found is not None
    assert problem in found


def test_record_problem_refuses_non_objects_and_unencodable_values() -> None:
    assert domain.record_problem(["x"], 1000) == "记录不是对象"
    assert "JSON" in (domain.record_problem({**record(1), "x": float("inf")}, 1000) or "")


def test_subtree_check_of_origins() -> None:
    assert within_subtree("421302101201", "421302101")
    assert within_subtree("421302101", "421302101")
    assert not within_subtree("421302102201", "421302101")
    assert not within_subtree("421302", "421302101")  # a parent is not in its child's subtree
    assert within_subtree("421302101201", "000000")


def items(seqs: Any, site: str = "421302101201") -> list[dict[str, Any]]:
    return [{**record(seq, site), "_seq": seq} for seq in seqs]


def keep_all(item: Mapping[str, Any]) -> dict[str, Any]:
    return dict(item)


def test_spans_cover_the_page_contiguously_and_respect_the_count() -> None:
    page = items([3, 4, 7, 8, 9])
    parts = domain.spans(page, 2, 9, keep_all, max_records=2, max_bytes=10**6)
    assert [(p.from_seq, p.to_seq, [r["_seq"] for r in p.records]) for p in parts] == [
        (2, 4, [3, 4]),
        (4, 8, [7, 8]),
        (8, 9, [9]),
    ]


def test_spans_skip_parked_records_but_keep_their_positions() -> None:
    page = items([1, 2, 3, 4])
    parts = domain.spans(page, 0, 4, lambda d: None if d["_seq"] in (2, 4) else dict(d), 10, 10**6)
    assert [(p.from_seq, p.to_seq, [r["_seq"] for r in p.records]) for p in parts] == [
        (0, 4, [1, 3])
    ]
    nothing = domain.spans(page, 0, 4, lambda d: None, 10, 10**6)
    assert [(p.from_seq, p.to_seq, p.records) for p in nothing] == [(0, 4, [])]


def test_spans_split_by_bytes() -> None:
    page = items(range(1, 11))
    size = domain.encoded_size(dict(page[0]))
    parts = domain.spans(page, 0, 10, keep_all, 100, max_bytes=size * 3 + 5)
    assert [len(p.records) for p in parts] == [3, 3, 3, 1]
    assert parts[-1].to_seq == 10
    assert all(a.to_seq == b.from_seq for a, b in itertools.pairwise(parts))


def test_acknowledge_extends_only_contiguous_batches() -> None:
    assert domain.acknowledge(0, 0, 500) == 500
    assert domain.acknowledge(500, 500, 900) == 900
    assert domain.acknowledge(900, 500, 700) == 900  # a resend of old positions
    assert domain.acknowledge(900, 0, 0) == 900  # a reconciliation resend
    assert domain.acknowledge(300, 500, 900) == 300  # a gap: the child must send from 300


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    backoff = Backoff(base=1.0, cap=60.0)
    assert backoff.delay(1, lambda: 0.0) == 0.5
    assert backoff.delay(1, lambda: 1.0) == 1.0
    assert backoff.delay(4, lambda: 1.0) == 8.0
    assert backoff.delay(4, lambda: 0.0) == 4.0
    assert backoff.delay(50, lambda: 1.0) == 60.0
    assert backoff.delay(10**6, lambda: 0.5) == 45.0  # never gives up, never overflows
    delays = {backoff.delay(3) for _ in range(50)}
    assert len(delays) > 40
    assert all(2.0 <= d <= 4.0 for d in delays)


def test_task_schedule_success_failure_and_hurry() -> None:
    task = Task(interval=2.0, backoff=Backoff(1.0, 8.0), rand=lambda: 1.0)
    assert task.due(0.0)
    assert task.failed(100.0) == 1.0
    assert task.failed(101.0) == 2.0
    assert task.failed(103.0) == 4.0
    assert not task.due(106.9)
    assert task.due(107.0)
    task.succeeded(107.0)
    assert task.failures == 0
    assert task.next_due == 109.0
    task.hurry()
    assert task.due(107.5)


def test_tally_and_shortfalls_per_origin_per_day() -> None:
    docs = [
        record(1),
        record(2),
        record(3, created_at="2026-11-21T01:00:00Z"),
        record(4, site="421302101202"),
        {**record(5), "date": "2026-11-19", "created_at": "2026-11-22T00:00:00Z"},
        record(6, created_at="2026-10-01T00:00:00Z"),  # before the window
        record(7, created_at=None),
    ]
    mine = domain.tally(docs, "2026-11-01")
    assert mine == {
        "421302101201": {"2026-11-20": 2, "2026-11-21": 1, "2026-11-19": 1, "unknown": 1},
        "421302101202": {"2026-11-20": 1},
    }
    theirs = {"421302101201": {"2026-11-20": 2, "2026-11-21": 0, "2026-11-19": 5}}
    assert domain.shortfalls(mine, theirs) == {
        ("421302101201", "2026-11-21"),
        ("421302101201", "unknown"),
        ("421302101202", "2026-11-20"),
    }
    assert domain.first_day(date(2026, 11, 22), 31) == "2026-10-23"
    assert domain.first_day(date(2026, 11, 22), 1) == "2026-11-22"


def test_age_seconds_and_utc_stamps() -> None:
    now = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
    assert domain.age_seconds("2026-11-22T11:59:30Z", now) == 30.0
    assert domain.age_seconds("2026-11-22T11:59:30", now) == 30.0
    assert domain.age_seconds("2026-11-22T12:00:30Z", now) == 0.0
    assert domain.age_seconds("yesterday", now) is None
    assert domain.age_seconds(None, now) is None
    assert iso(now) == "2026-11-22T12:00:00.000000Z"  # how sync stores its moments


def test_failures_are_classified_into_low_cardinality_reasons() -> None:
    import eventlet
    from nameko.exceptions import RemoteError, RpcTimeout, UnknownService

    from services.common.errors import Forbidden, UpstreamUnavailable
    from services.sync.adapters.upstream import translated
    from services.sync.ports import LocalUnavailable
    from services.sync.usecases.base import classify

    cases: list[tuple[BaseException, str]] = [
        (UnknownService("sync"), "unknown_service"),
        (RpcTimeout(5), "timeout"),
        (eventlet.Timeout(), "timeout"),
        (Forbidden("签名无效"), "forbidden"),
        (LocalUnavailable("本站点的 rating 服务未运行"), "local"),
        (UpstreamUnavailable("无法连接"), "unreachable"),
        (ConnectionRefusedError(111, "ECONNREFUSED"), "unreachable"),
        (KeyError("x"), "error"),
        (RemoteError("ValueError", "boom"), "error"),
    ]
    for exc, reason in cases:
        # the adapters hand the use cases framework-free errors
        assert classify(translated(exc))[0] == reason, exc
    assert classify(Forbidden("签名无效"))[1] == "签名无效"
    assert (
        classify(translated(RemoteError("ValueError", "boom")))[1] == "RemoteError: ValueError boom"
    )


@pytest.mark.parametrize(
    ("typed", "leaked"),
    [
        ("请回电 138 1234 5678", "1234"),
        ("电话 138-1234-5678", "1234"),
        ("电话 +86 138 1234 5678", "1234"),
        ("电话 +8613812345678", "1234"),
        ("电话 １３８１２３４５６７８", "１２３４"),
        ("旧身份证 421302900101123", "900101"),
        ("身份证 4213 0219 9001 0112 3X", "9001"),
    ],
)
def test_phones_and_ids_in_free_text_leave_the_site_masked_in_every_typed_form(
    typed: str, leaked: str
) -> None:
    """Spaced, hyphenated, +86, full-width phones and 15-digit IDs (privacy.scrub_text)."""
    doc = record(1, comment=f"{typed}，谢谢", steps=[{"note": typed}])
    masked = domain.mask_record(doc)
    assert leaked not in masked["comment"], masked["comment"]
    assert masked["comment"].endswith("，谢谢")
    assert "*" in masked["comment"]
    assert leaked not in masked["steps"][0]["note"]
    assert masked["id"] == doc["id"]


def test_a_replicated_id_must_carry_its_owner_s_site_code() -> None:
    village, sibling, town = "421302101201", "421302101202", "421302101"
    own = {"id": f"{village}:2026-11-23:A", "site_code": village}
    assert domain.ownership_problem(own) is None
    assert domain.ownership_problem({"id": f"{village}-9f0c", "site_code": village}) is None
    forged = {"id": f"{sibling}:2026-11-23:A", "site_code": village}
    assert village in (domain.ownership_problem(forged) or "")
    assert domain.ownership_problem({"id": f"{town}:2026-11-23:A", "site_code": village})
    # a prefix is not a segment: the town's code inside the village's is not the town's
    assert domain.ownership_problem({"id": f"{village}:x", "site_code": town})
    # recorded_at_site, when set, is the owner
    rated = {"id": f"ev:{village}:ticket:T1:1", "site_code": sibling, "recorded_at_site": village}
    assert domain.owner_of(rated) == village
    assert domain.ownership_problem(rated) is None
    assert domain.ownership_problem({**rated, "recorded_at_site": town})


def test_a_version_the_store_cannot_hold_is_a_poison_record() -> None:
    record = {"id": "421302101201:d:A", "version": 2**53, "site_code": "421302101201"}
    assert domain.record_problem(record, 10_000) is None
    for version in (2**53 + 1, 2**63, 10**30):
        assert "2^53" in (domain.record_problem({**record, "version": version}, 10_000) or "")
    assert domain.record_problem({**record, "recorded_at_site": "x"}, 10_000)


def test_a_batch_that_cannot_be_signed_is_a_typed_refusal() -> None:
    from services.common.errors import InvalidInput

    good = domain.sign({"child": "421302101201", "records": []}, "k" * 32)
    for bad in (float("nan"), float("inf"), "\ud800", {"id": "a\udfffb"}):
        with pytest.raises(InvalidInput):
            domain.verify({**good, "records": [bad]}, ["k" * 32])
