"""Where frames come from: camera index, video file, image file/folder/glob, RTSP/HTTP stream,
a raw GStreamer pipeline, or `csi://N` (Jetson CSI camera).

Files give every frame in order; a frame that cannot be decoded is skipped and counted. Live sources
run a capture thread that keeps only the newest frame (older ones are dropped and counted, so the
loop never lags behind the camera) and reconnect with backoff when the device or stream drops. A watchdog
treats a live source that delivers no frame for `stall_timeout` seconds (a server that keeps the connection
open but sends nothing) as lost: it is counted in `stalls` and reconnected.
"""
from __future__ import annotations

import glob
import logging
import os
import threading
import time
from collections import namedtuple
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import cv2

from . import contract

log = logging.getLogger("runtime.sources")

Frame = namedtuple("Frame", "index image wait")  # wait: seconds read() waited for the frame

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp")
# FFmpeg waits on a URL's server with no limit: one that accepts the connection and then sends nothing held
# the open (and Ctrl-C, which the interpreter handles only when that C call returns) for ever. Opening and each
# read now give up after this long: the open is one error line, a stalled read ends in a reconnection.
STREAM_TIMEOUT_S = 10.0
# A live source with no frame for this long is stalled: reconnected (runtime.run --stall-timeout)
STALL_TIMEOUT_S = 5.0
MIN_IMAGE_SIDE = 8  # smaller images (a 1x1 thumbnail in a folder) carry nothing to segment: skipped


class SourceError(contract.SourceError):
    pass


class Source:
    live = False

    def __init__(self, name):
        self.name = name
        self.skipped = 0
        self.dropped = 0
        self.reconnects = 0
        self.stalls = 0  # live sources: times the watchdog found no frame for stall_timeout seconds
        self.frame_hw = None  # known (H, W) before the first frame, when the source says so
        self.cpu_s = 0.0  # CPU seconds spent decoding, on the thread that decodes (time.thread_time)

    def read(self):
        """The next Frame, or None at the end."""
        raise NotImplementedError

    def close(self):
        pass

    def __iter__(self):
        while True:
            frame = self.read()
            if frame is None:
                return
            yield frame


def open_video_file(path):
    """cv2.VideoCapture decoding on the thread that reads: FFmpeg's own decoder threads would only compete
    with the backend's for the cores (the frames come at the loop's pace anyway), and the decode then
    shows in that thread's CPU clock. OpenCV older than 4.6 (no CAP_PROP_N_THREADS) opens as before."""
    threads = getattr(cv2, "CAP_PROP_N_THREADS", None)
    if threads is not None:
        cap = cv2.VideoCapture(str(path), cv2.CAP_ANY, [threads, 1])
        if cap.isOpened():
            return cap
    return cv2.VideoCapture(str(path))


def _valid(image):
    return image is not None and getattr(image, "size", 0) > 0


class VideoFileSource(Source):
    """Every frame of a video file, in order. OpenCV returns one failed read per undecodable frame
    and then carries on, so a failed read is only the end once no later read succeeds (or the
    container's frame count is reached); failures followed by a good frame are counted as skipped."""

    max_consecutive_failures = 50

    def __init__(self, path, opener=open_video_file):
        super().__init__(str(path))
        if not Path(path).is_file():
            raise SourceError("{}: no such video file".format(path))
        self.cap = opener(str(path))
        if not self.cap.isOpened():
            raise SourceError("{}: OpenCV cannot open this video".format(path))
        count = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count = count if count > 0 else None
        w, h = int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        self.frame_hw = (h, w) if h > 0 and w > 0 else None
        self.fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0) or None
        self.decoded = 0
        self._ended = False
        # read() runs in the pipeline's feed thread and close() in the caller's: releasing a
        # VideoCapture during its read() deadlocks inside OpenCV, so the two never overlap
        self._lock = threading.Lock()

    def read(self):
        if self._ended:
            return None
        failures = 0
        t0, cpu0 = time.perf_counter(), time.thread_time()
        while True:
            with self._lock:
                if self._ended:  # closed meanwhile
                    return None
                ok, image = self.cap.read()
            self.cpu_s += time.thread_time() - cpu0
            cpu0 = time.thread_time()
            if ok and _valid(image):
                if failures:
                    log.warning("%s: skipped %d undecodable frame(s) before frame %d", self.name, failures,
                                self.decoded + self.skipped + failures)
                self.skipped += failures
                index = self.decoded + self.skipped
                self.decoded += 1
                return Frame(index, image, time.perf_counter() - t0)
            failures += 1
            seen = self.decoded + self.skipped + failures
            if failures >= self.max_consecutive_failures or (self.frame_count and seen >= self.frame_count):
                break
        # the end: frames the container announced but that never decoded were skipped too
        if self.frame_count:
            trailing = max(0, self.frame_count - self.decoded - self.skipped)
            if trailing:
                log.warning("%s: skipped %d undecodable frame(s) at the end", self.name, trailing)
            self.skipped += trailing
        self._ended = True
        return None

    def close(self):
        with self._lock:
            self._ended = True
            self.cap.release()


class ImageSource(Source):
    """Image files in order (one file, a folder, or a glob); unreadable ones are skipped."""

    def __init__(self, paths, name):
        super().__init__(name)
        self.paths = list(paths)
        if not self.paths:
            raise SourceError("{}: no images found (looked for {})".format(name, ", ".join(IMAGE_SUFFIXES)))
        self._next = 0
        self.fps = None

    def read(self):
        while self._next < len(self.paths):
            path, index = self.paths[self._next], self._next
            self._next += 1
            t0, cpu0 = time.perf_counter(), time.thread_time()
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            self.cpu_s += time.thread_time() - cpu0
            if _valid(image) and min(image.shape[:2]) >= MIN_IMAGE_SIDE:
                return Frame(index, image, time.perf_counter() - t0)
            if _valid(image):
                log.warning("%s: %dx%d is too small to segment (< %d px), skipped", path, image.shape[1],
                            image.shape[0], MIN_IMAGE_SIDE)
            else:
                log.warning("%s: cannot read image, skipped", path)
            self.skipped += 1
        return None


class LiveSource(Source):
    """A camera or stream read by a capture thread that keeps only the newest frame.

    `opener()` returns a cv2.VideoCapture-like object (isOpened/read/release). When reads keep
    failing the capture is reopened with exponential backoff, logged each time; after
    `max_reconnects` failed reopenings in a row (None: never give up) the source ends.

    The watchdog: once no frame has come for `stall_timeout` seconds (None: never) the next failed read
    reconnects at once, counted in `stalls`. The opener should make a read return (fail) after at most that
    long, as open_stream does for FFmpeg: a read blocked in C cannot be cut short from Python."""

    live = True

    def __init__(self, opener, name, reconnect=True, backoff=(0.5, 10.0), max_reconnects=None,
                 failures_before_reconnect=10, stall_timeout=None):
        super().__init__(name)
        self.opener = opener
        self.reconnect = reconnect
        self.backoff = backoff
        self.max_reconnects = max_reconnects
        self.failures_before_reconnect = failures_before_reconnect
        self.stall_timeout = stall_timeout or None
        self.fps = None
        self._cond = threading.Condition()
        self._newest = None  # (index, image)
        self._index = 0
        self._ended = False
        self._stop = threading.Event()
        self.cap = opener()
        if not self.cap.isOpened():
            raise SourceError("{}: cannot open this camera/stream{}".format(name, _gstreamer_hint(name)))
        w, h = int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        self.frame_hw = (h, w) if h > 0 and w > 0 else None
        self.fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0) or None
        self._thread = threading.Thread(target=self._capture, name="capture", daemon=True)
        self._thread.start()

    def _capture(self):
        failures = 0
        last = time.monotonic()  # the last frame, or the (re)opening
        while not self._stop.is_set():
            cpu0 = time.thread_time()
            ok, image = self.cap.read()
            self.cpu_s += time.thread_time() - cpu0  # a camera's read mostly waits: little CPU
            if ok and _valid(image):
                self.skipped += failures
                failures, last = 0, time.monotonic()
                with self._cond:
                    if self._newest is not None:
                        self.dropped += 1  # the loop did not take the previous one in time
                    self._newest = (self._index, image)
                    self._index += 1
                    self._cond.notify()
                continue
            failures += 1
            stalled = self.stall_timeout is not None and time.monotonic() - last >= self.stall_timeout
            if failures < self.failures_before_reconnect and not stalled:
                continue
            if stalled:
                self.stalls += 1
                log.warning("%s: no frame for %.1f s: stalled, treated as lost", self.name, time.monotonic() - last)
            failures = 0
            if not self.reconnect or not self._reopen():
                break
            last = time.monotonic()
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def _reopen(self):
        delay, attempt = self.backoff[0], 0
        while not self._stop.is_set():
            attempt += 1
            if self.max_reconnects is not None and attempt > self.max_reconnects:
                log.error("%s: gave up after %d reconnect attempts", self.name, attempt - 1)
                return False
            log.warning("%s: source dropped; reconnecting in %.1f s (attempt %d)", self.name, delay, attempt)
            self.cap.release()
            if self._stop.wait(delay):
                return False
            self.cap = self.opener()
            if self.cap.isOpened():
                self.reconnects += 1
                log.warning("%s: reconnected", self.name)
                return True
            delay = min(delay * 2, self.backoff[1])
        return False

    def read(self):
        t0 = time.perf_counter()
        with self._cond:
            while self._newest is None and not self._ended:
                self._cond.wait(0.1)
            if self._newest is None:
                return None
            index, image = self._newest
            self._newest = None
        return Frame(index, image, time.perf_counter() - t0)

    def close(self):
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=5)
        self.cap.release()


def _gstreamer_hint(spec):
    if ("!" in spec or spec.startswith("csi://")) and "GStreamer:                   NO" in cv2.getBuildInformation():
        return " (this OpenCV is built without GStreamer; on a Jetson use the system python3-opencv)"
    return ""


def csi_pipeline(sensor_id=0, width=1280, height=720, fps=30, flip=0):
    """The Jetson CSI camera pipeline: nvarguscamerasrc -> nvvidconv -> BGR appsink (newest only)."""
    return ("nvarguscamerasrc sensor-id={id} ! video/x-raw(memory:NVMM), width={w}, height={h}, "
            "framerate={fps}/1 ! nvvidconv flip-method={flip} ! video/x-raw, format=BGRx ! "
            "videoconvert ! video/x-raw, format=BGR ! appsink drop=true max-buffers=1 sync=false").format(
                id=sensor_id, w=width, h=height, fps=fps, flip=flip)


def _parse_csi(spec):
    """csi://N[?width=..&height=..&fps=..&flip=..]"""
    url = urlparse(spec)
    try:
        sensor = int(url.netloc or 0)
        q = {k: int(v[-1]) for k, v in parse_qs(url.query).items()}
    except ValueError:
        raise SourceError("{}: expected csi://N[?width=W&height=H&fps=F&flip=K]".format(spec)) from None
    unknown = set(q) - {"width", "height", "fps", "flip"}
    if unknown:
        raise SourceError("{}: unknown CSI option(s) {}".format(spec, ", ".join(sorted(unknown))))
    return csi_pipeline(sensor, **q)


def open_stream(url, timeout_s=None, read_timeout_s=None):
    """cv2.VideoCapture of a URL through FFmpeg, its open limited to `timeout_s` (default STREAM_TIMEOUT_S)
    and each read to `read_timeout_s` (default: the same), where this OpenCV has those properties (an older
    one waits as FFmpeg does)."""
    timeout_s = STREAM_TIMEOUT_S if timeout_s is None else timeout_s
    read_timeout_s = timeout_s if read_timeout_s is None else read_timeout_s
    params = []
    for name, seconds in (("CAP_PROP_OPEN_TIMEOUT_MSEC", timeout_s), ("CAP_PROP_READ_TIMEOUT_MSEC", read_timeout_s)):
        prop = getattr(cv2, name, None)
        if prop is not None:
            params += [prop, int(seconds * 1000)]
    return cv2.VideoCapture(url, cv2.CAP_FFMPEG, params) if params else cv2.VideoCapture(url, cv2.CAP_FFMPEG)


def open_source(spec, reconnect=True, max_reconnects=None, stall_timeout=STALL_TIMEOUT_S):
    """A Source for a --source string (see the module docstring); `stall_timeout`: the live sources'
    watchdog, seconds without a frame before reconnecting (None or 0: none)."""
    spec = str(spec)
    live = dict(max_reconnects=max_reconnects, stall_timeout=stall_timeout or None)
    if spec.isdigit():
        index = int(spec)

        def open_camera():
            cap = cv2.VideoCapture(index)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
            return cap
        return LiveSource(open_camera, "camera {}".format(index), reconnect, **live)
    if spec.startswith("csi://"):  # named as given (its errors too); the pipeline it stands for is logged
        pipeline = _parse_csi(spec)
        log.info("%s: %s", spec, pipeline)
        return LiveSource(lambda: cv2.VideoCapture(pipeline, cv2.CAP_GSTREAMER), spec, reconnect, **live)
    if "!" in spec:
        return LiveSource(lambda: cv2.VideoCapture(spec, cv2.CAP_GSTREAMER), spec, reconnect, **live)
    if urlparse(spec).scheme.lower() in STREAM_SCHEMES:
        # each read gives up by the watchdog's deadline, so that a stalled stream is found in time
        read_timeout = min(STREAM_TIMEOUT_S, stall_timeout) if stall_timeout else None
        return LiveSource(lambda: open_stream(spec, read_timeout_s=read_timeout), spec, reconnect, **live)
    path = Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        return ImageSource(files, spec)
    if any(ch in spec for ch in "*?["):
        files = sorted(p for p in glob.glob(spec) if os.path.splitext(p)[1].lower() in IMAGE_SUFFIXES)
        return ImageSource(files, spec)
    if not path.exists():
        raise SourceError("{}: no such file, folder or camera (expected a camera index, a video, an image, "
                          "a folder, a glob, an rtsp:// or http:// URL, a GStreamer pipeline or csi://N)".format(spec))
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource([path], spec)
    return VideoFileSource(path)
