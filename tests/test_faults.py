"""Fault injection across the commands: signals, full and read-only disks, failed gates, range errors,
foreign files. Each case asserts the exit code, the one-line message and what is left on disk.

Signals go to real subprocesses. Full and read-only disks are real tmpfs mounts (root with
CAP_SYS_ADMIN); where mounting is not allowed those cases are skipped with the reason.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from .conftest import write_student, write_synthetic_student

ROOT = Path(__file__).parent.parent
FRAME_HW = (64, 128)
ENV = dict(os.environ, PYTHONUNBUFFERED="1")


# ------------------------------------------------------------------------------------------ helpers
def run(args, timeout=120, env=None):
    return subprocess.run([sys.executable, "-m", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env or ENV)


def last_line(text):
    """The last line a terminal would show (tqdm redraws with \\r)."""
    lines = [ln for ln in text.replace("\r", "\n").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def error_lines(text):
    return [ln for ln in text.strip().splitlines() if ln.strip()]


def cli_exit(main, argv, capsys):
    """(exit code, stderr) of an in-process CLI call that may return or sys.exit."""
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def frame_count(path):
    cap = cv2.VideoCapture(str(path))
    try:
        return int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else None
    finally:
        cap.release()


class Mounts:
    """Small tmpfs mounts, unmounted at the end of the test."""

    def __init__(self, base):
        self.base, self.points = base, []

    def __call__(self, name, size_kb, read_only=False):
        point = self.base / name
        point.mkdir(parents=True)
        opts = f"size={size_kb}k" + (",ro" if read_only else "")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(point)], capture_output=True, text=True)
        if r.returncode:
            pytest.skip(f"cannot mount a tmpfs here ({(r.stderr or r.stdout).strip() or 'mount failed'}): "
                        "full/read-only disk cases need root with CAP_SYS_ADMIN")
        self.points.append(point)
        return point

    def close(self):
        for p in reversed(self.points):
            subprocess.run(["umount", "-l", str(p)], capture_output=True)


@pytest.fixture
def tmpfs(tmp_path):
    m = Mounts(tmp_path / "mnt")
    yield m
    m.close()


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from export.onnx import torch_to_onnx

    d = tmp_path_factory.mktemp("model")
    return torch_to_onnx(write_student(d / "s.pt", input_size=(32, 64)), d / "s.onnx", simplify=False)


def _write_video(path, frames, noise=True):
    rng = np.random.default_rng(0)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (FRAME_HW[1], FRAME_HW[0]))
    for i in range(frames):
        f = rng.integers(0, 256, (*FRAME_HW, 3), dtype=np.uint8) if noise else np.full((*FRAME_HW, 3), i % 255, np.uint8)
        w.write(f)
    w.release()
    return path


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    """Long enough that a run is still going when the signal arrives (the test waits for the loop to start)."""
    return _write_video(tmp_path_factory.mktemp("video") / "long.avi", 3000)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(1)
    for i in range(6):
        cv2.imwrite(str(d / f"img_{i}.png"), rng.integers(0, 256, (*FRAME_HW, 3), dtype=np.uint8))
    return d


def signal_when(proc, ready, sig, timeout=60):
    """Send `sig` once `ready()` is true (polling), then wait for the process; returns (rc, stdout, stderr)."""
    t0 = time.time()
    while not ready():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"ended before the signal (rc {proc.returncode}): {err[-2000:]}")
        assert time.time() - t0 < timeout, "never became ready"
        time.sleep(0.05)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


# ------------------------------------------------------------------------------------------ runtime: signals
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_runtime_signal_closes_a_playable_video_and_writes_stats(model, long_video, tmp_path, sig, code):
    out, stats = tmp_path / "out.mp4", tmp_path / "s.json"
    p = subprocess.Popen([sys.executable, "-m", "runtime.run", "--model", str(model), "--source", str(long_video),
                          "--sink", str(out), "-o", str(stats), "--stats-every", "0.05", "-q"],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    first = []

    def looping():  # the periodic summary says the loop runs
        first.append(p.stdout.readline())
        return first[-1].startswith("last ")
    rc, _, err = signal_when(p, looping, sig)
    name = signal.Signals(sig).name
    assert rc == code
    s = json.loads(stats.read_text())
    n = s["frames"]["processed"]
    assert error_lines(err) == [f"interrupted by {name} after {n} frames; outputs closed: {out}, {stats}"]
    assert 0 < n < 3000 and s["interrupted"] == name
    assert frame_count(out) == n  # the container was finalised: it plays, with every frame written
    assert sorted(f.name for f in tmp_path.iterdir()) == ["out.mp4", "s.json"]  # no temp file left


def test_runtime_sigterm_with_a_frame_folder_sink(model, long_video, tmp_path):
    frames = tmp_path / "frames"
    p = subprocess.Popen([sys.executable, "-m", "runtime.run", "--model", str(model), "--source", str(long_video),
                          "--sink", f"{frames}/", "--stats-every", "0.05", "-q"],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    rc, _, err = signal_when(p, lambda: p.stdout.readline().startswith("last "), signal.SIGTERM)
    assert rc == 143
    [line] = error_lines(err)
    n = int(line.split(" after ")[1].split()[0])
    assert line == f"interrupted by SIGTERM after {n} frames; outputs closed: {frames}"
    written = sorted(frames.iterdir())
    assert len(written) == n and all(f.stat().st_size > 0 for f in written)


# ------------------------------------------------------------------------------------------ training: signals
def _overrides(tmp_path, out, iters=100000, extra=()):
    return [f"out_dir={out}", f"data.root={tmp_path / 'data'}", "data.crop_size=[32,64]",
            "data.kwargs={num_images: 4, size: [32, 64], seed: 0}",
            "data.val_kwargs={num_images: 2, size: [32, 64], seed: 0}", f"train.iters={iters}",
            "train.batch_size=2", "train.ckpt_every=1000", "train.val_every=100000", "train.log_every=1",
            "train.threads=1", "eval.input_size=[32,64]", *extra]


def _train_args(tmp_path, out, iters=100000, extra=()):
    return ["distill.run", "--cfg", ROOT / "configs" / "synthetic_plain.yaml",
            "--set", *_overrides(tmp_path, out, iters, extra)]


def _logged_steps(run_dir):
    log = run_dir / "train_log.csv"
    return len(log.read_text().splitlines()) - 1 if log.is_file() else 0


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_training_signal_saves_a_resumable_last_pt(tmp_path, sig, code):
    from distill import checkpoint

    out = tmp_path / "run"
    iters = 40  # the signal lands a step or two after the second logged step
    args = [sys.executable, "-m", *map(str, _train_args(tmp_path, out, iters=iters))]
    p = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    rc, _, err = signal_when(p, lambda: _logged_steps(out) >= 2, sig)
    assert rc == code, err[-2000:]
    state = checkpoint.load_training(out / "last.pt")
    step = state["step"]
    assert 2 <= step < iters  # saved at the step the signal interrupted (ckpt_every is 1000)
    assert last_line(err) == (f"interrupted by {signal.Signals(sig).name}: {out / 'last.pt'} saved at step {step}; "
                              "rerun the same command to resume")
    assert not list(out.glob(".*.tmp")) and not (out / "student.pt").exists()
    if sig == signal.SIGTERM:  # and it resumes from there, to the weights of an uninterrupted run
        r = run(_train_args(tmp_path, out, iters=iters))
        assert r.returncode == 0, r.stderr[-2000:]
        assert f"resuming {out} from step {step}/{iters}" in r.stdout and (out / "student.pt").is_file()
        straight = tmp_path / "straight"
        assert run(_train_args(tmp_path, straight, iters=iters)).returncode == 0
        a, b = checkpoint.load(out / "student.pt")[0].state_dict(), checkpoint.load(straight / "student.pt")[0].state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


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
    r = run(_train_args(tmp_path, out, iters=2, extra=["train.ckpt_every=1"]))
    assert r.returncode == 2, r.stderr[-2000:]
    line = last_line(r.stderr)
    assert line.startswith(f"error: {out / 'last.pt'}: cannot write the checkpoint (") and "MB free there)" in line
    assert not list(out.glob(".*")) and not (out / "last.pt").exists()


# ------------------------------------------------------------------------------------------ read-only outputs
@pytest.fixture
def readonly(tmpfs):
    return tmpfs("ro", 1024, read_only=True)


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
    r = run(["export.quantize", model, "-o", readonly / "q.int8.onnx", "--calib-dir", tmp_path])
    assert r.returncode == 2
    assert error_lines(r.stderr) == [
        f"error: {readonly / 'q.int8.onnx'}: output folder cannot be written (Read-only file system)"]


def test_training_readonly_run_folder(tmp_path, readonly, capsys):
    from distill.run import main

    out = readonly / "run"
    code, err = cli_exit(main, [str(a) for a in _train_args(tmp_path, out, iters=1)[1:]], capsys)
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


# ------------------------------------------------------------------------------------------ failed gates
@pytest.fixture(scope="module")
def calib(tmp_path_factory):
    d = tmp_path_factory.mktemp("calib")
    rng = np.random.default_rng(2)
    for i in range(4):
        img = cv2.resize(rng.integers(0, 256, (4, 8, 3), dtype=np.uint8), (64, 32), interpolation=cv2.INTER_NEAREST)
        cv2.imwrite(str(d / f"c{i}.png"), img)
    return d


@pytest.mark.parametrize("keep", [False, True])
def test_failed_parity_never_leaves_the_model_under_its_name(model, calib, tmp_path, keep):
    out = tmp_path / "q.int8.onnx"
    env = dict(ENV, TMPDIR=str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    r = run(["export.quantize", model, "-o", out, "--calib-dir", calib, "--min-agreement", "1.0",
             *(["--keep-failed"] if keep else [])], env=env)
    assert r.returncode == 1, r.stderr
    kept = "kept as q.int8.FAILED.onnx" if keep else "deleted (--keep-failed keeps it as q.int8.FAILED.onnx)"
    assert error_lines(r.stderr) == [f"error: q.int8.onnx failed its parity check: not written under its name; {kept}"]
    report = json.loads(Path(str(out) + ".parity.json").read_text())
    assert report["passed"] is False and report["model"] == "q.int8.onnx"
    assert report["file"] == ("q.int8.FAILED.onnx" if keep else None)
    left = sorted(f.name for f in tmp_path.iterdir())
    assert left == sorted(["q.int8.onnx.parity.json", "tmp"] + (["q.int8.FAILED.onnx"] if keep else []))
    assert not list((tmp_path / "tmp").glob("brd-*"))  # the work folder went too


def test_stale_temp_files_of_killed_exports_are_cleaned_on_the_next_start(model, calib, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    dead = 2 ** 22 + 12345  # above the default pid_max: no such process
    stale = [tmp_path / f".q.int8.pid{dead}.candidate.onnx", tmp_path / f".q.int8.pid{dead}.abc.tmp.onnx",
             tmp / f"brd-export-pid{dead}-xyz", tmp / "brd-quant-old"]
    live = tmp_path / f".q.int8.pid{os.getpid()}.abc.tmp.onnx"  # a running export's file is left alone
    recent = tmp / "brd-quant-recent"  # no pid (an older version's name), but maybe still in use: kept
    for f in stale[:2] + [live]:
        f.write_bytes(b"x" * 1000)
    for d in stale[2:] + [recent]:
        d.mkdir()
        (d / "pre.onnx").write_bytes(b"x")
    os.utime(stale[3], (time.time() - 2 * 86400,) * 2)
    r = run(["export.quantize", model, "-o", tmp_path / "q.int8.onnx", "--calib-dir", calib],
            env=dict(ENV, TMPDIR=str(tmp)))
    assert r.returncode == 0, r.stderr
    assert not any(f.exists() for f in stale) and live.exists() and list(tmp.glob("brd-*")) == [recent]
    assert (tmp_path / "q.int8.onnx").is_file() and json.loads(
        (tmp_path / "q.int8.onnx.parity.json").read_text())["file"] == "q.int8.onnx"


def test_sigterm_during_an_export_leaves_nothing(model, calib, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = tmp_path / "q.int8.onnx"
    p = subprocess.Popen([sys.executable, "-m", "export.quantize", str(model), "-o", str(out), "--calib-dir",
                          str(calib), "--parity-images", "64"], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=dict(ENV, TMPDIR=str(tmp)))
    rc, _, err = signal_when(p, lambda: any(tmp_path.glob(".q.int8.pid*")), signal.SIGTERM)
    assert rc == 143 and error_lines(err) == ["interrupted by SIGTERM: nothing written under the output name"]
    assert sorted(f.name for f in tmp_path.iterdir()) == ["tmp"] and not list(tmp.glob("brd-*"))


# ------------------------------------------------------------------------------------------ range errors
@pytest.mark.parametrize("module, args, message", [
    ("runtime.run", ["--max-frames", "0"], "argument --max-frames: 0 is out of range: expected >= 1"),
    ("runtime.run", ["--alpha", "1.5"], "argument --alpha: 1.5 is out of range: expected [0, 1]"),
    ("runtime.run", ["--stats-every", "0"], "argument --stats-every: 0 is out of range: expected > 0"),
    ("runtime.bench", ["--iters", "0"], "argument --iters: 0 is out of range: expected >= 1"),
    ("export.onnx", ["--size", "0x64"], "argument --size: expected HxW with H, W >= 1, e.g. 512x1024, got '0x64'"),
    ("export.quantize", ["--min-agreement", "7"], "argument --min-agreement: 7 is out of range: expected [0, 1]"),
    ("export.quantize", ["--num-calib", "0"], "argument --num-calib: 0 is out of range: expected >= 1"),
])
def test_cli_ranges_are_checked_when_the_arguments_are_read(model, tmp_path, capsys, module, args, message):
    import importlib

    main = importlib.import_module(module).main
    argv = (["--model", str(model)] if module.startswith("runtime") else [str(model)]) + args
    code, err = cli_exit(main, argv, capsys)
    assert code == 2 and error_lines(err)[-1].endswith(f"error: {message}")


@pytest.mark.parametrize("setting, message", [
    ("train.lr=-0.5", "train.lr: must be > 0, got -0.5"),
    ("train.ckpt_every=0", "train.ckpt_every: must be >= 1, got 0"),
    ("data.scale_range=[0,0]", "data.scale_range: expected [min, max] with 0 < min <= max, got [0.0, 0.0]"),
    ("data.crop_size=[512,1024]", "data.crop_size: 512x1024 is larger than the largest scaled image 48x96 "
                                  "(data.kwargs.size [32, 64] x data.scale_range max 1.5): every crop would be mostly padding"),
    ("model.arch=resnet_huge", "model.arch: unknown architecture 'resnet_huge'"),
    ("data.dataset=kitti", "data.dataset: unknown dataset 'kitti'"),
    ("train.device=gpu", "train.device: expected auto, cpu, cuda or cuda:N, got 'gpu'"),
    ("train.device=cuda", "train.device: cuda asked for, but this machine has no CUDA"),
])
def test_config_ranges_are_one_line_before_any_work(tmp_path, capsys, setting, message):
    from distill.run import main

    if setting == "train.device=cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "run"
    code, err = cli_exit(main, [str(a) for a in _train_args(tmp_path, out, iters=1, extra=[setting])[1:]], capsys)
    [line] = error_lines(err)
    assert code == 2 and line.startswith(f"error: {ROOT / 'configs' / 'synthetic_plain.yaml'}: {message}")
    assert not out.exists() and not (tmp_path / "data").exists()  # nothing was done


@pytest.mark.parametrize("text", ["", "# only a comment\n", "{}\n", "[1, 2]\n"])
def test_empty_or_non_mapping_config_is_an_error(tmp_path, capsys, text):
    from distill.run import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    code, err = cli_exit(main, ["--cfg", str(cfg)], capsys)
    [line] = error_lines(err)
    assert code == 2 and line.startswith(f"error: {cfg}: ")
    assert ("the config is empty" in line) if text != "[1, 2]\n" else ("expected a mapping at the top level" in line)
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------------------------------ foreign files
def _last_pt_of(tmp_path, arch_setting):
    from distill.config import load_config
    from distill.engine import train

    out = tmp_path / "run"
    cfg = load_config(ROOT / "configs" / "synthetic_plain.yaml",
                      _overrides(tmp_path, out, iters=3) + arch_setting + ["train.ckpt_every=1"])
    train(cfg, stop_at=1)
    return out


@pytest.mark.parametrize("other, message", [
    (["model.arch=lraspp_mobilenetv2_w035"], "a training state of 'lraspp_mobilenetv2_w035', but this config trains "
                                             "'deeplabv3_resnet10_w8'; use another out_dir or remove it"),
    (["model.kwargs={width: 16}"], "cannot resume this config from it (RuntimeError: Error(s) in loading state_dict"),
])
def test_foreign_last_pt_is_one_line_and_left_alone(tmp_path, capsys, other, message):
    from distill.run import main

    out = _last_pt_of(tmp_path, other)
    before = (out / "last.pt").read_bytes()
    code, err = cli_exit(main, [str(a) for a in _train_args(tmp_path, out, iters=3)[1:]], capsys)
    assert code == 2 and error_lines(err)[-1].startswith(f"error: {out / 'last.pt'}: {message}")
    assert (out / "last.pt").read_bytes() == before and not (out / "student.pt").exists()


def test_stale_checkpoint_temp_of_a_killed_run_is_removed_at_the_next_start(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    stale = out / f".last.pt.pid{2 ** 22 + 7}.abc.tmp"
    stale.write_bytes(b"x" * 4096)
    r = run(_train_args(tmp_path, out, iters=1))
    assert r.returncode == 0, r.stderr[-2000:]
    assert not stale.exists() and (out / "student.pt").is_file()


# ------------------------------------------------------------------------------------------ nothing destructive
def test_evaluation_with_other_settings_never_rewrites_the_dataset(tmp_path, capsys):
    from distill.data import build_dataset
    from distill.evaluate import cli

    root = tmp_path / "d"
    build_dataset("synthetic", root, "val", num_images=2, size=(32, 64))
    files = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    ckpt = write_synthetic_student(tmp_path / "s.pt")
    code, err = cli_exit(cli, ["--ckpt", str(ckpt), "--dataset", "synthetic", "--root", str(root), "--data-kwargs",
                               '{"num_images": 2, "size": [64, 128]}'], capsys)
    assert code == 2 and error_lines(err) == [
        f"error: {root}: the synthetic 'val' split there was generated with other settings: size [32, 64] "
        "(asked: [64, 128]); ask for the same settings, use another data.root, or delete synthetic_val.json "
        "and the val folders under leftImg8bit/ and gtFine/ to regenerate it"]
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == files
    code, err = cli_exit(cli, ["--ckpt", str(ckpt), "--dataset", "synthetic", "--root", str(root), "--split", "test"],
                         capsys)
    assert code == 2 and "evaluation does not generate data" in err and not (root / "leftImg8bit" / "test").exists()


def test_a_tiny_image_first_in_a_folder_is_skipped_not_fatal(model, tmp_path, capsys):
    from runtime.run import main

    src = tmp_path / "src"
    src.mkdir()
    cv2.imwrite(str(src / "a_tiny.png"), np.zeros((1, 1, 3), np.uint8))
    for i in range(3):
        cv2.imwrite(str(src / f"b_{i}.png"), np.full((*FRAME_HW, 3), 60 * i, np.uint8))
    out, stats = tmp_path / "o.mp4", tmp_path / "s.json"
    code, err = cli_exit(main, ["--model", str(model), "--source", str(src), "--sink", str(out), "-o", str(stats),
                                "-q"], capsys)
    assert code == 0, err
    assert frame_count(out) == 3 and json.loads(stats.read_text())["frames"]["skipped"] == 1


def test_no_added_cost_refuses_a_mismatched_pair_before_any_timing(tmp_path, capsys):
    from benchmarks.no_added_cost import main

    five = write_student(tmp_path / "five.pt", input_size=(32, 64))
    eleven = write_synthetic_student(tmp_path / "eleven.pt")
    out = tmp_path / "nac"
    code, err = cli_exit(main, ["--pair", "p", str(five), str(eleven), "--out-dir", str(out)], capsys)
    assert code == 2 and error_lines(err) == [
        "error: pair p: the plain and BRD students differ in classes (num_classes: plain 5, BRD 11), "
        "so their inference cost cannot be compared"]
    code, err = cli_exit(main, ["--pair", "p", str(five), str(tmp_path / "nope.pt"), "--out-dir", str(out)], capsys)
    assert code == 2 and error_lines(err) == [f"error: pair p: the BRD checkpoint {tmp_path / 'nope.pt'} does not exist"]
    assert not out.exists()


def test_no_added_cost_differing_graphs_end_the_run(tmp_path, capsys):
    from benchmarks.no_added_cost import main
    from export.onnx import torch_to_onnx

    plain = write_student(tmp_path / "plain.pt", input_size=(32, 64), seed=1)
    brd = write_student(tmp_path / "brd.pt", input_size=(32, 64), seed=2)
    models = tmp_path / "nac" / "models"
    models.mkdir(parents=True)
    # a reused export that is newer than the checkpoint but of another graph (labels output)
    torch_to_onnx(brd, models / "p_brd.onnx", argmax=True, simplify=False)
    code, err = cli_exit(main, ["--pair", "p", str(plain), str(brd), "--out-dir", str(tmp_path / "nac"),
                                "--variants", "onnx-fp32"], capsys)
    [line] = error_lines(err)
    assert code == 1 and line.startswith("error: pair p: the plain and BRD ONNX graphs differ (")
    assert line.endswith("p_plain.onnx vs p_brd.onnx), so no timing was done")
    assert not (tmp_path / "nac" / "results.csv").exists()


# ------------------------------------------------------------------------------------------ third-party errors
def test_a_corrupt_model_is_one_line_naming_the_file(tmp_path, images, capsys):
    from runtime.run import main

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model at all")
    code, err = cli_exit(main, ["--model", str(bad), "--source", str(images), "--sink", "none", "-q"], capsys)
    [line] = error_lines(err)
    assert code == 2 and line.startswith(f"error: {bad}: ONNX Runtime cannot load it (")


def test_a_corrupt_checkpoint_to_evaluate_is_one_line(tmp_path, capsys):
    from distill.evaluate import cli

    bad = tmp_path / "s.pt"
    bad.write_bytes(b"PK\x03\x04 truncated")
    code, err = cli_exit(cli, ["--ckpt", str(bad), "--dataset", "synthetic", "--root", str(tmp_path)], capsys)
    [line] = error_lines(err)
    assert code == 2 and line.startswith(f"error: {bad}: not a readable BRD Edge checkpoint (")
