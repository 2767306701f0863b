"""The devices modules import each other in one direction only: no cycle, counting imports inside functions.

Read from the source with ``ast``, so an import deferred into a function body (the usual way to hide a cycle)
counts as much as one at the top of a module.
"""

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[1]
ROOT = APP.parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for path in APP.rglob("*.py")
        if not {"tests", "migrations"} & set(path.relative_to(APP).parts)
    }


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of this app that ``name`` imports anywhere in its source."""
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


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
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


def test_the_devices_modules_import_each_other_without_a_cycle():
    graph = import_graph()
    assert "devices.models" in graph and "devices.services.enrollment" in graph
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


@pytest.mark.parametrize("module", ["devices.models", "devices.kinds", "devices.verification", "devices.totp"])
def test_the_lowest_layer_imports_nothing_above_it(module):
    below_models = {"devices.crypto", "devices.errors", "devices.kinds", "devices.totp", "devices.phone_codes"}
    below_models |= {"devices.backup_codes", "devices.verification"}
    graph = import_graph()
    # A package's modules are one layer: they may import each other.
    layer = {name for name in graph if name == module or name.startswith(f"{module}.")}
    for name in layer:
        assert graph[name] <= below_models | layer, name


def test_a_deferred_import_that_closes_a_cycle_is_found(tmp_path):
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from .services import x\n")
    assert _imports("devices.m", source, {"devices.services", "devices.m"}) == {"devices.services"}
