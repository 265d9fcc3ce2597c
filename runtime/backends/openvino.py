"""OpenVINO backend (.xml + .bin): device CPU/GPU/NPU/AUTO, async infer requests for throughput.

The IR records the compute precision its parity check and accuracy gate were measured at
(`export.inference_precision` in its metadata, written by export.openvino); the backend compiles at that
precision by default, so what runs is what was checked (a CPU with AVX512-BF16 would otherwise pick bf16).
An IR checked at bf16 (export.openvino --compute bf16) runs at bf16 on a device with native bf16 ('BF16' in
its OPTIMIZATION_CAPABILITIES) and at f32 elsewhere, more precise than what was checked, said in one info line
(run_precision). `inference_precision` (runtime --precision-hint) overrides it, with one warning line: the
run is unchecked.
"""
from __future__ import annotations

import logging
import threading
from collections import deque

import numpy as np

from .. import formats, metadata
from ..contract import ConfigError, ModelError, cause_line
from .base import Backend, Pending, file_precision, output_kind_for, static_dims

_EXTRA = formats.format_for("x.xml").extra
HINTS = {"latency": "LATENCY", "throughput": "THROUGHPUT"}
# our precision names -> OpenVINO's INFERENCE_PRECISION_HINT values
OV_TYPES = {"fp32": "f32", "f32": "f32", "fp16": "f16", "f16": "f16", "bf16": "bf16"}
log = logging.getLogger("runtime.backends.openvino")


def checked_precision(meta):
    """The compute precision ('f32', 'bf16', 'f16') an IR's parity and gate were measured at, or None for a
    file exported before it was recorded."""
    export = meta.get("export") if isinstance(meta.get("export"), dict) else {}
    value = export.get("inference_precision")
    return OV_TYPES.get(str(value), str(value)) if value else None


def run_precision(checked, capabilities):
    """The compute precision an IR checked at `checked` ('f32', 'bf16', None) runs at on a device whose
    OPTIMIZATION_CAPABILITIES are `capabilities`: bf16 only where the device has native bf16 ('BF16'; elsewhere
    OpenVINO emulates it, slower than f32 and no more precise), else f32, which is more precise than what was
    checked; anything else as checked."""
    if checked == "bf16" and "BF16" not in set(capabilities or ()):
        return "f32"
    return checked


def device_capabilities(core, device):
    """OPTIMIZATION_CAPABILITIES of `device`; for AUTO/MULTI (which may pick any of their devices) those every
    device it may pick has; empty where a device does not say."""
    if device.upper().startswith(("AUTO", "MULTI")):
        _, _, listed = device.partition(":")
        names = [n for n in listed.split(",") if n] or list(core.available_devices)
    else:
        names = [device]
    common = None
    for name in names:
        try:
            caps = set(str(c) for c in core.get_property(name, "OPTIMIZATION_CAPABILITIES"))
        except Exception:  # a device that does not report it: assume nothing
            caps = set()
        common = caps if common is None else common & caps
    return sorted(common or ())


class _Request(Pending):
    def __init__(self, backend, request):
        self._backend, self._request = backend, request

    def wait(self, copy=True):
        self._request.wait()
        out = self._request.get_output_tensor(0).data
        if copy:  # the tensor is reused by the next request (copy=False: a timing loop that drops it)
            out = out.copy()
        self._backend._release(self._request)
        return out


class OpenVINOBackend(Backend):
    name = "openvino"

    def __init__(self, path, device="auto", threads=None, hint="latency", requests=None, inference_precision=None,
                 labels=False, batch=None):
        super().__init__(path, device)
        ov = formats.require("openvino", _EXTRA, "the OpenVINO backend")
        device = {"auto": "AUTO", "cpu": "CPU", "gpu": "GPU", "npu": "NPU"}.get(str(device).lower(), str(device))
        if hint not in HINTS:
            raise ConfigError("{}: unknown OpenVINO hint {!r}; expected latency or throughput".format(path, hint))
        core = ov.Core()
        try:
            model = core.read_model(str(path))
        except Exception as e:
            raise ModelError("{}: OpenVINO cannot read it ({}: {})".format(
                path, type(e).__name__, cause_line(e, 300))) from None
        if not model.has_rt_info(metadata.META_KEY):
            raise metadata.MetadataError("{}: no {!r} entry in the OpenVINO rt_info (export it with "
                                         "python -m export.openvino)".format(path, metadata.META_KEY))
        self.meta = metadata.loads(model.get_rt_info(metadata.META_KEY).astype(str), str(path))
        if batch:
            _fix_batch(model, int(batch))
        if labels:
            _argmax_in_graph(ov, model)
        config = {"PERFORMANCE_HINT": HINTS[hint]}
        checked = checked_precision(self.meta)
        if inference_precision:
            inference_precision = OV_TYPES.get(str(inference_precision), str(inference_precision))
            if checked and inference_precision != checked:
                log.warning("%s: computing in %s, not %s, the precision its parity check and accuracy gate were "
                            "measured at: this run is unchecked", path, inference_precision, checked)
        else:  # the precision it was checked at (e.g. f32 on a CPU that would otherwise run bf16)
            capabilities = device_capabilities(core, device) if checked == "bf16" else ()
            inference_precision = run_precision(checked, capabilities)
            if inference_precision != checked:
                log.info("%s: checked at %s; %s has no native bf16 (its capabilities: %s), so it computes in %s, "
                         "more precise than what was checked", path, checked, device,
                         ", ".join(capabilities) or "none reported", inference_precision)
        self.checked_precision = checked
        if inference_precision:
            config["INFERENCE_PRECISION_HINT"] = inference_precision
        if threads and device in ("CPU", "AUTO"):
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            self.compiled = core.compile_model(model, device, config)
        except Exception as e:
            raise ConfigError("{}: OpenVINO cannot compile it for {} (available: {}; {})".format(
                path, device, ", ".join(core.available_devices), cause_line(e, 300))) from None
        inp, out = self.compiled.input(0), self.compiled.output(0)
        self.input_name = inp.get_any_name()
        self.input_shape = static_dims(d.get_length() if d.is_static else None for d in inp.get_partial_shape())
        self.input_dtype = np.dtype(inp.get_element_type().to_dtype())
        names = out.get_names()
        self.output_kind = output_kind_for(metadata.OUTPUT_LABELS if metadata.OUTPUT_LABELS in names else None,
                                           out.get_element_type().is_integral())
        self.device = device if device != "AUTO" else "AUTO:" + ",".join(self._property("EXECUTION_DEVICES", ["?"]))
        # what the device computes in (CPUs with bf16 support default to bf16), not just the file's weights
        computed = self._property("INFERENCE_PRECISION_HINT", None)
        if computed is None and self.device.startswith("AUTO:"):  # AUTO does not say; its device does
            try:
                computed = core.get_property(self.device[5:].split(",")[0], "INFERENCE_PRECISION_HINT")
            except Exception:
                computed = None
        computed = computed.get_type_name() if hasattr(computed, "get_type_name") else str(computed or "?")
        computed = {"f32": "fp32", "f16": "fp16"}.get(computed, computed)
        if inference_precision:
            computed = {"f32": "fp32", "f16": "fp16"}.get(inference_precision, inference_precision)
        weights = file_precision(self.meta)
        self.precision = computed if weights in (None, computed) else "{} ({} compute)".format(weights, computed)
        self.threads = self._property("INFERENCE_NUM_THREADS", threads or "auto")
        n = int(requests or self._property("OPTIMAL_NUMBER_OF_INFER_REQUESTS", 1))
        self.max_in_flight = max(1, n)
        self._idle = deque(self.compiled.create_infer_request() for _ in range(self.max_in_flight))
        self._lock = threading.Lock()  # several streams' threads take and give back requests

    def share(self, streams):
        """Several streams on this one compiled model: at least one infer request per stream (more when the
        device's hint asks for more), split evenly, so every stream keeps its share in flight at once."""
        with self._lock:
            while self.max_in_flight < streams:
                self._idle.append(self.compiled.create_infer_request())
                self.max_in_flight += 1
        return super().share(streams)

    def _release(self, request):
        with self._lock:
            self._idle.append(request)

    def _property(self, name, default):
        try:
            return self.compiled.get_property(name)
        except Exception:  # not every device reports every property
            return default

    def start(self, batch):
        with self._lock:
            if not self._idle:
                raise RuntimeError("{}: more than {} requests in flight; wait() one first".format(
                    self.path, self.max_in_flight))
            request = self._idle.popleft()
        # share_inputs: OpenVINO reads the caller's array instead of copying it (a copy of a full-size input
        # per call); the caller keeps it unchanged until wait() (the pipeline's ring buffers do)
        request.start_async({0: self._check_batch(batch)}, share_inputs=True)
        return _Request(self, request)

    def infer(self, batch):
        return self.start(batch).wait()


def _fix_batch(model, batch):
    """A dynamic batch dimension fixed to `batch` before compiling (the caller's promise: every call carries
    that many images). The CPU plugin runs a static shape faster than a dynamic one, which it shapes and plans
    memory for at run time, and the in-graph argmax more so; the other dimensions are left as exported."""
    shape = model.input(0).get_partial_shape()
    if shape.rank.is_static and shape.rank.get_length() == 4 and shape[0].is_dynamic:
        shape[0] = batch
        model.reshape({model.input(0): shape})


def _argmax_in_graph(ov, model):
    """Replace a logits output (N, C, H, W) by its class map (N, H, W): a TopK(k=1) over classes that runs in
    OpenVINO's threads with the rest of the graph, instead of a numpy argmax over C planes per frame."""
    result = model.get_results()[0]
    logits = result.input_value(0)
    if logits.get_element_type().is_integral() or logits.get_partial_shape().rank.get_length() != 4:
        return  # already a class map
    try:
        from openvino import opset13 as ops
    except ImportError:  # OpenVINO before 2024
        from openvino.runtime import opset11 as ops

    topk = ops.topk(logits, ops.constant(np.int64(1)), axis=1, mode="max", sort="none",
                    index_element_type=ov.Type.i32)
    labels = ops.squeeze(topk.output(1), ops.constant(np.int64(1)))
    labels.output(0).get_tensor().set_names({metadata.OUTPUT_LABELS})
    result.input(0).replace_source_output(labels.output(0))
    model.validate_nodes_and_infer_types()
