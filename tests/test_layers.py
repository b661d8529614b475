"""The package's layers: every import runs downwards, and the sandbox CRM stands alone.

A reader finds a behaviour in its domain's folder; that only stays true while no module
reaches up into a layer built on top of it (a circle makes every folder depend on every other).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "acton_pipelines"

# Lowest first; a unit may import from its own layer's peers only when listed together below
# (none are), and from any lower layer.
LAYERS: list[set[str]] = [
    {"errors"},
    {"settings"},
    {"mapping"},
    {"warehouse"},
    {"runs"},
    {"crm"},
    {"contacts"},
    {"scores"},
    {"segments"},
    {"push"},
    {"imports"},
    {"jobs"},
    {"schedules"},
    {"definitions"},
    {"cli"},
]
LAYER_OF = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import in ``path``, relative ones resolved."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
    return found


def _unit(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != PACKAGE or len(parts) < 2:
        return None
    return parts[1]


def _python_files(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


def test_every_unit_has_a_layer() -> None:
    units = {
        path.relative_to(REPO / PACKAGE).parts[0].removesuffix(".py")
        for path in _python_files(PACKAGE)
    } - {"__init__"}
    assert units <= set(LAYER_OF), f"add {sorted(units - set(LAYER_OF))} to LAYERS"


def test_imports_run_downwards() -> None:
    upward = []
    for path in _python_files(PACKAGE):
        unit = path.relative_to(REPO / PACKAGE).parts[0].removesuffix(".py")
        if unit == "__init__":
            continue
        for line, module in _imports(path):
            target = _unit(module)
            if target is None or target == unit or target not in LAYER_OF:
                continue
            if LAYER_OF[target] >= LAYER_OF[unit]:
                upward.append(f"{path.relative_to(REPO)}:{line} imports {module}")
    assert not upward, "imports that run up a layer:\n" + "\n".join(upward)


def test_no_build_or_assets_folder() -> None:
    folders = {p.name for p in (REPO / PACKAGE).iterdir() if p.is_dir()}
    assert not folders & {"build", "assets", "resources", "sandbox"}


def test_the_sandbox_imports_nothing_from_the_pipeline() -> None:
    offending = [
        f"{path.relative_to(REPO)}:{line} imports {module}"
        for path in _python_files("crm_sandbox")
        for line, module in _imports(path)
        if module.split(".")[0] == PACKAGE
    ]
    assert not offending, "\n".join(offending)


@pytest.mark.parametrize("path", _python_files(PACKAGE), ids=lambda p: str(p.relative_to(REPO)))
def test_the_pipeline_uses_only_the_sandbox_public_api(path: Path) -> None:
    import crm_sandbox

    for line, module in _imports(path):
        parts = module.split(".")
        if parts[0] != "crm_sandbox":
            continue
        assert len(parts) == 1 or (len(parts) == 2 and parts[1] in crm_sandbox.__all__), (
            f"{path.relative_to(REPO)}:{line} imports {module}: use a name crm_sandbox exports"
        )


def _module_name(path: Path) -> str:
    name = ".".join(path.relative_to(REPO).with_suffix("").parts)
    return name.removesuffix(".__init__")


def test_no_module_imports_itself_round_a_circle() -> None:
    modules = {_module_name(path): path for path in _python_files(PACKAGE)}
    graph = {
        name: {module for _, module in _imports(path) if module in modules and module != name}
        for name, path in modules.items()
    }
    # Package __init__ files re-export their modules; an edge into a package is not a circle.
    packages = {name for name, path in modules.items() if path.name == "__init__.py"}
    circles = []
    for start in graph:
        stack = [(start, [start])]
        seen = set()
        while stack:
            node, trail = stack.pop()
            for nxt in graph[node] - packages:
                if nxt == start:
                    circles.append(" -> ".join([*trail, start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*trail, nxt]))
    assert not circles, "\n".join(sorted(circles))
