"""The fault trial's last training cases (issue 29): a batch of one image against BatchNorm after global
pooling, a diverging run, two trainings into one run folder, and SIGTERM to the gain benchmark while it
trains. Each is one line (or the interrupt's message) with the documented exit code, and what is on disk."""
from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from .faults import ENV, ROOT, cli_exit, error_lines, last_line, logged_steps, overrides, run, signal_when, train_args


def _main_args(tmp_path, out, iters, extra=()):
    return [str(a) for a in train_args(tmp_path, out, iters=iters, extra=extra)[1:]]


# ------------------------------------------------------------------------------------------ batch of one
def test_batch_size_1_with_batchnorm_after_global_pooling_is_one_line_before_the_work(tmp_path, capsys):
    """DeepLabV3's image pooling ends in a BatchNorm that sees 1x1 per channel: with one image per step, torch
    failed at the first step ('Expected more than 1 value per channel when training', a traceback)."""
    from distill.run import main

    out = tmp_path / "run"
    code, err = cli_exit(main, _main_args(tmp_path, out, 3, ["train.batch_size=1"]), capsys)
    assert code == 2 and error_lines(err) == [
        "error: train.batch_size=1: 1 image per step is too few for deeplabv3_resnet10_w8: its BatchNorm after global "
        "pooling (head.image_pool.1.1) would see one value per channel, and training needs more; use "
        "train.batch_size >= 2"]
    assert not out.exists() and not (tmp_path / "data").exists()  # refused before the data and the run folder


def test_batch_size_1_trains_a_network_without_such_a_layer(tmp_path, capsys):
    from distill.run import main

    out = tmp_path / "run"
    extra = ["train.batch_size=1", "model.arch=lraspp_mobilenetv2_w035"]  # LR-ASPP's pooled branch has no BatchNorm
    code, err = cli_exit(main, _main_args(tmp_path, out, 2, extra), capsys)
    assert code == 0, err[-2000:]
    assert (out / "model.pt").is_file()


# ------------------------------------------------------------------------------------------ divergence
def test_a_diverging_run_is_one_line_exit_1_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    """FloatingPointError after 20 non-finite steps was a traceback. Now: one line saying where it diverged,
    which checkpoint is kept (none is written while the loss is non-finite: a forward there spoils the
    BatchNorm statistics) and what to try; exit 1 (the inputs were valid; the run failed its own check)."""
    from distill import checkpoint
    from distill.run import main

    out = tmp_path / "run"
    code, err = cli_exit(main, _main_args(tmp_path, out, 60, ["train.lr=1e30", "train.ckpt_every=1"]), capsys)
    assert code == 1 and "Traceback" not in err
    line = last_line(err)
    m = re.fullmatch(rf"error: {re.escape(str(out))}: the run diverged at step (\d+): the loss was non-finite for 20 "
                     rf"steps in a row \(to step (\d+)\); the last good checkpoint {re.escape(str(out / 'last.pt'))} "
                     rf"\(step (\d+)\) is kept; lower train.lr \(now 1e\+30\) or check the data", line)
    assert m, line
    first, last, kept = map(int, m.groups())
    assert last == first + 19 and kept == first - 1
    state = checkpoint.load_training(out / "last.pt")
    assert state["step"] == kept and all(torch.isfinite(v).all() for v in state["student"].values()
                                         if v.is_floating_point())
    assert not (out / "model.pt").exists()


# ------------------------------------------------------------------------------------------ one run folder, one run
def test_a_second_training_into_a_busy_run_folder_is_refused(tmp_path):
    """Two distill.run into one out_dir both trained and interleaved one train_log.csv (43 rows for 30 steps):
    the second is refused with one line naming the folder and the first one's pid, and writes nothing there."""
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", *map(str, train_args(tmp_path, out))], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)
    t0 = time.time()
    while logged_steps(out) < 1:  # the first one trains
        assert first.poll() is None and time.time() - t0 < 120, first.communicate()[1][-2000:]
        time.sleep(0.01)
    second = run(train_args(tmp_path, out), timeout=300)
    first.send_signal(signal.SIGTERM)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 143, err[-2000:]
    assert second.returncode == 2 and error_lines(second.stderr) == [
        f"error: {out}: another training (pid {first.pid}) is running in this run folder (out_dir); wait for it to "
        "end, or give this one another out_dir"]
    steps = [int(r["step"]) for r in csv.DictReader(open(out / "train_log.csv"))]
    assert steps == list(range(1, len(steps) + 1))  # one writer
    assert not (out / ".run.lock").exists()  # removed when the run ended


def test_a_lock_left_by_a_dead_process_does_not_block(tmp_path, capsys):
    from distill.run import main

    out = tmp_path / "run"
    out.mkdir()
    (out / ".run.lock").write_text(f"{2 ** 22 + 12345}\n")  # a killed run's (above the default pid_max)
    code, err = cli_exit(main, _main_args(tmp_path, out, 1), capsys)
    assert code == 0, err[-2000:]
    assert (out / "model.pt").is_file() and not (out / ".run.lock").exists()


def test_the_lock_is_released_when_the_run_fails_and_leaves_no_empty_folder(tmp_path, capsys):
    from distill.run import main
    from distill.runlock import RunLock

    out = tmp_path / "run"
    code, _ = cli_exit(main, _main_args(tmp_path, out, 1, ["train.batch_size=1"]), capsys)
    assert code == 2 and not out.exists()
    out.mkdir()
    with RunLock(out):  # taken again at once: nothing held it
        assert (out / ".run.lock").read_text() == f"{os.getpid()}\n"


# ------------------------------------------------------------------------------------------ the gain benchmark
def test_sigterm_to_the_gain_benchmark_while_it_trains_is_143_with_the_run_resumable(tmp_path):
    """It was exit 1 with a traceback (the training's `Interrupted` escaped the command): now 143, the run's
    last.pt saved, the ledger intact, and rerunning the same command resumes."""
    from distill import checkpoint

    out, runs = tmp_path / "gain", tmp_path / "gain" / "runs"
    sets = [s for s in overrides(tmp_path, runs / "plain_s0") if not s.startswith("out_dir=")]
    cmd = [sys.executable, "-m", "benchmarks.gain", "--methods", "plain", "--seeds", "0", "--no-tune",
           "--out-dir", str(out), "--set", *sets]
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    rc, _, err = signal_when(p, lambda: logged_steps(runs / "plain_s0") >= 2, signal.SIGTERM)
    assert rc == 143, err[-3000:]
    assert "Traceback" not in err
    step = checkpoint.load_training(runs / "plain_s0" / "last.pt")["step"]
    assert last_line(err) == (f"interrupted by SIGTERM: {runs / 'plain_s0' / 'last.pt'} saved at step {step}; "
                              "rerun the same command to resume")
    ledger = out / "synthetic_ledger.jsonl"
    assert not ledger.exists() or all(json.loads(ln) for ln in ledger.read_text().splitlines() if ln.strip())


def test_sigterm_to_the_gain_benchmark_with_jobs_stops_every_worker_after_its_step(tmp_path):
    """--jobs 2 trains in worker processes: a SIGTERM sent to the benchmark alone (as systemd or docker send
    it) is passed on; each worker saves its run's last.pt and ends (no queued run starts), then the benchmark
    ends with 143. No process is left behind and no worker prints a traceback."""
    out, runs = tmp_path / "gain", tmp_path / "gain" / "runs"
    sets = [s for s in overrides(tmp_path, runs / "x") if not s.startswith("out_dir=")]
    cmd = [sys.executable, "-m", "benchmarks.gain", "--methods", "plain", "--seeds", "0", "1", "2", "--no-tune",
           "--jobs", "2", "--threads", "1", "--out-dir", str(out), "--set", *sets]
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    rc, _, err = signal_when(p, lambda: min(logged_steps(runs / f"plain_s{s}") for s in (0, 1)) >= 1, signal.SIGTERM,
                             timeout=180)
    assert rc == 143, err[-3000:]
    assert "Traceback" not in err and last_line(err) == (
        "interrupted by SIGTERM: finished runs are kept, runs in training saved their last.pt; rerun the same "
        "command to resume")
    for s in (0, 1):
        assert (runs / f"plain_s{s}" / "last.pt").is_file()
        assert "interrupted by SIGTERM: " in (runs / f"plain_s{s}" / "train.out").read_text()
    assert not (runs / "plain_s2").exists()  # the queued run never started
    left = subprocess.run(["pgrep", "-f", str(out)], capture_output=True, text=True).stdout.split()
    assert not left, left


def test_a_gain_run_that_fails_in_a_worker_before_it_writes_leaves_no_run_folder(tmp_path):
    """With --jobs a run trains in a worker, its output in the run folder's train.out: a run that fails before
    it writes anything else leaves no folder holding only that log (as without --jobs, where the folder goes
    while empty), so a rerun finds no half-made run; a folder that holds more stays as it was."""
    from benchmarks.gain.runs import _train_job
    from runtime.contract import DataError

    bad = overrides(tmp_path, tmp_path / "runs" / "x", iters=2, extra=["data.kwargs={nope: 1}"])
    with pytest.raises(DataError, match="nope"):
        _train_job("synthetic_plain.yaml", bad, 1, quiet=True)
    assert not (tmp_path / "runs" / "x").exists()
    (tmp_path / "runs" / "y").mkdir()
    (tmp_path / "runs" / "y" / "notes.txt").write_text("mine\n")
    with pytest.raises(DataError, match="nope"):
        _train_job("synthetic_plain.yaml", [*bad, f"out_dir={tmp_path / 'runs' / 'y'}"], 1, quiet=True)
    assert sorted(p.name for p in (tmp_path / "runs" / "y").iterdir()) == ["notes.txt", "train.out"]
