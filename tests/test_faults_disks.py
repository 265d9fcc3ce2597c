"""Full and read-only disks (real tmpfs mounts; root with CAP_SYS_ADMIN, else skipped with the reason):
refused before the work where the size is known, else stopped with the output closed; one line each."""
from __future__ import annotations


import pytest

from .conftest import write_synthetic_student
from .faults import cli_exit, error_lines, frame_count, last_line, run, train_args


# ------------------------------------------------------------------------------------------ full disk
def test_runtime_video_too_big_for_the_disk_is_refused_before_the_work(model, long_video, tmpfs):
    disk = tmpfs("small", 1200)
    r = run(["runtime.run", "--model", model, "--source", long_video, "--sink", disk / "out.mp4", "-q"])
    assert r.returncode == 2
    [line] = error_lines(r.stderr)
    assert line.startswith(f"error: {disk / 'out.mp4'}: the video needs about 1.8 MB but only 1.2 MB are free on that disk")
    assert list(disk.iterdir()) == []


def test_runtime_video_sink_stops_on_a_full_disk_and_the_video_still_plays(model, long_video, tmpfs):
    disk = tmpfs("full", 2600)  # room for the up-front estimate (1.8 MB), not for the ~6 MB video
    out = disk / "out.mp4"
    r = run(["runtime.run", "--model", model, "--source", long_video, "--sink", out, "-q"])
    assert r.returncode == 2
    [line] = error_lines(r.stderr)
    assert line.startswith(f"error: {out}: the disk is full (") and "MB free): stopped after" in line
    n = int(line.split("stopped after ")[1].split()[0])
    assert 0 < n < 3000 and frame_count(out) == n  # closed properly: it plays, with the frames written
    assert [f.name for f in disk.iterdir()] == ["out.mp4"]


def test_runtime_frame_folder_on_a_full_disk(model, long_video, tmpfs):
    disk = tmpfs("frames", 1400)
    r = run(["runtime.run", "--model", model, "--source", long_video, "--sink", f"{disk}/", "-q"])
    assert r.returncode == 2
    [line] = error_lines(r.stderr)  # no libpng noise: the sink stops before a write can fail
    n = int(line.split("stopped after ")[1].split()[0])
    assert line.startswith(f"error: {disk}: the disk is full (") and n > 0
    assert len(list(disk.iterdir())) == n and all(f.stat().st_size > 0 for f in disk.iterdir())


def test_runtime_stats_on_a_full_disk_is_refused_before_the_work(model, images, tmp_path, tmpfs, capsys):
    from runtime.run import main

    disk = tmpfs("stats", 256)
    code, err = cli_exit(main, ["--model", str(model), "--source", str(images), "--sink", str(tmp_path / "o.mp4"),
                                "-o", str(disk / "s.json"), "-q"], capsys)
    assert code == 2 and error_lines(err) == [
        f"error: {disk / 's.json'}: -o/--output needs about 1.0 MB but only 0.3 MB are free on that disk"]
    assert list(disk.iterdir()) == [] and not (tmp_path / "o.mp4").exists()  # nothing was run


def test_training_on_a_full_disk_is_one_line_and_leaves_no_temp_file(tmp_path, tmpfs):
    disk = tmpfs("run", 160)
    out = disk / "run"
    r = run(train_args(tmp_path, out, iters=2, extra=["train.ckpt_every=1"]))
    assert r.returncode == 2, r.stderr[-2000:]
    line = last_line(r.stderr)
    assert line.startswith(f"error: {out / 'last.pt'}: cannot write the checkpoint (") and "MB free there)" in line
    assert not list(out.glob(".*")) and not (out / "last.pt").exists()


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
    code, err = cli_exit(cli, ["--ckpt", str(ckpt), "--dataset", "synthetic", "--root", str(tmp_path / "d"),
                               "--data-kwargs", '{"num_images": 1, "size": [32, 64]}',
                               "-o", str(readonly / "m.json")], capsys)
    assert code == 2 and error_lines(err) == [f"error: {readonly / 'm.json'}: -o/--output cannot be written (Read-only file system)"]
