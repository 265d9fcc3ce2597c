"""The loop: decode -> preprocess -> infer -> postprocess -> overlay/sink.

Three threads joined by small bounded queues, so preprocessing of frame i+1 and postprocessing of
frame i-1 run while frame i is in the backend (numpy/OpenCV/the runtimes release the GIL):

    feeder (source.read + preprocess) -> q_in -> inferer (backend.start/wait) -> q_out -> caller's
    thread (postprocess + overlay + sink; the caller's thread because GUI windows want it).

One thread per stage and FIFO queues keep the frame order. Everything is decided before the first
frame enters the loop: the model size (a fixed-shape model that cannot take the stream fails here).
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque

from .contract import SourceError
from . import stats as stats_mod
from .preprocess import Preprocessor, postprocess, resolve_size

log = logging.getLogger("runtime.pipeline")

_END = object()


class Pipeline:
    def __init__(self, backend, source, sink, overlay=None, keep_size=False, letterbox=False,
                 input_size=None, max_frames=None, stats_every=None, report=print):
        self.backend, self.source, self.sink, self.overlay = backend, source, sink, overlay
        self.keep_size, self.letterbox, self.input_size = keep_size, letterbox, input_size
        self.max_frames = max_frames
        self.stats_every = stats_every
        self.report = report
        self.stats = stats_mod.Stats()
        self.preprocessor = None
        self._stop = threading.Event()
        self._error = None
        self.interrupted = False  # ended by Ctrl-C/SIGTERM (runtime.contract.Signals raises KeyboardInterrupt)
        self.started = False  # the loop ran (its statistics mean something even if a stage failed later)
        depth = max(1, int(getattr(backend, "max_in_flight", 1)))
        # live sources: keep the queues short so a frame is never processed long after capture
        self._q_in = queue.Queue(maxsize=depth if source.live else depth + 2)
        self._q_out = queue.Queue(maxsize=2)

    # -- start-up ---------------------------------------------------------------------------
    def prepare(self):
        """Read the first frame and fix the model size; raises ShapeError before any thread runs."""
        first = self.source.read()
        if first is None:
            raise SourceError("{}: the source gave no frame (skipped {})".format(self.source.name,
                                                                                self.source.skipped))
        size = resolve_size(self.backend.meta, self.backend.input_shape, first.image.shape[:2],
                            keep_size=self.keep_size, size=self.input_size, source=str(self.backend.path))
        # every input that can be queued, in flight, or being filled at once gets its own buffer
        buffers = self._q_in.maxsize + max(1, int(getattr(self.backend, "max_in_flight", 1))) + 2
        self.preprocessor = Preprocessor(self.backend.meta, size, letterbox=self.letterbox,
                                         dtype=self.backend.input_dtype, buffers=buffers)
        log.info("%s -> %s at %dx%d (%s, %s, %s)", self.source.name, self.backend.path, size[0], size[1],
                 self.backend.name, self.backend.device, self.backend.precision)
        return first

    # -- stages ------------------------------------------------------------------------------
    def _put(self, q, item):
        while not self._stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, q):
        while True:
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                if self._stop.is_set():
                    return _END

    def _feed(self, first):
        try:
            frame, n = first, 0
            while frame is not None and not self._stop.is_set():
                t_read = time.perf_counter()
                x, geo = self.preprocessor(frame.image)
                t_pre = time.perf_counter() - t_read
                if not self._put(self._q_in, (frame, x, geo, t_read, t_pre)):
                    break
                n += 1
                if self.max_frames and n >= self.max_frames:
                    break
                frame = self.source.read()
        except BaseException as e:  # reported by run() in the caller's thread
            self._error = self._error or e
        finally:
            self._put(self._q_in, _END)

    def _infer(self):
        pending = deque()
        try:
            while True:
                item = self._get(self._q_in)
                if item is _END:
                    break
                t0 = time.perf_counter()  # before start(): a synchronous backend does the work in it
                pending.append((item, self.backend.start(item[1]), t0))
                if len(pending) >= self.backend.max_in_flight:
                    self._finish(pending.popleft())
            while pending:
                self._finish(pending.popleft())
        except BaseException as e:
            self._error = self._error or e
        finally:
            self._put(self._q_out, _END)

    def _finish(self, entry):
        item, handle, t0 = entry
        out = handle.wait()
        self._put(self._q_out, (item, out, time.perf_counter() - t0))

    # -- the loop ----------------------------------------------------------------------------
    def run(self):
        first = self.prepare()
        self.started = True
        st = self.stats
        st.started = time.perf_counter()
        st._mark = (st.started, 0, {s: 0 for s in st.stages})
        threads = [threading.Thread(target=self._feed, args=(first,), name="feed", daemon=True),
                   threading.Thread(target=self._infer, name="infer", daemon=True)]
        for t in threads:
            t.start()
        last_report, fps, t_prev = time.perf_counter(), None, None
        try:
            while True:
                item = self._get(self._q_out)
                if item is _END:
                    break
                (frame, _, geo, t_read, t_pre), out, t_inf = item
                t0 = time.perf_counter()
                labels = postprocess(out, geo, self.backend.output_kind)
                t1 = time.perf_counter()
                now = t1
                if t_prev is not None:  # smoothed, for the overlay text
                    inst = 1.0 / max(now - t_prev, 1e-9)
                    fps = inst if fps is None else 0.9 * fps + 0.1 * inst
                t_prev = now
                image = self.overlay.draw(frame.image, labels, fps, (t1 - t_read) * 1000) if self.overlay else frame.image
                keep_going = self.sink.write(image)
                t2 = time.perf_counter()
                for stage, value in (("capture_wait", frame.wait), ("preprocess", t_pre), ("infer", t_inf),
                                     ("postprocess", t1 - t0), ("sink", t2 - t1), ("total", t2 - t_read)):
                    st.add(stage, value)
                st.processed += 1
                if not keep_going:
                    log.info("stopped by the user")
                    break
                if self.stats_every and t2 - last_report >= self.stats_every:
                    last_report = t2
                    self._sync_counts()
                    r = st.recent()
                    self.report(stats_mod.table(r["latency_ms"], "last {} frames: {:.1f} FPS (skipped {}, dropped {})"
                                                .format(r["frames"], r["fps"], st.skipped, st.dropped)))
        except KeyboardInterrupt:
            log.info("interrupted")
            self.interrupted = True
        finally:
            self._stop.set()
            self.source.close()  # also wakes a live source's read()
            for t in threads:
                t.join(timeout=10)
            try:
                self.sink.close()  # a video sink reads its file back here
            except Exception as e:
                self._error = self._error or e
            st.ended = time.perf_counter()
            self._sync_counts()
        if self._error is not None:
            raise self._error
        return st

    def _sync_counts(self):
        self.stats.skipped = self.source.skipped
        self.stats.dropped = self.source.dropped
        self.stats.reconnects = self.source.reconnects
