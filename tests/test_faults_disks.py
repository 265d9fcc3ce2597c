"""Full and read-only disks (real tmpfs mounts; root with CAP_SYS_ADMIN, else skipped with the reason):
refused before the work where the size is known, else stopped with the output closed; one line each."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from benchmarks.faults.runner import fill

from .conftest import write_synthetic_student
from .faults import ENV, ROOT, cli_exit, error_lines, frame_count, last_line, run, train_args


# ------------------------------------------------------------------------------------------ full disk
def test_runtime_video_too_big_for_the_disk_is_refused_before_the_work(model, long_video, tmpfs):
    disk = tmpfs("small", 1200)
    r = run(["runtime.run", "--model", model, "--source", long_video, "--sink", disk / "out.mp4", "-q"])
    assert r.returncode == 2
    [line] = error_lines(r.stderr)
    assert line.startswith(f"error: {disk / 'out.mp4'}: the video needs about 1.8 MB but only 1.2 MB are free on that disk")
    assert list(disk.iterdir()) == []


def _stats_outlive_the_sink(r, stats, line, n):
    """The sink failed part-way: the summary is printed and -o/--output (on a disk with room) written, with
    the sink's failure in "error"."""
    s = json.loads(stats.read_text())
    assert s["error"] == line[len("error: "):] and s["frames"]["processed"] == n and s["interrupted"] is None
    assert f"{n} frames in " in r.stdout and "p50" in r.stdout


def test_runtime_video_sink_stops_on_a_full_disk_and_the_video_still_plays(model, long_video, tmpfs, tmp_path):
    disk = tmpfs("full", 2600)  # room for the up-front estimate (1.8 MB), not for the ~6 MB video
    out, stats = disk / "out.mp4", tmp_path / "stats.json"
    r = run(["runtime.run", "--model", model, "--source", long_video, "--sink", out, "-o", stats, "-q"])
    assert r.returncode == 2
    [line] = error_lines(r.stderr)
    assert line.startswith(f"error: {out}: the disk is full (") and "MB free): stopped after" in line
    n = int(line.split("stopped after ")[1].split()[0])
    assert 0 < n < 3000 and frame_count(out) == n  # closed properly: it plays, with the frames written
    assert [f.name for f in disk.iterdir()] == ["out.mp4"]
    _stats_outlive_the_sink(r, stats, line, n)


def test_a_disk_filled_by_another_writer_mid_run_leaves_no_unplayable_video(model, long_video, tmpfs, tmp_path):
    """Another writer takes the disk's last byte while the video is being written: the sink stops, and a video
    that cannot be finalised there (no room for the mp4's index) is removed, not left unplayable under its
    name (the fault trial found a 4 KB, 0-frame out.mp4). The one line and the stats say so."""
    disk = tmpfs("shared", 8192)  # room for the up-front estimate and more
    out, stats = disk / "out.mp4", tmp_path / "stats.json"
    p = subprocess.Popen([sys.executable, "-m", "runtime.run", "--model", str(model), "--source", str(long_video),
                          "--sink", str(out), "-o", str(stats), "-q"], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=ENV)

    def sizes():
        found = []
        for f in disk.iterdir():
            try:
                found.append(f.stat().st_size)
            except FileNotFoundError:  # renamed meanwhile
                pass
        return found

    t0 = time.time()
    while not any(s > 200_000 for s in sizes()):  # part-way through the video
        assert p.poll() is None and time.time() - t0 < 120, p.communicate()[1][-2000:]
        time.sleep(0.01)
    fill(disk)
    printed, err = p.communicate(timeout=120)
    assert p.returncode == 2, err[-2000:]
    lines = error_lines(err)
    assert len(lines) == 1, err[-3000:]  # one line: no FFmpeg noise either
    line = lines[0]
    assert line.startswith(f"error: {out}: the disk is full (") and "MB free): stopped after" in line
    n = int(line.split("stopped after ")[1].split()[0])
    # Whether the mp4's index still fits depends on how far the last blocks were filled when the other writer
    # struck: either the video is finalised and plays with every frame written, or it is removed and the line
    # says so. Never an unplayable file under its name, and no temporary file either way.
    if line.endswith("the video could not be finalised there and was removed (nothing kept under its name)"):
        assert sorted(f.name for f in disk.iterdir()) == ["filler"]
    else:
        assert line.endswith(f"stopped after {n} frames"), line
        assert sorted(f.name for f in disk.iterdir()) == ["filler", "out.mp4"] and frame_count(out) == n
    _stats_outlive_the_sink(SimpleNamespace(stdout=printed), stats, line, n)


def test_runtime_frame_folder_on_a_full_disk(model, long_video, tmpfs, tmp_path):
    disk = tmpfs("frames", 1400)
    stats = tmp_path / "stats.json"
    r = run(["runtime.run", "--model", model, "--source", long_video, "--sink", f"{disk}/", "-o", stats, "-q"])
    assert r.returncode == 2
    [line] = error_lines(r.stderr)  # no libpng noise: the sink stops before a write can fail
    n = int(line.split("stopped after ")[1].split()[0])
    assert line.startswith(f"error: {disk}: the disk is full (") and n > 0
    assert len(list(disk.iterdir())) == n and all(f.stat().st_size > 0 for f in disk.iterdir())
    _stats_outlive_the_sink(r, stats, line, n)


def test_runtime_stats_on_a_full_disk_is_refused_before_the_work(model, images, tmp_path, tmpfs, capsys):
    from runtime.run import main

    disk = tmpfs("stats", 256)
    code, err = cli_exit(main, ["--model", str(model), "--source", str(images), "--sink", str(tmp_path / "o.mp4"),
                                "-o", str(disk / "s.json"), "-q"], capsys)
    assert code == 2 and error_lines(err) == [
        f"error: {disk / 's.json'}: -o/--output needs about 1.0 MB but only 0.3 MB are free on that disk"]
    assert list(disk.iterdir()) == [] and not (tmp_path / "o.mp4").exists()  # nothing was run


def test_training_on_a_full_disk_is_refused_before_the_work_and_leaves_no_run_folder(tmp_path, tmpfs, capsys):
    from distill.run import main

    disk = tmpfs("run", 160)
    out = disk / "run"
    code, err = cli_exit(main, [str(a) for a in train_args(tmp_path, out, iters=2, extra=["train.ckpt_every=1"])[1:]],
                         capsys)
    assert code == 2, err[-2000:]
    line = last_line(err)
    assert line.startswith(f"error: {out}: the run folder (out_dir) needs about ") and "MB are free on that disk" in line
    assert list(disk.iterdir()) == []  # no temp file, and no empty run folder


def test_a_checkpoint_write_that_fails_is_one_line(tmp_path, tmpfs):
    from distill import checkpoint

    disk = tmpfs("ckpt", 200)
    with pytest.raises(checkpoint.CheckpointWriteError, match=r"cannot write the checkpoint \(No space left on device; "):
        checkpoint.atomic_save({"x": __import__("torch").zeros(100000)}, disk / "last.pt")
    assert list(disk.iterdir()) == []


@pytest.mark.parametrize("module", ["export.onnx", "export.openvino", "export.quantize"])
def test_every_exporter_checks_free_space_before_the_work(tmp_path, tmpfs, calib, module):
    disk = tmpfs("exp", 1200)
    ckpt = write_synthetic_student(tmp_path / "s.pt", input_size=(32, 64))
    out = disk / ("s.xml" if module == "export.openvino" else "s.onnx")
    r = run([module, ckpt, "-o", out, *(["--calib-dir", calib, "--no-gate"] if module == "export.quantize" else [])])
    assert r.returncode == 2, r.stderr[-2000:]
    [line] = error_lines(r.stderr)
    assert line.startswith(f"error: {out}: output folder needs about ") and line.endswith(
        "MB but only 1.2 MB are free on that disk")
    assert list(disk.iterdir()) == []


def test_a_full_disk_while_an_exporter_writes_is_one_line_naming_the_path(tmp_path, tmpfs):
    """Past the up-front check (the space went while it ran): ONNX's OSError and OpenVINO's
    'basic_ios::clear' both become one line naming the output and the free space, and nothing is left."""
    from export.onnx import torch_to_onnx
    from export.openvino import onnx_to_openvino
    from runtime.contract import OutputError

    disk = tmpfs("exp", 1200)  # past the 1 MB margin, short of the ~3 MB model
    ckpt = write_synthetic_student(tmp_path / "s.pt", input_size=(32, 64))
    with pytest.raises(OutputError) as e:
        torch_to_onnx(ckpt, disk / "s.onnx", simplify=False)
    assert str(e.value).startswith(f"{disk / 's.onnx'}: cannot write the ONNX model (No space left on device; ")
    onnx_path = torch_to_onnx(ckpt, tmp_path / "s.onnx", simplify=False)
    with pytest.raises(OutputError) as e:
        onnx_to_openvino(onnx_path, disk / "s.xml")
    assert str(e.value).startswith(f"{disk / 's.xml'}: cannot write the OpenVINO IR (a failed write, RuntimeError: "
                                   "basic_ios::clear")
    assert "\n" not in str(e.value) and list(disk.iterdir()) == []


# ------------------------------------------------------------------------------------------ read-only outputs
@pytest.mark.parametrize("sink, what", [("out.mp4", "the video"), ("frames/", "the frame folder")])
def test_runtime_readonly_sink(model, images, readonly, capsys, sink, what):
    from runtime.run import main

    target = readonly / sink.rstrip("/")
    code, err = cli_exit(main, ["--model", str(model), "--source", str(images), "--sink", str(readonly / sink),
                                "-q"], capsys)
    assert code == 2 and error_lines(err) == [f"error: {target}: {what} cannot be written (Read-only file system)"]


def test_runtime_bench_readonly_json_fails_before_timing(model, readonly, capsys):
    from runtime.bench import main

    code, err = cli_exit(main, ["--model", str(model), "--iters", "1", "-o", str(readonly / "b.json")], capsys)
    assert code == 2 and error_lines(err) == [
        f"error: {readonly / 'b.json'}: -o/--output cannot be written (Read-only file system)"]
    assert "throughput" not in capsys.readouterr().out


def test_export_readonly_output(model, readonly, tmp_path):
    r = run(["export.quantize", model, "-o", readonly / "q.int8.onnx", "--calib-dir", tmp_path, "--no-gate"])
    assert r.returncode == 2
    assert error_lines(r.stderr) == [
        f"error: {readonly / 'q.int8.onnx'}: output folder cannot be written (Read-only file system)"]


def test_training_readonly_run_folder(tmp_path, readonly, capsys):
    from distill.run import main

    out = readonly / "run"
    code, err = cli_exit(main, [str(a) for a in train_args(tmp_path, out, iters=1)[1:]], capsys)
    assert code == 2 and error_lines(err) == [
        f"error: {out}: the run folder (out_dir) cannot be written (Read-only file system)"]
    assert not (tmp_path / "data").exists()  # refused before generating any data


def test_evaluate_readonly_out_fails_before_the_work(tmp_path, readonly, capsys):
    from distill.data import build_dataset
    from distill.evaluate import cli

    build_dataset("synthetic", tmp_path / "d", "val", num_images=1, size=(32, 64))
    ckpt = write_synthetic_student(tmp_path / "s.pt")
    code, err = cli_exit(cli, ["--model", str(ckpt), "--dataset", "synthetic", "--root", str(tmp_path / "d"),
                               "--data-kwargs", '{"num_images": 1, "size": [32, 64]}',
                               "-o", str(readonly / "m.json")], capsys)
    assert code == 2 and error_lines(err) == [f"error: {readonly / 'm.json'}: -o/--output cannot be written (Read-only file system)"]


def test_training_on_a_disk_with_no_byte_left_is_one_line_and_leaves_no_run_folder(tmp_path, tmpfs, capsys):
    """The fault trial: with every byte taken, the run folder's probe (an empty file) passed and writing the pid
    into the run lock failed with an OSError traceback (exit 1), leaving full/run/.run.lock."""
    from distill.run import main

    disk = tmpfs("full", 64)
    fill(disk)
    out = disk / "run"
    code, err = cli_exit(main, [str(a) for a in train_args(tmp_path, out, iters=1)[1:]], capsys)
    assert code == 2 and "Traceback" not in err, err[-2000:]
    assert error_lines(err) == [f"error: {out}: the run folder (out_dir) cannot be written (No space left on device)"]
    assert [f.name for f in disk.iterdir()] == ["filler"]
