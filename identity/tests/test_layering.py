"""The project's modules import each other in one direction only, counting imports inside functions.

Two rules, read from the source with ``ast`` so that an import deferred into a function body (the usual way to hide a
cycle) counts as much as one at the top of a module:

- no cycle between any two modules of the project, directly or around a longer loop: the apps and ``config``, and
  their tests, migrations, the benchmarks and the modules at the top (``testsupport``, the root ``conftest``) too;
- the arrows between apps point one way: ``helpdesk -> devices -> identity``, ``vpn -> campaigns -> devices ->
  identity``, ``reports -> campaigns -> devices -> identity``; ``identity`` (with ``identity.directory``) imports no
  other app of ours, and no app imports ``config``, which sits above them all.

It lives with the lowest app because it is about all of them.
"""

import ast
import os
from pathlib import Path

import pytest
from django.apps import apps

ROOT = Path(__file__).resolve().parents[2]

# Each app and the apps it may import (besides itself); config may import any of them.
MAY_IMPORT = {
    "identity": set(),
    "devices": {"identity"},
    "helpdesk": {"devices", "identity"},
    "campaigns": {"devices", "identity"},
    "vpn": {"campaigns", "devices", "identity"},
    "reports": {"campaigns", "devices", "identity"},
}
PACKAGES = [*MAY_IMPORT, "config"]
# Not the project's: a virtual environment or a tool's directory inside the checkout.
NOT_OURS = {".venv", "venv", "node_modules", "__pycache__"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    """The apps' and config's own code: what the arrows between apps are about."""
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if not {"tests", "migrations"} & set(path.relative_to(ROOT).parts)
    }


def _every_module() -> dict[str, Path]:
    """Every Python module of the project, tests, migrations and benchmarks included."""
    found = {}
    for top, dirs, files in os.walk(ROOT):
        dirs[:] = [name for name in dirs if name not in NOT_OURS and not name.startswith(".")]
        found.update({_module_name(Path(top, name)): Path(top, name) for name in files if name.endswith(".py")})
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of the project that ``name`` imports anywhere in its source."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join(package + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # "from .services import security_keys" imports the submodule, not only the package.
            found.update(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names)
    return {module for module in found if module in known and module != name}


def import_graph(*, everything: bool = False) -> dict[str, set[str]]:
    modules = _every_module() if everything else _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as the list of modules around it, or None."""
    state: dict[str, str] = {}
    trail: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = "open"
        trail.append(module)
        for imported in sorted(graph[module]):
            if state.get(imported) == "open":
                return trail[trail.index(imported) :] + [imported]
            if imported not in state and (cycle := visit(imported)):
                return cycle
        state[module] = "done"
        trail.pop()
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            return cycle
    return None


def _app(module: str) -> str:
    return module.partition(".")[0]


def crossings(graph: dict[str, set[str]]) -> list[str]:
    """Every import from one app to another that the arrows do not allow, as "importer -> imported"."""
    return sorted(
        f"{name} -> {imported}"
        for name, imported_modules in graph.items()
        if _app(name) in MAY_IMPORT
        for imported in imported_modules
        if _app(imported) != _app(name) and _app(imported) not in MAY_IMPORT[_app(name)]
    )


def test_every_app_of_ours_has_its_arrows():
    # A new app (or one renamed) must say what it may import before this test can pass.
    ours = {c.name for c in apps.get_app_configs() if Path(c.path).resolve() == ROOT / c.name.replace(".", "/")}
    assert {_app(name) for name in ours} == set(MAY_IMPORT)
    assert "identity.directory" in ours


def test_no_two_modules_of_the_project_import_each_other():
    graph = import_graph(everything=True)
    for module in ("devices.models", "devices.services.enrollment", "identity.directory.people", "config.urls"):
        assert module in graph
    # The tests, the benchmarks and the modules at the top are modules of the project too.
    for module in ("helpdesk.tests.test_browser_approvals", "devices.tests.browser", "bench.sweep", "testsupport"):
        assert module in graph
    assert "helpdesk.tests.test_browser_desk" in graph["helpdesk.tests.test_browser_approvals"]
    for app in MAY_IMPORT:
        assert any(_app(name) == app for name in graph), app
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_the_arrows_between_apps_point_one_way():
    assert crossings(import_graph()) == []


@pytest.mark.parametrize("module", ["devices.models", "devices.kinds", "devices.verification", "devices.totp"])
def test_the_lowest_layer_of_devices_imports_nothing_above_it(module):
    below_models = {"devices.crypto", "devices.errors", "devices.kinds", "devices.totp", "devices.phone_codes"}
    below_models |= {"devices.backup_codes", "devices.verification"}
    graph = import_graph()
    # A package's modules are one layer: they may import each other.
    layer = {name for name in graph if name == module or name.startswith(f"{module}.")}
    for name in layer:
        assert {imported for imported in graph[name] if _app(imported) == "devices"} <= below_models | layer, name


def test_a_deferred_import_that_closes_a_cycle_is_found(tmp_path):
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from .services import x\n")
    assert _imports("devices.m", source, {"devices.services", "devices.m"}) == {"devices.services"}


def test_a_crossing_hidden_in_a_function_is_found(tmp_path):
    source = tmp_path / "admin.py"
    source.write_text("def f():\n    from helpdesk.admin.site import site\n")
    known = {"vpn.admin", "helpdesk.admin.site", "identity.models"}
    graph = {"vpn.admin": _imports("vpn.admin", source, known), "identity.models": {"devices.models"}}
    assert crossings(graph) == ["identity.models -> devices.models", "vpn.admin -> helpdesk.admin.site"]
