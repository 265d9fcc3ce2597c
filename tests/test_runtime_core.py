"""runtime/ without a model: import hygiene (no torch, Python 3.8), metadata-driven preprocessing and the
overlay, TensorRT sidecar checks (sources and sinks: test_runtime_io.py)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from runtime import formats, metadata
from runtime.overlay import Overlay, palette_lut
from runtime.pipeline import lower_priority
from runtime.preprocess import Preprocessor, ShapeError, postprocess, resolve_size
from runtime.backends import tensorrt as trt_backend

ROOT = Path(__file__).resolve().parents[1]
META = {"arch": "x", "num_classes": 3, "classes": ["a", "b", "c"], "palette": [[255, 0, 0], [0, 255, 0], [0, 0, 255]],
        "mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375], "input_size": [8, 16]}
RUNTIME_MODULES = ["runtime", "runtime.formats", "runtime.metadata", "runtime.preprocess", "runtime.stats",
                   "runtime.sources", "runtime.sinks", "runtime.overlay", "runtime.pipeline", "runtime.streams",
                   "runtime.run", "runtime.bench", "runtime.backends", "runtime.backends.base", "runtime.backends.onnxruntime",
                   "runtime.backends.openvino", "runtime.backends.tensorrt"]


# -- import hygiene ---------------------------------------------------------------------------
BLOCKER = r"""
import sys
BLOCKED = {blocked!r}
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError("blocked for this test: " + name)
        return None
sys.meta_path.insert(0, Blocker())
"""


def run_blocked(code, blocked, tmp_path):
    script = BLOCKER.format(blocked=sorted(blocked)) + code
    return subprocess.run([sys.executable, "-c", script], cwd=str(ROOT), capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_runtime_imports_without_torch_or_distill(tmp_path):
    code = "import importlib\nfor m in {!r}:\n    importlib.import_module(m)\n".format(RUNTIME_MODULES)
    code += "assert 'torch' not in sys.modules and 'distill' not in sys.modules\nprint('ok')\n"
    r = run_blocked(code, {"torch", "distill"}, tmp_path)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr


def test_missing_backend_dependency_is_one_line_naming_the_extra(tmp_path):
    model = tmp_path / "m.xml"
    model.write_text("<net/>")
    code = ("from runtime.backends import load_backend\nfrom runtime.formats import MissingDependency\n"
            "try:\n    load_backend({!r})\nexcept MissingDependency as e:\n    print('MSG', e)\n").format(str(model))
    r = run_blocked(code, {"torch", "distill", "openvino"}, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "pip install 'brd-edge[openvino]'" in r.stdout


def test_runtime_is_python38_compatible():
    vermin = shutil.which("vermin") or str(Path(sys.executable).with_name("vermin"))
    if not Path(vermin).exists():
        pytest.skip("vermin is not installed")
    r = subprocess.run([vermin, "-t=3.8-", "--violations", "--no-tips", str(ROOT / "runtime")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


# -- preprocessing from metadata --------------------------------------------------------------
def test_preprocess_matches_hand_computation():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (8, 16, 3), dtype=np.uint8)  # BGR, already at the model size
    x, geo = Preprocessor(META, (8, 16))(frame)
    rgb = frame[:, :, ::-1].astype(np.float64)
    expected = ((rgb - np.array(META["mean"])) / np.array(META["std"])).transpose(2, 0, 1)[None]
    assert x.dtype == np.float32 and x.shape == (1, 3, 8, 16) and x.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(x, expected, rtol=1e-5, atol=1e-5)
    assert geo.content == (0, 0, 8, 16)


def test_preprocess_resizes_and_postprocess_maps_back_to_the_frame():
    frame = np.zeros((32, 64, 3), np.uint8)
    frame[:, 32:] = 255  # right half white
    pre = Preprocessor(META, (8, 16))
    x, geo = pre(frame)
    assert x.shape == (1, 3, 8, 16)
    white = (255 - np.array(META["mean"])) / np.array(META["std"])
    np.testing.assert_allclose(x[0, :, 0, -1], white, rtol=1e-5)
    logits = np.zeros((1, 3, 8, 16), np.float32)
    logits[0, 2, :, 8:] = 1.0  # class 2 on the right half, class 0 elsewhere
    labels = postprocess(logits, geo)
    assert labels.shape == (32, 64) and labels.dtype == np.uint8
    assert (labels[:, :32] == 0).all() and (labels[:, 32:] == 2).all()
    labels2 = postprocess(np.argmax(logits, 1), geo, metadata.OUTPUT_LABELS)
    assert (labels2 == labels).all()


def test_preprocess_ring_buffers_are_reused_only_after_a_full_turn():
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, (16, 32, 3), dtype=np.uint8) for _ in range(3)]
    fresh = Preprocessor(META, (8, 16))
    ring = Preprocessor(META, (8, 16), buffers=2)
    x0, _ = ring(frames[0])
    x1, _ = ring(frames[1])
    np.testing.assert_array_equal(x0, fresh(frames[0])[0])  # the second frame did not overwrite the first
    np.testing.assert_array_equal(x1, fresh(frames[1])[0])
    x2, _ = ring(frames[2])
    assert x2 is x0 and x1 is not x0
    np.testing.assert_array_equal(x2, fresh(frames[2])[0])
    lb = Preprocessor(META, (8, 16), letterbox=True, buffers=1)
    lb(frames[0])  # 16x32 fills the whole 8x16 input
    x, geo = lb(np.full((16, 16, 3), 200, np.uint8))  # then a square frame: the padding must be 0 again
    assert geo.content == (0, 4, 8, 8) and np.abs(x[0, :, :, :4]).max() < 1e-6


def test_argmax_labels_is_numpy_argmax_ties_included():
    from runtime.preprocess import argmax_labels

    rng = np.random.default_rng(0)
    logits = rng.integers(0, 4, (7, 20, 30)).astype(np.float32)  # many ties: the first maximum wins
    assert (argmax_labels(logits) == logits.argmax(0)).all() and argmax_labels(logits).dtype == np.uint8


def test_letterbox_pads_with_the_mean_and_is_undone():
    frame = np.full((16, 16, 3), 200, np.uint8)  # square frame into a 8x16 input: pillarbox
    x, geo = Preprocessor(META, (8, 16), letterbox=True)(frame)
    assert geo.content == (0, 4, 8, 8)
    assert np.abs(x[0, :, :, :4]).max() < 1e-4 and np.abs(x[0, :, :, 12:]).max() < 1e-4  # mean -> 0
    logits = np.zeros((1, 3, 8, 16), np.float32)
    logits[0, 1, :, 4:12] = 1.0  # class 1 exactly on the image part
    assert (postprocess(logits, geo) == 1).all()


def test_resolve_size_policy():
    dynamic, fixed = (None, 3, None, None), (1, 3, 8, 16)
    assert resolve_size(META, dynamic, (30, 40)) == (8, 16)               # metadata size by default
    assert resolve_size(META, dynamic, (30, 40), keep_size=True) == (30, 40)
    assert resolve_size(META, dynamic, (30, 40), size=(64, 64)) == (64, 64)
    assert resolve_size(META, fixed, (30, 40)) == (8, 16)                 # resized to the fixed shape
    assert resolve_size(META, fixed, (8, 16), keep_size=True) == (8, 16)
    with pytest.raises(ShapeError, match="fixed input of 8x16"):
        resolve_size(META, fixed, (30, 40), keep_size=True, source="m.onnx")
    with pytest.raises(ShapeError, match="fixed batch of 4"):
        resolve_size(META, (4, 3, 8, 16), (8, 16))
    with pytest.raises(ShapeError, match="1 channels"):
        resolve_size(META, (1, 1, 8, 16), (8, 16))


def test_overlay_blends_palette_and_draws_legend():
    frame = np.zeros((40, 120, 3), np.uint8)
    labels = np.zeros((40, 120), np.uint8)
    labels[:, 60:] = 2
    out = Overlay(META["classes"], META["palette"], alpha=1.0, legend=False).draw(frame, labels)
    assert tuple(out[20, 10]) == (0, 0, 255)   # class 0 is RGB red -> BGR (0, 0, 255)
    assert tuple(out[20, 100]) == (255, 0, 0)  # class 2 is RGB blue
    with_text = Overlay(META["classes"], META["palette"], alpha=0.5).draw(frame, labels, fps=30.0, latency_ms=5.0)
    assert with_text.shape == frame.shape and not np.array_equal(with_text, out)


def test_overlay_colours_are_the_palette_for_every_id():
    """colorize gives lut[labels] for all 256 ids, ids past the palette black, whatever the class count."""
    rng = np.random.default_rng(0)
    labels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    for n in (1, 11, 85, 86, 200):
        palette = rng.integers(0, 256, (n, 3)).tolist()
        want = palette_lut(palette, bgr=True)[labels]
        assert not want.reshape(256, 3)[n:].any() and np.array_equal(want.reshape(256, 3)[:n, ::-1], palette)
        assert np.array_equal(Overlay(["c"] * n, palette).colorize(labels), want), n


def test_overlay_buffers_never_leak_into_what_it_returns():
    """The overlay colours into buffers it reuses: what colorize and draw return stays as it was after later
    calls (other maps, another frame size, another thread drawing with the same Overlay)."""
    rng = np.random.default_rng(1)
    palette = rng.integers(0, 256, (11, 3)).tolist()
    lut = palette_lut(palette, bgr=True)
    overlay = Overlay(["c"] * 11, palette, alpha=1.0, legend=False)
    a, b = (rng.integers(0, 11, (48, 64)).astype(np.uint8) for _ in range(2))
    frame = np.zeros((48, 64, 3), np.uint8)
    kept, drawn = overlay.colorize(a), overlay.draw(frame, a)
    overlay.colorize(b), overlay.draw(frame, b), overlay.draw(np.zeros((20, 30, 3), np.uint8), b[:20, :30])
    other = {}
    t = threading.Thread(target=lambda: other.update(out=overlay.draw(frame, b)))
    t.start()
    t.join()
    assert np.array_equal(kept, lut[a]) and np.array_equal(drawn, lut[a]) and np.array_equal(other["out"], lut[b])
    assert np.array_equal(overlay.draw(frame, a), lut[a])  # back to the first size: the right colours again


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux's")
def test_lower_priority_lowers_only_the_calling_thread():
    before = os.getpriority(os.PRIO_PROCESS, 0)
    seen = {}

    def worker():
        seen["ok"] = lower_priority(5)
        seen["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen == {"ok": True, "nice": min(19, before + 5)}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before  # the caller's is untouched
    assert lower_priority(0) is False


# -- formats / TensorRT pure parts -----------------------------------------------------------
def test_backend_is_picked_by_suffix():
    assert formats.format_for("a/b.ONNX").name == "onnx"
    assert formats.backend_class(formats.format_for("m.xml")).__name__ == "OpenVINOBackend"
    assert formats.backend_class(formats.format_for("m.engine")) is trt_backend.TensorRTBackend
    with pytest.raises(ValueError, match="unknown model format"):
        formats.format_for("m.pt")


def write_sidecar(engine, **over):
    side = {"format": "brd-edge/tensorrt-sidecar", "meta": META, "tensorrt_version": "10.3.0",
            "compute_capability": "8.7", "gpu": "Orin", "precision": "fp16",
            "inputs": [{"name": "image", "dtype": "float32"}], "outputs": [{"name": "logits"}]}
    side.update(over)
    Path(str(engine) + ".json").write_text(json.dumps(side))
    return side


def test_trt_backend_reads_the_sidecar_before_anything_else(tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"\0")
    with pytest.raises(trt_backend.SidecarError, match="no sidecar m.engine.json"):
        trt_backend.TensorRTBackend(engine)
    write_sidecar(engine, meta={"arch": "x"})
    with pytest.raises(metadata.MetadataError, match="metadata lacks"):
        trt_backend.TensorRTBackend(engine)


def test_trt_backend_without_tensorrt_names_the_extra(tmp_path):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed: this checks the message shown where it is not")
    except ImportError:
        pass
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"\0")
    write_sidecar(engine)
    with pytest.raises(formats.MissingDependency, match=r"brd-edge\[tensorrt\]"):
        trt_backend.TensorRTBackend(engine)
