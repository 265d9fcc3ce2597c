"""runtime/ on real models: small students exported to ONNX and OpenVINO here, run on videos
written here with OpenCV (one with damaged frames) through the backends, the loop and the CLIs."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from runtime import metadata
from runtime.backends import load_backend
from runtime.bench import bench
from runtime.bench import main as bench_main
from runtime.overlay import Overlay
from runtime.pipeline import Pipeline
from runtime.preprocess import Preprocessor, ShapeError, postprocess
from runtime.run import main as run_main
from runtime.sinks import NullSink, Sink, SinkError, VideoSink
from runtime.sources import LiveSource, VideoFileSource
from .runtime_media import DAMAGED, FRAMES, H, INPUT, W, frames_of



# -- backends -------------------------------------------------------------------------------
def test_backends_read_metadata_and_agree(models, videos):
    onnx = load_backend(models["fixed"], device="cpu", threads=1)
    ir = load_backend(models["openvino"], device="cpu", inference_precision="f32")  # not bf16: compare closely
    labels_model = load_backend(models["argmax"], device="cpu")
    assert onnx.name == "onnxruntime" and ir.name == "openvino" and onnx.device == "CPU" and ir.device == "CPU"
    assert onnx.meta["classes"] == ir.meta["classes"] and onnx.meta["input_size"] == list(INPUT)
    assert onnx.input_shape == (None, 3) + INPUT == ir.input_shape
    assert onnx.output_kind == "logits" and labels_model.output_kind == "labels"
    assert onnx.threads == 1 and onnx.describe()["precision"] == "fp32" == ir.precision
    frame = VideoFileSource(videos["good"]).read().image
    x, geo = Preprocessor(onnx.meta, INPUT)(frame)
    a, b, c = onnx.infer(x), ir.infer(x), labels_model.infer(x)
    assert a.shape == (1, 5) + INPUT and c.shape == (1,) + INPUT
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)
    la, lc = postprocess(a, geo), postprocess(c, geo, labels_model.output_kind)
    assert la.shape == (H, W) and (la == lc).mean() > 0.99  # argmax in the graph = argmax here
    assert len(np.unique(la)) > 1  # a real (seeded, random-weight) model, not a constant map


def test_openvino_argmax_in_graph_gives_the_same_class_map(models, videos):
    """labels=True (what runtime.run asks for): OpenVINO computes the argmax in its graph, so the loop's
    postprocess only resizes a class map."""
    logits = load_backend(models["openvino"], device="cpu", inference_precision="f32")
    labels = load_backend(models["openvino"], device="cpu", inference_precision="f32", labels=True)
    assert logits.output_kind == "logits" and labels.output_kind == "labels"
    frame = VideoFileSource(videos["good"]).read().image
    x, geo = Preprocessor(logits.meta, INPUT)(frame)
    out = labels.infer(x)
    assert out.shape == (1,) + INPUT and np.issubdtype(out.dtype, np.integer)
    assert (out == logits.infer(x).argmax(1)).mean() > 0.999
    assert (postprocess(out, geo, labels.output_kind) == postprocess(logits.infer(x), geo)).mean() > 0.999


def test_openvino_compiles_a_dynamic_batch_as_the_batch_it_is_promised(models, videos, tmp_path, monkeypatch):
    """The CPU plugin runs a static shape faster than a dynamic one; runtime.run feeds one frame a request and
    runtime.bench its --batch, so both compile the batch dimension as that and get the same class maps."""
    ov = pytest.importorskip("openvino")
    import runtime.bench as bench_mod
    import runtime.run as run_mod

    ir = ov.convert_model(str(models["dynamic"]))  # batch, height and width dynamic
    ir.set_rt_info(metadata.dumps(load_backend(models["dynamic"], device="cpu").meta), metadata.META_KEY)
    path = tmp_path / "dynamic.xml"
    ov.save_model(ir, str(path), compress_to_fp16=False)
    free = load_backend(path, device="cpu", labels=True)
    one = load_backend(path, device="cpu", labels=True, batch=1)
    assert free.input_shape == (None, 3, None, None) and one.input_shape == (1, 3, None, None)
    x = np.random.default_rng(0).standard_normal((1, 3) + INPUT).astype(np.float32)
    assert np.array_equal(one.infer(x), free.infer(x))
    loaded = []

    def load(model, **options):
        loaded.append(options.get("batch"))
        return load_backend(model, **options)
    monkeypatch.setattr(run_mod, "load_backend", load)
    monkeypatch.setattr(bench_mod, "load_backend", load)
    assert run_main(["--model", str(path), "--source", str(videos["good"]), "--sink", "none", "--max-frames", "2",
                     "-q"]) == 0
    assert bench_main(["--model", str(path), "--size", "32x64", "--batch", "2", "--iters", "1", "--warmup", "0"]) == 0
    assert run_main(["--model", str(models["dynamic"]), "--source", str(videos["good"]), "--sink", "none",
                     "--max-frames", "2", "-q"]) == 0
    assert loaded == [1, 2, None]  # ONNX Runtime is given no batch: it takes none


def test_openvino_async_requests_return_each_its_own_result(models):
    ir = load_backend(models["openvino"], device="cpu", hint="throughput", requests=3, inference_precision="f32")
    assert ir.max_in_flight == 3
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((1, 3) + INPUT).astype(np.float32) for _ in range(3)]
    pending = [ir.start(x) for x in xs]
    outs = [p.wait() for p in pending]
    for x, out in zip(xs, outs):
        np.testing.assert_allclose(out, ir.infer(x), rtol=1e-4, atol=1e-4)


def test_model_without_metadata_is_refused(models, tmp_path):
    import onnx
    m = onnx.load(str(models["fixed"]))
    del m.metadata_props[:]
    onnx.save(m, str(tmp_path / "bare.onnx"))
    with pytest.raises(metadata.MetadataError, match="bare.onnx: no 'brd_edge_meta'"):
        load_backend(tmp_path / "bare.onnx")
    with pytest.raises(FileNotFoundError):
        load_backend(tmp_path / "missing.onnx")


def test_bench_reports_numbers_with_their_setup(models, tmp_path, capsys):
    r = bench(load_backend(models["dynamic"], device="cpu", threads=1), shape=(32, 64), iters=3, warmup=1)
    assert r["shape"] == [1, 3, 32, 64] and r["latency_ms"]["n"] == 3 and r["throughput_fps"] > 0
    assert r["cpu_ms_per_iter"] > 0
    assert r["backend"] == "onnxruntime" and r["threads"] == 1
    out = tmp_path / "bench.json"
    assert bench_main(["--model", str(models["openvino"]), "--iters", "3", "--warmup", "1", "--requests", "2",
                       "--hint", "throughput", "--precision-hint", "fp32", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "openvino" in printed and "p99" in printed and "throughput" in printed
    saved = json.loads(out.read_text())
    assert saved["latency_ms"]["n"] == 3 and saved["shape"] == [1, 3, 64, 128] and saved["precision"] == "fp32"
    assert bench_main(["--model", str(models["fixed"]), "--size", "32x64", "--iters", "1"]) == 2  # fixed shape
    batched = tmp_path / "batched.json"
    assert bench_main(["--model", str(models["dynamic"]), "--size", "32x64", "--batch", "2", "--iters", "2",
                       "--warmup", "0", "-o", str(batched)]) == 0
    assert json.loads(batched.read_text())["shape"] == [2, 3, 32, 64]
    assert bench_main(["--model", str(models["dynamic"]), "--hint", "throughput", "--iters", "1"]) == 2  # ONNX: no hint
    assert "the onnxruntime backend takes no --hint (it takes --device, --threads)" in capsys.readouterr().err


# -- the loop ------------------------------------------------------------------------------
def test_run_writes_every_frame_of_a_video(models, videos, tmp_path):
    out, stats = tmp_path / "out.mp4", tmp_path / "stats.json"
    assert run_main(["--model", str(models["openvino"]), "--source", str(videos["good"]), "--sink", str(out),
                     "-o", str(stats), "-q"]) == 0
    assert frames_of(out) == (FRAMES, (H, W))
    s = json.loads(stats.read_text())
    assert s["frames"] == {"processed": FRAMES, "skipped": 0, "dropped": 0, "reconnects": 0, "stalls": 0}
    for stage in ("capture_wait", "preprocess", "infer", "postprocess", "total"):
        assert s["latency_ms"][stage]["n"] == FRAMES and s["latency_ms"][stage]["p50"] <= s["latency_ms"][stage]["p99"]
    assert s["backend"]["backend"] == "openvino"
    cpu = s["cpu_ms_per_frame"]  # each stage's thread CPU: parts of the process's CPU, which also holds the model's
    assert all(cpu[k] > 0 for k in ("decode", "preprocess", "postprocess", "overlay", "sink"))
    assert cpu["outside_model"] == pytest.approx(sum(cpu[k] for k in ("decode", "preprocess", "postprocess",
                                                                       "overlay", "sink")))
    assert cpu["outside_model"] < cpu["process"]


def test_sink_none_gets_no_overlay_and_costs_no_drawing(models, videos, tmp_path):
    """Frames a sink throws away are not drawn; a sink that keeps them gets every one drawn."""
    class CountingOverlay(Overlay):
        drawn = 0

        def draw(self, frame, labels, fps=None, latency_ms=None):
            CountingOverlay.drawn += 1
            return super().draw(frame, labels, fps, latency_ms)

    backend = load_backend(models["fixed"], device="cpu")
    overlay = CountingOverlay(backend.meta["classes"], backend.meta["palette"])
    stats = Pipeline(backend, VideoFileSource(videos["good"]), NullSink(), overlay).run()
    assert stats.processed == FRAMES and CountingOverlay.drawn == 0
    assert stats.summary()["cpu_ms_per_frame"]["overlay"] == 0
    Pipeline(backend, VideoFileSource(videos["good"]), _CountingSink(), overlay).run()
    assert CountingOverlay.drawn == FRAMES


def test_a_sink_failing_in_the_writer_thread_ends_the_run_with_its_error_and_the_video_closed(models, videos, tmp_path):
    class FailingSink(VideoSink):  # the 4th write fails as a full disk does (SinkError), in the writer thread
        def write(self, image):
            if self.frames == 3:
                raise SinkError("{}: the disk is full (0.00 MB free): stopped after 3 frames".format(self.path))
            return super().write(image)

    out = tmp_path / "o.avi"
    sink = FailingSink(out, fps=10)
    backend = load_backend(models["fixed"], device="cpu")
    pipe = Pipeline(backend, VideoFileSource(videos["good"]), sink,
                    Overlay(backend.meta["classes"], backend.meta["palette"]))
    with pytest.raises(SinkError, match="stopped after 3 frames"):
        pipe.run()
    assert pipe.stats.processed == 3 and sink.writer is None and frames_of(out) == (3, (H, W))  # closed, plays
    assert not [t.name for t in threading.enumerate() if t.name in ("feed", "infer", "write")]


CTRL_C_WHILE_WRITING = """
import json, os, signal, sys, threading, time
from runtime.backends import load_backend
from runtime.contract import Signals
from runtime.overlay import Overlay
from runtime.pipeline import Pipeline
from runtime.sinks import VideoSink
from runtime.sources import VideoFileSource

class SignalledSink(VideoSink):
    def write(self, image):
        if self.frames == 2:
            os.kill(os.getpid(), signal.SIGINT)
            # the writer holds on here, as a slow disk would: on loaded cores the caller's thread could
            # otherwise finish the short video before it runs the signal's handler
            time.sleep(1.0)
        return super().write(image)

model, video, out, handler = sys.argv[1:5]
sink = SignalledSink(out, fps=10)
backend = load_backend(model, device="cpu")
signals = Signals().__enter__() if handler == "signals" else None  # runtime.run's handler, or Python's own
if handler == "python":  # Python's own even where SIGINT came ignored (a shell's background job): then none is set
    signal.signal(signal.SIGINT, signal.default_int_handler)
pipe = Pipeline(backend, VideoFileSource(video), sink, Overlay(backend.meta["classes"], backend.meta["palette"]),
                signals=signals)
stats = pipe.run()
left = [t.name for t in threading.enumerate() if t.name in ("feed", "infer", "write")]
print(json.dumps({"interrupted": pipe.interrupted, "processed": stats.processed, "written": sink.frames, "left": left}))
"""


@pytest.mark.parametrize("handler", ["python", "signals"])
def test_ctrl_c_with_a_video_sink_writes_what_was_handed_over_and_closes_it(models, videos, tmp_path, handler):
    """SIGINT arrives while the writer thread writes frame 3: with Python's handler it is raised in the
    caller's thread; with runtime.run's (`signals`) it is deferred and seen between frames. Either way the
    loop stops taking frames, the writer writes those it was given, and the video plays with all of them.
    In a fresh process: a real signal sent to pytest's own process late in the suite crashed it."""
    import subprocess
    import sys

    out = tmp_path / "o.avi"
    r = subprocess.run([sys.executable, "-c", CTRL_C_WHILE_WRITING, str(models["fixed"]), str(videos["good"]), str(out),
                        handler], capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parent.parent)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["interrupted"] and 3 <= got["processed"] < FRAMES and not got["left"], got
    assert got["written"] == got["processed"] and frames_of(out) == (got["processed"], (H, W))


def test_damaged_frames_are_skipped_and_counted(models, videos, tmp_path):
    out = tmp_path / "out.avi"
    assert VideoFileSource(videos["damaged"]).frame_count == FRAMES
    sink = VideoSink(out, fps=10)
    backend = load_backend(models["fixed"], device="cpu")
    overlay = Overlay(backend.meta["classes"], backend.meta["palette"])
    stats = Pipeline(backend, VideoFileSource(videos["damaged"]), sink, overlay).run()
    assert stats.skipped == len(DAMAGED) > 0
    assert stats.processed + stats.skipped == FRAMES
    assert frames_of(out) == (FRAMES - len(DAMAGED), (H, W))


def test_frame_order_is_kept(models, videos, tmp_path):
    """Frames come out in the order they were decoded, although three threads handle them."""
    seen = []

    class Recorder(VideoSink):
        def write(self, image):
            seen.append(int(image[5, 5, 0]))  # the frame-specific colour of the top-left block (alpha 0)
            return True

    backend = load_backend(models["dynamic"], device="cpu")
    Pipeline(backend, VideoFileSource(videos["good"]), Recorder(tmp_path / "x.mp4"),
             Overlay(backend.meta["classes"], backend.meta["palette"], alpha=0.0, legend=False)).run()
    assert len(seen) == FRAMES and (np.diff(seen) > 5).all()  # 40, 50, 60, ... up to JPEG noise


def test_dynamic_model_runs_at_frame_size_with_keep_size(models, videos, tmp_path):
    backend = load_backend(models["dynamic"], device="cpu")
    pipe = Pipeline(backend, VideoFileSource(videos["good"]), VideoSink(tmp_path / "o.mp4"), keep_size=True,
                    max_frames=3)
    stats = pipe.run()
    assert pipe.preprocessor.input_hw == (H, W) and stats.processed == 3


def test_fixed_shape_model_that_cannot_take_the_frames_fails_at_start_up(models, videos, tmp_path, capsys):
    backend = load_backend(models["fixed"], device="cpu")
    out = tmp_path / "never.mp4"
    sink = VideoSink(out)
    with pytest.raises(ShapeError, match=r"fixed input of 64x128 but --keep-size \(frame size\) asks for 128x256"):
        Pipeline(backend, VideoFileSource(videos["good"]), sink, keep_size=True).run()
    assert sink.frames == 0 and not out.exists()
    assert run_main(["--model", str(models["fixed"]), "--source", str(videos["good"]), "--sink", "none",
                     "--size", "96x96", "-q"]) == 2
    assert "fixed input of 64x128" in capsys.readouterr().err


class _CountingSink(Sink):
    def __init__(self):
        self.frames = 0

    def write(self, image):
        self.frames += 1
        return True


def test_live_source_through_the_loop_drops_instead_of_lagging(models):
    """A fake camera (the source is what is simulated) faster than the loop: the loop takes the
    newest frame each time, so frames are dropped and counted rather than queued."""
    from .runtime_media import FakeCamera

    class SlowSink(_CountingSink):  # 10 ms a frame: the loop is slower than the 2 ms camera on any machine
        def write(self, image):
            time.sleep(0.01)
            return super().write(image)

    cam = FakeCamera(frames=60, period=0.002)
    source = LiveSource(lambda: cam, "fake camera", reconnect=False, failures_before_reconnect=2)
    sink = SlowSink()
    stats = Pipeline(load_backend(models["fixed"], device="cpu"), source, sink).run()
    assert stats.dropped > 0 and stats.processed == sink.frames > 0
    assert stats.processed + stats.dropped == cam.produced == 60  # every frame used or counted


def test_stats_every_prints_periodic_tables(models, videos):
    printed = []
    backend = load_backend(models["fixed"], device="cpu")
    Pipeline(backend, VideoFileSource(videos["good"]), _CountingSink(), stats_every=1e-9,
             report=printed.append).run()
    assert printed and "p50" in printed[0] and "FPS" in printed[0]


def test_ctrl_c_ends_the_loop_cleanly_with_the_summary(models, videos):
    class InterruptedSink(_CountingSink):  # Ctrl-C arrives in the caller's thread while it shows frame 3
        def write(self, image):
            if self.frames == 2:
                raise KeyboardInterrupt
            return super().write(image)

    source = VideoFileSource(videos["good"])
    pipe = Pipeline(load_backend(models["fixed"], device="cpu"), source, InterruptedSink())
    stats = pipe.run()
    assert stats.processed == 2 and stats.summary()["frames"]["processed"] == 2
    assert not source.cap.isOpened()  # the source was released


def test_max_frames_stops_cleanly(models, videos):
    backend = load_backend(models["fixed"], device="cpu")
    stats = Pipeline(backend, VideoFileSource(videos["good"]), _CountingSink(), max_frames=5).run()
    assert stats.processed == 5


def test_tensorrt_engine_matches_onnxruntime(models, tmp_path):
    pytest.importorskip("tensorrt", reason="TensorRT is not installed (needs an NVIDIA GPU machine)")
    export_trt = pytest.importorskip("export.trt")
    engine = export_trt.onnx_to_trt(models["fixed"], tmp_path / "m.engine")
    trt_model, onnx = load_backend(engine), load_backend(models["fixed"], device="cpu")
    x = np.random.default_rng(0).standard_normal((1, 3) + INPUT).astype(np.float32)
    assert trt_model.meta["classes"] == onnx.meta["classes"]
    assert (trt_model.infer(x).argmax(1) == onnx.infer(x).argmax(1)).mean() > 0.98


def test_without_model_the_runtime_runs_the_shipped_model_and_says_which(models, videos, tmp_path, monkeypatch, capsys):
    import shutil

    from runtime.shipped import CARD, DEFAULT

    ir = tmp_path / "models" / DEFAULT
    ir.parent.mkdir(parents=True)
    shutil.copy(models["openvino"], ir)
    shutil.copy(Path(models["openvino"]).with_suffix(".bin"), ir.with_suffix(".bin"))
    monkeypatch.setenv("BRD_EDGE_MODELS", str(tmp_path / "models"))
    assert run_main(["--source", str(videos["good"]), "--sink", "none", "--max-frames", "3", "-q"]) == 0
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if l.startswith("no --model given"))
    assert str(ir) in line and "5 classes of synthetic" in line
    assert str(tmp_path / "models" / CARD) in line
    assert bench_main(["--iters", "2", "--warmup", "1"]) == 0
    assert "no --model given: using the shipped" in capsys.readouterr().out

    monkeypatch.setenv("BRD_EDGE_MODELS", str(tmp_path / "empty"))
    assert run_main(["--source", str(videos["good"]), "--sink", "none"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no --model given and no shipped model at" in err[0] and "--model FILE" in err[0]
