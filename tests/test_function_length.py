"""No function in distill/ or export/ is longer than a reader can hold in their head (60 lines, from its `def`
to its last line, docstring and comments included; methods and nested functions count on their own)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parent.parent
MAX_LINES = 60
PACKAGES = ("distill", "export")


def long_functions(source: str, max_lines: int = MAX_LINES) -> list[tuple[str, int, int]]:
    """(name, first line, length) of every function or method in `source` longer than `max_lines`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            if length > max_lines:
                found.append((node.name, node.lineno, length))
    return found


def test_the_counter_sees_a_long_method_and_a_long_nested_function():
    # a method of 61 lines and a function of 4 lines holding a nested one of 62 (the outer one is then 65):
    # all three over 60, and a 60-line function is not
    body = "".join(f"    x{i} = {i}\n" for i in range(59))
    source = (f"class A:\n    def m(self):\n{body.replace('    ', '        ')}        return 1\n\n"
              f"def at_limit():\n{body}\n"
              f"def outer():\n    y = 0\n    def inner():\n{body.replace('    ', '        ')}        return 1\n"
              f"        return 2\n    return inner\n")
    assert sorted((name, length) for name, _, length in long_functions(source)) == [
        ("inner", 62), ("m", 61), ("outer", 65)]


def test_no_function_in_distill_or_export_is_over_60_lines():
    files = [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))]
    assert len(files) > 20  # the packages were found
    over = [f"{p.relative_to(ROOT)}:{line} {name} ({length} lines)"
            for p in files for name, line, length in long_functions(p.read_text())]
    assert not over, "functions over 60 lines (split them into named steps):\n" + "\n".join(over)
