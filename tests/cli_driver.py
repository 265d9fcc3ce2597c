"""Run several `python -m <module> <args>` commands in this one process, as `python -m` would (runpy as
__main__, sys.argv set), each with its own captured stdout/stderr, and print their results as JSON.

For tests of commands that fail before any heavy work: their cost is the interpreter's start and the
imports (torch, onnxruntime, OpenVINO), paid here once for all of them instead of once per command.
An exception that escapes a command is printed with its traceback on that command's stderr, exit 1,
as the interpreter would.

    python tests/cli_driver.py '[["distill.run", ["--cfg", "x.yaml"]], ...]'

or, from a test, `run_in_one_process([("distill.run", ["--cfg", "x.yaml"]), ...])`.
"""
import contextlib
import io
import json
import os
import runpy
import subprocess
import sys
import traceback
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent


def run_one(module, args):
    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = [module, *args]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                runpy.run_module(module, run_name="__main__", alter_sys=True)
                code = 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                if e.code is not None and not isinstance(e.code, int):
                    print(e.code, file=sys.stderr)
            except BaseException:  # noqa: BLE001 - reported as the interpreter would
                traceback.print_exc()
                code = 1
    finally:
        sys.argv = argv
    return {"returncode": code, "stdout": out.getvalue(), "stderr": err.getvalue()}


def run_in_one_process(calls, env=None, nice=0, timeout=600):
    """[(module, args)] -> one result per call (returncode, stdout, stderr), all run in one fresh interpreter."""
    env = dict(os.environ if env is None else env, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, __file__, json.dumps([[m, [str(a) for a in args]] for m, args in calls])]
    r = subprocess.run((["nice", "-n", str(nice)] if nice else []) + cmd, cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr[-3000:]
    return [SimpleNamespace(**d) for d in json.loads(r.stdout)]


if __name__ == "__main__":
    calls = json.loads(sys.argv[1])
    results = [run_one(module, args) for module, args in calls]
    sys.stdout.write(json.dumps(results))
