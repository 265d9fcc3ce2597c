"""The parser every command uses (one `error:` line, exit 2; examples in --help), the flag names and
value types commands share (checked ranges, `--size HxW`, `--set key=value`), and the old spellings kept
for one release with a `deprecated: use ...` line."""
import argparse
import sys

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
