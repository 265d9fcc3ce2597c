"""Where overlaid frames go: a window (needs a display; `q` quits), a video file, an image folder,
or nowhere (`none`, for measuring)."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import cv2

from .contract import MIN_FREE_BYTES, OutputError, check_folder, check_output

VIDEO_FOURCC = {".mp4": "mp4v", ".mov": "mp4v", ".m4v": "mp4v", ".mkv": "mp4v", ".avi": "MJPG"}


class SinkError(OutputError):
    pass


def _free_bytes(folder):
    return shutil.disk_usage(str(folder)).free


def _checked(check, *args):
    try:
        return check(*args)
    except OutputError as e:
        raise SinkError(str(e)) from None


class Sink:
    # shows_frames: False for a sink that keeps nothing (`none`): the loop then draws no overlay for it.
    # threaded: the loop calls write() from its own writer thread (a file sink); False where the caller's
    # thread must (a GUI window) or where there is nothing to write.
    shows_frames = True
    threaded = False

    def write(self, image):
        """Show/store one BGR frame; False when the user asked to stop."""
        return True

    def close(self):
        pass


class NullSink(Sink):
    shows_frames = False


def has_display():
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


class WindowSink(Sink):
    def __init__(self, title="BRD Edge"):
        if not has_display():
            raise SinkError("--sink window needs a display (no DISPLAY/WAYLAND_DISPLAY); "
                            "use --sink out.mp4, --sink frames/ or --sink none")
        self.title = title
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error as e:
            raise SinkError("--sink window: this OpenCV has no GUI support (opencv-python-headless?); "
                            "install opencv-python or use another sink ({})".format(str(e).strip()[:120])) from None

    def write(self, image):
        cv2.imshow(self.title, image)
        return (cv2.waitKey(1) & 0xFF) not in (ord("q"), 27)

    def close(self):
        cv2.destroyWindow(self.title)


class VideoSink(Sink):
    """cv2.VideoWriter opened on the first frame (its size is the video's size).

    cv2.VideoWriter.write reports nothing, so the sink checks what it can: the folder is writable and
    has room for what is known before the first frame; before each frame the disk must keep a reserve
    (else it stops and closes the video, which then still plays); after closing, the file is read back
    and must hold every frame written.

    The codec is chosen by measurement (process CPU per 720p frame on the 2-core EPYC, OpenCV 5.0's
    FFmpeg, taken while a training shared the cores): mp4v 6.0 ms, MJPG 8.2 ms with twice the bytes, XVID
    as mp4v; the FFmpeg encoder options that OpenCV passes through (OPENCV_FFMPEG_WRITER_OPTIONS) changed
    nothing there."""

    threaded = True

    def __init__(self, path, fps=30.0, expected_frames=None, frame_hw=None):
        self.path = Path(path)
        self.fps = float(fps or 30.0)
        self.fourcc = VIDEO_FOURCC[self.path.suffix.lower()]
        self.writer = None
        self.size = None
        self.frames = 0
        # a lower bound: mp4v/MJPG rarely compress camera frames better than 100:1
        need = expected_frames * frame_hw[0] * frame_hw[1] * 3 // 100 if expected_frames and frame_hw else 0
        _checked(check_output, self.path, need, "the video")

    def _reserve(self, image):
        return max(MIN_FREE_BYTES // 2, image.nbytes // 5)  # the container's index and one more frame

    def write(self, image):
        size = (image.shape[1], image.shape[0])
        if self.writer is None:
            self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, size)
            if not self.writer.isOpened():
                self.writer = None
                raise SinkError("{}: OpenCV cannot open a {}x{} {} video (the first frame's size)".format(
                    self.path, size[0], size[1], self.fourcc))
            self.size = size
        elif size != self.size:  # a folder of differently sized images: keep the video's size
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        free = _free_bytes(self.path.parent)
        if free < self._reserve(image):
            raise SinkError("{}: the disk is full ({:.2f} MB free): stopped after {} frames".format(
                self.path, free / 1e6, self.frames))
        self.writer.write(image)
        self.frames += 1
        return True

    def close(self):
        if self.writer is None:
            return
        self.writer.release()
        self.writer = None
        self.verify()

    def verify(self):
        """Read the closed file back: it must open and hold every frame written."""
        cap = cv2.VideoCapture(str(self.path))
        try:
            if not cap.isOpened():
                raise SinkError("{}: the written video cannot be read back ({} frames were written; disk full?)".format(
                    self.path, self.frames))
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            if count <= 0:  # no count in the container: decode them
                count = 0
                while cap.grab():
                    count += 1
        finally:
            cap.release()
        if count != self.frames:
            raise SinkError("{}: the written video holds {} of the {} frames written (disk full?)".format(
                self.path, count, self.frames))


class ImageFolderSink(Sink):
    threaded = True

    def __init__(self, folder, ext=".png"):
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise SinkError("{}: --sink folder is a file".format(self.folder))
        _checked(check_folder, self.folder, 0, "the frame folder")
        self.ext = ext
        self.frames = 0

    def write(self, image):
        path = self.folder / "frame_{:06d}{}".format(self.frames, self.ext)
        free = _free_bytes(self.folder)
        if free < max(MIN_FREE_BYTES // 4, 2 * image.nbytes):  # an image is at most about its raw size
            raise SinkError("{}: the disk is full ({:.2f} MB free): stopped after {} frames".format(
                self.folder, free / 1e6, self.frames))
        try:
            ok = cv2.imwrite(str(path), image)
        except cv2.error as e:
            raise SinkError("{}: OpenCV cannot write the image ({})".format(path, str(e).strip().splitlines()[-1][:160])) from None
        # imwrite can report success for a file the full disk truncated: the file must exist and not be empty
        if not ok or not path.is_file() or path.stat().st_size == 0:
            if path.exists():
                path.unlink()
            raise SinkError("{}: cannot write the image ({:.2f} MB free on that disk)".format(
                path, _free_bytes(self.folder) / 1e6))
        self.frames += 1
        return True


def open_sink(spec, fps=None, expected_frames=None, frame_hw=None):
    """window | none | path.mp4/.avi/.mkv/.mov | folder/ (an existing folder or a name without suffix).
    File sinks check their output before returning (writable, room for `expected_frames` of `frame_hw`)."""
    spec = str(spec)
    if spec == "window":
        return WindowSink()
    if spec == "none":
        return NullSink()
    path = Path(spec)
    suffix = path.suffix.lower()
    if suffix in VIDEO_FOURCC:
        return VideoSink(path, fps or 30.0, expected_frames, frame_hw)
    if spec.endswith(("/", os.sep)) or path.is_dir() or not suffix:
        return ImageFolderSink(path)
    raise SinkError("--sink {}: expected window, none, a video ({}) or a folder/".format(
        spec, ", ".join(VIDEO_FOURCC)))
