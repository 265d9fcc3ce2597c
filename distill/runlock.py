"""One training per run folder: `RunLock` holds an exclusive lock on `<out_dir>/.run.lock` for the run.

Two `distill.run` into one out_dir both trained and interleaved one train_log.csv (43 rows for 30 steps). The
second is now refused before it writes anything, with one line naming the folder and the holder's pid.

The lock is `fcntl.flock` on an open file: the kernel releases it when its holder exits, however it exits
(SIGKILL and a crash included), so a lock file left by a dead process never blocks (its pid is only what the
message names). The file is removed when the run ends; one that another process opened just before the
removal is noticed (it is no longer the file at that path) and the lock is taken again on the new one.
Under torchrun only rank 0 takes it (every rank writes to the same folder, rank 0 first).

Where there is no flock (Windows) the lock is skipped."""
from __future__ import annotations

import os
import time
from pathlib import Path

from runtime.contract import OutputError, UserError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

LOCK_FILE = ".run.lock"


class RunFolderBusy(UserError):
    """Another training holds the run folder (exit 2)."""


class RunLock:
    """`with RunLock(out_dir, prepare=checkpoint.prepare_run_folder):` the run folder is made and checked, then
    the caller's own until the block ends; RunFolderBusy (one line, exit 2) when another process holds it."""

    def __init__(self, out_dir, rank: int | None = None, prepare=None):
        self.path = Path(out_dir) / LOCK_FILE
        self.rank = int(os.environ.get("RANK", "0")) if rank is None else rank
        self.prepare = prepare  # makes and checks the folder first (checkpoint.prepare_run_folder), on rank 0
        self.fd = None

    def __enter__(self):
        if self.rank == 0:
            if self.prepare is not None:
                self.prepare(self.path.parent)
            if fcntl is not None:
                self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()
        return False

    def acquire(self) -> None:
        for _ in range(100):  # only a lock file removed between our open and our flock makes it go round
            fd = os.open(str(self.path), os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise RunFolderBusy(f"{self.path.parent}: another training (pid {self._holder()}) is running in "
                                    f"this run folder (out_dir); wait for it to end, or give this one another "
                                    f"out_dir") from None
            except BaseException:
                os.close(fd)
                raise
            if self._is_current(fd):
                self._write_pid(fd)
                self.fd = fd
                return
            os.close(fd)  # its holder removed it as we opened it: lock the file at the path now
        raise RunFolderBusy(f"{self.path}: cannot take the run folder's lock (it keeps being replaced)")

    def _write_pid(self, fd) -> None:
        """Our pid into the lock we hold; a disk with no byte left (the probe file of prepare_run_folder took
        none) is one line naming the folder, and the lock file is gone again."""
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as e:
            try:
                self.path.unlink()
            except OSError:
                pass
            os.close(fd)
            raise OutputError(f"{self.path.parent}: the run folder (out_dir) cannot be written "
                              f"({e.strerror or e})") from None

    def release(self) -> None:
        fd, self.fd = self.fd, None
        if fd is None:
            return
        try:
            if self._is_current(fd):
                self.path.unlink()  # before unlocking: nobody can take a lock on a file about to go
        except OSError:
            pass
        finally:
            os.close(fd)  # releases the flock

    def _is_current(self, fd) -> bool:
        try:
            return os.fstat(fd).st_ino == os.stat(str(self.path)).st_ino
        except FileNotFoundError:
            return False

    def _holder(self) -> str:
        """The holder's pid as it wrote it (it writes it just after locking: wait a moment for it)."""
        for _ in range(20):
            try:
                text = self.path.read_text().strip()
            except OSError:
                text = ""
            if text.isdigit():
                return text
            time.sleep(0.05)
        return "unknown"
