"""Where overlaid frames go: a window (needs a display; `q` quits), a video file, an image folder,
or nowhere (`none`, for measuring)."""
from __future__ import annotations

import os
import shutil
import struct
import sys
import tempfile
from pathlib import Path

import cv2

from .contract import MIN_FREE_BYTES, OutputError, check_folder, check_output, clean_stale, current_umask, pid_tag

VIDEO_FOURCC = {".mp4": "mp4v", ".mov": "mp4v", ".m4v": "mp4v", ".mkv": "mp4v", ".avi": "MJPG"}
MP4_FAMILY = (".mp4", ".mov", ".m4v")  # ISO media files: playable only once their index (the moov box) is written


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

    Nothing unplayable stands under the final name: the video is written under a temporary name beside it
    (`.<name>.pid<N>.<random>.tmp<suffix>`, which a later run removes if this one is killed) and renamed
    only once it is closed and reads back with at least one frame. One that cannot be finalised (another
    writer took the disk's last bytes: no room for an mp4's index) is removed, and the error says so.

    The codec, mp4v, was chosen by measuring the CPU per frame of the encoders OpenCV's FFmpeg writer offers:
    none cost less (MJPG more, with larger files; XVID the same), and the encoder options OpenCV passes
    through (OPENCV_FFMPEG_WRITER_OPTIONS) changed nothing. What encoding costs on a given machine is
    measured by `python -m benchmarks.speed.loop` (its sink stage, docs/results/loop*.md)."""

    threaded = True

    def __init__(self, path, fps=30.0, expected_frames=None, frame_hw=None):
        self.path = Path(path)
        self.fps = float(fps or 30.0)
        self.fourcc = VIDEO_FOURCC[self.path.suffix.lower()]
        self.writer = None
        self.tmp = None  # the file being written; renamed to `path` once it plays
        self.size = None
        self.frames = 0
        # a lower bound: mp4v/MJPG rarely compress camera frames better than 100:1
        need = expected_frames * frame_hw[0] * frame_hw[1] * 3 // 100 if expected_frames and frame_hw else 0
        _checked(check_output, self.path, need, "the video")
        clean_stale(self.path.parent, ".{}.pid*.tmp{}".format(self.path.stem, self.path.suffix))  # killed runs'

    def _open(self, size):
        fd, tmp = tempfile.mkstemp(prefix=".{}.{}.".format(self.path.stem, pid_tag()), suffix=".tmp" + self.path.suffix,
                                   dir=str(self.path.parent))
        os.close(fd)
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; the video should look like any new file
        self.tmp = Path(tmp)
        self.writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*self.fourcc), self.fps, size)
        if not self.writer.isOpened():
            self.writer = None
            self._discard()
            raise SinkError("{}: OpenCV cannot open a {}x{} {} video (the first frame's size)".format(
                self.path, size[0], size[1], self.fourcc))
        self.size = size

    def _reserve(self, image):
        return max(MIN_FREE_BYTES // 2, image.nbytes // 5)  # the container's index and one more frame

    def write(self, image):
        size = (image.shape[1], image.shape[0])
        if self.writer is None:
            self._open(size)
        elif size != self.size:  # a folder of differently sized images: keep the video's size
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        free = _free_bytes(self.path.parent)
        if free < self._reserve(image):
            message = "{}: the disk is full ({:.2f} MB free): stopped after {} frames".format(
                self.path, free / 1e6, self.frames)
            problem = self._finish()  # closed here, so the one line can say what became of the video
            if problem is not None:
                message += "; " + problem[1]
            raise SinkError(message)
        self.writer.write(image)
        self.frames += 1
        return True

    def close(self):
        if self.writer is None:
            return
        problem = self._finish()
        if problem is not None:
            raise SinkError(problem[0])

    def _finish(self):
        """Close the writer and read the file back. One that plays goes under the final name; one that
        does not is removed. None when it holds every frame written, else (the error line, its short form)."""
        self.writer.release()
        self.writer = None
        count = self._frames_in(self.tmp)
        if not count:  # None (cannot be opened) or 0: unplayable
            self._discard()
            return ("{}: the written video cannot be read back ({} frames were written; disk full?): removed, "
                    "nothing kept under its name".format(self.path, self.frames),
                    "the video could not be finalised there and was removed (nothing kept under its name)")
        try:
            _fsync(self.tmp)
            os.replace(str(self.tmp), str(self.path))
        except OSError as e:
            self._discard()
            return ("{}: cannot put the video under its name ({}): removed".format(self.path, e.strerror or e),
                    "the video could not be put under its name ({}) and was removed".format(e.strerror or e))
        self.tmp = None
        if count != self.frames:
            return ("{}: the written video holds {} of the {} frames written (disk full?)".format(
                self.path, count, self.frames), "the video holds {} of them".format(count))
        return None

    def _discard(self):
        if self.tmp is not None:
            try:
                self.tmp.unlink()
            except FileNotFoundError:
                pass
            self.tmp = None

    @staticmethod
    def _frames_in(path):
        """Frames in a closed video file; None when it cannot be opened."""
        if path.suffix.lower() in MP4_FAMILY and not _has_mp4_index(path):
            return None  # asking FFmpeg would only add its 'moov atom not found' line to the user's stderr
        cap = cv2.VideoCapture(str(path))
        try:
            if not cap.isOpened():
                return None
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            if count <= 0:  # no count in the container: decode them
                count = 0
                while cap.grab():
                    count += 1
        finally:
            cap.release()
        return count


def _fsync(path):
    fd = os.open(str(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _has_mp4_index(path):
    """Whether an ISO media file (mp4/mov) holds a complete top-level `moov` box: the index a player needs,
    written when the file is closed (so missing when the disk was full then)."""
    try:
        with open(str(path), "rb") as f:
            end = os.fstat(f.fileno()).st_size
            pos = 0
            while pos + 8 <= end:
                f.seek(pos)
                size, kind = struct.unpack(">I4s", f.read(8))
                if size == 1:  # a 64-bit size follows
                    size = struct.unpack(">Q", f.read(8))[0]
                elif size == 0:  # to the end of the file
                    size = end - pos
                if size < 8 or pos + size > end:
                    return False  # cut short
                if kind == b"moov":
                    return True
                pos += size
    except (OSError, struct.error):
        return False
    return False


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
