"""The package's structure, read from the source: no import cycle (function-level imports counted), lower layers
never import higher ones, built-in plugins import only the public plugin module, and the harness names no
framework in its code (string constants and imports; docstrings and comments aside) but in the one list of
built-in plugins."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"convparity": "convparity", "convparity.harness": "harness", "convparity.plugins": "plugins",
           "convparity.reference_impl": "reference_impl"}
# Lowest first; a module may import only modules of its own layer or lower ones.
LAYERS = [
    ["convparity.reference_impl"],
    ["convparity.harness.vocabulary", "convparity.harness.errors", "convparity.harness.inert_text",
     "convparity.harness.files", "convparity.harness.backends.hookspecs"],
    ["convparity.harness.cases"],
    # the selection draws on the grids plugins register, so it sits above the plugin manager
    ["convparity.harness.backends", "convparity.harness.settings", "convparity.harness.results",
     "convparity.harness.cases.selection"],
    ["convparity.harness.evaluation"],
    ["convparity.harness.running"],
    ["convparity.harness.search"],
    ["convparity.harness.reporting"],
    ["convparity.harness.testing", "convparity.harness.plugin_template"],
    ["convparity.harness.api"],
    ["convparity.harness.cli"],
    ["convparity.plugin", "convparity.command", "convparity.__main__"],
    ["convparity.plugins"],
]
FRAMEWORK_NAMES = re.compile(r"(?i)(?<![a-z])(pytorch|torch|tensorflow|jax|keras|onnx|openvino|paddle|mlx|tinygrad|"
                             r"inductor|xla|cudnn|iree|tvm|tflite|litert|tf(?![a-z])|cuda(?![a-z]))")


def modules() -> dict[str, Path]:
    found = {}
    for package, folder in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            if "plugin_template/project" in path.as_posix():
                continue
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


MODULES = modules()


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports(name: str) -> set[str]:
    """Every convparity module `name` imports, at module level or in a function (TYPE_CHECKING blocks aside);
    the facade's lazy names count as imports of the modules they load."""
    path = MODULES[name]
    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if _type_checking(child):
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module:
                found.update(f"{child.module}.{alias.name}" if f"{child.module}.{alias.name}" in MODULES
                             else child.module for alias in child.names)
            elif (isinstance(child, ast.Constant) and isinstance(child.value, str) and child.value in MODULES
                  and name in ("convparity", "convparity.harness.cli")):
                found.add(child.value)  # importlib by name: the facade's table (the plugin manager's list of
                # built-in plugins is no dependency: plugins are loaded as plugins, like any installed one)
            visit(child)

    visit(tree)
    if name == "convparity.harness.cli":
        found.update(f"convparity.harness.cli.{command}" for command in re.findall(r'"(\w+)"', path.read_text())
                     if f"convparity.harness.cli.{command}" in MODULES)
    return {module for module in found if module in MODULES and module != name}


def layer(name: str) -> int:
    """The layer of the longest prefix naming `name` (a module listed apart from its package has its own)."""
    matches = [(len(prefix), index) for index, prefixes in enumerate(LAYERS)
               for prefix in prefixes if name == prefix or name.startswith(prefix + ".")]
    return max(matches)[1]


def test_every_module_has_a_layer():
    unplaced = [name for name in MODULES if name != "convparity" and name != "convparity.harness"
                and not any(name == p or name.startswith(p + ".") for prefixes in LAYERS for p in prefixes)]
    assert not unplaced


def test_no_import_cycle():
    graph = {name: imports(name) for name in MODULES}
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def strong(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                strong(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            strong(node)
    assert not cycles


def test_lower_layers_never_import_higher_ones():
    upward = [(name, other) for name in MODULES if name not in ("convparity", "convparity.harness")
              for other in imports(name) if other not in ("convparity", "convparity.harness")
              and layer(other) > layer(name)]
    assert not upward


def test_built_in_plugins_import_only_the_public_plugin_module():
    # The reference backend's framework is convparity's own NumPy reference: its program imports it, as any
    # program imports its framework.
    frameworks = {"convparity.plugins.reference_backend": ("convparity.reference_impl",)}
    for name in MODULES:
        if name.startswith("convparity.plugins."):
            internal = [m for m in imports(name) if not m.startswith("convparity.plugins")
                        and m not in ("convparity.plugin", "convparity", *frameworks.get(name, ()))]
            assert not internal, f"{name} imports {internal}: plugins use convparity.plugin only"


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def framework_names(path: Path) -> list[str]:
    """Framework names in the code of `path`: string constants (docstrings aside) and imported names."""
    tree = ast.parse(path.read_text())
    skip = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        texts: list[str] = []
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            texts = [node.value]
        elif isinstance(node, ast.Import):
            texts = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            texts = [node.module or "", *(alias.name for alias in node.names)]
        found += [f"{path.relative_to(ROOT)}:{node.lineno}: {match.group(0)!r} in {text[:60]!r}"
                  for text in texts for match in FRAMEWORK_NAMES.finditer(text)]
    return found


def test_the_harness_names_no_framework_but_in_the_built_in_plugin_list():
    manager = ROOT / "harness" / "backends" / "manager.py"
    names = [line for path in sorted((ROOT / "harness").rglob("*.py")) if "plugin_template/project" not in
             path.as_posix() for line in framework_names(path)]
    listed = [line for line in names if line.startswith(str(manager.relative_to(ROOT)))]
    assert names == listed  # the manager's BUILTIN_PLUGINS, nothing else
    assert all("convparity.plugins." in line or "'" in line for line in listed)


@pytest.mark.parametrize("text", ["import torch", "JAX_COMPILATION_CACHE_DIR", "TF_XLA_FLAGS", "PyTorch's rule"])
def test_the_scan_finds_framework_names(tmp_path, text):
    path = ROOT / "harness" / "_scan_probe.py"
    try:
        path.write_text(f"{text}\n" if text.startswith("import") else f"X = {text!r}\n")
        assert framework_names(path)
    finally:
        path.unlink()
