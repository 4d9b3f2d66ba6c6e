"""Call-board benchmark: from ``queue.call_next`` to the repaint of twenty paired boards, and
the gateway's overhead per bridged JSON call, beside a no-op RPC round trip of the same run.

    python -m bench.board [--boards 20] [--calls 50] [--rpc-calls 500]

What runs: real ``nameko run`` processes of ``queue`` and ``gateway`` on a fresh vhost of the
local RabbitMQ (tests/system/screens_support.py starts them), windows 1..4 open. ``--boards``
pages of ``/board`` in Debian's Chromium, each paired with its own one-time code
(``gateway.create_pairing("board")``, typed into the page's pairing form, which posts
``/pair``). Then ``--calls`` calls over the four windows, a random 0.5-0.75 s apart (so they
fall at every phase of the gateway's follower): for each, the wall time from just before
``call_next`` to the moment each board's DOM shows the called number first in its recent
calls. Second part, the browser closed: ``queue.windows`` (read-only) called directly by a
signed RPC client (the operator) and through ``POST /rpc/queue/windows`` with a paired board's
token over one keep-alive ``requests.Session``, interleaved with the no-op ``site_info``.

Targets: board p99 < 300 ms; the gateway adds < 5 ms per call at p50. A bench reports: it
exits non-zero on errors only, never on a missed target.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import requests
from playwright.sync_api import Browser, Page

from bench.support import percentile, vhosts
from services.gateway.adapters.boardfeed import STREAM_TICK_S
from services.gateway.service import FOLLOW_SECONDS
from tests.system.screens_support import Site, chromium, paired, site_of
from tests.system.test_replicas import metric_sum

WINDOWS = ("1", "2", "3", "4")
CPUS = os.cpu_count()
BOARD_SIZE = (960, 540)  # a quarter of a 1080p board: twenty pages on two CPUs
TARGET_BOARD_P99_MS = 300
TARGET_OVERHEAD_MS = 5
# Installed before the page's own scripts: the first moment each number heads the recent
# calls, as milliseconds since the Unix epoch (performance.timeOrigin + performance.now()).
# The browser and this process read the same system clock (one machine), so it compares
# directly with time.time() taken before call_next; a MutationObserver runs as a microtask
# right after board.js changes the DOM, before the frame is painted (a frame adds <= 16 ms).
SHOWN_SPY = """
window.__shown = {};
new MutationObserver(() => {
  const cell = document.querySelector("#recent li:first-child .number");
  const number = cell && cell.textContent;
  if (number && !(number in window.__shown)) {
    window.__shown[number] = performance.timeOrigin + performance.now();
  }
}).observe(document, { childList: true, subtree: true, characterData: true });
"""
Samples = list[float]  # seconds


def timed(call: Callable[[], Any], times: int) -> Samples:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


# --- part 1: call_next → the boards --------------------------------------------------------


def open_board(browser: Browser, site: Site) -> Page:
    page = paired(browser, site, "board", BOARD_SIZE, SHOWN_SPY)
    page.wait_for_selector("#screen:not([hidden])", timeout=30000)
    return page


def children() -> dict[int, list[int]]:
    """Every process's children, from /proc."""
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError):  # exited meanwhile
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            tree.setdefault(parent, []).append(int(stat.parent.name))
    return tree


def yield_to_services(niceness: int) -> int:
    """Run the browser below the services: in a hall each board is its own machine, here
    the renderers share two CPUs with the queue and the gateway. Renices every thread
    (Linux's nice is per thread) of Playwright's driver and all below it (Chromium, the
    renderers), once the pages are open; the services (children too) keep theirs. Returns
    how many processes."""
    tree = children()
    todo = [
        pid
        for pid in tree.get(os.getpid(), [])
        if b"playwright" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    done = 0
    while todo:
        pid = todo.pop()
        todo += tree.get(pid, [])
        for task in Path(f"/proc/{pid}/task").glob("*"):
            with suppress(OSError):  # exited meanwhile
                os.setpriority(os.PRIO_PROCESS, int(task.name), niceness)
        done += 1
    return done


def cpu_seconds(site: Site) -> dict[str, float]:
    """CPU seconds (user + system) each service process has used so far."""
    used = {}
    for name, replica in site.replicas.items():
        assert replica.proc is not None
        fields = Path(f"/proc/{replica.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        used[name] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return used


def follower(site: Site) -> tuple[float, float, float]:
    """The gateway's ``follow_board`` ticks so far (its /metrics): all of them, and those
    whose worker took over 100 ms and over 250 ms (waiting on queue.board's reply)."""
    text, name = site.gateway.metrics(), "hall_entrypoint_duration_seconds_bucket"
    ticks = [metric_sum(text, name, method="follow_board", le=le) for le in ("+Inf", "0.1", "0.25")]
    return ticks[0], ticks[0] - ticks[1], ticks[0] - ticks[2]


def call_many(rpc: Any, calls: int, board_rtt: Samples) -> list[tuple[str, float, float]]:
    """``calls`` calls, windows in turn: (number, time.time() before call_next, call_next's
    own round trip in seconds); after each, one ``queue.board`` (as the follower's next poll)
    timed into ``board_rtt``. A window's previous ticket is completed (untimed) before it
    calls again, as a clerk would."""
    current: dict[str, str] = {}
    made = []
    for i in range(calls):
        window = WINDOWS[i % len(WINDOWS)]
        if window in current:
            rpc.queue.complete(current.pop(window), window=window)
        rpc.queue.take_ticket("A", "kiosk")
        began, started = time.time(), time.perf_counter()
        ticket = rpc.queue.call_next(window, f"S{window}")
        made.append((ticket["number"], began, time.perf_counter() - started))
        current[window] = ticket["id"]
        board_rtt += timed(rpc.queue.board, 1)
        # Past the follower's period, so each call heads the board on its own; the random
        # part spreads the calls over every phase of the follower's timer.
        time.sleep(random.uniform(0.5, 0.75))
    return made


def shown_on_boards(boards: list[Page], last: str) -> list[dict[str, float]]:
    """Each board's first sight of every number (seconds since the epoch), once the last
    call has reached every board."""
    for page in boards:
        page.wait_for_selector(f"#recent li:first-child .number:text-is('{last}')", timeout=20000)
    return [{n: t / 1000 for n, t in page.evaluate("window.__shown").items()} for page in boards]


# --- part 2: the gateway's overhead --------------------------------------------------------


def device_token(site: Site) -> str:
    """A board's bearer token, paired over ``POST /pair`` as the page's form does."""
    body = {"code": site.pairing_code("board"), "name": "基准测试叫号屏"}
    answer = requests.post(f"{site.url}/pair", json=body, timeout=10)
    answer.raise_for_status()
    return str(answer.json()["token"])


class StreamWatch(threading.Thread):
    """One more board, read here: the moment each number first heads the recent calls of the
    gateway's ``/board/stream``, as it leaves the gateway (no browser in between)."""

    def __init__(self, site: Site, token: str) -> None:
        super().__init__(daemon=True)
        self.shown: dict[str, float] = {}  # number → time.time()
        headers = {"Authorization": f"Bearer {token}"}
        self.answer = requests.get(
            f"{site.url}/board/stream", headers=headers, stream=True, timeout=(10, 60)
        )
        self.answer.raise_for_status()

    def run(self) -> None:
        try:  # chunk_size=None: each HTTP chunk as it arrives, not 512-byte reads
            for line in self.answer.iter_lines(chunk_size=None):
                if line.startswith(b"data: "):
                    recent = json.loads(line[6:]).get("recent")
                    if recent:
                        self.shown.setdefault(recent[0]["number"], time.time())
        except requests.RequestException:
            pass  # the gateway stopped at the end of the run


def overhead(rpc: Any, site: Site, token: str, calls: int) -> tuple[dict[str, Samples], int]:
    """Round trips of the no-op, of ``queue.windows`` direct, and of it through the gateway,
    interleaved in a random order each round (so drift hits all three alike); and how many
    TCP connections the session opened (1 when keep-alive held)."""
    session, adapter = requests.Session(), requests.adapters.HTTPAdapter()
    session.mount("http://", adapter)
    session.headers["Authorization"] = f"Bearer {token}"
    url = f"{site.url}/rpc/queue/windows"

    def bridged() -> Any:
        answer = session.post(url, json={"args": [], "kwargs": {}}, timeout=10)
        answer.raise_for_status()
        return answer.json()["result"]

    calls_of: dict[str, Callable[[], Any]] = {
        "noop": rpc.queue.site_info,
        "direct": rpc.queue.windows,
        "gateway": bridged,
    }
    if bridged() != rpc.queue.windows():
        raise SystemExit("the gateway answered queue.windows differently from the queue")
    for call in calls_of.values():
        timed(call, 50)  # warm: connections, caches, the gateway's reply listener
    samples: dict[str, Samples] = {name: [] for name in calls_of}
    names = list(calls_of)
    for _ in range(calls):
        random.shuffle(names)
        for name in names:
            samples[name] += timed(calls_of[name], 1)
    pools = adapter.poolmanager.pools
    connections = sum(pools[key].num_connections for key in pools.keys())  # noqa: SIM118
    return samples, connections


# --- the figures --------------------------------------------------------------------------


HEAD = f"  {'':<44}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'count':>7}   target"


def row(label: str, samples: Samples, target: str = "") -> str:
    ms = [s * 1000 for s in samples]
    figures = f"{percentile(ms, 50):8.2f}{percentile(ms, 99):8.2f}{max(ms):8.2f}{len(ms):7}"
    return f"  {label:<44}{figures}   {target}"


def report_board(
    args: argparse.Namespace, rows: list[tuple[str, Samples]], notes: list[str]
) -> None:
    """``rows``: the call → board samples first, then the others; ``notes``: this run's."""
    follow, tick = FOLLOW_SECONDS * 1000, STREAM_TICK_S * 1000
    p99 = percentile(rows[0][1], 99) * 1000
    print(f"1. queue.call_next → DOM of {args.boards} paired boards, {args.calls} calls")
    print(HEAD)
    print(row(*rows[0], f"p99 < {TARGET_BOARD_P99_MS}"))
    print("\n".join(row(*r) for r in rows[1:]))
    floor = (
        f"floor: the gateway asks queue.board every {follow:.0f} ms (FOLLOW_SECONDS) and each",
        f"board stream looks for a newer board every {tick:.0f} ms (STREAM_TICK_S): a call waits",
        f"0-{follow:.0f} ms for the poll and 0-{tick:.0f} ms for the stream, plus call_next's and",
        f"queue.board's round trips and the render: about {(follow + tick) / 2:.0f} ms at p50 and",
        f"{follow + tick:.0f} ms + round trips at p99 by design, on an idle machine. The stream",
        "row is one more board read by this process (the gateway's share, no browser); board",
        "times are DOM updates, before paint (one frame, <= 16 ms, more).",
    )
    verdict = "met" if p99 < TARGET_BOARD_P99_MS else "NOT met"
    print("\n".join(f"  {line}" for line in (*notes, *floor)))
    print(f"  target p99 < {TARGET_BOARD_P99_MS} ms: {verdict}")


def report_gateway(args: argparse.Namespace, samples: dict[str, Samples], connections: int) -> None:
    print(f"2. gateway overhead per JSON call, {args.rpc_calls} calls each, interleaved")
    print(HEAD)
    print(row("no-op RPC (site_info, unsigned)", samples["noop"]))
    print(row("queue.windows, signed RPC direct (operator)", samples["direct"]))
    print(row("queue.windows via POST /rpc/queue/windows", samples["gateway"]))
    added = (percentile(samples["gateway"], 50) - percentile(samples["direct"], 50)) * 1000
    print(
        f"  the gateway adds {added:.2f} ms at p50 (a board's token, one keep-alive session: "
        f"{connections} TCP connection(s))"
    )
    verdict = "met" if added < TARGET_OVERHEAD_MS else "NOT met"
    print(f"  target < {TARGET_OVERHEAD_MS} ms at p50: {verdict}")


def machine(site: Site, load: float, cpu: dict[str, float], seconds: float) -> str:
    """Load average before and now, and each service's share of a CPU since ``cpu``."""
    busy = ", ".join(f"{n} {(u - cpu[n]) / seconds:.0%}" for n, u in cpu_seconds(site).items())
    return f"load average {load:.1f} before / {os.getloadavg()[0]:.1f} after, {CPUS} CPUs; {busy}"


def follower_note(before: tuple[float, ...], after: tuple[float, ...], seconds: float) -> str:
    ticks, slow, slower = (now - then for now, then in zip(after, before, strict=True))
    return (
        f"follower while calling: {ticks:.0f} polls in {seconds:.0f} s (one per "
        f"{seconds / max(ticks, 1) * 1000:.0f} ms), {slow:.0f} took over 100 ms, {slower:.0f} "
        "over 250 ms\n  (a slow poll delays the next: nameko's timer waits for its worker)"
    )


def watch_calls(
    args: argparse.Namespace, site: Site, rpc: Any
) -> tuple[list[tuple[str, Samples]], list[str], str]:
    """Part 1, the boards open: its rows and notes, and the token of the stream-reading
    board (for part 2)."""
    with chromium() as browser:
        print(f"pairing {args.boards} boards in Chromium …", flush=True)
        boards = [open_board(browser, site) for _ in range(args.boards)]
        if args.nice:
            print(f"browser at nice {args.nice} ({yield_to_services(args.nice)} processes)")
        token = device_token(site)
        watch = StreamWatch(site, token)
        watch.start()
        timed(rpc.queue.site_info, 50)  # warm
        noop = timed(rpc.queue.site_info, args.rpc_calls)
        board_rtt: Samples = []
        print(f"{args.calls} calls, watching every board …", flush=True)
        load, cpu, ticks, since = os.getloadavg()[0], cpu_seconds(site), follower(site), time.time()
        made = call_many(rpc, args.calls, board_rtt)
        seconds = time.time() - since
        notes = [machine(site, load, cpu, seconds), follower_note(ticks, follower(site), seconds)]
        shown = shown_on_boards(boards, made[-1][0])
    streamed = {n: watch.shown[n] - began for n, began, _ in made if n in watch.shown}
    board = [seen[n] - began for n, began, _ in made for seen in shown if n in seen]
    notes.insert(0, f"board updates never seen: {len(made) * len(shown) - len(board)}")
    rows = [
        ("call_next → board shows the number", board),
        ("call_next → the gateway's stream carries it", list(streamed.values())),
        (
            "stream → board shows it (browser's share)",
            [seen[n] - watch.shown[n] for n in streamed for seen in shown if n in seen],
        ),
        ("call_next round trip alone", [rtt for _, _, rtt in made]),
        ("queue.board round trip, just after each call", board_rtt),
        ("no-op RPC (site_info), boards connected", noop),
    ]
    return rows, notes, token


def measure(args: argparse.Namespace, site: Site) -> None:
    with site.rpc() as rpc:
        for window in WINDOWS:
            rpc.queue.open_window(window, f"S{window}")
        rows, notes, token = watch_calls(args, site, rpc)
        print("gateway overhead (the browser closed) …", flush=True)
        load, cpu, since = os.getloadavg()[0], cpu_seconds(site), time.monotonic()
        samples, connections = overhead(rpc, site, token, args.rpc_calls)
        state = machine(site, load, cpu, time.monotonic() - since)
    print()
    report_board(args, rows, notes)
    print()
    report_gateway(args, samples, connections)
    print(f"  {state}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--boards", type=int, default=20, help="paired board pages (20)")
    parser.add_argument("--calls", type=int, default=50, help="calls to watch (50)")
    parser.add_argument("--rpc-calls", type=int, default=500, help="round trips per kind (500)")
    parser.add_argument("--nice", type=int, default=10, help="the browser's niceness (10)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-board-"))
    started = time.monotonic()
    try:
        print(f"starting queue and gateway (logs in {tmp}) …", flush=True)
        with vhosts("bench") as make, site_of(make, tmp, ("queue",)) as site:
            measure(args, site)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nrun time {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
