"""Student checkpoint -> ONNX: `python -m export.onnx student.pt [-o student.onnx]`.

The graph takes "image" (N, 3, H, W) float32 and returns "logits" (N, C, H, W) or, with --argmax,
"labels" (N, H, W) uint8 (int32 beyond 255 classes). The batch axis is always dynamic; H and W
are fixed to the checkpoint's input size (or --size HxW) unless --dynamic. The checkpoint
metadata goes into metadata_props, updated with the exported input size and an "export" record.
"""
from __future__ import annotations

import copy
import sys
import warnings
from pathlib import Path

from runtime import metadata
from runtime.contract import ArgumentParser, ExportError, atomic_path, size
from runtime.formats import default_output, require

from .cli import exporter, output_path, source_kind
from .metadata import set_onnx_meta
from .publish import check_writable, publish, space_needed, staged
from .work import writing

MIN_OPSET, MAX_OPSET = 13, 20  # 13: per-channel Q/DQ (INT8); 20: the TorchScript exporter's last


def check_opset(opset: int) -> int:
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(f"--opset {opset} is not supported: use {MIN_OPSET}..{MAX_OPSET} "
                          f"({MIN_OPSET} for per-channel INT8, {MAX_OPSET} is the newest the exporter writes)")
    return opset


def load_student(ckpt):
    """(model, meta) from a student checkpoint; CheckpointError (one line, names the file) otherwise."""
    try:
        from distill import checkpoint
    except ImportError as e:
        raise ExportError(f"{ckpt}: reading a checkpoint needs torch and the training package "
                          f"(pip install 'brd-edge[train]'), or pass an exported .onnx instead ({e})") from None
    return checkpoint.load(ckpt)


def torch_to_onnx(ckpt, out=None, opset: int = 17, height: int | None = None, width: int | None = None,
                  dynamic: bool = False, argmax: bool = False, simplify: bool = True, model_meta=None) -> Path:
    """Export a student checkpoint to ONNX; returns the written path. `model_meta` = (model, meta)
    already loaded (saves a second load when the caller keeps the model for parity)."""
    import torch

    onnx = require("onnx", "export", "ONNX export")
    check_opset(opset)
    if (height is None) != (width is None):
        raise ExportError("give both height and width, or neither")
    if dynamic and height:
        raise ExportError("--dynamic exports a free H and W; it does not take --size")
    ckpt = Path(ckpt)
    out = check_writable(Path(out) if out else default_output(ckpt, "onnx", "fp32"))
    model, meta = model_meta or load_student(ckpt)
    meta = copy.deepcopy(meta)
    trained_size = list(meta["input_size"])
    if height:
        if height % 8 or width % 8:
            raise ExportError(f"--size must be a multiple of 8 in H and W (the head's stride), got {height}x{width}")
        meta["input_size"] = [int(height), int(width)]
    meta["export"] = {"format": "onnx", "opset": opset, "dynamic_hw": bool(dynamic), "trained_input_size": trained_size,
                      "output": metadata.OUTPUT_LABELS if argmax else metadata.OUTPUT_LOGITS}
    h, w = meta["input_size"]
    net = WithArgmax(model, meta["num_classes"]) if argmax else model
    out_name = metadata.OUTPUT_LABELS if argmax else metadata.OUTPUT_LOGITS
    axes = {0: "N", 2: "H", 3: "W"} if dynamic else {0: "N"}
    out_axes = ({0: "N", 1: "H", 2: "W"} if dynamic else {0: "N"}) if argmax else axes
    with writing(out, "the ONNX model"), atomic_path(out) as tmp, warnings.catch_warnings():
        # dynamo=False on purpose: the TorchScript exporter handles these models with no extra deps
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        with torch.no_grad():
            torch.onnx.export(net.eval(), (torch.zeros(1, 3, h, w),), str(tmp), dynamo=False, opset_version=opset,
                              input_names=[metadata.INPUT_NAME], output_names=[out_name],
                              dynamic_axes={metadata.INPUT_NAME: axes, out_name: out_axes}, do_constant_folding=True)
        model_proto = onnx.load(str(tmp))
        if simplify:
            model_proto = simplify_onnx(model_proto)
        set_onnx_meta(model_proto, meta)
        model_proto.producer_name = "brd-edge"
        onnx.checker.check_model(model_proto, full_check=True)
        onnx.save(model_proto, str(tmp))
    return out


def simplify_onnx(model_proto):
    """Constant-fold and fuse with onnxslim (falls back to onnxsim if that is what is installed)."""
    try:
        onnxslim = require("onnxslim", "export", "simplifying ONNX")
        return onnxslim.slim(model_proto)
    except ImportError:
        onnxsim = require("onnxsim", "export", "simplifying ONNX (onnxslim or onnxsim)")
        simplified, ok = onnxsim.simplify(model_proto)
        if not ok:
            raise ExportError("onnxsim could not validate the simplified model; retry with --no-simplify")
        return simplified


def fp32_onnx(src, tmpdir, args=None):
    """(onnx path, torch model or None): the source itself if .onnx, else a fresh FP32 export in
    `tmpdir`; the other exporters start from it."""
    if source_kind(src) == "onnx":
        return Path(src), None
    model, meta = load_student(src)
    opset = getattr(args, "opset", 17) if args is not None else 17
    onnx_path = torch_to_onnx(src, Path(tmpdir) / default_output(src, "onnx", "fp32").name, opset=opset,
                              model_meta=(model, meta))
    return onnx_path, model


class WithArgmax:  # built lazily as an nn.Module subclass so importing this file needs no torch
    def __new__(cls, model, num_classes):
        import torch

        class _WithArgmax(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.model = model
                self.dtype = torch.uint8 if num_classes <= 256 else torch.int32

            def forward(self, x):
                return self.model(x).argmax(1).to(self.dtype)

        return _WithArgmax()


@exporter
def main(argv=None) -> int:
    from .parity import add_parity_args, parity_from_args

    p = ArgumentParser(prog="python -m export.onnx", description=__doc__, examples=(
        "python -m export.onnx runs/brd/student.pt",
        "python -m export.onnx student.pt -o deploy/student.onnx --size 512x1024",
        "python -m export.onnx student.pt --dynamic --argmax --opset 13"))
    p.add_argument("checkpoint", help="student checkpoint (.pt)")
    p.add_argument("-o", "--output", help="output .onnx (default: next to the checkpoint)")
    p.add_argument("--opset", type=int, default=17, help=f"ONNX opset, {MIN_OPSET}..{MAX_OPSET} (default 17)")
    p.add_argument("--size", type=size, metavar="HxW",
                   help="fixed input size, multiples of 8 (default: the checkpoint's input size)")
    p.add_argument("--dynamic", action="store_true", help="free input height and width")
    p.add_argument("--argmax", action="store_true", help="put the per-pixel argmax in the graph (output 'labels')")
    p.add_argument("--no-simplify", action="store_true", help="skip onnxslim")
    add_parity_args(p)
    args = p.parse_args(argv)
    check_opset(args.opset)
    height, width = args.size or (None, None)
    if height and (height % 8 or width % 8):
        p.error(f"--size must be a multiple of 8 in H and W (the head's stride), got {height}x{width}")
    model, meta = load_student(args.checkpoint)  # before the output folder is made: a bad one leaves nothing behind
    out = check_writable(output_path(args.output, args.checkpoint, "onnx", "fp32"), space_needed(args.checkpoint))
    with staged(out) as candidate:  # checked under a temporary name, published only if parity passes
        torch_to_onnx(args.checkpoint, candidate, args.opset, height, width, args.dynamic,
                      args.argmax, not args.no_simplify, model_meta=(model, meta))
        code = parity_from_args(args, candidate, precision="fp32", torch_model=model, final=out)
        kept = publish(candidate, out, code == 0, args.keep_failed, "its parity check")
    if kept == out:
        print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return code


if __name__ == "__main__":
    sys.exit(main())
