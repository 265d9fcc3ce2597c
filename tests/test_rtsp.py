"""runtime.run against a real RTSP server on 127.0.0.1 (GStreamer's, tests/rtsp.py): it runs, reconnects
when the server restarts mid-run, and its watchdog finds a server that stops sending without closing.
Skipped, with what is missing, where the server cannot run (tests/rtsp.py: PACKAGES; .ci/run installs them)."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import pytest

from runtime.sources import LiveSource

from . import rtsp

ROOT = Path(__file__).resolve().parents[1]
STALL_S = 2.0  # the watchdog's timeout in these tests
SLACK_S = 3.0
STARTED = "INFO runtime.pipeline: rtsp://"  # the loop's first line: the source is open  # how much later than STALL_S the stall may be reported on 2 busy cores


@pytest.fixture(scope="module")
def rtsp_video(tmp_path_factory):
    why = rtsp.unavailable()
    if why:
        pytest.skip(why)
    return rtsp.write_video(tmp_path_factory.mktemp("rtsp") / "cam.avi", 60 * rtsp.FPS)


@pytest.fixture
def server(rtsp_video):
    srv = rtsp.RtspServer(rtsp_video)
    try:
        srv.start()
    except RuntimeError as e:
        pytest.skip(str(e))
    yield srv
    srv.stop()


class Run:
    """`python -m runtime.run` in a subprocess; its stderr lines are kept with the time each came."""

    def __init__(self, model, url, tmp_path, frames, *extra):
        self.stats, self.sink = tmp_path / "stats.json", tmp_path / "out.mp4"
        cmd = [sys.executable, "-m", "runtime.run", "--model", str(model), "--source", url, "--max-frames",
               str(frames), "--sink", str(self.sink), "-o", str(self.stats), *extra]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines, self._out = [], []  # stderr as (time.monotonic(), line); stdout
        # one reader per pipe, and nothing else reads them: communicate() would take stderr lines from under
        # the reader (a lost "reconnected" line failed CI)
        self._readers = [threading.Thread(target=self._read, daemon=True),
                         threading.Thread(target=lambda: self._out.append(self.proc.stdout.read()), daemon=True)]
        for r in self._readers:
            r.start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append((time.monotonic(), line.rstrip()))

    def wait_line(self, text, timeout):
        """The time the first stderr line holding `text` came, or None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, line in list(self.lines):
                if text in line:
                    return t
            if self.proc.poll() is not None and not self._readers[0].is_alive():
                return None
            time.sleep(0.05)
        return None

    def finish(self, timeout=60):
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for r in self._readers:
            r.join(5)
        log = "".join(self._out) + "\n".join(line for _, line in self.lines)
        return self.proc.returncode, log

    def summary(self):
        return json.loads(self.stats.read_text())


def _frames_in(video):
    cap = cv2.VideoCapture(str(video))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def test_runtime_run_reads_a_real_rtsp_server(server, model, tmp_path):
    run = Run(model, server.url, tmp_path, 20, "--stall-timeout", str(STALL_S))
    rc, log = run.finish()
    assert rc == 0, log
    s = run.summary()
    assert s["frames"]["processed"] == 20 and s["frames"]["reconnects"] == 0 and s["frames"]["stalls"] == 0, s
    assert s["streams"][0]["source"] == server.url
    assert _frames_in(run.sink) == 20  # the sink is a playable video of every processed frame


def test_server_restart_mid_run_reconnects_and_goes_on(server, model, tmp_path):
    run = Run(model, server.url, tmp_path, 60, "--stall-timeout", str(STALL_S))
    assert run.wait_line(STARTED, 30) is not None, run.finish(1)[1]  # the stream is open
    time.sleep(1.0)  # frames flow
    server.restart()
    assert server.wait_client(2), run.finish(1)[1]  # the loop came back to the new server
    rc, log = run.finish()
    assert rc == 0, log
    s = run.summary()
    assert s["frames"]["processed"] == 60 and s["frames"]["reconnects"] >= 1, s
    assert "reconnected" in log
    assert _frames_in(run.sink) == 60


def test_watchdog_finds_a_server_that_stops_sending(server, model, tmp_path):
    run = Run(model, server.url, tmp_path, 60, "--stall-timeout", str(STALL_S))
    assert run.wait_line(STARTED, 30) is not None, run.finish(1)[1]  # the stream is open
    time.sleep(1.0)  # frames flow
    server.freeze()  # the connection stays open, no frame comes
    frozen = time.monotonic()
    stalled = run.wait_line("stalled", STALL_S + SLACK_S + 5)
    server.thaw()
    rc, log = run.finish()
    assert stalled is not None, log
    assert stalled - frozen <= STALL_S + SLACK_S, (stalled - frozen, log)
    assert rc == 0, log
    s = run.summary()
    assert s["frames"]["processed"] == 60 and s["frames"]["stalls"] >= 1 and s["frames"]["reconnects"] >= 1, s


# -- the watchdog on its own (no server) -------------------------------------------------------

class _HungCapture:
    """A capture that gives `good` frames, then reads that block for `block_s` and fail (a hung stream
    read with a timeout, as open_stream's); reopened, it works again."""

    def __init__(self, good, block_s):
        self.good, self.block_s = good, block_s

    def isOpened(self):
        return True

    def get(self, prop):
        return 0

    def read(self):
        import numpy as np
        if self.good > 0:
            self.good -= 1
            time.sleep(0.01)
            return True, np.zeros((16, 16, 3), np.uint8)
        time.sleep(self.block_s)
        return False, None

    def release(self):
        pass


def test_watchdog_reconnects_a_source_with_no_frame_for_stall_timeout():
    caps = iter([_HungCapture(3, 0.3), _HungCapture(1000, 0.3)])
    src = LiveSource(lambda: next(caps), "hung stream", backoff=(0.01, 0.02), stall_timeout=0.5,
                     failures_before_reconnect=1000)  # only the watchdog can reconnect here
    t0, frames = time.monotonic(), 0
    while src.stalls == 0 and time.monotonic() - t0 < 5:
        frames += src.read() is not None
    assert src.stalls == 1 and 0.5 <= time.monotonic() - t0 < 2.5
    for _ in range(3):
        assert src.read() is not None  # the reopened capture delivers
    assert src.reconnects == 1
    src.close()


def test_no_watchdog_when_stall_timeout_is_off():
    src = LiveSource(lambda: _HungCapture(1, 0.2), "hung stream", stall_timeout=None, failures_before_reconnect=1000)
    assert src.read() is not None
    time.sleep(1.0)
    assert src.stalls == 0 and src.reconnects == 0
    src.close()
