"""Nothing is sent: OpenVINO's and NNCF's usage telemetry is off in every command (runtime/contract/telemetry.py).

The commands run as a user runs them: `CI` (and the other variables the libraries read as "CI") unset, a home
folder with no consent file, and a network that goes nowhere: every proxy variable names a local server that
records each connection and never answers (a telemetry message would reach it, and hang there as it hangs
offline). A command must finish or stop on SIGTERM with its own exit code, no process of its group left
behind, nothing written into the home folder, nothing sent, and no traceback."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from .faults import ROOT, error_lines
from .test_cli_contract import ENTRY_POINTS

# what openvino_telemetry and NNCF read as "running in CI" (and then send nothing), and ONNX Runtime's opt-out
# (this test process set it, telemetry.off() in conftest.py): none of it may reach the commands
UNSET = ("CI", "TF_BUILD", "JENKINS_URL", "NNCF_CI", "NNCF_DEV", "ORT_DISABLE_TELEMETRY")


class Recorder:
    """A local TCP server that records what each connection sends first and holds it open, unanswered."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = "http://127.0.0.1:{}".format(self.server.getsockname()[1])
        self.received, self.held = [], []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.held.append(conn)
            conn.settimeout(2)
            try:
                self.received.append(conn.recv(200))
            except OSError:
                self.received.append(b"")

    def close(self):
        self.server.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def offline(tmp_path):
    """(environment, recorder, home): a user's environment with no CI variable, an empty home and every
    proxy variable pointing at the recorder."""
    recorder = Recorder()
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in UNSET and "proxy" not in k.lower()}
    proxies = {name: recorder.url for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                                                "all_proxy", "ALL_PROXY")}
    env.update(proxies, HOME=str(home), PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    yield env, recorder, home
    recorder.close()


def left_in_group(pgid):
    """Live (not zombie) processes of a process group."""
    alive = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                alive.append(int(entry))
    return alive


def start(args, env):
    return subprocess.Popen([sys.executable, "-m", *map(str, args)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def assert_nothing_sent(proc, recorder, home, err):
    time.sleep(0.5)  # a child would still be there, or a late message on its way
    assert left_in_group(proc.pid) == [], "a process of the command's group is still running"
    assert recorder.received == [], f"the command tried to send: {recorder.received}"
    assert [p.relative_to(home) for p in home.rglob("*")] == [], "the command wrote into the home folder"
    assert "Traceback" not in err, err[-3000:]


def test_an_openvino_int8_export_sends_nothing_and_exits(model, calib, tmp_path, offline):
    """NNCF's INT8 quantisation included: the export finishes (exit 0) having sent and written nothing."""
    env, recorder, home = offline
    out = tmp_path / "s.int8.xml"
    p = start(["export.openvino", model, "--precision", "int8", "--calib-dir", calib, "--no-gate", "-o", out], env)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err[-3000:]
    assert out.is_file()
    assert_nothing_sent(p, recorder, home, err)


def test_sigterm_to_an_openvino_export_leaves_no_process(model, calib, tmp_path, offline):
    """SIGTERM while the export checks its model: exit 143 with its one line, no forked child left, nothing
    sent, no `Process Process-1: Traceback` from a child that inherited the handler."""
    env, recorder, home = offline
    out = tmp_path / "s.int8.xml"
    p = start(["export.openvino", model, "--precision", "int8", "--calib-dir", calib, "--no-gate", "-o", out,
               "--parity-images", "2000"], env)
    for line in p.stdout:  # "converted ...; checking it": OpenVINO and NNCF have run, parity is running
        if line.startswith("converted"):
            break
    else:
        raise AssertionError(f"ended before the signal (rc {p.wait()}): {p.stderr.read()[-3000:]}")
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 143 and error_lines(err) == ["interrupted by SIGTERM: nothing written under the output name"]
    assert not out.exists()
    assert_nothing_sent(p, recorder, home, err)


CHECK_ENTRY_POINTS = """
import json, os, runpy, sys
seen = {}
for module in sys.argv[1:]:
    sys.modules.pop("openvino_telemetry", None)  # as in a fresh interpreter
    os.environ.pop("ORT_DISABLE_TELEMETRY", None)
    sys.argv = [module, "--help"]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit:
        pass
    seen[module] = ("openvino_telemetry" in sys.modules and sys.modules["openvino_telemetry"] is None
                    and os.environ.get("ORT_DISABLE_TELEMETRY") == "1")
print(json.dumps(seen))
"""


def entry_points():
    """Every module of the four packages that runs as `python -m` (distill/score.py only says to use
    distill.evaluate), the demo among them."""
    found = set()
    for package in ("distill", "export", "runtime", "benchmarks"):
        for path in (ROOT / package).rglob("*.py"):
            if 'if __name__ == "__main__"' in path.read_text():
                parts = path.relative_to(ROOT).with_suffix("").parts
                found.add(".".join(parts[:-1] if parts[-1] == "__main__" else parts))
    return sorted(found - {"distill.score"})


def test_every_entry_point_switches_telemetry_off_before_it_runs():
    """The demo and every other `python -m` command: by the time it parses its arguments, `import
    openvino_telemetry` fails (OpenVINO and NNCF then take their own stubs) and ONNX Runtime's opt-out is set."""
    modules = entry_points()
    assert set(ENTRY_POINTS) <= set(modules) and "benchmarks.demo" in modules
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    r = subprocess.run([sys.executable, "-c", CHECK_ENTRY_POINTS, *modules], cwd=ROOT, capture_output=True,
                       text=True, timeout=600, env=dict(env, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr[-3000:]
    seen = json.loads(r.stdout.strip().splitlines()[-1])
    assert [m for m, off in seen.items() if not off] == []


ALREADY_IMPORTED = """
import openvino_telemetry  # the caller's own code loaded it before any command ran
from runtime.contract import telemetry
telemetry.off()
import openvino, nncf, onnx
from onnx import TensorProto, helper
io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3]) for n in "xy"]
graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", io[:1], io[1:])
onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), "m.onnx")
openvino.convert_model("m.onnx")  # the converter's session events
"""


def test_telemetry_loaded_before_the_switch_is_silenced_too(tmp_path, offline):
    env, recorder, home = offline
    p = subprocess.Popen([sys.executable, "-c", ALREADY_IMPORTED], cwd=tmp_path, env=dict(env, PYTHONPATH=str(ROOT)),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err[-3000:]
    assert_nothing_sent(p, recorder, home, err)
