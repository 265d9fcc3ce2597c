"""The loop: decode -> preprocess -> infer -> postprocess -> overlay/sink.

Threads joined by small bounded queues, so preprocessing of frame i+1 and postprocessing of frame i-1
run while frame i is in the backend (numpy/OpenCV/the runtimes release the GIL):

    feeder (source.read + preprocess) -> q_in -> inferer (backend.start/wait) -> q_out -> caller's
    thread (postprocess; overlay + sink for a window, whose GUI wants the caller's thread)
    -> q_sink -> writer (overlay + encode/write, for file sinks).

One thread per stage and FIFO queues keep the frame order; a file sink still gets every frame (a full
q_sink holds the loop back). The writer runs at a lower CPU priority where the OS allows it: on
cores the backend keeps busy, overlay and encoding take the time the backend leaves free instead of
delaying it. A sink that keeps nothing (`none`) gets no overlay drawn.
Ctrl-C/SIGTERM (`signals`, runtime.contract.Signals) are deferred once the threads run: the caller's
thread sees the request between frames (at most ~0.1 s later) and ends the loop. An exception raised
at an arbitrary point of the caller's thread could land while it holds a queue's lock, and the writer
and the final flush would then wait on that lock forever.
Everything is decided before the first frame enters the loop: the model size (a fixed-shape model that
cannot take the stream fails here).
"""
from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import deque

from .contract import SourceError
from . import stats as stats_mod
from .preprocess import Preprocessor, postprocess, resolve_size

log = logging.getLogger("runtime.pipeline")

_END = object()
# How much lower the writer thread's priority is (Linux: niceness per thread; 0: the loop's own). Not the
# lowest (19): the writer must still get a share of cores that other programs keep busy.
WRITER_NICE = 10


def lower_priority(nice):
    """Raise the calling thread's niceness by `nice` (Linux: setpriority on the thread id); False where the
    OS does not allow it (then the thread keeps the process's priority)."""
    tid = getattr(threading, "get_native_id", None)
    if not nice or tid is None or not hasattr(os, "setpriority"):
        return False
    try:
        os.setpriority(os.PRIO_PROCESS, tid(), min(19, os.getpriority(os.PRIO_PROCESS, tid()) + nice))
        return True
    except OSError:
        return False


class Pipeline:
    def __init__(self, backend, source, sink, overlay=None, keep_size=False, letterbox=False,
                 input_size=None, max_frames=None, stats_every=None, report=print, writer_nice=WRITER_NICE,
                 signals=None, in_flight=None):
        self.backend, self.source, self.sink = backend, source, sink
        self.overlay = overlay if getattr(sink, "shows_frames", True) else None  # `none` keeps no frame to draw on
        self.writer_nice = writer_nice
        self.keep_size, self.letterbox, self.input_size = keep_size, letterbox, input_size
        self.max_frames = max_frames
        self.stats_every = stats_every
        self.report = report
        self.stats = stats_mod.Stats()
        self.preprocessor = None
        self._stop = threading.Event()
        self._error = None
        self.signals = signals  # runtime.contract.Signals: a request is honoured between frames
        self.interrupted = False  # ended by Ctrl-C/SIGTERM (a deferred request or a KeyboardInterrupt)
        self.started = False  # the loop ran (its statistics mean something even if a stage failed later)
        # requests this stream keeps in flight: the backend's own, or its share when it serves several streams
        depth = self.in_flight = max(1, int(in_flight or getattr(backend, "max_in_flight", 1)))
        # live sources: keep the queues short so a frame is never processed long after capture
        self._q_in = queue.Queue(maxsize=depth if source.live else depth + 2)
        self._q_out = queue.Queue(maxsize=2)
        self._q_sink = queue.Queue(maxsize=2) if getattr(sink, "threaded", False) else None

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
        buffers = self._q_in.maxsize + self.in_flight + 2
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

    def _get(self, q, stop_requested=None):
        """The next item of `q`; _END once the pipeline stops (or `stop_requested()` says to)."""
        while not (stop_requested and stop_requested()):
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                if self._stop.is_set():
                    return _END
        return _END

    def _feed(self, first):
        try:
            frame, n = first, 0
            while frame is not None and not self._stop.is_set():
                t_read, cpu0 = time.perf_counter(), time.thread_time()
                x, geo = self.preprocessor(frame.image)
                t_pre = time.perf_counter() - t_read
                self.stats.add_cpu("preprocess", time.thread_time() - cpu0)
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
                if len(pending) >= self.in_flight:
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
        st = self.stats
        st.start_cpu()
        first = self.prepare()  # a signal still raises here: a camera may never deliver its first frame
        if self.signals is not None:
            self.signals.deferring = True
        self.started = True
        st.start()
        threads = [threading.Thread(target=self._feed, args=(first,), name="feed", daemon=True),
                   threading.Thread(target=self._infer, name="infer", daemon=True)]
        writer = None
        if self._q_sink is not None:
            writer = threading.Thread(target=self._write, name="write", daemon=True)
            writer.start()
        for t in threads:
            t.start()
        try:
            self._loop()
        except KeyboardInterrupt:
            log.info("interrupted")
            self.interrupted = True
        finally:
            if self.signals is not None:
                self.signals.hold()  # closing (an mp4's index) must not be cut short by a second signal
            self._stop.set()
            self.source.close()  # also wakes a live source's read()
            for t in threads:
                t.join(timeout=10)
            self._end_writer(writer)  # the frames already handed to it are written first
            try:
                self.sink.close()  # a video sink reads its file back here
            except Exception as e:
                self._error = self._error or e
            st.end()
            self._sync_counts()
        if self._error is not None:
            raise self._error
        return st

    def _loop(self):
        """The caller's thread: postprocess each result, then draw and write it here or hand it to the writer."""
        st = self.stats
        last_report, fps, t_prev = time.perf_counter(), None, None
        while True:
            item = self._get(self._q_out, self._requested)  # a signal is seen here, between frames
            if item is _END:
                return
            (frame, _, geo, t_read, t_pre), out, t_inf = item
            t0, cpu0 = time.perf_counter(), time.thread_time()
            labels = postprocess(out, geo, self.backend.output_kind)
            t1 = time.perf_counter()
            st.add_cpu("postprocess", time.thread_time() - cpu0)
            if t_prev is not None:  # smoothed, for the overlay text
                inst = 1.0 / max(t1 - t_prev, 1e-9)
                fps = inst if fps is None else 0.9 * fps + 0.1 * inst
            t_prev = t1
            done = (frame, labels, fps, (t_read, t_pre, t_inf, t1 - t0, t1))
            if self._q_sink is not None:
                if not self._put(self._q_sink, done):  # the writer failed: its error ends the run
                    return
            elif not self._emit(done):
                log.info("stopped by the user")
                return
            if self.stats_every and t1 - last_report >= self.stats_every:
                last_report = t1
                self._sync_counts()
                r = st.recent()
                self.report(stats_mod.table(r["latency_ms"], "last {} frames: {:.1f} FPS (skipped {}, dropped {})"
                                            .format(r["frames"], r["fps"], st.skipped, st.dropped)))

    def _requested(self):
        """A deferred Ctrl-C/SIGTERM arrived: the loop ends as at the end of the source."""
        if self.signals is not None and self.signals.requested:
            if not self.interrupted:
                log.info("interrupted")
            self.interrupted = True
        return self.interrupted

    def _emit(self, done):
        """Overlay and sink for one frame, and its statistics; False when the sink asks to stop."""
        frame, labels, fps, (t_read, t_pre, t_inf, t_post, t1) = done
        st = self.stats
        image, cpu0 = frame.image, time.thread_time()
        if self.overlay is not None:
            image = self.overlay.draw(frame.image, labels, fps, (t1 - t_read) * 1000)
            st.add_cpu("overlay", time.thread_time() - cpu0)
            cpu0 = time.thread_time()
        keep_going = self.sink.write(image)
        t2 = time.perf_counter()
        st.add_cpu("sink", time.thread_time() - cpu0)
        for stage, value in (("capture_wait", frame.wait), ("preprocess", t_pre), ("infer", t_inf),
                             ("postprocess", t_post), ("sink", t2 - t1), ("total", t2 - t_read)):
            st.add(stage, value)
        st.processed += 1
        return keep_going

    def _write(self):
        """The writer thread: every frame handed over, in order, until _END (or its own failure)."""
        lower_priority(self.writer_nice)
        try:
            while True:
                item = self._q_sink.get()
                if item is _END:
                    return
                self._emit(item)
        except BaseException as e:  # reported by run() in the caller's thread
            self._error = self._error or e
            self._stop.set()

    def _end_writer(self, writer):
        if writer is None:
            return
        while writer.is_alive():  # a writer that failed is gone and takes nothing more
            try:
                self._q_sink.put(_END, timeout=0.1)
                break
            except queue.Full:
                continue
        writer.join()

    def _sync_counts(self):
        self.stats.cpu_s["decode"] = self.source.cpu_s
        self.stats.skipped = self.source.skipped
        self.stats.dropped = self.source.dropped
        self.stats.reconnects = self.source.reconnects
        self.stats.stalls = getattr(self.source, "stalls", 0)
