"""The INT8 gate scores what evaluation scores, streams its images, and guards every INT8 path (TensorRT's
too, through the runtime's backend interface)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest

from distill.data import build_dataset
from export.data import synthetic_images
from export.metadata import onnx_meta
from export.onnx import torch_to_onnx
from export.quantize import accuracy_gate, quantize_onnx_int8, validation_items

from .conftest import write_synthetic_student

ROOT = Path(__file__).resolve().parents[1]
SPLIT = {"num_images": 6, "size": [72, 144], "seed": 1}  # not the model's 64x128: the resolution policy matters


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("gate")
    root = d / "data"
    build_dataset("synthetic", root, "val", **SPLIT)
    ckpt = write_synthetic_student(d / "s.pt", "lraspp_mobilenetv2_w035", (64, 128), seed=0, bn_passes=1)
    fp32 = torch_to_onnx(ckpt, d / "s.onnx")
    images = synthetic_images(8, (64, 128), seed=2)
    return {"dir": d, "root": root, "fp32": fp32, "images": images,
            "int8": quantize_onnx_int8(fp32, d / "s.int8.onnx", images),
            "validation": validation_items(Namespace(data_root=str(root), dataset=None), onnx_meta(fp32))}


def _evaluate(model, root):
    from distill.evaluate import main

    return main(["--model", str(model), "--dataset", "synthetic", "--root", str(root), "--data-kwargs",
                 json.dumps(SPLIT)])


def test_the_gate_scores_what_evaluation_scores(setup, capsys):
    """fp32_miou in <model>.gate.json is `distill.evaluate --model` of the FP32 model on the same images, at
    their own 72x144 (no stretching to the model's 64x128), and int8_miou that of the INT8 model."""
    report = accuracy_gate(setup["fp32"], setup["int8"], setup["validation"], max_drop=100, max_boundary_drop=100)
    fp32, int8 = _evaluate(setup["fp32"], setup["root"]), _evaluate(setup["int8"], setup["root"])
    assert report["images"] == fp32["num_images"] == 6
    assert report["fp32_miou"] == pytest.approx(100 * fp32["mIoU"], abs=1e-9)
    assert report["int8_miou"] == pytest.approx(100 * int8["mIoU"], abs=1e-9)
    assert report["fp32_boundary_f1"] == pytest.approx(100 * fp32["boundary_f1"], abs=1e-9)
    assert "never stretched" in report["scored"] and report["passed"]
    saved = json.loads(Path(str(setup["int8"]) + ".gate.json").read_text())
    assert saved["fp32_miou"] == report["fp32_miou"]
    assert not isinstance(setup["validation"], list)  # items are read when scored, one at a time


# -- TensorRT: the engine's code path through a stub at the backend interface -----------------------------
class StubTensorRTBackend:
    """Stands in for runtime.backends.tensorrt.TensorRTBackend where TensorRT cannot be installed: it reads the
    engine's sidecar with the real reader, as the real backend does, and runs the symmetric Q/DQ ONNX that
    TensorRT would have built the engine from (stored as the stub "engine") with ONNX Runtime."""

    name = "tensorrt"

    def __new__(cls, path, device="auto", gpu=0, labels=False):
        import onnxruntime as ort

        from runtime import metadata
        from runtime.backends.base import Backend
        from runtime.trt_sidecar import read_sidecar

        class Stub(Backend):
            name = "tensorrt"

            def __init__(self):
                super().__init__(path, device)
                side = read_sidecar(path)
                self.meta, self.precision, self.device = side["meta"], side["precision"], "stub GPU"
                self.session = ort.InferenceSession(Path(path).read_bytes(), providers=["CPUExecutionProvider"])
                self.input_shape = (None, 3, *self.meta["input_size"])
                self.output_kind = metadata.OUTPUT_LOGITS

            def infer(self, batch):
                return self.session.run(None, {metadata.INPUT_NAME: self._check_batch(batch)})[0]

        return Stub()


@pytest.fixture
def engine(setup, monkeypatch, tmp_path):
    from export.trt import make_sidecar
    from runtime.backends import tensorrt
    from runtime.trt_sidecar import sidecar_path

    monkeypatch.setattr(tensorrt, "TensorRTBackend", StubTensorRTBackend)
    qdq = quantize_onnx_int8(setup["fp32"], tmp_path / "qdq.onnx", setup["images"], target="trt")
    path = tmp_path / "s.int8.engine"
    path.write_bytes(qdq.read_bytes())
    meta = onnx_meta(qdq)
    side = make_sidecar(meta, "10.3.0", "stub GPU", "8.7", "int8", {"min": [1, 3, 64, 128]}, [{"name": "logits"}],
                        "00" * 32, "trt10", gate={"max_drop": 1.0, "max_boundary_drop": 1.0, "split": "val",
                                                  "report": "s.int8.engine.gate.json"})
    sidecar_path(path).write_text(json.dumps(side))
    return {"engine": path, "qdq": qdq}


def test_an_engine_is_scored_and_gated_through_the_backend_interface(setup, engine, capsys):
    scored = _evaluate(engine["engine"], setup["root"])
    assert scored["settings"]["backend"] == "tensorrt" and scored["settings"]["precision"] == "int8"
    assert scored["mIoU"] == _evaluate(engine["qdq"], setup["root"])["mIoU"]  # what the engine runs, scored alike
    report = accuracy_gate(setup["fp32"], engine["engine"], setup["validation"], max_drop=100, max_boundary_drop=100)
    assert report["passed"] and report["int8_miou"] == pytest.approx(100 * scored["mIoU"], abs=1e-9)
    assert report["int8_runs_as"] == "int8" and report["int8_model"] == "s.int8.engine"
    failing = accuracy_gate(setup["fp32"], engine["engine"], setup["validation"], max_drop=report["drop"] - 0.5)
    assert not failing["passed"] and "FAILED" in capsys.readouterr().out


def test_every_int8_exporter_refuses_to_publish_ungated(setup, tmp_path):
    """export.quantize, export.openvino --precision int8 and export.trt --precision int8 without labelled data:
    exit 2, one line saying how to supply it, nothing written (export.trt says so before it needs TensorRT)."""
    cases = [("export.quantize", []), ("export.openvino", ["--precision", "int8"]), ("export.trt", ["--precision", "int8"])]
    for module, flags in cases:
        r = subprocess.run([sys.executable, "-m", module, str(setup["fp32"]), *flags, "-o",
                            str(tmp_path / "x"), "--calib-dir", str(setup["dir"])], cwd=ROOT, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 2 and r.stderr.strip().splitlines() == [r.stderr.strip()], (module, r.stderr)
        assert r.stderr.startswith("error: INT8 is published only after its accuracy gate on labelled validation "
                                   "data: pass --data-root DIR") and "--no-gate" in r.stderr, (module, r.stderr)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_quantisation_and_gate_stream_in_bounded_memory(tmp_path):
    """export.quantize with its gate on a Cityscapes tree of 40 images at 1024x2048 (calibration streams all 40
    train images; the gate scores FP32 and INT8 on the same 40 as the val split): peak resident memory stays
    under 2 GB. Holding either stream's inputs would add 1.0 GB (40 x 25 MB of normalised float32) to the
    calibration session's working set below, and go over that bound. (100 images took four minutes on 2 cores.)
    The model is the demo's student architecture (DeepLabV3-ResNet10 at eighth width): ONNX Runtime's
    calibration session (MinMax, every activation tapped, graph optimisation off) needs 0.77 GB for it at
    1024x2048, whatever the number of images; for LR-ASPP MobileNetV2-0.35 it is 4.3 GB (measured), which is
    the library's per-image working set, not images held."""
    import resource  # noqa: F401  (ru_maxrss of the waited child)

    from distill import checkpoint
    from distill.data import DATASETS
    from distill.models import build_model
    from tests import trees
    from tests.conftest import MEAN, STD

    n = int(os.environ.get("BRD_GATE_MEMORY_IMAGES", "40"))
    root = trees.cityscapes(tmp_path / "cityscapes", size=(1024, 2048), train=n, val=0)
    train = sorted((root / "leftImg8bit" / "train").rglob("*.png"))
    for img in train:  # the same images as the val split (hard links): both streams read every image
        for kind, src in (("leftImg8bit", img), ("gtFine", Path(str(img).replace("leftImg8bit", "gtFine", 1)
                                                                  .replace("_leftImg8bit.png", "_gtFine_labelIds.png")))):
            dst = Path(str(src).replace("/train/", "/val/"))
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.link(src, dst)
    info = DATASETS["cityscapes"]
    model = build_model("deeplabv3_resnet10_w8", info.num_classes).eval()
    meta = checkpoint.make_meta("deeplabv3_resnet10_w8", {}, info.num_classes, list(info.classes),
                                [list(c) for c in info.palette], MEAN, STD, [1024, 2048], "cityscapes")
    checkpoint.save(tmp_path / "s.pt", model, meta)
    onnx_path = torch_to_onnx(tmp_path / "s.pt", tmp_path / "s.onnx")
    out = tmp_path / "s.int8.onnx"
    proc = subprocess.Popen([sys.executable, "-m", "export.quantize", str(onnx_path), "-o", str(out), "--data-root",
                             str(root), "--num-calib", str(n), "--max-drop", "100", "--max-boundary-drop", "100",
                             "--min-agreement", "0.5"],  # random weights: near-tied logits
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    peak_gb = usage.ru_maxrss * 1024 / 1e9  # Linux: kilobytes
    print(f"peak RSS of export.quantize + gate, {n} images at 1024x2048: {peak_gb:.2f} GB")
    assert os.waitstatus_to_exitcode(status) == 0, output[-3000:]
    gate = json.loads(Path(str(out) + ".gate.json").read_text())
    assert gate["images"] == n and onnx_meta(out)["export"]["quantization"]["calibration_images"] == n
    assert peak_gb < 2.0, output[-2000:]
    (tmp_path / "peak_rss_gb.txt").write_text(f"{peak_gb:.3f}\n")


def test_the_gate_with_its_default_limits_catches_a_real_int8_degradation(trained_plain, tmp_path, capsys):
    """A trained student (40 steps of synthetic_plain.yaml; its FP32 model scores about 17.6 mIoU on the 16 val
    images) quantised two ways, and gated with the limits the exporters default to (1.0 mIoU point, 1.0
    boundary-F1 point):
    - calibrated on 16 train images: the activation ranges fit what the model sees; measured drop -0.02 mIoU,
      -0.18 boundary F1: published;
    - calibrated on one constant mid-grey image (about the dataset's mean colour, so the normalised input is
      ~0 everywhere and each activation's MinMax range is only what a flat input produces): real images
      saturate those ranges; measured drop 3.6 mIoU and 3.3 boundary F1: refused.
    (An all-black image ruins less: its normalised input is strongly negative everywhere, and the ranges it
    gives happened to cost only 0.5 mIoU here; an all-white one cost 3.5.)"""
    from export.gate import add_gate_args
    from export.data import calibration_images
    from runtime.contract import ArgumentParser

    defaults = ArgumentParser(prog="gate")
    add_gate_args(defaults)
    limits = vars(defaults.parse_args([]))
    assert (limits["max_drop"], limits["max_boundary_drop"]) == (1.0, 1.0)
    fp32 = torch_to_onnx(trained_plain["plain"], tmp_path / "s.onnx")
    meta = onnx_meta(fp32)
    validation = validation_items(Namespace(data_root=str(trained_plain["data"]), dataset=None), meta)
    train_images = calibration_images(meta, data_root=str(trained_plain["data"]), num_calib=16)
    grey = np.full((64, 128, 3), 128, np.uint8)

    proper = accuracy_gate(fp32, quantize_onnx_int8(fp32, tmp_path / "proper.int8.onnx", train_images), validation,
                           max_drop=limits["max_drop"], max_boundary_drop=limits["max_boundary_drop"])
    ruined = accuracy_gate(fp32, quantize_onnx_int8(fp32, tmp_path / "grey.int8.onnx", [grey]), validation,
                           max_drop=limits["max_drop"], max_boundary_drop=limits["max_boundary_drop"])
    assert proper["fp32_miou"] > 10  # a model that learned something: there is accuracy to lose
    assert proper["passed"] and abs(proper["drop"]) < 0.5, proper
    assert not ruined["passed"] and ruined["drop"] > 2.0 and ruined["boundary_f1_drop"] > 1.0, ruined
    assert "FAILED" in capsys.readouterr().out
