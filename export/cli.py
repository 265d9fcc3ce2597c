"""What every exporter's command shares: its entry point under the CLI contract, what it takes as a source,
and where its output goes (-o/--output checked before any work, else the default next to the source).

Python 3.8 compatible and torch-free (export.trt imports it on JetPack).
"""
import functools
from pathlib import Path

from runtime.contract import ExportError, command
from runtime.formats import default_output, is_checkpoint, lookup

from .work import clean_stale_work_dirs

def exporter(main):
    """An exporter's entry point: the CLI contract (runtime.contract.command; SIGTERM unwinds like
    Ctrl-C, so temporary files and folders go), after removing killed runs' work folders."""
    wrapped = command(main, interrupted="nothing written under the output name")

    @functools.wraps(main)
    def run(argv=None):
        clean_stale_work_dirs()
        return wrapped(argv)
    return run


def source_kind(path):
    """'checkpoint' or 'onnx' from the suffix; ExportError for anything else or a missing file."""
    path = Path(path)
    if not path.is_file():
        raise ExportError("{}: no such file".format(path))
    if is_checkpoint(path):
        return "checkpoint"
    if path.suffix.lower() == lookup("onnx", "fp32").suffix:  # any ONNX: its metadata says what it holds
        return "onnx"
    raise ExportError("{}: expected a student checkpoint (.pt) or an ONNX model (.onnx)".format(path))


OUTPUT_KINDS = {"onnx": "an ONNX model path ending in .onnx", "openvino": "the IR's .xml path (its weights go beside "
                "it as .bin)", "tensorrt": "an engine path ending in .engine"}


def output_path(given, source, name, precision):
    """-o/--output (`given`), else the default next to `source`. A path without the format's suffix is refused
    here, naming the user's path: checked later, the error named the hidden candidate it is staged under."""
    if not given:
        return default_output(source, name, precision)
    out = Path(given)
    suffix = lookup(name, "fp32").suffix
    if out.suffix != suffix:
        raise ExportError("{}: -o/--output expected {}, e.g. {}".format(out, OUTPUT_KINDS[name],
                                                                        out.with_suffix(suffix)))
    return out
