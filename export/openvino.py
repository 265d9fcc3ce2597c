"""Student checkpoint or ONNX -> OpenVINO IR (.xml + .bin):
`python -m export.openvino student.pt|student.onnx [--precision fp32|fp16|int8] [--compute f32|bf16]`.

The metadata JSON goes into the IR's rt_info under META_KEY. FP32 stays FP32 (save_model would
compress weights to FP16 by default); FP16 stores FP16 weights; INT8 is NNCF post-training
quantisation calibrated on the dataset (optionally accuracy-controlled to meet --max-drop).

--compute is the precision the IR computes in, checked and recorded (export.inference_precision): f32 by
default; bf16 (FP32 or INT8 IR) runs parity and the accuracy gate with the IR compiled at bf16, against the
FP32 IR at f32, and records bf16 only when OpenVINO compiled it at bf16 for both. The runtime then computes
in bf16 on CPUs with native bf16 (AVX512-BF16 or AMX) and in f32 elsewhere.
Given an .onnx this module needs neither torch nor distill (the accuracy gate aside).
"""
from __future__ import annotations

import copy
import json
import os
import sys
import tempfile
from pathlib import Path

from runtime import metadata
from runtime.contract import ArgumentParser, ExportError, cause_line, current_umask, pid_tag
from runtime.formats import FORMATS, default_output, lookup, require

from .cli import exporter, output_path, source_kind
from .gate import add_gate_args, gate_record, require_gate
from .metadata import CHECKED_PRECISION, COMPUTE_PRECISIONS, onnx_meta
from .onnx import check_opset, fp32_onnx
from .publish import check_writable, publish, sibling, space_needed, staged
from .work import work_dir, writing

PRECISIONS = tuple(f.precision for f in FORMATS if f.name == "openvino")
BF16_NEEDS_GATE = ("--compute bf16 records bf16 as checked, so it is published only after its accuracy gate at "
                   "bf16: pass --data-root DIR (the dataset the model was trained on); to run bf16 unchecked, "
                   "use the runtime's --precision-hint bf16 instead")


def save_ir(model, out: Path, compress_to_fp16: bool):
    """ov.save_model to temporary names in the output folder, then rename .bin and .xml into place; a full
    disk (OpenVINO says `basic_ios::clear`) is one OutputError naming `out`."""
    ov = require("openvino", "openvino")
    with writing(out, "the OpenVINO IR"):
        fd, tmp = tempfile.mkstemp(prefix=f".{out.stem}.{pid_tag()}.", suffix=".tmp.xml", dir=str(out.parent))
        os.close(fd)
        tmp_xml = Path(tmp)
        tmp_bin = tmp_xml.with_suffix(".bin")
        try:
            ov.save_model(model, str(tmp_xml), compress_to_fp16=compress_to_fp16)
            for f in (tmp_xml, tmp_bin):
                os.chmod(f, 0o666 & ~current_umask())
            os.replace(tmp_bin, out.with_suffix(".bin"))
            os.replace(tmp_xml, out)
        finally:
            for f in (tmp_xml, tmp_bin):
                if f.exists():
                    f.unlink()


def onnx_to_openvino(src, out=None, precision: str = "fp32", calib_images=None, validation=None,
                     max_drop: float | None = None, max_boundary_drop: float | None = None, gate=None,
                     compute: str = CHECKED_PRECISION) -> Path:
    """Convert an FP32 ONNX model (with BRD Edge metadata) to IR at `precision`; returns the .xml.

    int8 needs `calib_images` (uint8 RGB); with `validation` [(image, label)] it uses NNCF's
    accuracy-controlled quantisation within `max_drop` (mIoU) and `max_boundary_drop` (boundary F1) points.
    `compute` ('f32', or 'bf16' for an FP32 or INT8 IR) is recorded as export.inference_precision: what parity
    and the gate compile the IR at, and what the runtime runs it at by default.
    An INT8 IR, and one to be checked at bf16, records `gate` (export.gate: the gate it is published under,
    export.gate.gate_record; None for an INT8 one nobody gates, which the runtime warns about).
    """
    ov = require("openvino", "openvino", "OpenVINO export")
    if precision not in PRECISIONS:
        raise ExportError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    check_compute(precision, compute)
    src = Path(src)
    out = Path(out) if out else default_output(src, "openvino", precision)
    if out.suffix != lookup("openvino", "fp32").suffix:
        raise ExportError(f"{out}: OpenVINO IR output must end in .xml")
    check_writable(out)
    meta = copy.deepcopy(onnx_meta(src))
    try:
        model = ov.convert_model(str(src))
    except Exception as e:
        raise ExportError(f"{src}: OpenVINO cannot convert it ({cause_line(e)})") from None
    export = meta.setdefault("export", {})
    export.update(format="openvino", precision=precision, openvino=ov.__version__.split("-")[0],
                  inference_precision=compute)
    if compute != CHECKED_PRECISION:
        export["gate"] = gate
    if precision == "int8":
        from .quantize import quantize_openvino_int8

        model = quantize_openvino_int8(model, calib_images, meta, validation, max_drop, max_boundary_drop)
        export["quantization"] = {"tool": "nncf", "accuracy_control": validation is not None,
                                  "calibration_images": len(calib_images)}
        export["gate"] = gate
        if validation is not None:
            export["quantization"].update(max_drop=max_drop, max_boundary_drop=max_boundary_drop)
    model.set_rt_info(metadata.dumps(meta), [metadata.META_KEY])
    save_ir(model, out, compress_to_fp16=precision == "fp16")
    return out


def check_compute(precision: str, compute: str) -> None:
    """--compute with --precision: f32 for any IR; bf16 for an FP32 or INT8 one (FP16 weights computed in bf16
    would lose the mantissa bits FP16 keeps)."""
    if compute not in COMPUTE_PRECISIONS:
        raise ExportError(f"unknown compute precision {compute!r}: use one of {', '.join(COMPUTE_PRECISIONS)}")
    if compute == "bf16" and precision == "fp16":
        raise ExportError("--compute bf16 is for an FP32 or INT8 IR (bf16 keeps fewer mantissa bits than the FP16 "
                          "weights): use --precision fp32 --compute bf16")


def check_measured(out, compute: str, parity_record, gate) -> None:
    """After the checks: OpenVINO compiled the candidate at `compute` for parity (its record, when it ran) and
    for the gate, else an ExportError (nothing is published: what the metadata would record was not measured)."""
    measured = {"the accuracy gate": gate.get("compute")}
    if parity_record is not None and parity_record.exists():
        measured["the parity check"] = json.loads(parity_record.read_text()).get("compute")
    wrong = {k: v for k, v in measured.items() if v != compute}
    if wrong:
        raise ExportError(f"{out}: asked to check it at {compute}, but OpenVINO compiled it at "
                          f"{', '.join(f'{v} for {k}' for k, v in wrong.items())}: {compute} was not measured, "
                          "nothing written")


def _parser():
    from .data import add_data_args
    from .parity import add_parity_args

    p = ArgumentParser(prog="python -m export.openvino", description=__doc__, examples=(
        "python -m export.openvino student.onnx",
        "python -m export.openvino student.pt --compute bf16 --data-root ../shared/camvid   # checked at bf16",
        "python -m export.openvino student.onnx --precision int8 --calib-dir calib/ --no-gate   # unchecked"))
    p.add_argument("source", help="student checkpoint (.pt) or ONNX model (.onnx)")
    p.add_argument("-o", "--output", help="output .xml (default: next to the source; .fp16/.int8 infix)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32", help="weights (default fp32)")
    p.add_argument("--compute", choices=COMPUTE_PRECISIONS, default=CHECKED_PRECISION,
                   help="the compute precision parity and the accuracy gate run the IR at, recorded in it for the "
                        "runtime (default f32); bf16 (FP32 or INT8 IR, needs --data-root): the runtime computes in "
                        "bf16 on CPUs with native bf16, in f32 elsewhere")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset of the intermediate export (.pt source)")
    add_gate_args(p)
    p.add_argument("--accuracy-control", action="store_true",
                   help="INT8: NNCF accuracy-controlled quantisation to stay within --max-drop and "
                        "--max-boundary-drop (needs --data-root)")
    add_data_args(p)
    add_parity_args(p)
    return p


def _check_args(args) -> bool:
    """Before any work: what the flags ask is possible. Returns whether the export is gated (INT8, bf16)."""
    from .quantize import refuse_quantized

    if source_kind(args.source) == "onnx":
        refuse_quantized(args.source, "export.openvino")  # an IR of a Q/DQ model is not the FP32 one it claims
    check_opset(args.opset)
    check_compute(args.precision, args.compute)
    if args.compute == "bf16" and (args.no_gate or not args.data_root):
        raise ExportError(BF16_NEEDS_GATE)  # bf16 is recorded only as its gate measured it
    if args.precision == "int8":
        require_gate(args)  # INT8 is published gated, or explicitly not
        if args.accuracy_control and args.no_gate:
            raise ExportError("--accuracy-control needs labelled data, --no-gate says there is none: drop one")
    return args.precision == "int8" or args.compute == "bf16"


def _gate(args, src_onnx, candidate, out, validation, tmpdir):
    """The accuracy gate: the FP32 IR at f32 against the candidate at its compute precision; for bf16, checks
    that OpenVINO compiled the candidate at bf16 for parity and the gate (check_measured)."""
    from .quantize import accuracy_gate

    fp32_xml = onnx_to_openvino(src_onnx, Path(tmpdir) / "fp32.xml", "fp32")
    gate = accuracy_gate(fp32_xml, candidate, validation, args.max_drop, name=out,
                         max_boundary_drop=args.max_boundary_drop,
                         label="int8" if args.precision == "int8" else args.compute)
    if args.compute != CHECKED_PRECISION:
        check_measured(out, args.compute, None if args.skip_parity else sibling(candidate, ".parity.json"), gate)
    return gate


@exporter
def main(argv=None) -> int:
    from .data import calibration_images
    from .parity import parity_from_args

    args = _parser().parse_args(argv)
    gated = _check_args(args)
    src = Path(args.source)
    out = output_path(args.output, src, "openvino", args.precision)
    check_writable(out, space_needed(src))
    with work_dir() as tmpdir, staged(out) as candidate:  # published only once parity and the gate pass
        from .quantize import validation_items

        src_onnx, torch_model = fp32_onnx(src, tmpdir, args)
        meta = onnx_meta(src_onnx)
        images = validation = None
        if gated:
            validation = None if args.no_gate else validation_items(args, meta)
        if args.precision == "int8":
            images = calibration_images(meta, args.data_root, args.dataset, args.calib_dir, args.num_calib)
            if args.accuracy_control and not validation:
                raise ExportError("--accuracy-control needs a labelled validation split: pass --data-root")
        onnx_to_openvino(src_onnx, candidate, args.precision, images,
                         validation if args.accuracy_control else None, args.max_drop, args.max_boundary_drop,
                         gate=gate_record(args, out), compute=args.compute)
        print(f"converted {out.name} ({args.precision}, {args.compute} compute); checking it")
        code = parity_from_args(args, candidate, args.precision, torch_model, reference_onnx=src_onnx, final=out)
        gate = None
        if gated and validation is not None and code == 0:
            gate = _gate(args, src_onnx, candidate, out, validation, tmpdir)
            code = 0 if gate["passed"] else 1
        why = "its accuracy gate" if gate and not gate["passed"] else "its parity check"
        kept = publish(candidate, out, code == 0, args.keep_failed, why, gated=validation is not None)
    if kept == out:
        size = out.stat().st_size + out.with_suffix(".bin").stat().st_size
        runs = "bf16 on CPUs with native bf16, f32 elsewhere" if args.compute == "bf16" else args.compute
        print(f"wrote {out} + .bin ({size / 1e6:.2f} MB, {args.precision}, checked at {args.compute}: runs {runs})" + (
            "; NOT GATED (--no-gate): its metadata says so and the runtime warns" if args.no_gate and
            args.precision == "int8" else ""))
    return code


if __name__ == "__main__":
    sys.exit(main())
