"""Several processes opening one new SQLite file at the same instant all succeed.

Two replicas of a service (the county overlay) start together on one store: switching the
file to WAL and creating the meta tables must wait for the other process, not fail with
"database is locked" (which SQLite raises there without calling its busy handler).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OPENER = textwrap.dedent(
    """
    import sys, time
    from services.common.store.sqlite import SqliteStore
    start = float(sys.argv[2])
    while time.time() < start:
        pass
    store = SqliteStore(sys.argv[1], "svc")
    store.collection("things").insert({"id": sys.argv[3], "n": 1})
    print(store.incarnation())
    """
)


def test_processes_opening_one_new_file_together_all_succeed(tmp_path: Path) -> None:
    for round_no in range(4):
        path = tmp_path / f"race-{round_no}.sqlite3"
        start = time.time() + 1.5
        children = [
            subprocess.Popen(
                [sys.executable, "-c", OPENER, str(path), str(start), f"p{n}"],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for n in range(6)
        ]
        results = [child.communicate(timeout=60) for child in children]
        pairs = zip(results, children, strict=True)
        failures = [err for (_, err), child in pairs if child.returncode]
        assert failures == []
        # One incarnation for the file: no opener re-created the meta row of another.
        assert len({out.strip() for out, _ in results}) == 1
