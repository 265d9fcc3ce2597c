"""TensorRT export: the parts that run without a GPU (version dispatch, profile shapes, sidecar
writing and checking, the missing-TensorRT error, Python 3.8 syntax); the build needs TensorRT."""
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.contract import ExportError
from export.onnx import torch_to_onnx
from export.trt import api_for, make_sidecar, onnx_input_dims, onnx_to_trt, parse_shape, resolve_profile
from runtime.trt_sidecar import SidecarError, check_sidecar, read_sidecar, sidecar_path

ROOT = Path(__file__).resolve().parents[1]
META = {"arch": "a", "num_classes": 2, "classes": ["x", "y"], "palette": [[0, 0, 0], [1, 1, 1]],
        "mean": [1.0, 2.0, 3.0], "std": [1.0, 1.0, 1.0], "input_size": [64, 128]}
HAS_TRT = importlib.util.find_spec("tensorrt") is not None


@pytest.mark.parametrize("version,api", [("8.5.2.2", "trt8"), ("8.6.1", "trt8"), ("10.0.1", "trt10"),
                                         ("10.13.3.9", "trt10"), ("11.4.0", "trt11")])
def test_api_for_version(version, api):
    assert api_for(version) == api


def test_too_old_or_unreadable_version():
    with pytest.raises(ExportError, match="too old"):
        api_for("8.2.1")
    with pytest.raises(ExportError, match="cannot read"):
        api_for("dev")


def test_parse_shape():
    assert parse_shape("1x3x128x256") == (1, 3, 128, 256) == parse_shape("1,3,128,256")
    for bad in ("1x3x128", "ax3x1x1", "0x3x8x8"):
        with pytest.raises(ExportError, match="bad shape"):
            parse_shape(bad)


def test_profiles_static_and_dynamic():
    static = [None, 3, 64, 128]  # the exporter's default: dynamic batch, fixed H/W
    assert resolve_profile(static, META) == {"min": [1, 3, 64, 128], "opt": [1, 3, 64, 128], "max": [4, 3, 64, 128]}
    with pytest.raises(ExportError, match="fixed height of 64"):
        resolve_profile(static, META, max_shape="4x3x128x128")
    dynamic = [None, 3, None, None]
    p = resolve_profile(dynamic, META, "1x3x32x64", "2x3x64x128", "8x3x256x512")
    assert p == {"min": [1, 3, 32, 64], "opt": [2, 3, 64, 128], "max": [8, 3, 256, 512]}
    with pytest.raises(ExportError, match="min <= opt <= max"):
        resolve_profile(dynamic, META, "1x3x128x64", "1x3x64x128", "1x3x256x512")
    with pytest.raises(ExportError, match="3 channels"):
        resolve_profile([None, None, None, None], META, "1x1x8x8", "1x1x8x8", "1x1x8x8")


def test_profile_from_exported_onnx(mobilenet_ckpt, tmp_path):
    dims = onnx_input_dims(torch_to_onnx(mobilenet_ckpt, tmp_path / "d.onnx", dynamic=True, simplify=False))
    assert dims == [None, 3, None, None]


def write_engine_with_sidecar(tmp_path, **kw):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    side = make_sidecar(META, "10.3.0", "Orin", "8.7", "fp16", {"min": [1, 3, 64, 128]}, [{"name": "logits"}],
                        "ab" * 32, "trt10")
    side.update(kw)
    sidecar_path(engine).write_text(json.dumps(side))
    return engine


def test_sidecar_contents_and_checks(tmp_path):
    engine = write_engine_with_sidecar(tmp_path)
    side = read_sidecar(engine)
    assert sidecar_path(engine).name == "m.engine.json"
    assert side["meta"]["export"] == {"format": "tensorrt", "precision": "fp16"}
    assert side["tensorrt_version"] == "10.3.0" and side["compute_capability"] == "8.7" and side["gpu"] == "Orin"
    assert check_sidecar(side, "10.3.0", (8, 7)) is side
    assert check_sidecar(side, "10.3.0", "87") is side
    with pytest.raises(SidecarError, match=r"TensorRT 10.3.0 \(this machine has 10.4.0\)"):
        check_sidecar(side, "10.4.0", "8.7")
    with pytest.raises(SidecarError, match=r"compute capability 8.7 / Orin \(this GPU is 8.9\)"):
        check_sidecar(side, "10.3.0", "8.9")
    assert check_sidecar(dict(side, hardware_compatible=True), "10.3.0", "8.9")


def test_sidecar_missing_or_broken(tmp_path):
    engine = write_engine_with_sidecar(tmp_path, meta={"arch": "a"})
    with pytest.raises(ValueError, match="metadata lacks"):
        read_sidecar(engine)
    sidecar_path(engine).write_text("{not json")
    with pytest.raises(SidecarError, match="not valid JSON"):
        read_sidecar(engine)
    sidecar_path(engine).unlink()
    with pytest.raises(SidecarError, match="no sidecar m.engine.json"):
        read_sidecar(engine)


@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed here")
def test_without_tensorrt_one_clear_error(mobilenet_ckpt, tmp_path):
    onnx_path = torch_to_onnx(mobilenet_ckpt, tmp_path / "m.onnx", simplify=False)
    r = subprocess.run([sys.executable, "-m", "export.trt", str(onnx_path)], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and "pip install 'brd-edge[tensorrt]'" in r.stderr
    assert "JetPack" in r.stderr and "apt install python3-libnvinfer" in r.stderr  # a Jetson's TensorRT: not pip's
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


@pytest.mark.skipif(shutil.which("vermin") is None and not (Path(sys.executable).parent / "vermin").exists(),
                    reason="vermin not installed")
def test_python38_compatible():
    vermin = shutil.which("vermin") or str(Path(sys.executable).parent / "vermin")
    files = ["export/trt.py", "export/cli.py", "export/gate.py", "export/metadata.py", "export/publish.py",
             "export/work.py", "runtime/trt_sidecar.py"]
    r = subprocess.run([vermin, "-t=3.8-", "--no-tips", "--eval-annotations", "--violations", *files],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.skipif(not HAS_TRT, reason="TensorRT is not installed (a GPU machine with the tensorrt extra builds engines)")
def test_build_fp16_engine(mobilenet_ckpt, tmp_path):
    onnx_path = torch_to_onnx(mobilenet_ckpt, tmp_path / "m.onnx")
    engine = onnx_to_trt(onnx_path, tmp_path / "m.engine", fp16=True, workspace_gb=1)
    side = read_sidecar(engine)
    assert side["precision"] == "fp16" and side["inputs"][0]["profile"]["opt"] == [1, 3, 64, 128]
