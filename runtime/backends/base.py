"""The one backend interface: load a model file, read its metadata, run a batch.

A backend takes a float32 NCHW batch (RGB, already normalised with the metadata's mean/std) and
returns either logits (N, C, H, W) or a class map (N, H, W), saying which in `output_kind`.
`labels=True` tells a backend that the caller needs class maps only: OpenVINO then computes the argmax in
its own graph (and says so in `output_kind`); the others run the graph as exported. `batch=N` (OpenVINO only)
promises that every call carries N images: a dynamic batch dimension is compiled as N.
`start()` / `Pending.wait()` is the asynchronous form the pipeline uses to keep several requests in
flight; the default runs `infer` at once, backends with real async requests (OpenVINO) override it.
Python 3.8 compatible; imports no torch.
"""
from __future__ import annotations

import inspect
import logging
import os
from pathlib import Path

import numpy as np

from .. import formats, metadata
from ..contract import ConfigError, ModelError


log = logging.getLogger("runtime.backends")


class ModelFileMissing(ModelError, FileNotFoundError):
    """The model file named does not exist."""


class Pending:
    """A request in flight; `wait()` returns its output."""

    def __init__(self, output):
        self._output = output

    def wait(self, copy=True):
        """The output; copy=False lets a backend hand out its own buffer (valid until its next request)."""
        return self._output


class Backend:
    """Base class. Subclasses set: meta, input_shape, input_dtype, output_kind, name, precision,
    device, threads, and implement `infer`."""

    name = "base"
    max_in_flight = 1  # how many start()ed requests may usefully overlap

    def __init__(self, path, device="auto"):
        self.path = Path(path)
        if not self.path.exists():
            raise ModelFileMissing("{}: no such model file".format(self.path))
        self.meta = {}
        self.input_shape = (1, 3, None, None)  # ints, None where the model is dynamic
        self.input_dtype = np.dtype("float32")
        self.output_kind = metadata.OUTPUT_LOGITS
        self.precision = "fp32"
        self.device = str(device)
        self.threads = None

    def infer(self, batch):
        raise NotImplementedError

    def start(self, batch):
        return Pending(self.infer(batch))

    def share(self, streams):
        """Serve `streams` pipelines, each from threads of its own (runtime.run with several --source): how
        many requests each stream may keep in flight, so that together they never ask for more than there
        are. A backend whose `infer` is not safe from several threads at once serialises it (TensorRT)."""
        return max(1, int(self.max_in_flight) // max(1, int(streams)))

    def close(self):
        pass

    def describe(self):
        """What reports print next to the numbers."""
        return {"backend": self.name, "model": str(self.path), "precision": self.precision,
                "device": self.device, "threads": self.threads, "input_shape": list(self.input_shape),
                "output": self.output_kind, "arch": self.meta.get("arch"), "cpus": os.cpu_count()}

    def _check_batch(self, batch):
        if not isinstance(batch, np.ndarray) or batch.ndim != 4:
            raise ValueError("{}: infer expects an NCHW numpy array, got {}".format(
                self.path, getattr(batch, "shape", type(batch).__name__)))
        if batch.dtype != self.input_dtype:
            batch = batch.astype(self.input_dtype)
        return np.ascontiguousarray(batch)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def output_kind_for(name, is_integer):
    """'labels' when the graph already does the argmax (named so, or an integer output)."""
    return metadata.OUTPUT_LABELS if (name == metadata.OUTPUT_LABELS or is_integer) else metadata.OUTPUT_LOGITS


def file_precision(meta, default=None):
    """The precision the exporter recorded (meta["export"]["precision"], or a top-level "precision")."""
    export = meta.get("export") if isinstance(meta.get("export"), dict) else {}
    return export.get("precision") or meta.get("precision") or default


def static_dims(shape):
    """Model-reported shape -> tuple of ints, None for dynamic dims (strings, -1, 0, None)."""
    out = []
    for d in shape:
        try:
            d = int(d)
        except (TypeError, ValueError):
            d = None
        out.append(d if d is not None and d > 0 else None)
    return tuple(out)


# backend option -> the runtime.run / runtime.bench flag that sets it (what an error names)
FLAGS = {"device": "--device", "threads": "--threads", "hint": "--hint", "requests": "--requests",
         "inference_precision": "--precision-hint"}


def load_backend(path, warn_gate=True, **options):
    """Open a model file with the backend its suffix names in runtime.formats.FORMATS. Options the
    backend does not take are a ConfigError naming them (a misspelt one is never dropped silently);
    pass only the options that were asked for. `warn_gate`: warn about a model that did not pass its gate
    (False only for the exporter's own candidate, which awaits that very gate)."""
    fmt = formats.format_for(path)
    if not Path(path).exists():
        raise ModelFileMissing("{}: no such model file".format(path))
    cls = formats.backend_class(fmt)
    takes = [name for name in inspect.signature(cls.__init__).parameters if name not in ("self", "path")]
    unknown = sorted(set(options) - set(takes))
    if unknown:  # named as the user typed them: the command-line flag where there is one
        raise ConfigError("{}: the {} backend takes no {} (it takes {})".format(
            path, cls.name, ", ".join(FLAGS.get(k, k) for k in unknown),
            ", ".join(FLAGS.get(k, k) for k in takes if k not in ("labels", "batch"))))
    backend = cls(path, **options)
    warning = gate_warning(backend.meta, path) if warn_gate else None
    if warning:
        log.warning("%s", warning)
    return backend


def ungated(meta):
    """True for an INT8 model whose exporter was told --no-gate (its metadata records "gate": null)."""
    export = meta.get("export") if isinstance(meta.get("export"), dict) else {}
    return export.get("precision") == "int8" and "gate" in export and export["gate"] is None


def gated_kind(meta):
    """What a model's accuracy gate vouches for: 'INT8' for an INT8 model, 'bf16-compute' for an OpenVINO IR
    checked at bf16 (export.openvino --compute bf16), None for a model that has no gate."""
    export = meta.get("export") if isinstance(meta.get("export"), dict) else {}
    if export.get("precision") == "int8":
        return "INT8"
    if str(export.get("inference_precision")) == "bf16":
        return "bf16-compute"
    return None


def gate_warning(meta, path):
    """The one line the runtime warns with when it loads an INT8 model (or an IR checked at bf16 compute) that
    did not pass its accuracy gate: the verdict the model carries (export.gate, written after the gate:
    `passed`), else None. Warned: a model kept after a failed gate (--keep-failed), one exported with --no-gate
    (gate null), one whose gate never gave a verdict (gate missing, or from exporters that wrote it before the
    gate ran)."""
    export = meta.get("export") if isinstance(meta.get("export"), dict) else {}
    kind = gated_kind(meta)
    if kind is None:
        return None
    if ungated(meta):
        return ("{}: INT8 published without its accuracy gate (exported with --no-gate): its accuracy was never "
                "checked on labelled data".format(path))
    gate = export.get("gate")
    if not isinstance(gate, dict) or gate.get("passed") is None:
        return ("{}: {} model with no accuracy gate verdict in its metadata: its accuracy is unchecked (re-export "
                "it with its gate)".format(path, kind))
    if gate["passed"] is True:
        return None
    if gate.get("not_run"):
        why = "its gate never ran ({})".format(gate["not_run"])
    else:
        why = "mIoU drop {:.2f} (max {:.2f}), boundary-F1 drop {:.2f} (max {:.2f}) points".format(
            *(float(gate.get(k) or 0.0) for k in ("drop", "max_drop", "boundary_f1_drop", "max_boundary_drop")))
    return ("{}: {} model that FAILED its accuracy gate ({}; kept with --keep-failed, see {}): do not deploy "
            "it".format(path, kind, why, gate.get("report") or "its export log"))
