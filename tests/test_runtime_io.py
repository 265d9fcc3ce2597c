"""runtime/ sources and sinks without a model: the newest-frame and reconnect policies of live sources, file
sources and their spec errors, and sinks that never leave an unplayable or partial video behind."""
from __future__ import annotations

import logging
import sys
import time

import cv2
import numpy as np
import pytest

from runtime.sinks import ImageFolderSink, NullSink, SinkError, VideoSink, open_sink
from runtime.sources import (ImageSource, LiveSource, SourceError, VideoFileSource, csi_pipeline, open_source)
from .runtime_media import FakeCamera


# -- live sources: newest frame only, reconnect with backoff ----------------------------------
def test_live_source_keeps_only_the_newest_frame():
    cam = FakeCamera(period=0.002)
    src = LiveSource(lambda: cam, "fake camera", reconnect=False)
    taken = []
    try:
        for _ in range(6):
            time.sleep(0.03)  # a slow consumer: ~15 frames arrive meanwhile
            frame = src.read()
            # the frame handed out is the newest one (one more may have arrived during the read)
            assert frame.index >= cam.produced - 2
            taken.append(frame.index)
    finally:
        src.close()
    assert taken == sorted(taken) and len(set(taken)) == len(taken)
    assert src.dropped > 0
    pending = 1 if src._newest is not None else 0
    assert len(taken) + src.dropped + pending == cam.produced  # every frame is either used or counted


def test_live_source_reconnects_with_backoff_then_gives_up(caplog):
    cams = iter([FakeCamera(frames=3), FakeCamera(opened=False), FakeCamera(frames=3),
                 FakeCamera(opened=False), FakeCamera(opened=False), FakeCamera(opened=False)])
    caplog.set_level(logging.WARNING, logger="runtime.sources")
    src = LiveSource(lambda: next(cams), "fake stream", backoff=(0.01, 0.02), max_reconnects=2,
                     failures_before_reconnect=2)
    frames = list(src)  # ends by itself once reconnecting fails twice in a row
    src.close()
    assert src.reconnects == 1
    assert len(frames) + src.dropped == 6
    assert "reconnecting" in caplog.text and "reconnected" in caplog.text and "gave up" in caplog.text


def test_live_source_that_cannot_open_is_a_clear_error():
    with pytest.raises(SourceError, match="cannot open"):
        LiveSource(lambda: FakeCamera(opened=False), "camera 7")


# -- file sources ----------------------------------------------------------------------------
def test_image_folder_and_glob_skip_unreadable_files(tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / "img{}.png".format(i)), np.full((10, 20, 3), i * 50, np.uint8))
    (tmp_path / "img1b.png").write_bytes(b"not a png")
    (tmp_path / "notes.txt").write_text("ignored")
    src = open_source(str(tmp_path))
    assert isinstance(src, ImageSource)
    frames = list(src)
    assert [f.index for f in frames] == [0, 1, 3] and src.skipped == 1
    assert len(list(open_source(str(tmp_path / "img[02].png")))) == 2
    single = list(open_source(str(tmp_path / "img2.png")))
    assert len(single) == 1 and single[0].image.shape == (10, 20, 3)


def test_source_spec_errors_and_csi_pipeline(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        open_source(str(tmp_path / "missing.mp4"))
    with pytest.raises(SourceError, match="no images"):
        open_source(str(tmp_path))
    pipe = csi_pipeline(1, 640, 480, 15)
    assert pipe.startswith("nvarguscamerasrc sensor-id=1") and "nvvidconv" in pipe and pipe.endswith(
        "appsink drop=true max-buffers=1 sync=false") and "width=640, height=480, framerate=15/1" in pipe
    with pytest.raises(SourceError, match="unknown CSI option"):
        open_source("csi://0?zoom=2")
    (tmp_path / "bad.avi").write_bytes(b"\x00" * 100)
    with pytest.raises(SourceError, match="cannot open"):
        VideoFileSource(tmp_path / "bad.avi")


# -- sinks -----------------------------------------------------------------------------------
def test_sink_specs(tmp_path, monkeypatch):
    assert isinstance(open_sink("none"), NullSink)
    assert isinstance(open_sink(str(tmp_path / "out.mp4")), VideoSink)
    assert isinstance(open_sink(str(tmp_path / "frames") + "/"), ImageFolderSink)
    with pytest.raises(SinkError, match="expected window, none"):
        open_sink(str(tmp_path / "out.txt"))
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if sys.platform.startswith("linux"):
        with pytest.raises(SinkError, match="needs a display"):
            open_sink("window")


def test_image_folder_sink_writes_numbered_frames(tmp_path):
    sink = open_sink(str(tmp_path / "frames") + "/")
    for i in range(3):
        assert sink.write(np.full((6, 9, 3), i, np.uint8))
    sink.close()
    files = sorted((tmp_path / "frames").iterdir())
    assert [f.name for f in files] == ["frame_000000.png", "frame_000001.png", "frame_000002.png"]
    assert cv2.imread(str(files[2])).shape == (6, 9, 3)


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_a_video_sink_writes_under_a_temporary_name_and_renames_a_playable_video(tmp_path, suffix):
    out = tmp_path / ("out" + suffix)
    sink = open_sink(str(out), fps=10)
    for i in range(3):
        assert sink.write(np.full((32, 48, 3), 40 * i, np.uint8))
    [partial] = list(tmp_path.iterdir())
    assert not out.exists() and partial.name.startswith(".out.pid") and partial.name.endswith(".tmp" + suffix)
    sink.close()
    assert list(tmp_path.iterdir()) == [out]
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    cap.release()


def test_a_video_that_cannot_be_finalised_is_removed_not_left_unplayable(tmp_path, capfd):
    """A full disk that leaves an mp4 without its index (the fault trial's 4 KB, 0-frame out.mp4): the file
    never reaches its final name, the partial one is removed, and the one error says so (no FFmpeg line)."""
    out = tmp_path / "out.mp4"
    sink = open_sink(str(out), fps=10)
    for i in range(3):
        sink.write(np.full((32, 48, 3), 40 * i, np.uint8))
    writer, partial = sink.writer, sink.tmp

    class OnAFullDisk:  # no room for the index the writer adds on release: the file ends where it would start
        def release(self):
            writer.release()
            index = partial.read_bytes().rfind(b"moov") - 4
            assert index > 0
            with open(partial, "r+b") as f:
                f.truncate(index)

    sink.writer = OnAFullDisk()
    with pytest.raises(SinkError) as e:
        sink.close()
    assert str(e.value) == (f"{out}: the written video cannot be read back (3 frames were written; disk full?): "
                            "removed, nothing kept under its name")
    assert list(tmp_path.iterdir()) == [] and "moov" not in capfd.readouterr().err


def test_a_killed_runs_partial_video_is_removed_by_the_next_sink(tmp_path):
    dead = tmp_path / f".out.pid{2 ** 22 + 12345}.abc.tmp.mp4"  # above the default pid_max: no such process
    dead.write_bytes(b"x" * 100)
    open_sink(str(tmp_path / "out.mp4"))
    assert not dead.exists()
