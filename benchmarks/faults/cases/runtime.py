"""The cases of the runtime: runtime.run (models, sources, sinks, flags, signals) and runtime.bench."""
from __future__ import annotations

from ..case import Case
from .builders import C, SIZES, file_faults, flag_faults, output_faults, signal_cases


def _rr(model="{fx}/s.onnx", source="{fx}/short.avi", sink="none", extra=()):
    return ("--model", model, "--source", source, "--sink", sink, "-q") + tuple(extra)


SOURCES = [  # (kind, fault, source, setup, expected exits, what the line names)
    ("missing file", "a video that does not exist", f"{C}/no/such/v.mp4", (), (2,), "v.mp4"),
    ("source", "a video with a corrupt frame (4 KB of junk mid-file)", "{fx}/corrupt.avi", (), (0, 2), ""),
    ("source", "a video with no frame", "{fx}/zero.avi", (), (2,), "zero.avi"),
    ("non-image", "a folder of images, a text file and a broken PNG", "{fx}/mixed", (), (0,), ""),
    ("non-image", "a folder with no image", "{fx}/nonimages", (), (2,), "nonimages"),
    ("empty file", "an empty folder", "{fx}/emptydir", (), (2,), "emptydir"),
    ("missing file", "a glob that matches nothing", f"{C}/none/*.png", (), (2,), "*.png"),
    ("junk bytes", "a .mp4 of random bytes", f"{C}/in/junk.mp4", (("bytes", "in/junk.mp4"),), (2,), "junk.mp4"),
    ("empty file", "an empty .mp4", f"{C}/in/empty.mp4", (("empty", "in/empty.mp4"),), (2,), "empty.mp4"),
    ("wrong suffix", "a text file as a video", f"{C}/in/notes.txt", (("text", "in/notes.txt", "hello\n"),), (2,),
     "notes.txt"),
    ("non-image", "a broken PNG as an image", f"{C}/in/broken.png", (("bytes", "in/broken.png"),), (2,),
     "broken.png"),
    ("unreachable source", "an RTSP URL nobody serves (--no-reconnect)", "rtsp://127.0.0.1:9/live", (), (2,),
     "rtsp://127.0.0.1:9/live"),
    ("unreachable source", "an HTTP MJPEG URL nobody serves (--no-reconnect)", "http://127.0.0.1:9/video.mjpg", (),
     (2,), "127.0.0.1:9"),
    ("unreachable source", "a camera index with no camera (7)", "7", (), (2,), "7"),
    ("unreachable source", "csi://3 (no CSI camera, no GStreamer)", "csi://3", (), (2,), "csi://3"),
    ("unreachable source", "a GStreamer pipeline (OpenCV without GStreamer)", "videotestsrc ! appsink", (), (2,),
     "videotestsrc"),
    ("control", "no fault (a single image)", "{fx}/images/img_0.png", (), (0,), ""),
    ("control", "no fault (a video)", "{fx}/short.avi", (), (0,), ""),
]


def runtime_run() -> list:
    m = "runtime.run"
    model = lambda p: _rr(p)  # noqa: E731
    cases = file_faults(m, model, ".onnx", "--model (ONNX)", valid="s.onnx", extra=[
        ("wrong kind of model", "a checkpoint (.pt) given to the runtime", "run/model.pt", "model.pt")])
    cases += file_faults(m, model, ".xml", "--model (OpenVINO IR)", valid="s.xml", cut=True, extra=[
        ("missing file", "an IR without its .bin", "s.xml", "nobin.xml")])
    cases += file_faults(m, model, ".engine", "--model (TensorRT engine)", names=False)
    cases += [Case(m, kind, f"--source: {fault}", _rr(source=src, extra=("--no-reconnect",)), expect, names=names,
                   setup=setup, timeout=90) for kind, fault, src, setup, expect, names in SOURCES]
    cases.append(Case(m, "unreachable source", "--source an RTSP URL nobody serves, reconnecting (the default)",
                      _rr(source="rtsp://127.0.0.1:9/live"), (2,), names="rtsp://127.0.0.1:9/live", timeout=90))
    bad = SIZES[:3] + [("bad value", "--alpha", "2", "--alpha"), ("bad value", "--max-frames", "0", "--max-frames"),
                       ("bad value", "--threads", "0", "--threads"), ("bad value", "--device", "tpu", "tpu"),
                       ("bad value", "--hint", "fast", "--hint"), ("bad value", "--writer-nice", "50", "--writer-nice"),
                       ("bad value", "--stats-every", "0", "--stats-every"),
                       ("bad value", "--precision-hint", "int8", "--precision-hint")]
    cases += flag_faults(m, _rr(), bad)
    cases += _runtime_outputs(m) + _runtime_signals(m)
    return cases


def _runtime_outputs(m) -> list:
    video = lambda p: _rr(source="{fx}/long.avi", sink=p)  # noqa: E731
    cases = output_faults(m, video, "out.mp4", "--sink video")
    cases += output_faults(m, lambda p: _rr(sink=p + "/"), "frames", "--sink frame folder", folder=True)
    cases += output_faults(m, lambda p: _rr(extra=("-o", p)), "stats.json", "-o")
    cases += [
        Case(m, "wrong suffix", "--sink out.xyz (no such container)", _rr(sink=f"{C}/out/out.xyz"), names="out.xyz"),
        Case(m, "existing output", "-o names an earlier summary and the model is missing: kept as it was",
             _rr(f"{C}/no/such/s.onnx", extra=("-o", f"{C}/out/stats.json")), names="s.onnx",
             setup=(("text", "out/stats.json", '{"frames": 1}\n'),)),
        Case(m, "existing output", "--sink names an earlier video and the source is missing: kept as it was",
             _rr(source=f"{C}/no/such/v.mp4", sink=f"{C}/out/out.avi"), names="v.mp4",
             setup=(("copy", "short.avi", "out/out.avi"),)),
        Case(m, "full disk", "--sink video on a disk another writer fills mid-run",
             _rr(source="{fx}/long.avi", sink=f"{C}/disk/out.mp4", extra=("-o", f"{C}/stats.json")),
             names="out.mp4", setup=(("mount", "disk", 8192),), trigger=("size", "disk/*", 200_000),
             action=("fill", "disk"), keep=("disk/filler", "disk/out.mp4", "stats.json"), timeout=180),
    ]
    return cases


def _runtime_signals(m) -> list:
    args = _rr(source="{fx}/long.avi", sink=f"{C}/out/out.mp4", extra=("-o", f"{C}/out/stats.json",
                                                                     "--stats-every", "0.05"))
    cases = signal_cases(m, args, [("at start (0.3 s: importing)", ("after", 0.3)),
                                   ("mid-run (the first summary printed)", ("text", "last "))],
                         keep=("out/out.mp4", "out/stats.json"))
    stalled = _rr(source="http://127.0.0.1:{port}/video.mjpg", sink=f"{C}/out/out.mp4")
    cases += signal_cases(m, stalled, [("before the first frame (a camera URL that answers and sends nothing)",
                                        ("after", 4.0))], setup=(("stalled stream",),), timeout=60)
    cases.append(Case(m, "unreachable source", "--source a camera URL that answers and never sends a frame",
                      stalled, (2,), names="video.mjpg", setup=(("stalled stream",),), timeout=60))
    cases += signal_cases(m, _rr(source="{fx}/long.avi", sink=f"{C}/frames/"),
                          [("mid-run, writing a frame folder", ("file", "frames/*"))], keep=("frames/*",),
                          sigs=("SIGTERM",))
    return cases


def runtime_bench() -> list:
    m = "runtime.bench"
    base = lambda p="{fx}/s.onnx", *extra: ("--model", p, "--iters", "5", "--warmup", "1") + extra  # noqa: E731
    cases = file_faults(m, lambda p: base(p), ".onnx", "--model (ONNX)", valid="s.onnx", extra=[
        ("wrong kind of model", "a checkpoint (.pt)", "run/model.pt", "model.pt")])
    cases += file_faults(m, lambda p: base(p), ".xml", "--model (OpenVINO IR)", valid="s.xml", extra=[
        ("missing file", "an IR without its .bin", "s.xml", "nobin.xml")])
    bad = SIZES[:3] + [("bad value", "--iters", "0", "--iters"), ("bad value", "--warmup", "-1", "--warmup"),
                       ("bad value", "--batch", "0", "--batch"), ("bad value", "--requests", "0", "--requests"),
                       ("bad value", "--threads", "0", "--threads"), ("bad value", "--device", "tpu", "tpu")]
    cases += flag_faults(m, base(), bad)
    cases += output_faults(m, lambda p: base("{fx}/s.onnx", "-o", p), "bench.json", "-o")
    cases.append(Case(m, "control", "no fault", base(), (0,)))
    long = ("--model", "{fx}/s.onnx", "--iters", "1000000", "--warmup", "1", "-o", f"{C}/out/bench.json")
    cases += signal_cases(m, long, [("mid-timing (after 4 s)", ("after", 4.0))], keep=("out/bench.json",))
    return cases
