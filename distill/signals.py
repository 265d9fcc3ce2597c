"""SIGTERM handled like Ctrl-C during training, with the one signal handler of every command.

`StopRequest` is `runtime.contract.Signals`: with `deferring` set (inside the training loop) the first
SIGINT/SIGTERM is a request the loop honours at the end of the current step (it writes a resumable last.pt,
then raises `Interrupted`); outside the loop, or at a second signal, it raises KeyboardInterrupt at once
(last.pt is written atomically, so the previous one stays intact). Leftovers of killed runs are removed by
runtime.contract.clean_stale.
"""
from __future__ import annotations

import signal
from pathlib import Path

from runtime.contract import Signals as StopRequest  # noqa: F401  (the name training uses)


class Interrupted(KeyboardInterrupt):
    """Training stopped by a signal after saving its state; `exit_code` is 128 + the signal.

    A KeyboardInterrupt, as the signal's own is: a command that trains inside its work (benchmarks.gain) ends
    with 128 + N and this message (runtime.contract.command prints `detail`), not with a traceback and exit 1."""

    def __init__(self, signum: int, step: int, last_path: Path | None):
        self.signum, self.step, self.last_path = signum, step, last_path
        name = signal.Signals(signum).name
        self.detail = (f"{last_path} saved at step {step}; rerun the same command to resume" if last_path
                       else "nothing saved")
        super().__init__(f"interrupted by {name}: {self.detail}")

    def __reduce__(self):  # rebuilt from its fields when a worker process hands it back
        return type(self), (self.signum, self.step, self.last_path)

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signum)
