"""The package's layout keeps its pipeline: imports run from later stages to earlier ones only."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "albert_deploy"

# Stages in pipeline order. A module may import its own stage or an earlier one, never a later one.
STAGES = [
    {"errors", "catalog", "resources", "sizes"},
    {"profile"},
    {"placement"},
    {"plan"},
    {"render"},
    {"converge"},
    {"airgap"},
    {"backup"},
    {"commands"},
    {"views"},
    {"cli_base"},
    {"cli", "cli_backup", "__main__"},
]
MAX_MODULE_LINES = 300
MAX_CLASS_LINES = 150


def _stage(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    if top in ("__init__", "__version__"):
        return 0
    for rank, names in enumerate(STAGES):
        if top in names:
            return rank
    raise AssertionError(f"{module}: its first part `{top}` is in no stage: add it to STAGES")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:])
    return (PACKAGE / relative).with_suffix(".py").is_file() or (PACKAGE / relative / "__init__.py").is_file()


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _module_name(path).split(".")
                if path.name != "__init__.py":
                    base = base[:-1]
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            # `from package import module` names the module itself.
            found += [
                (node.lineno, f"{module}.{a.name}" if _is_module(f"{module}.{a.name}") else module) for a in node.names
            ]
    return [(line, name) for line, name in found if name.startswith("albert_deploy.")]


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_from_later_stages_to_earlier_ones(path: Path) -> None:
    here = _stage(_module_name(path))
    later = [f"line {line}: {name}" for line, name in _imports(path) if _stage(name) > here]
    assert not later, f"{path.relative_to(PACKAGE)} imports a later stage: {later}"


def test_no_import_cycles() -> None:
    graph = {_module_name(path): {name for _, name in _imports(path) if _is_module(name)} for path in MODULES}
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as err:
        raise AssertionError(f"import cycle: {' -> '.join(err.args[1])}") from None


def test_the_checker_sees_a_backward_import(tmp_path: Path) -> None:
    # The check above must be able to fail: a profile module importing the converge stage is caught.
    assert _stage("albert_deploy.converge.engine") > _stage("albert_deploy.profile.model")
    assert _stage("albert_deploy.render.kubernetes.render") > _stage("albert_deploy.plan.build")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_and_classes_stay_small(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{path.name}: over {MAX_MODULE_LINES} lines: split it"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ClassDef):
            size = (node.end_lineno or node.lineno) - node.lineno + 1
            assert size <= MAX_CLASS_LINES, f"{path.name}: class {node.name} is {size} lines: split it"


def test_every_stage_says_what_comes_in_and_goes_out() -> None:
    for package in sorted(p for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()):
        doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text(encoding="utf-8")))
        assert doc and " in" in doc and " out" in doc, f"{package.name}/__init__.py: say what comes in and goes out"
