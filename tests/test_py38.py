"""runtime/ and export/trt.py on a real Python 3.8 (JetPack 5's), with no torch installed there.

.ci/run builds `.venv38` (numpy, OpenCV, onnxruntime) from ~/.pyenv/versions/3.8.18 when that exists;
elsewhere set BRD_PY38 to such an interpreter. The model is exported here, with torch, as on a desktop.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PY38 = os.environ.get("BRD_PY38") or str(ROOT / ".venv38" / "bin" / "python")

pytestmark = pytest.mark.skipif(not Path(PY38).exists(), reason=f"no Python 3.8 environment at {PY38} (.ci/run builds it)")


def py38(*args, timeout=180):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([PY38, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory, student_ckpt):
    from export.onnx import torch_to_onnx

    return torch_to_onnx(student_ckpt, tmp_path_factory.mktemp("py38") / "student.onnx")


def test_interpreter_is_38_without_torch():
    r = py38("-c", "import sys, importlib.util; print(sys.version_info[:2], importlib.util.find_spec('torch'))")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "(3, 8) None"


def test_runtime_runs_a_model_on_38(onnx_model, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(frames / f"{i}.png"), rng.integers(0, 255, (90, 160, 3), dtype=np.uint8))
    r = py38("-m", "runtime.run", "--model", str(onnx_model), "--source", str(frames), "--sink", str(tmp_path / "out") + "/",
             "-o", str(tmp_path / "stats.json"), "-q")
    assert r.returncode == 0, r.stderr
    written = sorted((tmp_path / "out").iterdir())
    assert len(written) == 3 and cv2.imread(str(written[0])).shape == (90, 160, 3)
    r = py38("-m", "runtime.run", "--model", str(onnx_model), "--source", str(frames), "--source", str(frames),
             "--sink", str(tmp_path / "streams" / "out_{i}") + "/", "-q")  # two streams, one model
    assert r.returncode == 0, r.stderr
    assert [len(list((tmp_path / "streams" / f"out_{i}").iterdir())) for i in (0, 1)] == [3, 3]
    r = py38("-m", "runtime.bench", "--model", str(onnx_model), "--iters", "3", "--warmup", "1",
             "-o", str(tmp_path / "bench.json"))
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "bench.json").read_text())
    assert result["backend"] == "onnxruntime" and result["iters"] == 3 and result["throughput_fps"] > 0


def test_export_trt_on_38_names_the_extra(onnx_model):
    r = py38("-m", "export.trt", str(onnx_model), "--precision", "fp16")
    assert r.returncode == 2
    assert "pip install 'brd-edge[tensorrt]'" in r.stderr and "Traceback" not in r.stderr
    assert "apt install python3-libnvinfer" in r.stderr  # JetPack 5's TensorRT (Python 3.8) comes from apt
