"""Live segmentation: `python -m runtime.run --model student.onnx --source 0`.

--source: camera index | video | image | folder | glob | rtsp:// or http:// URL | GStreamer pipeline
(contains '!') | csi://N[?width=..&height=..&fps=..]. --sink: window | out.mp4 | frames/ | none
(default: window when a display exists, else none). The summary (frames, FPS, per-stage p50/p90/p99)
is printed at the end, every N seconds with --stats-every, and written as JSON with -o/--output.
--source repeated: several streams through one loaded model, each with its own sink (--sink once per
source, or a template such as out_{i}.mp4; default none) and counters (runtime/streams.py).
"""
from __future__ import annotations

import logging
import sys

if __name__ == "__main__":  # Ctrl-C while the modules below load (OpenCV, a backend): one line, exit 130
    from .contract.signals import exit_while_loading
    exit_while_loading()

import cv2

from . import formats, shipped, streams
from .backends import load_backend
from .contract import (ArgumentParser, Signals, UserError, check_output, command, fraction, number, one_line,
                       positive_float, positive_int, size, write_json_file)
from .overlay import Overlay
from .pipeline import WRITER_NICE, Pipeline
from .sinks import has_display, open_sink
from .sources import STALL_TIMEOUT_S, open_source
from .stats import format_summary


def build_parser():
    p = ArgumentParser(prog="python -m runtime.run", description=__doc__, examples=(
        "python -m runtime.run --model student.onnx --source 0",
        "python -m runtime.run --model student.xml --source street.mp4 --sink out.mp4 -o stats.json",
        "python -m runtime.run --model student.engine --source 'csi://0?width=1280&height=720' --source "
        "rtsp://cam2/live --sink 'out_{i}.mp4'"))
    p.add_argument("--model", default=None, help="model file: " + ", ".join(f.suffix for f in formats.FORMATS)
                   + " (default: the shipped CamVid student, models/camvid_lite/brd.int8.xml)")
    p.add_argument("--source", action="append", default=None,
                   help="camera index, file, folder, glob, URL, pipeline, csi://N (default 0); repeat it for "
                        "several streams through one model")
    p.add_argument("--sink", action="append", default=None,
                   help="window, out.mp4, frames/ or none (default: window if a display exists); with several "
                        "--source: one --sink each, or one template with {i} (the stream's index) such as "
                        "out_{i}.mp4 (default none)")
    p.add_argument("--device", default="auto", help="onnx: auto|cpu|cuda|trt; openvino: auto|cpu|gpu|npu (default auto)")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU inference threads (default: the runtime's)")
    p.add_argument("--hint", default=None, choices=["latency", "throughput"],
                   help="OpenVINO performance hint (default latency)")
    p.add_argument("--precision-hint", dest="precision", default=None, choices=["fp32", "fp16", "bf16"],
                   help="OpenVINO compute precision (default: the one the IR's parity and accuracy gate were "
                        "measured at, recorded in it; another one makes the run unchecked, said in one line)")
    p.add_argument("--size", type=size, default=None, metavar="HxW", help="run a dynamic model at HxW (default: the model's input size)")
    p.add_argument("--keep-size", action="store_true", help="run a dynamic model at the frame size")
    p.add_argument("--letterbox", action="store_true", help="keep the aspect ratio, pad with the mean colour")
    p.add_argument("--alpha", type=fraction, default=0.5, help="overlay opacity of the class colours, 0..1")
    p.add_argument("--no-overlay", action="store_true", help="send the raw frames to the sink (for timing)")
    p.add_argument("--writer-nice", type=number(int, 0, 19), default=WRITER_NICE, metavar="N",
                   help="how much lower the priority of the thread that draws and writes a video or frame "
                        "folder is, so it takes the time the backend leaves free (Linux; 0: the loop's own; "
                        "default {})".format(WRITER_NICE))
    p.add_argument("--max-frames", type=positive_int, default=None, help="stop after N frames (N >= 1)")
    p.add_argument("--no-reconnect", action="store_true", help="end when a camera/stream drops")
    p.add_argument("--stall-timeout", type=number(float, 0, None), default=STALL_TIMEOUT_S, metavar="SECONDS",
                   help="a camera/stream that delivers no frame for this long is stalled: treated as lost and "
                        "reconnected, counted in stalls (0: no watchdog; default {:g})".format(STALL_TIMEOUT_S))
    p.add_argument("-o", "--output", default=None, help="write the summary (frames, FPS, latency) as JSON to this file")
    p.add_argument("--stats-every", type=positive_float, default=None, metavar="SECONDS",
                   help="print the summary every SECONDS too")
    p.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    return p


def backend_options(args, streams=1, batch=1):
    """The backend options the user asked for (a backend rejects those it does not take). Several streams on
    an OpenVINO model: the throughput hint unless --hint says otherwise (several requests in flight). An
    OpenVINO model is compiled for `batch` images a call (the loop runs one frame a request)."""
    hint = args.hint
    openvino = formats.format_for(args.model).name == "openvino"
    if hint is None and streams > 1 and openvino:
        hint = "throughput"
    options = {"device": args.device, "threads": args.threads, "hint": hint,
               "inference_precision": args.precision, "requests": getattr(args, "requests", None),
               "batch": batch if openvino else None}
    return {k: v for k, v in options.items() if v is not None and not (k == "device" and v == "auto")}


def load(args, streams=1):
    """The backend for args.model (the shipped student when none is named, said in one line)."""
    shipped_model = args.model is None
    args.model = args.model or shipped.default_model()
    backend = load_backend(args.model, labels=True, **backend_options(args, streams))
    if shipped_model:
        print(shipped.describe(args.model, backend.meta), flush=True)
    return backend


@command
def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    args.source = args.source or ["0"]
    with Signals() as signals:  # SIGTERM (systemd, docker) ends the run as Ctrl-C does
        if len(args.source) > 1:
            return _run_streams(args, signals)
        args.source, [args.sink] = args.source[0], streams.sink_specs(args.source, args.sink)
        return _run(args, signals)


def _run_streams(args, signals):
    """Several --source: one backend, one pipeline per stream (runtime/streams.py)."""
    specs = streams.sink_specs(args.source, args.sink)  # before the work: a wrong count fails at once
    if args.output:
        check_output(args.output, 0, "-o/--output")
    cv2.setNumThreads(1)  # as for one stream (_run)
    return streams.run(load(args, len(args.source)), args, specs, signals)


def _run(args, signals):
    sink_spec = args.sink or ("window" if has_display() else "none")
    if args.sink is None and sink_spec == "none":
        logging.getLogger("runtime.run").info("no display: showing nothing (use --sink out.mp4 to keep the result)")
    source = sink = pipeline = None
    failure = None  # a sink (or stage) that failed part-way: the statistics so far are still reported
    try:
        if args.output:  # before the work: results that cannot be written would be lost at the end
            check_output(args.output, 0, "-o/--output")
        # The loop's stages run in their own threads next to the backend's; OpenCV's own worker pool on top
        # of them only oversubscribes the cores the backend computes on.
        cv2.setNumThreads(1)
        backend = load(args)
        source = open_source(args.source, reconnect=not args.no_reconnect, stall_timeout=args.stall_timeout)
        known = getattr(source, "frame_count", None) or (len(source.paths) if hasattr(source, "paths") else None)
        if args.max_frames and known:
            known = min(known, args.max_frames)
        sink = open_sink(sink_spec, fps=getattr(source, "fps", None), expected_frames=known,
                         frame_hw=source.frame_hw)
        overlay = None if args.no_overlay else Overlay(backend.meta["classes"], backend.meta["palette"], args.alpha)
        pipeline = Pipeline(backend, source, sink, overlay, keep_size=args.keep_size, letterbox=args.letterbox,
                            input_size=args.size, max_frames=args.max_frames, stats_every=args.stats_every,
                            writer_nice=args.writer_nice, signals=signals)
        stats = pipeline.run()  # Ctrl-C/SIGTERM inside the loop ends it with the summary, outputs closed
    except KeyboardInterrupt:  # before the first frame (a camera that never delivers)
        signals.interrupted()
        _close(source, sink)
        print("interrupted by {} before the first frame".format(signals.name), file=sys.stderr)
        return signals.exit_code
    except UserError as e:
        _close(source, sink)
        if pipeline is None or not pipeline.started:
            raise
        failure, stats = e, pipeline.stats  # the loop ran: its summary and -o/--output outlive the failure
    signals.hold()  # the loop is over: a late signal must not cut the stats short
    info = backend.describe()
    info["source"] = args.source
    print(format_summary(stats.summary(), info))
    written = [str(sink.path) if hasattr(sink, "path") else str(sink.folder)] if hasattr(sink, "frames") else []
    if args.output:
        extra = {"error": one_line(failure)} if failure is not None else {}
        entry = dict(source=args.source, sink=sink_spec, **stats.summary())
        entry.update(status="failed" if failure else "interrupted" if signals.received else "ended", **extra)
        write_json_file(args.output, dict(stats.summary(), backend=info, interrupted=signals.name,
                                          streams=[entry], **extra))
        written.append(args.output)
    if failure is not None:
        raise failure  # one `error:` line, exit 2
    if signals.received:
        print("interrupted by {} after {} frames; outputs closed{}".format(
            signals.name, stats.processed, ": " + ", ".join(written) if written else ""), file=sys.stderr)
        return signals.exit_code
    return 0


def _close(source, sink):
    for thing in (source, sink):
        if thing is not None:
            try:
                thing.close()
            except Exception:  # already failing: the first error is the one to report
                pass


if __name__ == "__main__":
    sys.exit(main())
