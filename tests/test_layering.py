"""The layering, stated once and enforced by reading every import (AST) of every .py file in distill/, export/,
runtime/ and benchmarks/. Imports inside functions count: a lazy import hides a dependency, it does not remove it.

1. runtime imports neither torch nor distill, export or benchmarks.
2. distill imports from runtime only its stdlib-only contracts: runtime.contract (the CLI contract: errors,
   entry point, flags, checked atomic outputs, the signal handler), runtime.metadata (the metadata every model
   file carries) and runtime.formats (the FORMATS table). The one exception is distill/score.py, which judges an
   exported file with the runtime's own backends and preprocessing (the code the device runs), and imports
   them inside the functions that run a model only.
3. Those contracts import nothing but the standard library and each other.
4. distill imports neither export nor benchmarks; export does not import benchmarks.
5. The dataset readers import no torch: importing distill.data loads no torch; only distill/data/transforms.py
   does, and it is loaded on first use.
6. There is one signal handler: only runtime/contract/signals.py installs one (signal.signal).
7. There is no import circle anywhere, counting the imports made for annotations only (`if TYPE_CHECKING:`):
   two modules that name each other are one idea split in two, whether the names are needed at run time or not.
8. OpenVINO, NNCF and ONNX Runtime (whose usage telemetry starts on import) are never imported at module level:
   only inside functions, once an entry point (`command`) or `runtime.formats.require` has switched it off.
"""
import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("distill", "export", "runtime", "benchmarks")
CONTRACTS = ("runtime.contract", "runtime.metadata", "runtime.formats")  # rule 2: what distill may import
SCORE_EXCEPTION = ("distill.score", ("runtime.backends", "runtime.preprocess"))  # rule 2's one exception
SIGNAL_HANDLER = "runtime.contract.signals"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_files() -> dict:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


class Import:
    """One imported module: who imports it, at which line, and whether at module level (import time)."""

    def __init__(self, importer, target, line, top_level):
        self.importer, self.target, self.line, self.top_level = importer, target, line, top_level

    def __repr__(self):
        where = "module level" if self.top_level else "inside a function"
        return f"{self.importer}:{self.line} imports {self.target} ({where})"


def imports_of(name: str, path: Path, modules: dict, annotations: bool = False) -> list:
    """Every import in the file, relative ones resolved; `from pkg import sub` names the submodule `pkg.sub`.
    Imports under `if TYPE_CHECKING:` (never run: names for annotations only) count only with `annotations`."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []

    def visit(node, top_level):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test) and not annotations:
                continue
            inner = top_level and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend(Import(name, a.name, child.lineno, top_level) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module != "__future__":
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[:len(package.split(".")) - child.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                for a in child.names:
                    sub = f"{base}.{a.name}"
                    found.append(Import(name, sub if sub in modules else base, child.lineno, top_level))
            visit(child, inner)

    visit(tree, True)
    return found


@pytest.fixture(scope="module")
def graph():
    modules = project_files()
    return modules, {name: imports_of(name, path, modules) for name, path in modules.items()}


def within(target: str, prefixes) -> bool:
    return any(target == p or target.startswith(p + ".") for p in prefixes)


def violations(graph, importers, forbidden, allow=lambda imp: False):
    """Imports by modules under `importers` (a list of prefixes, or a set of exact names) of anything under
    `forbidden`, unless `allow`ed."""
    _, edges = graph
    mine = (lambda name: name in importers) if isinstance(importers, set) else (lambda name: within(name, importers))
    return [imp for name, imps in edges.items() if mine(name) for imp in imps
            if within(imp.target, forbidden) and not allow(imp)]


def test_runtime_imports_neither_torch_nor_the_layers_above_it(graph):
    assert violations(graph, ["runtime"], ["torch", "torchvision", "distill", "export", "benchmarks"]) == []


def test_distill_imports_from_runtime_only_its_stdlib_only_contracts(graph):
    score, allowed_there = SCORE_EXCEPTION

    def allowed(imp):
        if within(imp.target, CONTRACTS):
            return True
        return imp.importer == score and not imp.top_level and within(imp.target, allowed_there)

    assert violations(graph, ["distill"], ["runtime"], allowed) == []


def test_the_contracts_import_only_the_standard_library_and_each_other(graph):
    stdlib = set(sys.stdlib_module_names)
    _, edges = graph
    assert [imp for name, imps in edges.items() if within(name, CONTRACTS) for imp in imps
            if imp.target.split(".")[0] not in stdlib and not within(imp.target, CONTRACTS)] == []


def test_lower_layers_do_not_import_higher_ones(graph):
    assert violations(graph, ["distill"], ["export", "benchmarks"]) == []
    assert violations(graph, ["export"], ["benchmarks"]) == []


def test_importing_the_dataset_readers_loads_no_torch(graph):
    """What `import distill.data` loads at import time (module-level imports, followed through the project's
    own modules and the parent packages) holds no torch; transforms.py is the only file there that imports it."""
    modules, edges = graph
    seen, todo = set(), ["distill", "distill.data"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for imp in edges.get(name, []):
            if imp.top_level:
                parts = imp.target.split(".")
                todo += [".".join(parts[:i]) for i in range(1, len(parts) + 1)]  # a package loads before its module
    assert not {m for m in seen if within(m, ["torch", "torchvision", "distill.data.transforms"])}
    readers = {m for m in modules if within(m, ["distill.data"]) and m != "distill.data.transforms"}
    assert violations(graph, readers, ["torch", "torchvision"]) == []


def test_there_is_one_signal_handler(graph):
    modules, _ = graph
    installers = set()
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "signal" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "signal":
                installers.add(name)
    assert installers == {SIGNAL_HANDLER}


def import_circles(edges) -> list:
    """The strongly connected components of more than one module (or a module importing itself): Tarjan."""
    index, low, stack, on_stack, circles, counter = {}, {}, [], set(), [], [0]

    def connect(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in {imp.target for imp in edges[v] if imp.target in edges}:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1 or any(imp.target == v for imp in edges[v]):
                circles.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            connect(v)
    return circles


def test_there_is_no_import_circle():
    modules = project_files()
    edges = {name: imports_of(name, path, modules, annotations=True) for name, path in modules.items()}
    assert import_circles(edges) == []


TELEMETRY_ON_IMPORT = ("openvino", "nncf", "onnxruntime", "openvino_telemetry")


def test_libraries_with_telemetry_are_imported_only_once_it_is_off(graph):
    _, edges = graph
    assert [imp for imps in edges.values() for imp in imps
            if imp.top_level and within(imp.target, TELEMETRY_ON_IMPORT)] == []


def test_the_walk_sees_what_it_must_catch(graph):
    """The rules above pass on an empty graph too: the walk finds the imports they are about."""
    _, edges = graph
    targets = {(imp.importer, imp.target, imp.top_level) for imps in edges.values() for imp in imps}
    assert ("distill.checkpoint", "runtime.contract", True) in targets
    assert ("distill.score", "runtime.backends", False) in targets  # the exception, inside a function
    assert ("distill.data", "distill.data.transforms", False) in targets  # loaded on first use
    assert ("runtime.contract.entry", "runtime.contract.signals", True) in targets  # relative, resolved
    assert import_circles({"a": [Import("a", "b", 1, False)], "b": [Import("b", "a", 1, True)]}) == [["a", "b"]]
    assert ("export.quantize", "openvino", False) in targets  # rule 8 sees the imports inside functions
