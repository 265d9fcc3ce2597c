"""TensorRT backend (.engine + JSON sidecar `<engine>.json`).

An engine only runs on the TensorRT version and GPU architecture it was built for, so the sidecar
written by export.trt records both (with the metadata) and the engine is refused up front, with
a clear message, when they differ from this machine (runtime/trt_sidecar.py). One tensor API: the
name-based one of TensorRT >= 8.5 (num_io_tensors, set_input_shape, set_tensor_address,
execute_async_v3), the oldest that export.trt builds for (JetPack 5.1). Device memory through
pycuda, or cuda-python (cudart) where pycuda is absent. Python 3.8 compatible (JetPack 5).
"""
from __future__ import annotations

import threading

import numpy as np

from .. import formats
from ..contract import ModelError
from ..trt_sidecar import SidecarError, check_sidecar, read_sidecar
from .base import Backend, output_kind_for, static_dims

_EXTRA = formats.format_for("x.engine").extra


__all__ = ["TensorRTBackend", "SidecarError", "open_cuda"]


# -- device memory ----------------------------------------------------------------------------
class _PyCuda:
    """pycuda: a retained primary context pushed around every call (the loop infers on its own thread)."""

    name = "pycuda"

    def __init__(self, cuda, device=0):
        self.cuda = cuda
        cuda.init()
        self.device = cuda.Device(device)
        self.context = self.device.retain_primary_context()
        self.context.push()
        try:
            self.stream = cuda.Stream()
        finally:
            self.context.pop()

    def capability(self):
        return self.device.compute_capability()

    def __enter__(self):
        self.context.push()

    def __exit__(self, *exc):
        self.context.pop()

    @property
    def stream_handle(self):
        return self.stream.handle

    def alloc(self, nbytes):
        return self.cuda.mem_alloc(max(1, int(nbytes)))

    def pinned(self, shape, dtype):
        return self.cuda.pagelocked_empty(tuple(shape), dtype)

    def htod(self, dst, host):
        self.cuda.memcpy_htod_async(dst, host, self.stream)

    def dtoh(self, host, src):
        self.cuda.memcpy_dtoh_async(host, src, self.stream)

    def sync(self):
        self.stream.synchronize()

    def free(self, ptr):
        ptr.free()


class _CudaPython:
    """cuda-python's runtime API (the primary context is current on every thread by itself)."""

    name = "cuda-python"

    def __init__(self, cudart, device=0):
        self.cudart = cudart
        self._check(cudart.cudaSetDevice(device))
        self.device_index = device
        self.stream = self._check(cudart.cudaStreamCreate())

    def _check(self, result):
        err, rest = result[0], result[1:]
        if int(err) != 0:
            raise RuntimeError("CUDA error {}".format(err))
        return rest[0] if len(rest) == 1 else (rest or None)

    def capability(self):
        props = self._check(self.cudart.cudaGetDeviceProperties(self.device_index))
        return props.major, props.minor

    def __enter__(self):
        self._check(self.cudart.cudaSetDevice(self.device_index))

    def __exit__(self, *exc):
        pass

    @property
    def stream_handle(self):
        return int(self.stream)

    def alloc(self, nbytes):
        return self._check(self.cudart.cudaMalloc(max(1, int(nbytes))))

    def pinned(self, shape, dtype):
        return np.empty(tuple(shape), dtype)

    def htod(self, dst, host):
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(self.cudart.cudaMemcpyAsync(dst, host.ctypes.data, host.nbytes, kind, self.stream))

    def dtoh(self, host, src):
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(self.cudart.cudaMemcpyAsync(host.ctypes.data, src, host.nbytes, kind, self.stream))

    def sync(self):
        self._check(self.cudart.cudaStreamSynchronize(self.stream))

    def free(self, ptr):
        self.cudart.cudaFree(ptr)


def open_cuda(device=0):
    """pycuda when installed, else cuda-python; one clear line when neither is."""
    try:
        import pycuda.driver as cuda
        return _PyCuda(cuda, device)
    except ImportError:
        pass
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError:
            raise formats.MissingDependency(
                "pycuda (or cuda-python) is not installed for the TensorRT backend's device memory: "
                "pip install pycuda (on x86 pip install 'brd-edge[{}]' installs it with TensorRT; on a Jetson "
                "TensorRT itself comes with JetPack)".format(_EXTRA)) from None
    return _CudaPython(cudart, device)


# -- the backend ------------------------------------------------------------------------------
class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, path, device="auto", gpu=0, labels=False):
        # labels: as for ONNX Runtime, the engine runs as built (export with --argmax for class maps)
        super().__init__(path, "cuda:{}".format(gpu))
        side = read_sidecar(path)  # before importing anything: a wrong file fails the same everywhere
        trt = formats.require("tensorrt", _EXTRA, "the TensorRT backend")
        self.cuda = open_cuda(gpu)
        check_sidecar(side, trt.__version__, self.cuda.capability(), str(path))
        self.meta, self.sidecar = side["meta"], side
        self.precision = side.get("precision", self.meta.get("precision", "fp32"))
        self.trt = trt
        self.logger = trt.Logger(trt.Logger.WARNING)
        with self.cuda:
            self.engine = trt.Runtime(self.logger).deserialize_cuda_engine(self.path.read_bytes())
            if self.engine is None:
                raise ModelError("{}: TensorRT could not deserialize the engine (see the log above)".format(path))
            self.context = self.engine.create_execution_context()
        if not hasattr(self.context, "execute_async_v3"):  # check_sidecar refused other versions already
            raise formats.MissingDependency("TensorRT {} is too old: the backend needs 8.5 or newer "
                                            "(pip install 'brd-edge[{}]')".format(trt.__version__, _EXTRA))
        self.io = self._io_tensors()
        inputs = [t for t in self.io if t["input"]]
        outputs = [t for t in self.io if not t["input"]]
        if len(inputs) != 1 or not outputs:
            raise ModelError("{}: expected one input and at least one output, found {}".format(
                path, [t["name"] for t in self.io]))
        self.input, self.output = inputs[0], outputs[0]
        self.input_shape = static_dims(self.input["shape"])
        self.input_dtype = np.dtype(self.input["dtype"])
        self.output_kind = output_kind_for(self.output["name"], np.issubdtype(self.output["dtype"], np.integer))
        self.device = "cuda:{} (TensorRT {}, {})".format(gpu, trt.__version__, self.cuda.name)
        self._buffers = {}  # input shape -> (device ptrs by name, host output arrays by name)
        # one execution context, one stream, one set of buffers: several streams (runtime.run with several
        # --source) take turns, one request at a time
        self._lock = threading.Lock()

    def _io_tensors(self):
        engine, trt = self.engine, self.trt
        io = []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            io.append({"name": name, "input": engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT,
                       "shape": tuple(engine.get_tensor_shape(name)), "dtype": trt.nptype(engine.get_tensor_dtype(name))})
        return io

    def _prepare(self, shape):
        """Set the input shape and (re)use device buffers sized for it."""
        if shape in self._buffers:
            return self._buffers[shape]
        for ptrs, _ in self._buffers.values():
            for p in ptrs.values():
                self.cuda.free(p)
        self._buffers.clear()
        ctx = self.context
        ctx.set_input_shape(self.input["name"], shape)
        ptrs, hosts = {}, {}
        for t in self.io:
            tshape = shape if t["input"] else tuple(ctx.get_tensor_shape(t["name"]))
            nbytes = int(np.prod(tshape)) * np.dtype(t["dtype"]).itemsize
            ptrs[t["name"]] = self.cuda.alloc(nbytes)
            if not t["input"]:
                hosts[t["name"]] = self.cuda.pinned(tshape, t["dtype"])
            ctx.set_tensor_address(t["name"], int(ptrs[t["name"]]))
        self._buffers[shape] = (ptrs, hosts)
        return ptrs, hosts

    def infer(self, batch):
        batch = self._check_batch(batch)
        with self._lock, self.cuda:
            ptrs, hosts = self._prepare(tuple(batch.shape))
            self.cuda.htod(ptrs[self.input["name"]], batch)
            if not self.context.execute_async_v3(self.cuda.stream_handle):
                raise RuntimeError("{}: TensorRT execution failed (see the log above)".format(self.path))
            out = hosts[self.output["name"]]
            self.cuda.dtoh(out, ptrs[self.output["name"]])
            self.cuda.sync()
        return out.copy()

    def close(self):
        if getattr(self, "_buffers", None):
            with self.cuda:
                for ptrs, _ in self._buffers.values():
                    for p in ptrs.values():
                        self.cuda.free(p)
            self._buffers.clear()
