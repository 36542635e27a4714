"""DESIGN.md's import rules, checked by parsing every module's imports: breaking one fails CI."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("domain", "commands", "projections", "read_api", "write_api", "infra")
DRIVERS = ("psycopg", "psycopg_pool", "redis", "elasticsearch", "kafka", "sqlite3", "uvicorn")


def imports_of(package: str) -> list[tuple[str, str]]:
    """(module file, imported module) for every import in the package."""
    found = []
    for path in (ROOT / package).rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [(str(path.relative_to(ROOT)), alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.append((str(path.relative_to(ROOT)), node.module))
    return found


def _is(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def violations(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return [f"{where} imports {module}" for where, module in imports_of(package) if any(_is(module, f) for f in forbidden)]


def test_domain_imports_only_the_standard_library_and_eventsourcing_domain():
    project = set(PACKAGES) - {"domain"}
    bad = []
    for where, module in imports_of("domain"):
        top = module.split(".")[0]
        if top == "eventsourcing" and module != "eventsourcing.domain":
            bad.append(f"{where} imports {module}")
        elif top in project or top in DRIVERS:
            bad.append(f"{where} imports {module}")
        elif top not in ("eventsourcing", "domain", "__future__") and top not in _stdlib():
            bad.append(f"{where} imports {module}")
    assert bad == []


def _stdlib() -> frozenset[str]:
    import sys

    return frozenset(sys.stdlib_module_names) - {"sqlite3"}


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("commands", ("projections", "read_api", "write_api", "infra")),
        ("projections", ("commands", "read_api", "write_api", "infra")),
        ("read_api", ("commands", "write_api", "infra")),
        ("write_api", ("projections", "read_api", "infra")),
    ],
)
def test_packages_import_only_what_the_design_allows(package, forbidden):
    assert violations(package, forbidden) == []


@pytest.mark.parametrize("package", ["domain", "commands", "projections", "read_api", "write_api"])
def test_only_infra_imports_drivers(package):
    assert violations(package, DRIVERS) == []


def test_nothing_but_infra_and_tests_imports_infra():
    for package in set(PACKAGES) - {"infra"}:
        assert violations(package, ("infra",)) == []


def test_the_checker_sees_a_forbidden_import(tmp_path, monkeypatch):
    # Guard against a checker that silently finds nothing.
    assert any(module == "eventsourcing.domain" for _, module in imports_of("domain"))
    assert violations("infra", ("projections",)) != []
