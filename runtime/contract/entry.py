"""`command`: a main function made into an entry point that keeps the contract's exit codes."""
import functools
import gc
import signal
import sys

from . import telemetry
from .errors import UserError, one_line
from .outputs import remove_made_folders
from .signals import Signals


def command(main=None, interrupted="outputs closed"):
    """Decorate `main(argv) -> int | None` into the entry point: UserError -> one line and its exit
    code; Ctrl-C / SIGTERM -> 'interrupted by SIG...' and 128+N (the command's own `finally` and
    `with` blocks have closed its outputs by then); anything else propagates with its traceback.
    OpenVINO's, NNCF's and ONNX Runtime's usage telemetry is off before the command runs (telemetry.py).
    A command that fails or is interrupted leaves no empty folder that its output checks made (make_folder).
    The undecorated function stays reachable as `.__wrapped__` (library use, raising)."""
    if main is None:
        return functools.partial(command, interrupted=interrupted)

    @functools.wraps(main)
    def run(argv=None):
        telemetry.off()
        remove_made_folders(keep=True)  # only this command's own count
        with Signals() as signals:
            try:
                code = int(main(argv) or 0)
                remove_made_folders(keep=code == 0)  # a failed check leaves no empty output folder either
                return code
            except UserError as e:
                message, code = "error: " + one_line(e), e.exit_code
            except KeyboardInterrupt as e:
                signum = getattr(e, "signum", None) or signals.received or signal.SIGINT
                # an interrupt that knows what it saved says so (distill.signals.Interrupted), else the command's words
                detail = getattr(e, "detail", None) or interrupted
                message = "interrupted by {}: {}".format(signal.Signals(signum).name, detail)
                code = 128 + int(signum)
            remove_made_folders()  # output folders the command made and left empty
        # printed once the traceback is dropped: it may hold a progress bar whose last redraw must come first
        gc.collect()
        sys.stdout.flush()
        sys.stderr.flush()
        print(message, file=sys.stderr)
        return code
    return run
