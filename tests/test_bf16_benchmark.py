"""benchmarks.speed.bf16 on a tiny setting: a gated checkpoint (the real export.openvino CLI, --compute bf16, its
gate on a labelled split) and a random-weight architecture (parity only), each timed at f32 and bf16; the report
says whether this CPU has native bf16 and what the runtime runs the bf16-checked IR at here."""
from __future__ import annotations

import csv

import openvino as ov

from .conftest import write_synthetic_student


def test_the_bf16_report_on_a_tiny_setting(tmp_path):
    from distill.data import build_dataset

    from benchmarks.speed.bf16 import main
    from runtime.backends.openvino import device_capabilities, run_precision

    build_dataset("synthetic", tmp_path / "data", "val", num_images=3, size=[64, 128], seed=1)
    ckpt = write_synthetic_student(tmp_path / "s.pt", "lraspp_mobilenetv2_w035", (64, 128), seed=0, bn_passes=1)
    out = tmp_path / "results"
    assert main(["--models", str(ckpt), "lraspp_mobilenetv2_w035", "--data-root", str(tmp_path / "data"),
                 "--size", "64x128", "--repeats", "1", "--iters", "2", "--warmup", "0", "--app-seconds", "0",
                 "--work-dir", str(tmp_path / "work"), "--out-dir", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "bf16.csv")))
    assert [(r["IR"], r["compute"]) for r in rows] == [
        ("student.xml", "f32"), ("student.bf16.xml", "bf16"),
        ("student.unchecked.xml", "f32"), ("student.unchecked.bf16.xml", "bf16")]
    gated = rows[1]
    assert gated["checked by"] == "gate at bf16, 3 val images: passed" and gated["mIoU drop"] != ""
    assert float(gated["parity agreement %"]) >= 99.0 and gated["parity vs"] == "pytorch"
    assert rows[3]["checked by"] == "parity only (random weights: no gate)"
    assert rows[3]["parity vs"] == "the f32 IR at f32" and float(rows[3]["p50 ms"]) > 0
    native = "BF16" in device_capabilities(ov.Core(), "CPU")
    assert {r["runtime default here"] for r in rows if r["compute"] == "bf16"} == {run_precision("bf16", [
        "BF16"] if native else [])}
    text = (out / "bf16.md").read_text()
    assert f"**Native bf16: {'yes' if native else 'no'}.**" in text
    assert ("This CPU has no native bf16" in text) is not native
    assert "## Accuracy" in text and "## Speed" in text and "Made by `python -m benchmarks.speed.bf16" in text
