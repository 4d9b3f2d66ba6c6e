"""Pure replication rules: canonical JSON, signatures, masking, poison records, batching,
high-water marks, backoff, reconciliation counts."""

import itertools
from datetime import UTC, date, datetime

import pytest

from services.common.site import within_subtree
from services.sync import domain
from services.sync.domain import Backoff, Task

pytestmark = pytest.mark.unit

KEY = "k" * 32


def record(i: int, site: str = "421302101201", **extra: object) -> dict:
    return {
        "id": f"{site}-e{i}",
        "schema": 1,
        "version": 1,
        "site_code": site,
        "level": "满意",
        "created_at": "2026-11-20T08:00:00Z",
        **extra,
    }


def test_canonical_json_ignores_key_order_and_keeps_chinese():
    a = domain.canonical_json({"b": 1, "a": {"y": [1, 2.5], "x": "满意"}})
    b = domain.canonical_json({"a": {"x": "满意", "y": [1, 2.5]}, "b": 1})
    assert a == b == '{"a":{"x":"满意","y":[1,2.5]},"b":1}'.encode()
    with pytest.raises(ValueError, match="Out of range float"):
        domain.canonical_json({"x": float("nan")})


def test_signature_verifies_with_either_rotation_key_and_detects_tampering():
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


def test_mask_drops_personal_keys_at_any_depth_and_keeps_masked_forms():
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


def test_mask_leaves_identifiers_and_codes_alone():
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
def test_record_problem_names_the_rule(change, problem):
    assert domain.record_problem(record(1), 1000) is None
    found = domain.record_problem({**record(1), **change}, 1000)
    assert found is not None
    assert problem in found


def test_record_problem_refuses_non_objects_and_unencodable_values():
    assert domain.record_problem(["x"], 1000) == "记录不是对象"
    assert "JSON" in domain.record_problem({**record(1), "x": float("inf")}, 1000)


def test_subtree_check_of_origins():
    assert within_subtree("421302101201", "421302101")
    assert within_subtree("421302101", "421302101")
    assert not within_subtree("421302102201", "421302101")
    assert not within_subtree("421302", "421302101")  # a parent is not in its child's subtree
    assert within_subtree("421302101201", "000000")


def items(seqs, site="421302101201"):
    return [{**record(seq, site), "_seq": seq} for seq in seqs]


def test_spans_cover_the_page_contiguously_and_respect_the_count():
    page = items([3, 4, 7, 8, 9])
    parts = domain.spans(page, 2, 9, lambda d: dict(d), max_records=2, max_bytes=10**6)
    assert [(p.from_seq, p.to_seq, [r["_seq"] for r in p.records]) for p in parts] == [
        (2, 4, [3, 4]),
        (4, 8, [7, 8]),
        (8, 9, [9]),
    ]


def test_spans_skip_parked_records_but_keep_their_positions():
    page = items([1, 2, 3, 4])
    parts = domain.spans(page, 0, 4, lambda d: None if d["_seq"] in (2, 4) else dict(d), 10, 10**6)
    assert [(p.from_seq, p.to_seq, [r["_seq"] for r in p.records]) for p in parts] == [
        (0, 4, [1, 3])
    ]
    nothing = domain.spans(page, 0, 4, lambda d: None, 10, 10**6)
    assert [(p.from_seq, p.to_seq, p.records) for p in nothing] == [(0, 4, [])]


def test_spans_split_by_bytes():
    page = items(range(1, 11))
    size = domain.encoded_size(dict(page[0]))
    parts = domain.spans(page, 0, 10, lambda d: dict(d), 100, max_bytes=size * 3 + 5)
    assert [len(p.records) for p in parts] == [3, 3, 3, 1]
    assert parts[-1].to_seq == 10
    assert all(a.to_seq == b.from_seq for a, b in itertools.pairwise(parts))


def test_acknowledge_extends_only_contiguous_batches():
    assert domain.acknowledge(0, 0, 500) == 500
    assert domain.acknowledge(500, 500, 900) == 900
    assert domain.acknowledge(900, 500, 700) == 900  # a resend of old positions
    assert domain.acknowledge(900, 0, 0) == 900  # a reconciliation resend
    assert domain.acknowledge(300, 500, 900) == 300  # a gap: the child must send from 300


def test_backoff_grows_with_jitter_and_is_capped():
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


def test_task_schedule_success_failure_and_hurry():
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


def test_tally_and_shortfalls_per_origin_per_day():
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


def test_age_seconds_and_utc_stamps():
    now = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
    assert domain.age_seconds("2026-11-22T11:59:30Z", now) == 30.0
    assert domain.age_seconds("2026-11-22T11:59:30", now) == 30.0
    assert domain.age_seconds("2026-11-22T12:00:30Z", now) == 0.0
    assert domain.age_seconds("yesterday", now) is None
    assert domain.age_seconds(None, now) is None
    assert domain.utc_now_iso(now) == "2026-11-22T12:00:00.000Z"


def test_failures_are_classified_into_low_cardinality_reasons():
    import eventlet
    from nameko.exceptions import RpcTimeout, UnknownService

    from services.common.errors import Forbidden, UpstreamUnavailable
    from services.sync.local import LocalUnavailable
    from services.sync.replicator import classify

    cases = [
        (UnknownService("sync"), "unknown_service"),
        (RpcTimeout(5), "timeout"),
        (eventlet.Timeout(), "timeout"),
        (Forbidden("签名无效"), "forbidden"),
        (LocalUnavailable("本站点的 rating 服务未运行"), "local"),
        (UpstreamUnavailable("无法连接"), "unreachable"),
        (ConnectionRefusedError(111, "ECONNREFUSED"), "unreachable"),
        (KeyError("x"), "error"),
    ]
    for exc, reason in cases:
        assert classify(exc)[0] == reason, exc
    assert classify(Forbidden("签名无效"))[1] == "签名无效"
