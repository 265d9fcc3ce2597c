"""Several streams, one model: `python -m runtime.run --source A --source B ... --sink out_{i}.mp4`.

The model is loaded (compiled) once and serves every stream. Each stream is a Pipeline of its own (its
source with the newest-frame policy and reconnection, its overlay, its sink, its counters) whose stages run
in threads of their own; the backend's `share()` says how many requests each stream keeps in flight:
ONNX Runtime runs the streams' frames concurrently on one session, OpenVINO gives each stream its share of
the compiled model's infer requests (throughput hint unless --hint says otherwise), TensorRT runs one
request at a time behind a lock.

A stream that ends or fails does not stop the others. The exit code says what happened to all of them:
0 every stream ended (its source ended, or --max-frames); 2 (a failure's own code) one or more streams
failed, the others ran to their end, one `error: stream I (SOURCE): ...` line per failed stream; 130/143
Ctrl-C/SIGTERM, which ends every stream with its sink closed playable (error lines of streams that
failed before come first). A bug (not a user error) in a stream is raised once every stream has ended.
"""
from __future__ import annotations

import logging
import sys
import threading

from .contract import ConfigError, UserError, one_line, write_json_file
from .overlay import Overlay
from .pipeline import Pipeline
from .sinks import open_sink
from .sources import open_source
from .stats import Stats, format_summary

log = logging.getLogger("runtime.streams")


def sink_specs(sources, sinks):
    """One sink spec per source: --sink given once per --source, or once for all of them as a template
    with {i} (the stream's index, from 0) or `none`. Raises ConfigError for anything else."""
    n = len(sources)
    sinks = list(sinks or [])
    if len(sinks) == 1 and "{i}" in sinks[0]:
        return [sinks[0].replace("{i}", str(i)) for i in range(n)]
    if n == 1:
        if len(sinks) > 1:
            raise ConfigError("--sink given {} times for one --source: give one".format(len(sinks)))
        return [sinks[0] if sinks else None]
    if not sinks or sinks == ["none"]:
        return ["none"] * n
    if len(sinks) != n:
        raise ConfigError("--sink {}: {} sources need one --sink each, or one template with {{i}} such as "
                          "out_{{i}}.mp4".format(" ".join(sinks), n))
    if "window" in sinks:
        raise ConfigError("--sink window: several streams cannot show windows; write them (--sink out_{i}.mp4) "
                          "or use none")
    kept = [s for s in sinks if s != "none"]
    twice = sorted({s for s in kept if kept.count(s) > 1})
    if twice:
        raise ConfigError("--sink {}: given to two streams; give each stream its own".format(twice[0]))
    return sinks


class Stream:
    """One source of a multi-stream run, what it opened, and how it ended."""

    def __init__(self, index, spec, sink_spec):
        self.index, self.spec, self.sink_spec = index, spec, sink_spec
        self.source = self.sink = self.pipeline = self.thread = None
        self.error = None

    @property
    def name(self):
        return "stream {} ({})".format(self.index, self.spec)

    @property
    def started(self):
        return self.pipeline is not None and self.pipeline.started

    def status(self, signals):
        if self.error is not None:
            return "failed"
        return "interrupted" if signals.received else "ended"


def run(backend, args, specs, signals, report=print):
    """Run every stream of `args.source` (sinks `specs`) on `backend`; the exit code (module docstring)."""
    streams = [Stream(i, spec, sink) for i, (spec, sink) in enumerate(zip(args.source, specs))]
    per_stream = backend.share(len(streams))
    total = Stats()  # the whole run's wall and process CPU clocks start here
    signals.deferring = True  # a signal is seen by every stream between its frames
    for stream in streams:
        stream.thread = threading.Thread(target=_serve, args=(stream, backend, args, per_stream, signals, report),
                                         name="stream-{}".format(stream.index), daemon=True)
        stream.thread.start()
    _wait(streams, signals)
    signals.hold()  # every stream is over: a late signal must not cut the report short
    total.end()
    return _report(backend, args, streams, total.absorb(s.pipeline.stats for s in streams if s.started), signals,
                   report)


def _serve(stream, backend, args, per_stream, signals, report):
    """A stream's own thread: open its source and sink, run its pipeline; a failure is kept, not raised."""
    def prefixed(text):
        report("{}: {}".format(stream.name, text))
    try:
        stream.source = source = open_source(stream.spec, reconnect=not args.no_reconnect,
                                             stall_timeout=args.stall_timeout)
        known = getattr(source, "frame_count", None) or (len(source.paths) if hasattr(source, "paths") else None)
        if args.max_frames and known:
            known = min(known, args.max_frames)
        stream.sink = open_sink(stream.sink_spec, fps=getattr(source, "fps", None), expected_frames=known,
                                frame_hw=source.frame_hw)
        overlay = None if args.no_overlay else Overlay(backend.meta["classes"], backend.meta["palette"], args.alpha)
        stream.pipeline = Pipeline(backend, source, stream.sink, overlay, keep_size=args.keep_size,
                                   letterbox=args.letterbox, input_size=args.size, max_frames=args.max_frames,
                                   stats_every=args.stats_every, report=prefixed, writer_nice=args.writer_nice,
                                   signals=signals, in_flight=per_stream)
        stream.pipeline.run()  # closes its source and sink once its loop ran
    except BaseException as e:  # reported with the others' results once every stream has ended
        # a live source closed by a signal before its first frame was interrupted, not failed
        stream.error = None if signals.requested and not stream.started else e
        for thing in (stream.source, stream.sink):
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # already failing: the first error is the one to report
                    pass


def _wait(streams, signals):
    """Until every stream's thread has ended. After a signal, a live source still waiting for its first
    frame is closed (its read returns), so that stream ends too."""
    woken = False
    while any(s.thread.is_alive() for s in streams):
        try:
            for stream in streams:
                stream.thread.join(0.1)
            if signals.requested and not woken:
                woken = True
                for stream in streams:
                    if stream.source is not None and stream.source.live and not stream.started:
                        stream.source.close()
        except KeyboardInterrupt:  # a second signal: every stream already stops at its next frame
            signals.interrupted()
            signals.hold()


def _report(backend, args, streams, total, signals, report):
    info = backend.describe()
    info["source"] = list(args.source)
    summary = total.summary()
    report(format_summary(summary, info))
    entries, written = [], []
    for stream in streams:
        entry = _entry(stream, signals)
        entries.append(entry)
        f = entry["frames"]
        report("{} -> {}: {} frames = {:.1f} FPS (skipped {}, dropped {}, reconnects {}), {}".format(
            stream.name, stream.sink_spec, f["processed"], entry["fps"], f["skipped"], f["dropped"],
            f["reconnects"], entry["status"]))
        if hasattr(stream.sink, "frames") and stream.sink.frames:
            written.append(str(stream.sink.path) if hasattr(stream.sink, "path") else str(stream.sink.folder))
    if args.output:
        write_json_file(args.output, dict(summary, backend=info, streams=entries, interrupted=signals.name))
        written.append(args.output)
    bugs = [s.error for s in streams if s.error is not None and not isinstance(s.error, (UserError, KeyboardInterrupt))]
    if bugs:
        raise bugs[0]
    failed = [s for s in streams if s.status(signals) == "failed"]
    for stream in failed:
        print("error: {}: {}".format(stream.name, one_line(stream.error)), file=sys.stderr)
    if signals.received:
        print("interrupted by {} after {} frames; outputs closed{}".format(
            signals.name, total.processed, ": " + ", ".join(written) if written else ""), file=sys.stderr)
        return signals.exit_code
    return max([getattr(s.error, "exit_code", 2) for s in failed] or [0])


def _entry(stream, signals):
    """A stream's part of the -o/--output JSON: its source, sink, counters, FPS and latency, and how it ended."""
    stats = stream.pipeline.stats if stream.started else Stats()
    entry = dict(source=stream.spec, sink=stream.sink_spec, **stats.summary())
    if not stream.started:
        entry["fps"] = 0.0
    entry["status"] = stream.status(signals)
    if entry["status"] == "failed":
        entry["error"] = one_line(stream.error)
    return entry
