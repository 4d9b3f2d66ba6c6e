"""The service template (docs/architecture.md, "One shape for every service"), checked by
walking every module's imports: the same files with the same roles in every service, a
framework-free core, no service importing another, and no module over 400 lines."""

from __future__ import annotations

import ast
import importlib
import inspect
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("matters", "queue", "rating", "sync", "gateway")
TEMPLATE = (
    "service.py",
    "provider.py",
    "settings.py",
    "schemas.py",
    "app.py",
    "store.py",
    "metrics.py",
    "access.py",
    "domain/__init__.py",
)
# Modules that may speak to the framework (Nameko, eventlet, kombu, werkzeug): the Nameko
# class, the dependency provider, and adapters to other processes.
FRAMEWORK_BOUND = ("service.py", "provider.py", "adapters/", "web/")  # web/: HTTP pages
FRAMEWORKS = ("nameko", "eventlet", "kombu", "amqp", "werkzeug")
# What a domain module may import beyond the standard library's pure modules.
DOMAIN_COMMON = {
    "services.common.errors",
    "services.common.clock",
    "services.common.privacy",
    "services.common.site",
    "services.common.calendar",
    "services.common.contracts",
    "services.common.roles",
    "services.common.evaluation_coding",
}
IO_MODULES = {
    "sqlite3", "socket", "ssl", "subprocess", "shutil", "threading", "asyncio", "select",
    "http", "urllib", "requests", "pymongo", "mongomock", "yaml", "marshmallow",
    "prometheus_client", "logging", "os", "io", "pathlib", "tempfile", "time",
    *FRAMEWORKS,
}  # fmt: skip
MAX_LINES = 400


def imports(path: Path) -> Iterator[str]:
    """Every module ``path`` imports, relative imports resolved against its package."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                yield f"{base}.{node.module}" if node.module else base
            elif node.module:
                yield node.module


def modules(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if ".venv" not in p.parts)


def top(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize("service", SERVICES)
def test_no_service_imports_another(service: str) -> None:
    others = {f"services.{s}" for s in SERVICES if s != service} | {"services.hallctl"}
    found = [
        (str(p.relative_to(ROOT)), name)
        for p in modules(ROOT / "services" / service)
        for name in imports(p)
        if any(name == o or name.startswith(f"{o}.") for o in others)
    ]
    assert found == []


def test_common_imports_no_service() -> None:
    found = [
        (str(p.relative_to(ROOT)), name)
        for p in modules(ROOT / "services" / "common")
        for name in imports(p)
        if name.startswith("services.") and not name.startswith("services.common")
    ]
    assert found == []


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_the_template_files(service: str) -> None:
    folder = ROOT / "services" / service
    assert [f for f in TEMPLATE if not (folder / f).is_file()] == []


@pytest.mark.parametrize("service", SERVICES)
def test_domain_imports_no_io_and_no_framework(service: str) -> None:
    own = f"services.{service}.domain"
    found = [
        (p.name, name)
        for p in modules(ROOT / "services" / service / "domain")
        for name in imports(p)
        if (top(name) in IO_MODULES or name.startswith("services."))
        and not (name in DOMAIN_COMMON or name == own or name.startswith(f"{own}."))
    ]
    assert found == []


@pytest.mark.parametrize("service", SERVICES)
def test_only_the_edge_speaks_to_the_framework(service: str) -> None:
    folder = ROOT / "services" / service
    found = [
        (str(p.relative_to(folder)), name)
        for p in modules(folder)
        if not str(p.relative_to(folder)).startswith(FRAMEWORK_BOUND)
        for name in imports(p)
        if top(name) in FRAMEWORKS
    ]
    assert found == []


@pytest.mark.parametrize("service", SERVICES)
def test_every_rpc_goes_through_the_access_check(service: str) -> None:
    """A plain ``nameko.rpc.rpc`` would skip identity and role checks (docs/security.md)."""
    from nameko.rpc import Rpc as NamekoRpc

    from services.common.rpc import Rpc
    from services.common.service import SiteService

    module = importlib.import_module(f"services.{service}.service")
    classes = [
        c for c in vars(module).values() if isinstance(c, type) and issubclass(c, SiteService)
    ]
    bypassing = [
        (cls.__name__, name)
        for cls in classes
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        for entrypoint in getattr(member, "nameko_entrypoints", ())
        if isinstance(entrypoint, NamekoRpc) and not isinstance(entrypoint, Rpc)
    ]
    assert classes
    assert bypassing == []


@pytest.mark.parametrize("tree", ["services", "tools"])
def test_no_module_over_400_lines(tree: str) -> None:
    long = [
        (str(p.relative_to(ROOT)), n)
        for p in modules(ROOT / tree)
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    ]
    assert long == []
