"""Where overlaid frames go: a window (needs a display; `q` quits), a video file, an image folder,
or nowhere (`none`, for measuring)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import cv2

VIDEO_FOURCC = {".mp4": "mp4v", ".mov": "mp4v", ".m4v": "mp4v", ".mkv": "mp4v", ".avi": "MJPG"}


class SinkError(RuntimeError):
    pass


class Sink:
    def write(self, image):
        """Show/store one BGR frame; False when the user asked to stop."""
        return True

    def close(self):
        pass


class NullSink(Sink):
    pass


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
    """cv2.VideoWriter opened on the first frame (its size is the video's size)."""

    def __init__(self, path, fps=30.0):
        self.path = Path(path)
        self.fps = float(fps or 30.0)
        self.fourcc = VIDEO_FOURCC[self.path.suffix.lower()]
        self.writer = None
        self.size = None
        self.frames = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, image):
        size = (image.shape[1], image.shape[0])
        if self.writer is None:
            self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, size)
            if not self.writer.isOpened():
                raise SinkError("{}: OpenCV cannot write a {} video here".format(self.path, self.fourcc))
            self.size = size
        elif size != self.size:  # a folder of differently sized images: keep the video's size
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        self.writer.write(image)
        self.frames += 1
        return True

    def close(self):
        if self.writer is not None:
            self.writer.release()


class ImageFolderSink(Sink):
    def __init__(self, folder, ext=".png"):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.ext = ext
        self.frames = 0

    def write(self, image):
        path = self.folder / "frame_{:06d}{}".format(self.frames, self.ext)
        if not cv2.imwrite(str(path), image):
            raise SinkError("{}: cannot write the image".format(path))
        self.frames += 1
        return True


def open_sink(spec, fps=None):
    """window | none | path.mp4/.avi/.mkv/.mov | folder/ (an existing folder or a name without suffix)."""
    spec = str(spec)
    if spec == "window":
        return WindowSink()
    if spec == "none":
        return NullSink()
    path = Path(spec)
    suffix = path.suffix.lower()
    if suffix in VIDEO_FOURCC:
        return VideoSink(path, fps or 30.0)
    if spec.endswith(("/", os.sep)) or path.is_dir() or not suffix:
        return ImageFolderSink(path)
    raise SinkError("--sink {}: expected window, none, a video ({}) or a folder/".format(
        spec, ", ".join(VIDEO_FOURCC)))
