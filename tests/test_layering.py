"""The planes depend one way: policies is pure; gateway and portal never import each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "policies": {"aiohttp", "sqlalchemy", "redis", "mitmproxy", "gateway", "portal", "gatehouse", "socket",
                 "asyncio", "os", "subprocess"},
    "gateway": {"portal"},
    "portal": {"gateway", "mitmproxy"},
    "gatehouse": {"portal", "gateway"},
}
COMPOSITION_ROOT = {ROOT / "gatehouse" / "cli" / "serve.py", ROOT / "gatehouse" / "demo" / "run.py"}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_what_its_plane_may(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no modules under {package}/"
    offences = []
    for path in files:
        if path in COMPOSITION_ROOT:
            continue
        bad = imported_roots(path) & FORBIDDEN[package]
        if bad:
            offences.append(f"{path.relative_to(ROOT)} imports {', '.join(sorted(bad))}")
    assert offences == []


def test_the_checker_sees_imports(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text("import aiohttp.web\nfrom sqlalchemy.orm import Session\nfrom . import x\n")
    assert imported_roots(sample) == {"aiohttp", "sqlalchemy"}
