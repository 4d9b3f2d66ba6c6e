"""``hallctl restore``: what ``hallctl backup`` wrote is put back and the store gets a new
incarnation (so feed followers read it again from 0); ``--reincarnate-only`` after a
restore made with another tool; a running service is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.store import open_store
from services.hallctl import cli
from services.hallctl.commands import restore

pytestmark = pytest.mark.unit

VILLAGE, TOWN = "421302101201", "421302101"


def hallctl(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli.main(list(argv))
    return code, capsys.readouterr().out


def test_restore_puts_the_backup_back_with_a_new_incarnation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "hall"
    code, out = hallctl(
        capsys,
        *("site-init", "--data-dir", str(data), "--code", VILLAGE, "--name", "一村"),
        *("--upstream", TOWN, "--upstream-broker", "t:5672"),
    )
    assert code == 0, out
    uri = f"sqlite:///{data / VILLAGE / 'data'}"
    store = open_store(uri, "queue")
    figures = store.collection("daily_figures")
    figures.insert({"id": "a", "n": 1})
    before = store.incarnation()
    store.close()
    backup_dir = tmp_path / "backup"
    code, out = hallctl(
        capsys, "backup", "--data-dir", str(data), "--site", VILLAGE, "--to", str(backup_dir)
    )
    assert code == 0, out
    store = open_store(uri, "queue")
    store.collection("daily_figures").insert({"id": "b", "n": 1})
    store.close()

    code, out = hallctl(
        capsys,
        *("restore", "--data-dir", str(data), "--site", VILLAGE, "--from", str(backup_dir)),
        "queue",
    )
    assert code == 0, out
    assert "新代次" in out
    store = open_store(uri, "queue")
    restored = store.collection("daily_figures")
    assert restored.get("a") is not None
    assert restored.get("b") is None
    assert store.incarnation() != before
    after = store.incarnation()
    store.close()
    kept = list((data / VILLAGE / "data").glob("queue.db.before-restore-*"))
    assert len(kept) == 1

    code, out = hallctl(
        capsys, "restore", "--data-dir", str(data), "--site", VILLAGE, "--reincarnate-only"
    )
    assert code == 0, out
    store = open_store(uri, "queue")
    assert store.incarnation() not in (before, after)
    store.close()


def test_restore_refuses_a_running_service(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "hall"
    hallctl(
        capsys,
        *("site-init", "--data-dir", str(data), "--code", VILLAGE, "--name", "一村"),
        *("--upstream", TOWN, "--upstream-broker", "t:5672"),
    )
    monkeypatch.setattr(restore, "running_pid", lambda site, service: 4242)
    code, out = hallctl(
        capsys, "restore", "--data-dir", str(data), "--site", VILLAGE, "--reincarnate-only"
    )
    assert code == 1
    assert "请先停止服务" in out
