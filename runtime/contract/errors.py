"""The errors a user can cause, one `UserError` subclass per kind of bad input, and their exit codes.

Every place that detects bad input raises the `UserError` subclass that says what was wrong; a CLI
never catches ValueError, OSError or RuntimeError wholesale. The subclasses keep the builtin base
their predecessors had (ValueError, OSError, ...) so existing `except` clauses still hold.
"""
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class UserError(Exception):
    """Bad input: the message is one line naming the file or key and what was expected."""
    exit_code = EXIT_BAD_INPUT


class ConfigError(UserError, ValueError):
    """A config file, key, value or override is wrong."""


class DataError(UserError, ValueError):
    """A dataset, image folder or split is missing or does not match."""


class CheckpointError(UserError, ValueError):
    """A checkpoint (or pretrained weights file) is missing, unreadable or of another model."""


class ModelError(UserError, ValueError):
    """An exported model file is missing, of an unknown format, or lacks / contradicts its metadata."""


class ExportError(UserError, ValueError):
    """Bad input to an exporter."""


class SourceError(UserError, RuntimeError):
    """A camera, video, stream or image source cannot be opened."""


class OutputError(UserError, OSError):
    """An output that cannot be written (permission, read-only, no space); the message names the path."""


class MissingDependency(UserError, ImportError):
    """An optional dependency is absent; the message names the extra that installs it."""


class GateError(UserError):
    """A gate or check failed (parity, accuracy, graph identity): exit 1, not 2."""
    exit_code = EXIT_FAILED


def one_line(e):
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def cause_line(e, limit=200):
    """The line of a third party's (possibly multi-line) error message that names the cause, not the
    source file it came from. OpenVINO stacks 'Exception from src/.../core.cpp:84:' and 'Check ... failed
    at src/...' lines above the reason ('bin file cannot be found', 'Incorrect weights in bin file!');
    torch appends advice after it. Returns the first line that is neither such a location line nor empty."""
    text = str(e).strip()
    if not text:
        return type(e).__name__ if isinstance(e, BaseException) else ""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        low = ln.lower()
        if low.startswith(("exception from ", "check '")) or (" failed at src/" in low or " failed at /" in low):
            continue
        if low.startswith("[ general_error ]") and len(ln) <= len("[ general_error ]") + 1:
            continue
        return ln[:limit]
    return lines[0][:limit]
