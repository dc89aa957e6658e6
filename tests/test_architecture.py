"""The apps depend in one direction (README, "Architecture"): an import of
another app's module anywhere in an app - at module level or inside a
function - must follow an arrow of the picture. ``config`` is the composition
root: it may import every app, and no app imports it. ``core`` is the shared
base and imports no app.

The imports are read from the source (``ast``), so a lazy import inside a
function counts like any other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ("config", "core", "devices", "jobs", "exams", "vms")

# Who may import whom (besides itself). Everything may import core.
ALLOWED = {
    "config": {"core", "devices", "jobs", "exams", "vms"},
    "core": set(),
    "devices": {"core"},
    "jobs": {"core", "devices"},
    "exams": {"core"},
    "vms": {"core", "exams"},
}


def imported_apps(path: Path) -> list[tuple[int, str]]:
    """(line, app) for every import of one of APPS in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [(node.lineno, name.split(".")[0]) for name in names if name.split(".")[0] in APPS]
    return found


def app_sources(app: str) -> list[Path]:
    return sorted(p for p in (ROOT / app).rglob("*.py") if "migrations" not in p.parts)


def test_the_picture_has_no_cycle():
    seen: set[str] = set()

    def visit(app: str, path: tuple[str, ...]) -> None:
        assert app not in path, f"cycle: {' -> '.join((*path, app))}"
        for dep in ALLOWED[app]:
            visit(dep, (*path, app))
        seen.add(app)

    for app in APPS:
        visit(app, ())
    assert seen == set(APPS)


@pytest.mark.parametrize("app", APPS)
def test_imports_follow_the_arrows(app):
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {other}"
        for path in app_sources(app)
        for line, other in imported_apps(path)
        if other != app and other not in ALLOWED[app]
    ]
    assert not wrong, f"{app} may import only {sorted(ALLOWED[app])}:\n" + "\n".join(wrong)


def test_the_check_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from vms.selectors import x\n    import jobs.models\n")
    assert imported_apps(source) == [(2, "vms"), (3, "jobs")]
