"""The layering the README promises: no import cycles (imports inside functions count),
no framework imported at module level in the core, and the core reaching the adapters
only through the adapter registry, from the pipeline and the public facade."""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("comparator", "adapters")
FRAMEWORKS = {"torch", "torchvision", "keras", "tensorflow", "tf_keras", "jax", "onnx",
              "onnxruntime", "onnxscript", "tf2onnx", "ray"}
# The only core modules allowed to import `adapters` (and only `adapters` itself).
ADAPTER_GATES = {"comparator", "comparator.pipeline", "comparator.testing"}


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, pathlib.Path]:
    return {_module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}


def _imports(path: pathlib.Path, name: str, known) -> list[tuple[str, int, bool]]:
    """(imported module, line, at module level) for every import in the file."""
    tree = ast.parse(path.read_text())
    top_level = {id(node) for node in tree.body}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names]
        else:
            continue
        found += [(t, node.lineno, id(node) in top_level) for t in targets]
    return found


def _graph():
    modules = _modules()
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for target, _line, _top in _imports(path, name, modules):
            parts = target.split(".")
            # Importing a.b.c runs a.b's __init__ too. The top-level packages' own __init__
            # (the registry, the facade) are left out of that rule: they import the other
            # side only inside functions, when called, never while a submodule loads.
            for i in range(2 if len(parts) > 1 else 1, len(parts) + 1):
                prefix = ".".join(parts[:i])
                if prefix in modules and prefix != name and not name.startswith(prefix + "."):
                    edges[name].add(prefix)
    return edges


def _cycles(edges):
    index, low, stack, on_stack, result, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return result


def test_no_import_cycles():
    assert _cycles(_graph()) == []


def test_core_imports_no_framework_at_module_level():
    modules = _modules()
    offenders = [f"{name}:{line} imports {target}"
                 for name, path in modules.items() if name.startswith("comparator")
                 for target, line, top in _imports(path, name, modules)
                 if top and target.split(".")[0] in FRAMEWORKS]
    assert offenders == []


def test_core_reaches_adapters_only_through_the_registry():
    modules = _modules()
    offenders = []
    for name, path in modules.items():
        if not name.startswith("comparator"):
            continue
        for target, line, _top in _imports(path, name, modules):
            if target.split(".")[0] != "adapters":
                continue
            if name not in ADAPTER_GATES or target != "adapters":
                offenders.append(f"{name}:{line} imports {target}")
    assert offenders == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
