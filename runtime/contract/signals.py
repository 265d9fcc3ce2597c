"""The one signal handler: SIGTERM (what systemd and docker send) handled like Ctrl-C, for every command.

The first SIGINT/SIGTERM raises `SignalInterrupt` (a KeyboardInterrupt that carries the signal) in the main
thread, so the code's own Ctrl-C path closes its outputs. Two modes change that:
- `deferring` (a loop): the first signal is only recorded; the loop finishes its step and stops (a
  training saves a resumable state, distill.engine; the runtime loop closes its outputs,
  runtime.pipeline). A second signal raises at once.
- `hold()` (the work is done, the outputs are being written): every signal is only recorded, so that
  closing (an mp4's index, the stats) is not cut short.
Otherwise a later signal is only recorded too: the first one's unwinding is already closing the outputs.
`exit_while_loading()`, called by an entry point before its heavy imports, covers the moments before that.
"""
import signal
import sys
import threading


def exit_while_loading(signums=(signal.SIGINT, signal.SIGTERM)):
    """Until the command installs `Signals`: a signal ends the process with the `interrupted by` line and
    128+N, as one later does, not with a traceback from whichever import it landed in (nothing is open yet)."""
    def handler(signum, frame):
        sys.stderr.write("interrupted by {} while starting\n".format(signal.Signals(signum).name))
        sys.exit(128 + signum)

    for signum in signums:
        signal.signal(signum, handler)


class SignalInterrupt(KeyboardInterrupt):
    """KeyboardInterrupt raised for a signal (SIGTERM too), so that `except KeyboardInterrupt` unwinds it."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Signals:
    """`received` is the first signal's number (None if none); `exit_code` is 128 + it."""

    def __init__(self, signums=(signal.SIGINT, signal.SIGTERM)):
        self.signums = signums
        self.received = None
        self.holding = False
        self.deferring = False  # set by a loop that honours a signal at the end of its step
        self._old = {}

    def _handle(self, signum, frame):
        if self.received is None:
            self.received = signum
            if not (self.holding or self.deferring):
                raise SignalInterrupt(signum)
        elif self.deferring and not self.holding:  # asked twice: stop now, not at the end of the step
            raise SignalInterrupt(signum)

    def hold(self):
        """From now on a signal is only recorded (the work is done; the outputs are being written)."""
        self.holding = True

    @property
    def requested(self):
        """A signal arrived (while deferring: the loop should stop at the end of its step)."""
        return self.received is not None

    @property
    def signum(self):
        return self.received

    @property
    def exit_code(self):
        return 128 + int(self.received) if self.received else None

    @property
    def name(self):
        return signal.Signals(self.received).name if self.received else None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in self.signums:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, old in self._old.items():
            signal.signal(s, old)
        self._old = {}

    def interrupted(self, signum=None):
        """Record a Ctrl-C that arrived as a KeyboardInterrupt without our handler (e.g. before it was set)."""
        if self.received is None:
            self.received = signum or signal.SIGINT
