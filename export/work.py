"""Where an export does its work and how a failed write is told: a temporary work folder that goes however
the run ends (its killed predecessors' too), and a full or read-only disk reported as one line naming the
file, whoever wrote it.

Python 3.8 compatible and torch-free (export.trt imports it on JetPack).
"""
import contextlib
import errno
import shutil
import tempfile
from pathlib import Path

from runtime.contract import OutputError, UserError, cause_line, clean_stale, pid_tag

WORK_PREFIX = "brd-export-"
OLD_WORK_PREFIXES = ("brd-quant-", "brd-trt-")  # the names older versions gave their work folders


def clean_stale_work_dirs():
    """Remove the work folders of killed exports (their pid is in the name; without one, older than a day)."""
    for prefix in (WORK_PREFIX,) + OLD_WORK_PREFIXES:
        clean_stale(tempfile.gettempdir(), prefix + "*", max_age_without_pid=24 * 3600)


@contextlib.contextmanager
def work_dir():
    """A temporary work folder whose name carries this process's pid (so a later run can tell a
    killed run's leftover from a live one's); removed when the block ends, however it ends."""
    path = tempfile.mkdtemp(prefix="{}{}-".format(WORK_PREFIX, pid_tag()))
    try:
        yield path
    finally:
        try:
            shutil.rmtree(path, ignore_errors=True)
        except KeyboardInterrupt:  # the first Ctrl-C/SIGTERM raised half-way (TemporaryDirectory stops there);
            shutil.rmtree(path, ignore_errors=True)  # a later one is only recorded (Signals): this pass finishes
            raise


# How third-party writers report a full disk without an errno: OpenVINO's C++ streams, protobuf, zip writers.
_IO_FAILURES = ("basic_ios", "iostream error", "no space left", "errno 28", "failed to write", "cannot write",
                "file write failed", "unexpected pos")
_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS)


@contextlib.contextmanager
def writing(out, what="the model"):
    """Around the writing of `out`: a full (or read-only) disk, reported as an OSError or as a third
    party's RuntimeError that hides the errno (OpenVINO: `basic_ios::clear: iostream error`), becomes one
    OutputError naming the path and the free space there. Anything else propagates unchanged."""
    try:
        yield
    except (OSError, RuntimeError) as e:
        if isinstance(e, UserError):
            raise
        if isinstance(e, OSError):
            if e.errno not in _DISK_ERRNOS:
                raise
            reason = e.strerror or str(e)
        else:
            text = str(e).strip()
            if not any(marker in text.lower() for marker in _IO_FAILURES):
                raise
            reason = "a failed write, {}: {}".format(type(e).__name__, cause_line(text))
        folder = Path(out).parent if str(Path(out).parent) else Path(".")
        try:
            free = "; {:.1f} MB free there".format(shutil.disk_usage(str(folder)).free / 1e6)
        except OSError:
            free = ""
        raise OutputError("{}: cannot write {} ({}{})".format(out, what, reason, free)) from None
