"""The package says what it needs: every third-party module the code imports (or `require`s) is
declared in pyproject.toml, in the core or an extra, and requires-python is the version the code needs."""
from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("distill", "export", "runtime", "benchmarks")
# import name -> the distribution that provides it
DISTRIBUTION = {"numpy": "numpy", "cv2": "opencv-python-headless", "yaml": "PyYAML", "tqdm": "tqdm", "torch": "torch",
                "PIL": "Pillow", "matplotlib": "matplotlib", "onnx": "onnx", "onnxruntime": "onnxruntime",
                "onnxslim": "onnxslim", "openvino": "openvino", "nncf": "nncf", "tensorrt": "tensorrt",
                "pycuda": "pycuda"}
# used only where present, each instead of a declared one: onnxsim for onnxslim, cuda-python for pycuda
FALLBACKS = {"onnxsim", "cuda"}


def imported_modules() -> dict[str, str]:
    """Top-level module -> first file importing it (import statements and runtime.formats.require("x"))."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                elif (isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "require"
                      and node.args and isinstance(node.args[0], ast.Constant)):
                    names = [node.args[0].value]
                for name in names:
                    found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    return {r.split(">")[0].split("=")[0].split("[")[0].split(";")[0].strip().lower() for r in reqs}


def test_every_import_is_declared():
    own = set(PACKAGES)
    third_party = {m: f for m, f in imported_modules().items()
                   if m not in own and m not in sys.stdlib_module_names and m != "__future__"}
    unknown = {m: f for m, f in third_party.items() if m not in DISTRIBUTION and m not in FALLBACKS}
    assert not unknown, f"imports with no known distribution (add them to pyproject.toml and DISTRIBUTION): {unknown}"
    missing = {m: f for m, f in third_party.items() if m in DISTRIBUTION and DISTRIBUTION[m].lower() not in declared()}
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_requires_python_is_what_the_code_needs():
    """distill/config.py reads its typed configs with types.UnionType (3.10);
    runtime/ and export/trt.py are held to 3.8 by tests/test_py38.py."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.10"
    assert "Pillow" in " ".join(project["optional-dependencies"]["train"])
