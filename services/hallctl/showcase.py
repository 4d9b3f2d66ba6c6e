"""What `hallctl demo` shows once the network is healthy: the county's catalog reaching the
village, a 代办 application forwarded by the village and handled at the town, and its
rating at the village reaching the county's statistics."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from nameko.standalone.rpc import ClusterRpcProxy

from services.common.callers import operator_proxy
from services.common.errors import NotFound
from services.common.privacy import resident_id_check
from services.hallctl.topology import DEMO_SITES, DemoSite, Layout

T = TypeVar("T")
COUNTY, VILLAGE = DEMO_SITES[0], DEMO_SITES[-1]


def demo_id_number(body: str = "42130219800101001") -> str:
    """A made-up resident ID with a valid check character: demo data, nobody's number."""
    return body + resident_id_check(body)


def rpc(layout: Layout, site: DemoSite, password: str) -> ClusterRpcProxy:
    """The site's services, called as its operator (``hallctl`` holds the site's key)."""
    config = {
        "AMQP_URI": layout.amqp_uri(site.code, site.code, password),
        "ACCESS_KEY_FILE": layout.access_key_file(site),
    }
    return operator_proxy(config, timeout=30)


def wait_for(check: Callable[[], T | None], timeout: float, step: float = 1.0) -> T | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(step)
    return None


def show_flow(layout: Layout, passwords: dict[str, str]) -> bool:
    """Catalog down, an evaluation up; prints each step, returns whether both arrived."""
    with rpc(layout, VILLAGE, passwords[VILLAGE.code]) as village:
        matter = wait_for(lambda: _proxy_matter(village), timeout=60)
        if matter is None:
            print("✗ 村站 60 秒内未收到县级事项目录", flush=True)
            return False
        total = village.matters.search_matters(limit=1)["total"]
        print(f"✓ 事项目录已下发到村站：{total} 项，例如《{matter['name']}》", flush=True)
        evaluation = _serve_and_rate(village, matter)
        if evaluation is None:
            return False
        print(f"✓ 村站送达办理结果并收到评价「{evaluation['level_zh']}」", flush=True)
        village.sync.push_now()
    with rpc(layout, COUNTY, passwords[COUNTY.code]) as county:
        arrived = wait_for(lambda: _county_has(county, evaluation["id"]), timeout=60)
        if arrived is None:
            print("✗ 60 秒内评价未到达县级统计", flush=True)
            return False
        print(f"✓ 评价已逐级上报到县：{VILLAGE.code} 本月评价 {arrived} 条", flush=True)
    _print_sync_status(layout, passwords)
    return True


def _proxy_matter(village: Any) -> dict[str, Any] | None:
    """A 即办件 the village may proxy-handle (代办), once the catalog has arrived."""
    found = village.matters.search_matters(tier="village", limit=100)
    return next((m for m in found["items"] if m["case_type"] == "1"), None)


def _serve_and_rate(village: Any, found: dict[str, Any]) -> dict[str, Any] | None:
    """代办: the village forwards, the handling site completes, the village rates."""
    matter = village.matters.get_matter(found["code"])
    application = village.matters.submit_application(
        {
            "matter_code": found["code"],
            "applicant": {"kind": "person", "name": "演示群众", "id_number": demo_id_number()},
            "channel": "proxy",
            "materials": [
                {"name": m["name"]} for m in matter.get("materials", []) if m["required"]
            ],
            "window": "1",
            "staff_id": "demo-clerk",
        }
    )
    handler = application["handled_by"]
    print(f"✓ 村站受理《{matter['name']}》（代办），已转报站点 {handler}", flush=True)
    app_id = application["id"]
    done = wait_for(
        lambda: village.matters.get_application(app_id)["state"] == "completed",
        timeout=60,
        step=0.5,
    )
    if done is None:
        print(f"✗ 60 秒内站点 {handler} 的办理结果未回到村站", flush=True)
        return None
    print(f"✓ 站点 {handler} 已办结，结果已回传村站", flush=True)
    village.matters.deliver_application(app_id, "window_pickup")
    ref = {"kind": "application", "id": app_id}
    wait_for(lambda: village.rating.pending_for_window("1"), timeout=10, step=0.5)
    evaluation: dict[str, Any] = village.rating.submit_evaluation(
        {"service_ref": ref, "channel": "pad", "level": "very_satisfied"}
    )
    return evaluation


def _county_has(county: Any, evaluation_id: str) -> int | None:
    """The village's count in the county's statistics, once this evaluation is there."""
    try:
        county.rating.get_evaluation(evaluation_id)
    except NotFound:
        return None
    total: int = county.rating.stats({"site_code": VILLAGE.code})["total"]["total"]
    return total


def _print_sync_status(layout: Layout, passwords: dict[str, str]) -> None:
    for site in DEMO_SITES:
        with rpc(layout, site, passwords[site.code]) as proxy:
            status = proxy.sync.status()
        children = "、".join(sorted(status["children"])) or "无"
        if status["up"]:
            backlog = sum(entry["backlog"] for entry in status["up"].values())
            last = max(str(entry["last_success"] or "—") for entry in status["up"].values())
            up = f"上行待传 {backlog} 条（{len(status['up'])} 个数据源，最近成功 {last}）"
        else:
            up = "无上级"
        print(f"  sync.status() {site.code:<13} {up}；下级 {children}", flush=True)
