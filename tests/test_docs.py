"""The docs stay honest: README.md's first screen holds the demo, the tests and the three quickstarts; no test
count is stated (it goes stale); every relative link points to a file that exists; and every
`python -m MODULE` named in README.md and docs/*.md is a module whose parser accepts every `--flag` shown
after it (a removed or renamed flag, or an old alias, fails here, not for a reader)."""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]
EVERY_DOC = DOCS + sorted((ROOT / "docs").rglob("*/*.md")) + sorted((ROOT / "models").rglob("*.md"))
OWN = ("distill", "export", "runtime", "benchmarks")
FIRST_SCREEN = 80
DEMO = ("python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 && .venv/bin/pip install -e '.[all]' "
        "&& .venv/bin/python -m benchmarks.demo")
QUICKSTARTS = ("## 1. Segment a video or camera", "## 2. Distil your own student on Cityscapes",
               "## 3. Deploy to a Jetson with TensorRT")


def test_first_screen_has_the_demo_the_tests_and_three_quickstarts():
    lines = README.read_text().splitlines()[:FIRST_SCREEN]
    text = "\n".join(lines)
    demo, tests = text.find(DEMO), text.find("bash .ci/run")
    assert demo >= 0, f"README's first {FIRST_SCREEN} lines lack the demo command {DEMO!r}"
    assert tests >= 0, f"README's first {FIRST_SCREEN} lines lack `bash .ci/run`"
    starts = [next((i for i, line in enumerate(lines) if line.startswith(h)), None) for h in QUICKSTARTS]
    missing = [h for h, i in zip(QUICKSTARTS, starts) if i is None]
    assert not missing, f"README's first {FIRST_SCREEN} lines lack the quickstart headings {missing}"
    assert demo < tests < text.find(QUICKSTARTS[0]), "the demo and the tests come first, then the quickstarts"
    assert starts == sorted(starts)
    first = "\n".join(lines[starts[0]:starts[1]])
    assert "python -m runtime.run" in first and "--letterbox" in first


# "357 passed", "501 tests", "3 skipped", "collects 12 tests": a number that is wrong the day a test is added
COUNT = re.compile(r"\b\d[\d,]*\s+(?:tests?\s+)?(?:passed|failed|skipped|xfailed|errors?\b)|\b\d[\d,]*\s+tests\b", re.I)


@pytest.mark.parametrize("path", EVERY_DOC, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_test_counts(path):
    found = [m.group(0) for m in COUNT.finditer(path.read_text())]
    assert not found, f"{path.relative_to(ROOT)} states test counts {found}: they go stale; state none"


def _prose(text: str) -> str:
    """The text without its fenced code blocks (links in code are not links)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def anchors(path: Path) -> set:
    """The anchors GitHub makes of a Markdown file's headings: lower case, punctuation dropped, spaces to '-'."""
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#+ (.*)$", _prose(path.read_text()), flags=re.M)}


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_files_that_exist(path):
    broken = []
    for target in LINK.findall(_prose(path.read_text())):
        if re.match(r"[a-z]+:", target):
            continue  # a URL
        file, _, anchor = target.partition("#")
        dest = path.parent / file if file else path
        if not dest.exists() or (anchor and dest.suffix == ".md" and anchor not in anchors(dest)):
            broken.append(target)
    assert not broken, f"{path.relative_to(ROOT)}: links to nothing (no such file or heading): {broken}"


def commands(text: str):
    """(module, [--flags]) for every `python -m MODULE ...` / `torchrun ... -m MODULE ...` in fenced blocks (a
    line, with its `\\` continuations) and inline code spans; flags up to a `#` comment."""
    pieces = []
    for block in re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M):
        pieces += block.replace("\\\n", " ").splitlines()
    for span in re.findall(r"`((?:(?!\n\s*\n)[^`])+)`", _prose(text)):
        pieces.append(span.replace("\n", " "))
    found = []
    for piece in pieces:
        for part in re.split(r"&&|;", piece):
            m = re.search(r"(?:python3?|torchrun)\b[^#]*?\s-m\s+([a-z_][a-z0-9_.]*[a-z0-9_])(.*)", part)
            if m:
                rest = m.group(2).split(" #")[0]
                found.append((m.group(1), re.findall(r"(?<![\w-])(--[A-Za-z][\w-]*)", rest)))
    return found


def test_commands_are_found():
    """The extractor sees the README's commands, flags included (else the test below checks nothing)."""
    found = dict(commands(README.read_text()))
    assert "--letterbox" in found["runtime.run"] and "--precision" in found["export.trt"]
    assert {"benchmarks.demo", "distill.run", "distill.evaluate", "export.onnx"} <= set(found)


class _Parsed(Exception):
    """Raised instead of parsing, carrying the parser the entry point built."""


def _parser(module, monkeypatch):
    """The argparse parser `python -m module` builds, caught as it starts to parse `--help`."""
    from runtime import contract

    def capture(parser, *args, **kw):
        raise _Parsed(parser)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", capture)
    monkeypatch.setattr(contract.ArgumentParser, "parse_args", capture, raising=False)
    package = importlib.util.find_spec(module).submodule_search_locations is not None
    mod = importlib.import_module(module + ".__main__" if package else module)
    entry = getattr(mod, "cli", None) or mod.main  # distill.evaluate: main() is the function, cli() the command
    with pytest.raises(_Parsed) as caught:
        entry(["--help"])
    return caught.value.args[0]


def _documented():
    """module -> {flag: first doc naming it}, over README.md and docs/*.md."""
    out = {}
    for path in DOCS:
        for module, flags in commands(path.read_text()):
            seen = out.setdefault(module, {})
            for flag in flags:
                seen.setdefault(flag, path.name)
    return out


DOCUMENTED = _documented()


@pytest.mark.parametrize("module", sorted(DOCUMENTED))
def test_documented_command_exists_and_takes_its_flags(module, monkeypatch):
    assert importlib.util.find_spec(module.split(".")[0]) and importlib.util.find_spec(module), \
        f"`python -m {module}` is named in the docs but no such module exists"
    if module.split(".")[0] not in OWN:
        return  # python -m venv, pip, pytest: theirs
    parser = _parser(module, monkeypatch)
    options = {s: a for a in parser._actions for s in a.option_strings}
    old = getattr(__import__("runtime.contract", fromlist=["x"]), "Deprecated", ())
    bad = {flag: where for flag, where in DOCUMENTED[module].items()
           if flag not in options or options[flag].help == argparse.SUPPRESS or isinstance(options[flag], old)}
    assert not bad, f"python -m {module} does not take (or only as an old alias) {bad} (flag: the doc showing it)"
