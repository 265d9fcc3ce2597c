"""The dataset recipes at their real sizes, on CPU: teacher config, then BRD student config, then evaluation,
ONNX export and the runtime benchmark on the student, on a small tree in the dataset's real layout.

Overridden: train.iters, train.batch_size, train.threads, out_dir, plus where things are (data.root, the
teacher's model.pt as teacher.ckpt, model.pretrained: ImageNet files in CIRKD's and mmseg's real layouts,
with sane random values: each config gets the files it names, in their layouts). Everything else
(architectures and their stems, crop sizes, losses, eval sizes) is the config's.
All four chains run in CI (marked `slow`; CI does not deselect them), one training step each: what the chain
checks (the configs at their real crop sizes, the dataset layouts, the files each config names, export and
runtime on the result) needs no second step. The teacher's step trains and validates at a quarter of the height
and width (TEACHER_CROP_SCALE): a real-size training step of the R101 was the chain's main cost (a minute for VOC's
512x512 on 2 cores, two for Cityscapes' 512x1024), and the student's step then runs that teacher forward at
the real crop, which is where a size-dependent fault would show. Cityscapes is the chain of CIRKD's networks
(its ImageNet file layouts, stem v1s); the others run mmseg's (stem v1c).
"""
from __future__ import annotations

import csv
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from distill import checkpoint, config
from tests import trees

ROOT = Path(__file__).parent.parent
LAYOUTS = Path(__file__).parent / "layouts"

TEACHER_CROP_SCALE = 0.25  # of each side of the config's crop, for the teacher's training step only

# dataset -> (image size of the tree, evaluation flags). Cityscapes is evaluated by sliding 512x1024
# windows over the full 1024x2048 frame; the others whole, at their own image sizes.
RECIPES = {
    "cityscapes": ((1024, 2048), ["--mode", "slide", "--window", "512x1024", "--stride", "512x1024"]),
    "voc": ((375, 500), []),
    "ade20k": ((512, 683), []),
    "cocostuff10k": ((480, 640), []),
}


def imagenet_file(path: Path, layout: str) -> Path:
    """A weight file with the layout's exact keys and shapes and values a trained net could have
    (He-initialised convs, unit BN), so the recipe starts from finite activations."""
    keys = json.loads((LAYOUTS / f"{layout}.json").read_text())["keys"]
    g = torch.Generator().manual_seed(0)
    sd = {}
    for k, shape in keys.items():
        if k.endswith("num_batches_tracked"):
            sd[k] = torch.tensor(0)
        elif len(shape) == 4:
            sd[k] = torch.randn(shape, generator=g) * math.sqrt(2.0 / (shape[1] * shape[2] * shape[3]))
        elif k.endswith(("running_var", "weight")):
            sd[k] = torch.ones(shape)
        else:
            sd[k] = torch.zeros(shape)
    torch.save(sd, path)
    return path


def _run(args, timeout=2400):
    t, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime
    print(f"  wall {time.perf_counter() - t:6.1f} s, cpu {used:6.1f} s  {' '.join(args[:4])}", flush=True)
    return done


@pytest.mark.slow
@pytest.mark.timeout(2400)
@pytest.mark.parametrize("dataset", list(RECIPES))
def test_recipe_at_real_size(tmp_path, dataset):
    size, eval_flags = RECIPES[dataset]
    data = trees.TREES[dataset](tmp_path / "data", size=size, train=2, val=1)
    # each config's own named files in their own layouts: Cityscapes names CIRKD's (stem v1s, CIRKD's networks),
    # VOC, ADE20K and COCO-Stuff name mmseg's resnet*_v1c (stem v1c); the configs name the stem, the files do not
    cirkd = dataset == "cityscapes"
    stem = "v1s" if cirkd else "v1c"
    r101 = imagenet_file(tmp_path / ("resnet101-imagenet.pth" if cirkd else "resnet101_v1c.pth"),
                         "cirkd_resnet101_v1s" if cirkd else "mmseg_resnet101_v1c")
    r18 = imagenet_file(tmp_path / ("resnet18-imagenet.pth" if cirkd else "resnet18_v1c.pth"),
                        "cirkd_resnet18_v1s" if cirkd else "mmseg_resnet18_v1c")
    common = ["train.iters=1", "train.batch_size=2", "train.threads=2", f"data.root={data}"]

    crop = [round(side * TEACHER_CROP_SCALE) for side in config.load_config(f"{dataset}_teacher.yaml").data.crop_size]
    val = [round(side * TEACHER_CROP_SCALE) for side in size]  # its validation too: the student's is at real size
    _run(["-m", "distill.run", "--cfg", f"{dataset}_teacher.yaml", "--set", *common, f"out_dir={tmp_path / 'teacher'}",
          f"model.pretrained={r101}", f"data.crop_size=[{crop[0]},{crop[1]}]", f"eval.size=[{val[0]},{val[1]}]"])
    teacher, tmeta = checkpoint.load(tmp_path / "teacher" / "model.pt")
    assert tmeta["arch"] == "deeplabv3_resnet101" and tmeta["arch_kwargs"] == {"stem": stem}

    _run(["-m", "distill.run", "--cfg", f"{dataset}.yaml", "--set", *common, f"out_dir={tmp_path / 'student'}",
          f"model.pretrained={r18}", f"teacher.ckpt={tmp_path / 'teacher' / 'model.pt'}"])
    ckpt = tmp_path / "student" / "model.pt"
    _, meta = checkpoint.load(ckpt)
    assert meta["arch"] == "deeplabv3_resnet18" and meta["arch_kwargs"] == {"stem": stem}
    # at 19 classes CIRKD's student (v1s) has 13,607,974 parameters, each class adding a 128- and a 64-wide 1x1 +
    # bias; the mmseg-head v1c network 18,102,726, each class adding a 256- and a 64-wide 1x1 + bias
    base, per_class = (13_607_974, 194) if cirkd else (18_102_726, 322)
    assert sum(p.numel() for p in checkpoint.load(ckpt)[0].parameters()) == base + (meta["num_classes"] - 19) * per_class
    with open(tmp_path / "student" / "train_log.csv") as f:
        (row,) = list(csv.DictReader(f))          # the config logs every 50 steps and at the last one
    assert row["step"] == "1" and all(math.isfinite(float(row[t])) for t in ("ce", "kd", "boundary", "relation"))

    metrics = tmp_path / "metrics.json"
    _run(["-m", "distill.evaluate", "--model", str(ckpt), "--cfg", f"{dataset}.yaml", "--set", f"data.root={data}",
          *eval_flags, "-o", str(metrics)])
    result = json.loads(metrics.read_text())
    assert result["num_images"] == 1 and 0.0 <= result["mIoU"] <= 1.0
    assert result["settings"]["mode"] == ("slide" if eval_flags else "whole")

    onnx_path = tmp_path / "student.onnx"
    _run(["-m", "export.onnx", str(ckpt), "-o", str(onnx_path), "--parity-images", "1"])  # one frame: real size
    parity = json.loads(Path(str(onnx_path) + ".parity.json").read_text())
    assert parity["passed"]
    bench = tmp_path / "bench.json"
    _run(["-m", "runtime.bench", "--model", str(onnx_path), "--iters", "2", "--warmup", "1", "--threads", "2",
          "-o", str(bench)])
    b = json.loads(bench.read_text())
    assert b["shape"][-2:] == meta["input_size"] and b["latency_ms"]["p50"] > 0
