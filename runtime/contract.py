"""The one contract of every `python -m` entry point: the errors a user can cause, how a command
reports them, and the flag names commands share.

Exit codes (`command` turns a main function into one that keeps them):
  0 ok; 1 a gate or check failed (`GateError`, or main returning 1); 2 bad input, printed as one
  `error: ...` line naming the file or key and what was expected (a `UserError`, or an argparse
  error); 128+N after signal N (130 Ctrl-C, 143 SIGTERM), after the command closed its outputs.
  Anything else is a bug and keeps its traceback.

Every place that detects bad input raises the `UserError` subclass that says what was wrong; a CLI
never catches ValueError, OSError or RuntimeError wholesale. The subclasses keep the builtin base
their predecessors had (ValueError, OSError, ...) so existing `except` clauses still hold.

Stdlib only, torch-free, Python 3.8 compatible: runtime/, export/, distill/ and benchmarks/ all use
it. It and runtime/cli.py (argument ranges, checked outputs, atomic writes, signals) are the lowest
layer: the only parts of runtime/ that distill imports.
"""
import argparse
import functools
import gc
import signal
import sys

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


# ------------------------------------------------------------------------------------- the errors
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


# ------------------------------------------------------------------------------------- the wrapper
def command(main=None, interrupted="outputs closed"):
    """Decorate `main(argv) -> int | None` into the entry point: UserError -> one line and its exit
    code; Ctrl-C / SIGTERM -> 'interrupted by SIG...' and 128+N (the command's own `finally` and
    `with` blocks have closed its outputs by then); anything else propagates with its traceback.
    The undecorated function stays reachable as `.__wrapped__` (library use, raising)."""
    if main is None:
        return functools.partial(command, interrupted=interrupted)

    @functools.wraps(main)
    def run(argv=None):
        from .cli import Signals  # cli imports this module's errors

        with Signals() as signals:
            try:
                return int(main(argv) or 0)
            except UserError as e:
                message, code = "error: " + one_line(e), e.exit_code
            except KeyboardInterrupt as e:
                signum = getattr(e, "signum", None) or signals.received or signal.SIGINT
                message = "interrupted by {}: {}".format(signal.Signals(signum).name, interrupted)
                code = 128 + int(signum)
        # printed once the traceback is dropped: it may hold a progress bar whose last redraw must come first
        gc.collect()
        sys.stdout.flush()
        sys.stderr.flush()
        print(message, file=sys.stderr)
        return code
    return run


# ------------------------------------------------------------------------------------- the parser
class ArgumentParser(argparse.ArgumentParser):
    """argparse with the contract's one `error:` line (exit 2) and an epilog of real examples."""

    def __init__(self, *args, examples=(), **kw):
        kw.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        if examples:
            kw["epilog"] = "examples:\n" + "\n".join("  " + e for e in examples)
        super().__init__(*args, **kw)

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        if getattr(self, "_pair_flags", None):
            args = _join_pairs(args, self._pair_flags)
        return super().parse_known_args(args, namespace)

    def error(self, message):
        self.exit(EXIT_BAD_INPUT, "error: {}\n".format(message))


def deprecated(use, what=None):
    """One `deprecated: use ...` line on stderr, once per old spelling per process."""
    key = (use, what)
    if key not in _warned:
        _warned.add(key)
        print("deprecated: {}use {}".format(what + " is old; " if what else "", use), file=sys.stderr)


_warned = set()


class Deprecated(argparse.Action):
    """An old spelling kept for one release: stores into the new flag's dest (through `convert`,
    which gets the parsed value(s)) and prints one `deprecated: use ...` line."""

    def __init__(self, option_strings, dest, use=None, convert=None, **kw):
        kw.setdefault("help", argparse.SUPPRESS)
        super().__init__(option_strings, dest, **kw)
        self.use, self.convert = use, convert

    def __call__(self, parser, namespace, values, option_string=None):
        deprecated(self.use, option_string)
        if self.convert is not None:
            values = self.convert(values) if self.nargs != 0 else self.convert()
        elif self.nargs == 0:
            values = self.const
        setattr(namespace, self.dest, values)


def alias(parser, old, dest, use, **kw):
    """Register `old` (e.g. "--out") as a deprecated spelling of the flag stored in `dest`."""
    return parser.add_argument(old, dest=dest, action=Deprecated, use=use, **kw)


def size(text):
    """argparse type: 'HxW' (or 'H,W') -> (H, W), both >= 1."""
    parts = str(text).lower().replace(",", "x").split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError("expected HxW with H, W >= 1, e.g. 512x1024, got {!r}".format(text))
    return int(parts[0]), int(parts[1])


def size_arg(parser, *flags, **kw):
    """Add a `--size HxW`-style flag (values checked). The old two-number form `--flag H W` still
    parses, with a deprecation line (ArgumentParser rewrites it before parsing)."""
    kw.setdefault("metavar", "HxW")
    action = parser.add_argument(*flags, type=size, **kw)
    parser._pair_flags = getattr(parser, "_pair_flags", ()) + tuple(flags)
    return action


def _join_pairs(args, flags):
    """['--size', '64', '128'] -> ['--size', '64x128'] for the flags that took `H W` before."""
    out, i = [], 0
    while i < len(args):
        a = args[i]
        if a in flags and i + 2 < len(args) and args[i + 1].isdigit() and args[i + 2].isdigit():
            deprecated("{} {}x{}".format(a, args[i + 1], args[i + 2]), "{} H W".format(a))
            out += [a, "{}x{}".format(args[i + 1], args[i + 2])]
            i += 3
            continue
        out.append(a)
        i += 1
    return out


PRECISIONS = ("fp32", "fp16", "bf16", "int8")


def add_overrides(parser, positional=False):
    """The one override grammar: `--set key=value`, repeatable (also `--set a=1 b=2`); values are
    YAML, keys dotted (distill.config.apply_override applies them). `positional`: also accept the
    old bare `key=value` arguments, with a deprecation line (see `overrides`)."""
    parser.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override a config key, dotted, value as YAML, e.g. --set train.iters=100 "
                             "(repeatable)")
    if positional:
        parser.add_argument("legacy_overrides", nargs="*", metavar="key=value", help=argparse.SUPPRESS)


def overrides(args):
    """All overrides of parsed `args`: --set ones, then old positional ones (deprecated)."""
    old = list(getattr(args, "legacy_overrides", None) or [])
    if old:
        deprecated("--set " + " --set ".join(old), "positional key=value")
    return list(args.overrides or []) + old
