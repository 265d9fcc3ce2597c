"""SIGTERM handled like Ctrl-C during training.

`StopRequest` turns the first SIGINT/SIGTERM into a request that the loop honours at the end of the
current step (it writes a resumable last.pt, then raises `Interrupted`); outside the loop, or at a
second signal, it raises KeyboardInterrupt at once (last.pt is written atomically, so the previous
one stays intact). Unlike runtime.cli.Signals it can defer a signal to the end of a training step.
Leftovers of killed runs are removed by runtime.cli.clean_stale.
"""
from __future__ import annotations

import signal
import threading
from pathlib import Path


class Interrupted(Exception):
    """Training stopped by a signal after saving its state; `exit_code` is 128 + the signal."""

    def __init__(self, signum: int, step: int, last_path: Path | None):
        self.signum, self.step, self.last_path = signum, step, last_path
        name = signal.Signals(signum).name
        saved = f"{last_path} saved at step {step}; rerun the same command to resume" if last_path else "nothing saved"
        super().__init__(f"interrupted by {name}: {saved}")

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signum)


class SignalInterrupt(KeyboardInterrupt):
    """KeyboardInterrupt raised for a signal (SIGTERM too), so that `except KeyboardInterrupt` unwinds it."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopRequest:
    def __init__(self):
        self.signum = None
        self.deferring = False  # inside the loop: finish the step, save, then stop
        self._old = {}

    def _handle(self, signum, frame):
        if self.signum is None and self.deferring:
            self.signum = signum
            return
        self.signum = self.signum or signum
        raise SignalInterrupt(signum)

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, old in self._old.items():
            signal.signal(s, old)
        self._old = {}
