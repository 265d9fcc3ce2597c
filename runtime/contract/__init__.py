"""The one contract of every `python -m` entry point: the errors a user can cause, how a command reports
them, the flags and value types commands share, outputs checked before the work and written atomically,
the one signal handler. Import every name from here (`from runtime.contract import ...`).

Exit codes (`command` turns a main function into one that keeps them):
  0 ok; 1 a gate or check failed (`GateError`, or main returning 1); 2 bad input, printed as one
  `error: ...` line naming the file or key and what was expected (a `UserError`, or an argparse
  error); 128+N after signal N (130 Ctrl-C, 143 SIGTERM), after the command closed its outputs.
  Anything else is a bug and keeps its traceback.

Stdlib only, torch-free, Python 3.8 compatible: the lowest layer. runtime/, export/, distill/ and
benchmarks/ all use it; with runtime.metadata and runtime.formats it is all of runtime/ that distill
imports (tests/test_layering.py states the rules). One idea per file:
  errors.py   the UserError family and the exit codes
  entry.py    `command`, the entry-point wrapper
  flags.py    the parser, shared flags, argument ranges (positive_int, ...), sizes (HxW, `pair`)
  outputs.py  checked outputs, atomic writes, strict JSON, removal of killed writers' leftovers, file hashes,
              the output folders a failed command made (removed again while empty)
  signals.py  `Signals`, SIGTERM handled like Ctrl-C (a training loop defers it to the end of its step)
  telemetry.py  OpenVINO's, NNCF's and ONNX Runtime's usage telemetry off (nothing sent or written)
"""
from .errors import (EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, CheckpointError, ConfigError, DataError, ExportError,
                     GateError, MissingDependency, ModelError, OutputError, SourceError, UserError, cause_line,
                     one_line)
from .signals import SignalInterrupt, Signals
from .entry import command
from .flags import (PRECISIONS, ArgumentParser, add_overrides, describe, finite_float, fraction, non_negative_float,
                    non_negative_int, number, pair, positive_float, positive_int, size, size_arg)
from .outputs import (MIN_FREE_BYTES, NULL_NOTE, atomic_path, check_folder, check_output, clean_stale,
                      current_umask, finite_json, make_folder, pid_tag, remove_made_folders, sha256_file,
                      write_json_file)

__all__ = [
    "EXIT_OK", "EXIT_FAILED", "EXIT_BAD_INPUT", "UserError", "ConfigError", "DataError", "CheckpointError",
    "ModelError", "ExportError", "SourceError", "OutputError", "MissingDependency", "GateError", "one_line",
    "cause_line", "Signals", "SignalInterrupt", "command", "ArgumentParser", "size", "size_arg",
    "PRECISIONS", "add_overrides", "number", "describe", "positive_int",
    "non_negative_int", "positive_float", "non_negative_float", "fraction", "finite_float", "MIN_FREE_BYTES",
    "NULL_NOTE", "check_output", "check_folder", "atomic_path", "current_umask", "write_json_file", "finite_json",
    "clean_stale", "pid_tag", "sha256_file", "pair", "make_folder", "remove_made_folders",
]
