"""The cases of the exporters: export.onnx, export.openvino, export.quantize, export.trt."""
from __future__ import annotations

from ..case import Case
from .builders import C, CALIB, PT_KINDS, SIZES, file_faults, flag_faults, output_faults, signal_cases


def _export_signals(m, args, setup, during="out/.s*") -> list:
    return signal_cases(m, args, [("at start (0.3 s: importing)", ("after", 0.3)),
                                  ("during the export (its candidate file exists)", ("file", during))],
                        setup=setup, timeout=240)


def export_onnx() -> list:
    m = "export.onnx"
    build = lambda p: (p, "-o", f"{C}/out/s.onnx")  # noqa: E731
    cases = file_faults(m, build, ".pt", "checkpoint", valid="run/model.pt", extra=PT_KINDS + [
        ("wrong kind of model", "an ONNX model", "s.onnx", "model.onnx")])
    src = (("copy", "run/model.pt", "in/s.pt"),)
    ok = lambda *extra: (f"{C}/in/s.pt", "-o", f"{C}/out/s.onnx") + extra  # noqa: E731
    bad = [(k, f, v, n) for k, f, v, n in SIZES] + [
        ("bad size", "--size", "60x64", "multiple of 8"), ("bad value", "--opset", "7", "7"),
        ("bad value", "--opset", "abc", "--opset"), ("bad value", "--min-agreement", "2", "--min-agreement"),
        ("bad value", "--parity-images", "0", "--parity-images")]
    cases += flag_faults(m, ok(), bad, required_missing=(("-o", f"{C}/out/s.onnx"), "checkpoint"), setup=src)
    cases += output_faults(m, lambda p: (f"{C}/in/s.pt", "-o", p), "s.onnx", "-o", setup=src)
    cases += [
        Case(m, "wrong suffix", "-o out.xml (an ONNX exporter)", ok()[:2] + (f"{C}/out/s.xml",), names="s.xml",
             setup=src),
        Case(m, "existing output", "-o names an existing model and the checkpoint is junk: the model kept",
             (f"{C}/in/junk.pt", "-o", f"{C}/out/s.onnx"), names="junk.pt",
             setup=(("bytes", "in/junk.pt"), ("copy", "s.onnx", "out/s.onnx"))),
        Case(m, "control", "no fault (default output next to the checkpoint)", (f"{C}/in/s.pt",), (0,), setup=src,
             timeout=180),
    ]
    return cases + _export_signals(m, ok(), src)


def _source_faults(m, build, int8) -> list:
    """The faults of an FP32 model's source, ONNX or checkpoint (export.openvino, export.quantize); `int8`: what
    an INT8 ONNX given as the source is to this exporter."""
    return file_faults(m, build, ".onnx", "source (ONNX)", valid="s.onnx", extra=[
        ("wrong kind of model", int8, "s.int8.onnx", "q.int8.onnx"),
        ("wrong kind of model", "an OpenVINO IR as the source", "s.xml", "s.xml")]) + file_faults(
        m, build, ".pt", "source (checkpoint)", valid="run/model.pt", cut=False, extra=PT_KINDS)


def export_openvino() -> list:
    m = "export.openvino"
    build = lambda p: (p, "-o", f"{C}/out/s.xml")  # noqa: E731
    cases = _source_faults(m, build, "an INT8 ONNX where FP32 is expected")
    src = (("copy", "s.onnx", "in/s.onnx"),)
    ok = lambda *extra: (f"{C}/in/s.onnx", "-o", f"{C}/out/s.xml") + extra  # noqa: E731
    int8 = ok("--precision", "int8", "--num-calib", "4")
    bad = [("bad value", "--precision", "int4", "--precision"), ("bad value", "--num-calib", "0", "--num-calib"),
           ("bad value", "--max-drop", "nan", "--max-drop"), ("bad value", "--opset", "99", "--opset")]
    cases += flag_faults(m, ok(), bad, required_missing=(("-o", f"{C}/out/s.xml"), "source"), setup=src)
    cases += output_faults(m, lambda p: (f"{C}/in/s.onnx", "-o", p), "s.xml", "-o", setup=src)
    cases += [
        Case(m, "wrong suffix", "-o s.bin (the weights' name, not the IR's)", ok()[:2] + (f"{C}/out/s.bin",),
             names="s.bin", setup=src),
        Case(m, "missing argument", "--precision int8 with no data and no --no-gate", int8, names="--no-gate",
             setup=src),
        Case(m, "missing file", "--calib-dir does not exist", int8 + ("--calib-dir", f"{C}/no/calib", "--no-gate"),
             names="no/calib", setup=src),
        Case(m, "empty file", "--calib-dir is an empty folder", int8 + ("--calib-dir", "{fx}/emptydir", "--no-gate"),
             names="emptydir", setup=src),
        Case(m, "non-image", "--calib-dir holds no image", int8 + ("--calib-dir", "{fx}/nonimages", "--no-gate"),
             names="nonimages", setup=src),
        Case(m, "directory for a file", "--calib-dir is a file", int8 + ("--calib-dir", f"{C}/afile", "--no-gate"),
             names="afile", setup=src + (("text", "afile", "x\n"),)),
        Case(m, "missing file", "--data-root: a CamVid root that does not exist",
             int8 + ("--dataset", "camvid", "--data-root", f"{C}/no/camvid"), names="no/camvid", setup=src),
        Case(m, "control", "no fault (FP32)", ok(), (0,), setup=src, timeout=180),
        Case(m, "control", "no fault (INT8, unchecked)", int8 + CALIB, (0,), setup=src, timeout=240),
    ]
    cases += _export_signals(m, ok(), src)
    cases += signal_cases(m, int8 + CALIB, [("during an INT8 export (its candidate file exists)",
                                            ("file", "out/.s*"))], setup=src, timeout=240, sigs=("SIGTERM",))
    return cases


def export_quantize() -> list:
    m = "export.quantize"
    build = lambda p: (p, "-o", f"{C}/out/s.int8.onnx") + CALIB  # noqa: E731
    cases = _source_faults(m, build, "an INT8 ONNX (already quantised)")
    src = (("copy", "s.onnx", "in/s.onnx"),)
    ok = lambda *extra: (f"{C}/in/s.onnx", "-o", f"{C}/out/s.int8.onnx") + extra  # noqa: E731
    bad = [("bad value", "--target", "tpu", "--target"), ("bad value", "--num-calib", "0", "--num-calib"),
           ("bad value", "--min-agreement", "1.5", "--min-agreement"), ("bad value", "--max-drop", "inf", "--max-drop")]
    cases += flag_faults(m, ok(*CALIB), bad, required_missing=(("-o", f"{C}/out/s.int8.onnx") + CALIB, "source"),
                         setup=src)
    cases += output_faults(m, lambda p: (f"{C}/in/s.onnx", "-o", p) + CALIB, "s.int8.onnx", "-o", setup=src)
    cases += [
        Case(m, "wrong suffix", "-o q.xml (a Q/DQ ONNX exporter)", ok("--calib-dir", "{fx}/calib", "--no-gate")[:2]
             + (f"{C}/out/q.xml",) + CALIB, names="q.xml", setup=src),
        Case(m, "missing argument", "no labelled data and no --no-gate", ok("--calib-dir", "{fx}/calib"),
             names="--no-gate", setup=src),
        Case(m, "missing file", "--calib-dir does not exist", ok("--calib-dir", f"{C}/no/calib", "--no-gate"),
             names="no/calib", setup=src),
        Case(m, "empty file", "--calib-dir is an empty folder", ok("--calib-dir", "{fx}/emptydir", "--no-gate"),
             names="emptydir", setup=src),
        Case(m, "non-image", "--calib-dir holds no image", ok("--calib-dir", "{fx}/nonimages", "--no-gate"),
             names="nonimages", setup=src),
        Case(m, "non-image", "--calib-dir mixes images, a text file and a broken PNG",
             ok("--calib-dir", "{fx}/mixed", "--no-gate"), (0, 2), setup=src, timeout=180),
        Case(m, "missing file", "--data-root: a CamVid root that does not exist",
             ok("--dataset", "camvid", "--data-root", f"{C}/no/camvid"), names="no/camvid", setup=src),
        Case(m, "control", "no fault (unchecked INT8)", ok(*CALIB), (0,), setup=src, timeout=180),
    ]
    return cases + _export_signals(m, ok(*CALIB), src)


def export_trt() -> list:
    m = "export.trt"
    build = lambda p: (p, "-o", f"{C}/out/s.engine")  # noqa: E731
    cases = file_faults(m, build, ".onnx", "source (ONNX)", valid="s.onnx", names=False, extra=[
        ("wrong kind of model", "an INT8 ONNX for ONNX Runtime (target ort)", "s.int8.onnx", "q.int8.onnx")])
    src = (("copy", "s.onnx", "in/s.onnx"),)
    ok = lambda *extra: (f"{C}/in/s.onnx", "-o", f"{C}/out/s.engine") + extra  # noqa: E731
    bad = [("bad value", "--workspace", "-1", "--workspace"), ("bad size", "--min-shape", "1x3", "--min-shape"),
           ("bad size", "--opt-shape", "abc", "--opt-shape"), ("bad value", "--precision", "int4", "--precision")]
    cases += flag_faults(m, ok(), bad, required_missing=(("-o", f"{C}/out/s.engine"), "source"), setup=src)
    cases += [
        Case(m, "missing library", "a valid ONNX on a machine without TensorRT", ok(), names="tensorrt", setup=src),
        Case(m, "missing library", "INT8 with calibration images, without TensorRT", ok(*CALIB, "--precision",
                                                                                         "int8"),
             names="tensorrt", setup=src),
        Case(m, "wrong suffix", "-o s.onnx (an engine exporter)", ok()[:2] + (f"{C}/out/e.onnx",), names="e.onnx",
             setup=src),
        Case(m, "read-only output", "-o on a read-only disk", (f"{C}/in/s.onnx", "-o", f"{C}/ro/s.engine"),
             setup=src + (("mount", "ro", 256, True),)),
        Case(m, "output inside a file", "-o inside a file", (f"{C}/in/s.onnx", "-o", f"{C}/afile/s.engine"),
             setup=src + (("text", "afile", "x\n"),)),
    ]
    return cases
