"""`torchrun --nproc_per_node=2 -m distill.run` on CPU (gloo), on fresh synthetic data: only rank 0 writes
(data generation included, the other rank waits for it), both ranks end with the same weights, BatchNorm
is what the config and the device allow, and a run killed mid-way resumes to the uninterrupted weights.

Which process wrote what is read with a Python audit hook (sitecustomize.py on the workers' PYTHONPATH) that
logs every write-like event (open for writing, mkdir, rename, remove, rmtree) under the test folder."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from distill import checkpoint
from distill.ddp import weights_digest
from tests.test_run import ROOT, _teacher

pytestmark = pytest.mark.slow

AUDIT = r'''
import os, sys
_rank, _watch = os.environ.get("RANK"), os.environ.get("BRD_WATCH_DIR")
if _rank is not None and _watch:
    _logdir = os.path.join(_watch, "audit")
    _log = os.path.join(_logdir, f"writes_rank{_rank}.log")
    _busy = []
    _WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    _EVENTS = ("os.mkdir", "os.remove", "os.rmdir", "os.rename", "shutil.rmtree", "os.truncate", "os.link", "os.symlink")

    def _hook(event, args):
        if _busy or not args:
            return
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None))[:3]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
                      (isinstance(flags, int) and bool(flags & _WRITE_FLAGS))
        elif event in _EVENTS:
            path, writing = args[0], True
        else:
            return
        if not writing or not isinstance(path, (str, bytes, os.PathLike)):
            return
        path = os.path.abspath(os.fsdecode(path))
        if path.startswith(_watch) and not path.startswith(_logdir):
            _busy.append(1)
            try:
                with open(_log, "a") as f:
                    f.write(f"{event} {path}\n")
            finally:
                _busy.pop()

    sys.addaudithook(_hook)
'''


def _overrides(tmp_path, out, iters, ckpt_every):
    return [f"out_dir={out}", f"data.root={tmp_path / 'data'}", "data.crop_size=[64,128]",
            "data.kwargs={num_images: 8, size: [64, 128], seed: 0}",
            "data.val_kwargs={num_images: 2, size: [64, 128], seed: 0}",
            f"train.iters={iters}", "train.batch_size=4", f"train.ckpt_every={ckpt_every}", "train.val_every=1000",
            "train.log_every=1", "train.threads=1", "eval.input_size=[64,128]", f"teacher.ckpt={tmp_path / 'teacher.pt'}"]


def _torchrun(tmp_path, overrides, **popen):
    hook = tmp_path / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(AUDIT)
    (tmp_path / "audit").mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": f"{hook}{os.pathsep}{ROOT}", "BRD_WATCH_DIR": str(tmp_path),
           "OMP_NUM_THREADS": "1"}
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "distill.run", "--cfg", "configs/synthetic.yaml",
           "--set", *overrides]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, **popen)


def _children(pid: int) -> list[int]:
    """Process ids whose parent is `pid` (Linux /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _writes(tmp_path, rank):
    log = tmp_path / "audit" / f"writes_rank{rank}.log"
    return log.read_text().splitlines() if log.exists() else []


def test_torchrun_two_cpu_processes(tmp_path):
    _teacher(tmp_path / "teacher.pt")
    iters, every = 40, 10

    # 1. fresh data, uninterrupted
    proc = _torchrun(tmp_path, _overrides(tmp_path, tmp_path / "straight", iters, every))
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    rank0, rank1 = _writes(tmp_path, 0), _writes(tmp_path, 1)
    assert any("os.mkdir" in w and "leftImg8bit" in w for w in rank0)        # rank 0 generated the data
    assert any("synthetic_train.json" in w for w in rank0) and any("last.pt" in w for w in rank0)
    assert rank1 == [], rank1[:10]                                           # rank 1 wrote nothing at all
    # BatchNorm as configured and possible: sync_bn=true, but torch has no SyncBatchNorm on CPU
    assert "2 processes on cpu; BatchNorm: per process (train.sync_bn=true, but torch's SyncBatchNorm needs CUDA" in out
    # both ranks' parameters hashed at the end are equal, and equal to what rank 0 saved
    model, _ = checkpoint.load(tmp_path / "straight" / "model.pt")
    assert f"all 2 processes hold the same weights (sha256 {weights_digest(model)})" in out, out[-3000:]

    # 2. the same run killed mid-way (SIGKILL to the workers and torchrun once the first checkpoint exists)...
    (tmp_path / "audit" / "writes_rank0.log").unlink()
    killed = tmp_path / "killed"
    proc = _torchrun(tmp_path, _overrides(tmp_path, killed, iters, every))
    deadline = time.monotonic() + 240
    while not (killed / "last.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    workers = _children(proc.pid)  # torchrun starts its workers in sessions of their own: kill them by pid
    for pid in [*workers, proc.pid]:
        os.kill(pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    step = checkpoint.load_training(killed / "last.pt")["step"]
    assert step < iters and not (killed / "model.pt").exists()

    # 3. ... and resumed with the same command under torchrun: the uninterrupted run's weights
    proc = _torchrun(tmp_path, _overrides(tmp_path, killed, iters, every))
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    assert f"resuming {killed} from step {step}/{iters}" in out
    assert _writes(tmp_path, 1) == []
    a = checkpoint.load_training(tmp_path / "straight" / "last.pt")["student"]
    b = checkpoint.load_training(killed / "last.pt")["student"]
    for k, v in a.items():
        assert torch.allclose(v.float(), b[k].float(), atol=1e-6), f"{k} differs after a torchrun resume"
    shutil.rmtree(tmp_path / "data")
