"""ONNX Runtime backend (.onnx): CPU, CUDA or TensorRT execution providers, whichever is present.

One session serves several streams (runtime.run --source A --source B): `InferenceSession.run` is safe to
call from several threads at once, so each stream's inference thread runs its own frames on it concurrently.
"""
from __future__ import annotations

import logging

import numpy as np

from .. import formats, metadata
from ..contract import ConfigError, ModelError, cause_line
from .base import Backend, file_precision, output_kind_for, static_dims

_EXTRA = formats.format_for("x.onnx").extra
log = logging.getLogger("runtime.backends.onnxruntime")

# --device -> providers to ask for, best first; CPU is always the last resort.
PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "trt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
    "auto": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, path, device="auto", threads=None, labels=False):
        # labels: the caller wants class maps only. The graph is run as exported (export.onnx --argmax puts
        # the argmax in it); a logits output is argmax-ed by runtime.preprocess.postprocess.
        super().__init__(path, device)
        ort = formats.require("onnxruntime", _EXTRA, "the ONNX Runtime backend")
        device = str(device).lower()
        if device not in PROVIDERS:
            raise ConfigError("{}: unknown ONNX Runtime device {!r}; expected one of {}".format(
                path, device, ", ".join(PROVIDERS)))
        available = ort.get_available_providers()
        providers = [p for p in PROVIDERS[device] if p in available]
        if device != "auto" and PROVIDERS[device][0] not in available:
            raise ConfigError("{}: --device {} needs {}, but this onnxruntime has only {} "
                               "(install onnxruntime-gpu for CUDA/TensorRT)".format(
                                   path, device, PROVIDERS[device][0], ", ".join(available)))
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ModelError("{}: ONNX Runtime cannot load it ({}: {})".format(
                path, type(e).__name__, cause_line(e, 300))) from None
        props = self.session.get_modelmeta().custom_metadata_map
        if metadata.META_KEY not in props:
            raise metadata.MetadataError("{}: no {!r} entry in the ONNX metadata_props (export it with "
                                         "python -m export.onnx)".format(path, metadata.META_KEY))
        self.meta = metadata.loads(props[metadata.META_KEY], str(path))
        inp, out = self.session.get_inputs()[0], self.session.get_outputs()[0]
        self.input_name, self.output_name = inp.name, out.name
        self.input_shape = static_dims(inp.shape)
        self.input_dtype = np.dtype("float16" if "float16" in inp.type else "float32")
        self.output_kind = output_kind_for(out.name, "int" in out.type)
        self.precision = file_precision(self.meta, "fp16" if self.input_dtype == np.float16 else "fp32")
        self.device = self.session.get_providers()[0].replace("ExecutionProvider", "")
        self.threads = int(threads) if threads else opts.intra_op_num_threads or "auto"
        if self.device == "CPU" and metadata.quantization_target(self.meta) == "trt":
            log.warning("%s: this INT8 model was quantised for TensorRT (symmetric int8 activations); ONNX Runtime's "
                        "CPU kernels run it slower than its FP32 model. For the CPU: python -m export.quantize "
                        "MODEL --target ort", path)

    def infer(self, batch):
        batch = self._check_batch(batch)
        return self.session.run([self.output_name], {self.input_name: batch})[0]

