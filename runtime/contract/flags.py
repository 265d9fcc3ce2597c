"""The parser every command uses (one `error:` line, exit 2; examples in --help), and the flag names and
value types commands share (checked ranges, `--size HxW`, `--set key=value`). One spelling per flag: a
0.x project keeps no old ones."""
import argparse

from .errors import EXIT_BAD_INPUT


# ------------------------------------------------------------------------------------- argument ranges
def number(kind, lo=None, hi=None, lo_open=False, hi_open=False):
    """An argparse type: `kind` (int/float) within [lo, hi] (open ends where asked), else a clear error."""
    def parse(text):
        try:
            value = kind(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError("expected {}, got {!r}".format(
                "an integer" if kind is int else "a number", text)) from None
        if value != value or value in (float("inf"), float("-inf")) or (lo is not None and (value < lo or (lo_open and value == lo))) or (
                hi is not None and (value > hi or (hi_open and value == hi))):
            raise argparse.ArgumentTypeError("{} is out of range: expected {}".format(text, describe(lo, hi, lo_open, hi_open)))
        return value
    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def describe(lo, hi, lo_open=False, hi_open=False):
    if lo is None and hi is None:
        return "a finite number"
    if hi is None:
        return "{} {}".format(">" if lo_open else ">=", lo)
    if lo is None:
        return "{} {}".format("<" if hi_open else "<=", hi)
    return "{}{}, {}{}".format("(" if lo_open else "[", lo, hi, ")" if hi_open else "]")


positive_int = number(int, 1)
non_negative_int = number(int, 0)
positive_float = number(float, 0, lo_open=True)
non_negative_float = number(float, 0)
fraction = number(float, 0, 1)
finite_float = number(float)


# ------------------------------------------------------------------------------------- the parser
class ArgumentParser(argparse.ArgumentParser):
    """argparse with the contract's one `error:` line (exit 2) and an epilog of real examples."""

    def __init__(self, *args, examples=(), **kw):
        kw.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        if examples:
            kw["epilog"] = "examples:\n" + "\n".join("  " + e for e in examples)
        super().__init__(*args, **kw)

    def error(self, message):
        self.exit(EXIT_BAD_INPUT, "error: {}\n".format(message))


def size(text):
    """argparse type: 'HxW' (or 'H,W') -> (H, W), both >= 1."""
    parts = str(text).lower().replace(",", "x").split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError("expected HxW with H, W >= 1, e.g. 512x1024, got {!r}".format(text))
    return int(parts[0]), int(parts[1])


def pair(v):
    """A size as a config or metadata gives it: an int n -> (n, n), [H, W] -> (H, W) as ints; None stays None."""
    if v is None:
        return None
    if isinstance(v, int):
        return int(v), int(v)
    h, w = v
    return int(h), int(w)


def size_arg(parser, *flags, **kw):
    """Add a `--size HxW`-style flag (values checked)."""
    kw.setdefault("metavar", "HxW")
    return parser.add_argument(*flags, type=size, **kw)


PRECISIONS = ("fp32", "fp16", "bf16", "int8")


def add_overrides(parser):
    """The one override grammar: `--set key=value`, repeatable (also `--set a=1 b=2`), into `args.overrides`;
    values are YAML, keys dotted (distill.config.apply_override applies them)."""
    parser.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override a config key, dotted, value as YAML, e.g. --set train.iters=100 "
                             "(repeatable)")
