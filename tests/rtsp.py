"""A real RTSP server for the tests (tests/rtsp_server.py: GStreamer's RTSP server under the system python3),
started, restarted, frozen (SIGSTOP) and thawed by the tests; `unavailable()` says why it cannot run here
(the tests then skip with that reason)."""
from __future__ import annotations

import os
import queue
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import cv2
import numpy as np

SERVER = Path(__file__).with_name("rtsp_server.py")
FPS = 15
FRAME_HW = (240, 320)
# The Debian packages tests/rtsp_server.py needs (.ci/run installs them where apt-get can)
PACKAGES = "python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good"


def system_python():
    """The system python3 that has Debian's PyGObject (the venv's python has no gi)."""
    for candidate in ("/usr/bin/python3", shutil.which("python3")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def unavailable():
    """None when the server can run here, else why not (for pytest.skip)."""
    python = system_python()
    if python is None:
        return "no system python3 to run GStreamer's RTSP server (apt-get install {})".format(PACKAGES)
    try:
        done = subprocess.run([python, str(SERVER), "--check"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "cannot run {} {}: {}".format(python, SERVER.name, e)
    if done.returncode != 0:
        return "GStreamer's RTSP server cannot run: {} (apt-get install {})".format(
            done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "exit {}".format(done.returncode),
            PACKAGES)
    return None


def write_video(path, frames, fps=FPS, hw=FRAME_HW):
    """An MJPEG .avi made with OpenCV: a moving bar and the frame number on a colour that changes."""
    h, w = hw
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened(), "OpenCV cannot write MJPEG here"
    for i in range(frames):
        image = np.full((h, w, 3), ((i * 7) % 256, 90, 160), np.uint8)
        x = (i * 5) % w
        image[:, x:x + 12] = (40, 220, 40)
        cv2.putText(image, str(i), (10, h // 2), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (255, 255, 255), 3)
        writer.write(image)
    writer.release()
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RtspServer:
    """tests/rtsp_server.py serving `video` at rtsp://127.0.0.1:PORT/cam; `clients` counts connections."""

    def __init__(self, video, port=None, path="/cam"):
        self.video, self.port, self.path = Path(video), port or free_port(), path
        self.url = "rtsp://127.0.0.1:{}{}".format(self.port, path)
        self.proc = None
        self.clients = 0
        self._events = queue.Queue()

    def start(self, timeout=20.0):
        """Start serving (again, on the same port); returns once it listens."""
        self.proc = subprocess.Popen([system_python(), str(SERVER), str(self.video), "--port", str(self.port),
                                      "--path", self.path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self._thread = threading.Thread(target=self._watch, args=(self.proc,), daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while True:  # a port still held by the previous server's connections may take a moment to free
            line = self._next(deadline)
            if line is not None and line.startswith("ready"):
                return self
            if line is None:
                err = self.proc.stderr.read() if self.proc.poll() is not None else "no answer in time"
                self.stop()
                raise RuntimeError("the RTSP server did not start: {}".format(err.strip()))

    def _watch(self, proc):
        for line in proc.stdout:
            if line.startswith("client"):
                self.clients += 1
            self._events.put(line.strip())
        self._events.put(None)  # the process ended

    def _next(self, deadline):
        try:
            return self._events.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None

    def wait_client(self, count=1, timeout=30.0):
        """Wait until `count` clients have connected since the first start."""
        deadline = time.monotonic() + timeout
        while self.clients < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.clients >= count

    def freeze(self):
        """SIGSTOP: the connection stays open, nothing more is sent (a hung camera or server)."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)  # a frozen one must run to die of SIGTERM
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._thread.join(5)  # it reads stdout to its end
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()
        self.proc = None

    def restart(self, pause=0.5):
        self.stop()
        time.sleep(pause)
        # a fresh queue: lines left by the old process (its end marker) must not answer the new start
        self._events = queue.Queue()
        return self.start()
