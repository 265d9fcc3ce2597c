"""Running one case: its folder prepared (setup steps, real tmpfs mounts), the command started as `python -m`
runs it (its own session, the case folder as its working folder, TMPDIR inside it), acted on when its trigger
comes (a signal, a disk filled by another writer), killed at its timeout; then what it left, changed or broke is
read from before/after snapshots of the case folder and of the fixtures it was given."""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from .case import Case, Outcome, is_temporary
from .fixtures import command_env

BIG = 32 << 20


class MountFailed(Exception):
    """A tmpfs could not be mounted (not root): the case is not run."""


# ------------------------------------------------------------------------------------------ setup
class Folder:
    """A case's folder and what its setup holds (mounts, a run folder's lock) until the case ends."""

    def __init__(self, path: Path, fx: Path):
        self.path, self.fx, self.mounts, self.locks, self.servers, self.port = path, fx, [], [], [], 0

    def at(self, rel) -> Path:
        p = self.path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def close(self):
        for fd in self.locks:
            os.close(fd)
        for server in self.servers:
            server.close()
        for point in reversed(self.mounts):
            subprocess.run(["umount", "-l", str(point)], capture_output=True)
        self.locks, self.mounts = [], []


def _copy(f: Folder, src, dst):
    s, d = f.fx / src, f.at(dst)
    shutil.copytree(s, d) if s.is_dir() else shutil.copy2(s, d)


def _junk(f: Folder, dst, n=4096):
    seed = int(hashlib.sha256(str(dst).encode()).hexdigest()[:8], 16)
    import numpy as np
    f.at(dst).write_bytes(np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes())


def _cut(f: Folder, src, dst, fraction=0.5):
    data = (f.fx / src).read_bytes()
    f.at(dst).write_bytes(data[: int(len(data) * fraction)])


def _mount(f: Folder, dst, kb, read_only=False):
    point = f.at(dst)
    point.mkdir(exist_ok=True)
    opts = f"size={kb}k" + (",ro" if read_only else "")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(point)], capture_output=True, text=True)
    if r.returncode:
        raise MountFailed((r.stderr or r.stdout).strip() or "mount failed")
    f.mounts.append(point)


def fill(point: Path, name="filler"):
    """Take every free byte of the disk under `point`, as another writer on a shared disk would."""
    fd = os.open(point / name, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for chunk in (1 << 16, 1 << 10, 1):
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError:
                pass
    finally:
        os.close(fd)


def _lock(f: Folder, folder):
    """Hold `<folder>/.run.lock` as a running distill.run would (distill/runlock.py: flock)."""
    path = f.at(Path(folder) / ".run.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, b"1\n")
    f.locks.append(fd)


def _stalled_stream(f: Folder):
    """A local HTTP server (port `{port}` in the case's arguments) that answers as an MJPEG camera would and
    then sends nothing: a stream that opens and never delivers a frame."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    f.servers.append(server)
    f.port = server.getsockname()[1]

    def serve():
        held = []
        while True:
            try:
                conn, _ = server.accept()
                conn.recv(4096)
                conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n\r\n")
                held.append(conn)
            except OSError:
                break
        for conn in held:
            conn.close()
    threading.Thread(target=serve, daemon=True).start()


SETUP = {
    "copy": _copy,                                         # (fixture, dst)
    "text": lambda f, dst, text: f.at(dst).write_text(text),
    "raw": lambda f, dst, data: f.at(dst).write_bytes(data),
    "bytes": _junk,                                        # (dst[, n]): seeded random bytes
    "empty": lambda f, dst: f.at(dst).write_bytes(b""),
    "mkdir": lambda f, dst: f.at(dst).mkdir(parents=True, exist_ok=True),
    "cut": _cut,                                           # (fixture, dst[, fraction]): the file's first part
    "mount": _mount,                                       # (dst, kB[, read_only]): a real tmpfs
    "fill": lambda f, dst: fill(f.path / dst),
    "lock": _lock,                                         # (run folder)
    "stalled stream": _stalled_stream,                     # (): a local camera URL that never sends a frame
}


# ------------------------------------------------------------------------------------------ snapshots
def _signature(p: Path):
    st = p.stat()
    if st.st_size > BIG:
        return st.st_size, st.st_mtime_ns
    h = hashlib.sha256()
    with open(p, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return st.st_size, h.hexdigest()


def snapshot(root: Path) -> dict:
    """rel path -> signature of every file (folders as 'rel/' -> None) under `root`; nothing for a missing root."""
    found = {}
    if root.is_file():
        return {"": _signature(root)}
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        rel = base.relative_to(root).as_posix()
        if rel != ".":
            found[rel + "/"] = None
        for name in filenames:
            p = base / name
            try:
                found[(p.relative_to(root)).as_posix()] = _signature(p) if p.is_file() else "other"
            except OSError:
                found[(p.relative_to(root)).as_posix()] = "unreadable"
    return found


def changes(before: dict, after: dict) -> tuple[list, list]:
    """(new paths, paths changed or removed)."""
    new = sorted(p for p in after if p not in before)
    changed = sorted(p for p, sig in before.items() if sig is not None and after.get(p) != sig)
    return new, changed


# ------------------------------------------------------------------------------------------ does it load?
def _video_ok(p: Path) -> bool:
    import cv2
    cap = cv2.VideoCapture(str(p))
    try:
        ok, frame = cap.read()
        return bool(ok and frame is not None)
    finally:
        cap.release()


def _onnx_ok(p: Path) -> bool:
    import onnx
    onnx.checker.check_model(onnx.load(str(p)))
    return True


def _xml_ok(p: Path) -> bool:
    import xml.etree.ElementTree as ET
    ET.parse(p)
    b = p.with_suffix(".bin")
    return b.is_file() and b.stat().st_size > 0


def _pt_ok(p: Path) -> bool:
    import zipfile
    with zipfile.ZipFile(p) as z:
        return z.testzip() is None


def _image_ok(p: Path) -> bool:
    import cv2
    return cv2.imread(str(p)) is not None


CHECKS = {".mp4": _video_ok, ".avi": _video_ok, ".mkv": _video_ok, ".onnx": _onnx_ok, ".xml": _xml_ok,
          ".pt": _pt_ok, ".png": _image_ok, ".jpg": _image_ok,
          ".json": lambda p: json.loads(p.read_text()) is not None or True,
          ".bin": lambda p: p.with_suffix(".xml").is_file() and p.stat().st_size > 0,
          ".engine": lambda p: p.stat().st_size > 0 and Path(str(p) + ".json").is_file()}


def loads(p: Path) -> bool:
    """Whether a file under a final name is whole: it loads, parses or plays (by its suffix; others: True)."""
    check = CHECKS.get(p.suffix.lower())
    if check is None or not p.is_file():
        return True
    try:
        return bool(check(p))
    except Exception:  # noqa: BLE001 - any failure to read it is the answer
        return False


def broken(root: Path, rels) -> list:
    return [r for r in rels if not r.endswith("/") and not is_temporary(r) and not loads(root / r)]


# ------------------------------------------------------------------------------------------ running
class Running:
    """The commands running now (their process groups), so that a stopped trial kills every one of them."""

    def __init__(self):
        self.lock, self.procs, self.stopped = threading.Lock(), set(), False

    def add(self, proc):
        with self.lock:
            if self.stopped:
                _kill(proc)
            self.procs.add(proc)

    def discard(self, proc):
        with self.lock:
            self.procs.discard(proc)

    def stop(self):
        with self.lock:
            self.stopped = True
            for proc in self.procs:
                _kill(proc)


def _kill(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _reader(stream, sink: bytearray):
    fd = stream.fileno()
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return
        sink.extend(chunk)


def _count_lines(p: Path) -> int:
    try:
        return len(p.read_text(errors="replace").splitlines())
    except OSError:
        return 0


def triggered(trigger: tuple, folder: Path, t0: float, output: bytes) -> bool:
    kind = trigger[0]
    if kind == "after":
        return time.monotonic() - t0 >= trigger[1]
    if kind == "text":
        return trigger[1].encode() in output
    if kind == "file":
        return any(folder.glob(trigger[1]))
    if kind == "lines":
        return _count_lines(folder / trigger[1]) >= trigger[2]
    if kind == "size":  # a file matching the glob holds at least n bytes
        return any(p.is_file() and p.stat().st_size >= trigger[2] for p in folder.glob(trigger[1]))
    raise ValueError(f"unknown trigger {trigger!r}")


def act(action: tuple, proc, folder: Path):
    if action[0] == "signal":
        sig = getattr(signal, action[1])
        if sig == signal.SIGINT:  # Ctrl-C: the terminal signals the whole foreground group
            os.killpg(proc.pid, sig)
        else:                     # kill PID / docker stop: the main process only
            proc.send_signal(sig)
    elif action[0] == "fill":
        fill(folder / action[1])
    else:
        raise ValueError(f"unknown action {action!r}")


def execute(case: Case, folder: Path, argv: list, env: dict, running: Running) -> tuple:
    """(rc or None if killed at the timeout, stdout, stderr, fired, seconds)."""
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", case.module, *argv], cwd=folder, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    running.add(proc)
    out, err = bytearray(), bytearray()
    readers = [threading.Thread(target=_reader, args=(s, b), daemon=True) for s, b in ((proc.stdout, out),
                                                                                    (proc.stderr, err))]
    for r in readers:
        r.start()
    fired, timed_out = not case.trigger, False
    try:
        while proc.poll() is None:
            if not fired and triggered(case.trigger, folder, t0, bytes(out) + bytes(err)):
                act(case.action, proc, folder)
                fired = True
            if time.monotonic() - t0 > case.timeout:
                timed_out = True
                _kill(proc)
                break
            time.sleep(0.02)
        proc.wait()
    finally:
        _kill(proc)  # whatever it started in its session goes with it
        running.discard(proc)
        for r in readers:
            r.join(timeout=10)
    text = (bytes(out).decode(errors="replace"), bytes(err).decode(errors="replace"))
    return None if timed_out else proc.returncode, *text, fired, time.monotonic() - t0


def render(args, folder: Path, fx: Path, port: int = 0) -> list:
    return [str(a).replace("{c}", str(folder)).replace("{fx}", str(fx)).replace("{port}", str(port)) for a in args]


def fixture_inputs(case: Case, fx: Path) -> list:
    """The fixtures a case names (each protected: the command must not change them)."""
    found = set()
    for a in case.args:
        a = str(a)
        if "{fx}/" in a:
            first = a.split("{fx}/", 1)[1].split("/", 1)[0].split("'")[0].split('"')[0]
            if first and (fx / first).exists():
                found.add(first)
    return sorted(found)


def run_case(case: Case, index: int, work: Path, fx: Path, home: Path, running: Running) -> Outcome:
    folder = work / "cases" / f"{index:03d}"
    folder.mkdir(parents=True)
    (folder / "tmp").mkdir()
    f = Folder(folder, fx)
    try:
        try:
            for step in case.setup:
                SETUP[step[0]](f, *step[1:])
        except MountFailed as e:
            return Outcome(rc=None, note=f"not run: cannot mount a tmpfs ({e})")
        protected = {name: snapshot(fx / name) for name in fixture_inputs(case, fx)}
        before = snapshot(folder)
        rc, stdout, stderr, fired, seconds = execute(case, folder, render(case.args, folder, fx, f.port),
                                                     command_env(home, folder / "tmp"), running)
        logs = work / "logs"
        logs.mkdir(exist_ok=True)
        (logs / f"{index:03d}.out").write_text(stdout)
        (logs / f"{index:03d}.err").write_text(stderr)
        new, changed = changes(before, snapshot(folder))
        for name, was in protected.items():
            changed += [f"$FX/{name}/{p}".rstrip("/") for p in changes(was, snapshot(fx / name))[1]]
        invalid = broken(folder, new + [c for c in changed if not c.startswith("$FX")])
        return Outcome(rc=rc, stderr=stderr, new=new, changed=changed, invalid=invalid, fired=fired,
                       seconds=round(seconds, 2))
    finally:
        f.close()
