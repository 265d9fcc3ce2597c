"""`command`: a main function made into an entry point that keeps the contract's exit codes."""
import functools
import gc
import signal
import sys

from . import telemetry
from .errors import UserError, one_line
from .signals import Signals


def command(main=None, interrupted="outputs closed"):
    """Decorate `main(argv) -> int | None` into the entry point: UserError -> one line and its exit
    code; Ctrl-C / SIGTERM -> 'interrupted by SIG...' and 128+N (the command's own `finally` and
    `with` blocks have closed its outputs by then); anything else propagates with its traceback.
    OpenVINO's, NNCF's and ONNX Runtime's usage telemetry is off before the command runs (telemetry.py).
    The undecorated function stays reachable as `.__wrapped__` (library use, raising)."""
    if main is None:
        return functools.partial(command, interrupted=interrupted)

    @functools.wraps(main)
    def run(argv=None):
        telemetry.off()
        with Signals() as signals:
            try:
                return int(main(argv) or 0)
            except UserError as e:
                message, code = "error: " + one_line(e), e.exit_code
            except KeyboardInterrupt as e:
                signum = getattr(e, "signum", None) or signals.received or signal.SIGINT
                # an interrupt that knows what it saved says so (distill.signals.Interrupted), else the command's words
                detail = getattr(e, "detail", None) or interrupted
                message = "interrupted by {}: {}".format(signal.Signals(signum).name, detail)
                code = 128 + int(signum)
        # printed once the traceback is dropped: it may hold a progress bar whose last redraw must come first
        gc.collect()
        sys.stdout.flush()
        sys.stderr.flush()
        print(message, file=sys.stderr)
        return code
    return run
