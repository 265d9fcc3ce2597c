"""ImageNet weight files in the layouts users have: every backbone tensor loads, the matching stem is built
and recorded, classifier heads are skipped, anything less is an error unless asked for.

The layouts (key -> shape) come from the real model code (torchvision's wheel, CIRKD's resnetv1b.py,
mmseg's ResNetV1c / MobileNetV2), written by tests/layouts/make_layouts.py, not from our own models.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from distill import checkpoint
from distill.models import PretrainedError, build_model, load_pretrained

LAYOUTS = Path(__file__).parent / "layouts"
ROOT = Path(__file__).parent.parent
HEAD_PREFIXES = ("fc.", "classifier.", "head.", "features.18.", "conv2.conv", "conv2.bn")


def weight_file(path, layout, wrap=None, prefix="", drop=(), extra=None):
    """A weight file with the layout's exact keys and shapes; tensor i holds the constant i + 1, so where
    each value lands shows which file tensor went where."""
    keys = json.loads((LAYOUTS / f"{layout}.json").read_text())["keys"]
    sd = {}
    for i, (k, shape) in enumerate(keys.items()):
        if k in drop:
            continue
        sd[prefix + k] = (torch.tensor(i + 1, dtype=torch.int64) if k.endswith("num_batches_tracked")
                          else torch.full(shape, float(i + 1)))
    sd.update(extra or {})
    torch.save({wrap: sd} if wrap else sd, path)
    return path


def _values(sd: dict) -> list[float]:
    return [float(v.flatten()[0]) for k, v in sd.items() if not k.endswith("num_batches_tracked")]


CASES = [  # layout, arch, the arch kwargs the file needs, wrapper/prefix as those files are saved
    ("torchvision_resnet18", "deeplabv3_resnet18", {"stem": "7x7"}, None, ""),
    ("cirkd_resnet18_v1s", "deeplabv3_resnet18", {"stem": "v1s"}, None, ""),
    ("mmseg_resnet18_v1c", "deeplabv3_resnet18", {"stem": "v1c"}, "state_dict", ""),
    ("torchvision_resnet101", "deeplabv3_resnet101", {"stem": "7x7"}, None, ""),
    ("cirkd_resnet101_v1s", "deeplabv3_resnet101", {"stem": "v1s"}, None, ""),
    ("mmseg_resnet101_v1c", "deeplabv3_resnet101", {"stem": "v1c"}, "state_dict", "backbone."),
    ("torchvision_mobilenet_v2", "deeplabv3_mobilenetv2", {}, None, ""),
    ("mmseg_mobilenet_v2", "deeplabv3_mobilenetv2", {}, "state_dict", "backbone."),
    ("torchvision_mobilenet_v3_large", "lraspp_mobilenetv3_large", {}, None, ""),
]


@pytest.mark.parametrize("layout, arch, kwargs, wrap, prefix", CASES, ids=[c[0] for c in CASES])
def test_every_backbone_tensor_of_the_file_loads(tmp_path, layout, arch, kwargs, wrap, prefix):
    path = weight_file(tmp_path / f"{layout}.pth", layout, wrap, prefix)
    file_keys = json.loads((LAYOUTS / f"{layout}.json").read_text())["keys"]
    model = build_model(arch, 19, pretrained=str(path), **kwargs)  # the stem is asked for, never inferred
    assert model.arch_kwargs == kwargs
    report = model.pretrained_report
    assert report.complete, str(report)
    assert sorted(report.skipped) == sorted(k for k in file_keys if k.startswith(HEAD_PREFIXES))

    # each backbone tensor holds one file tensor's constant, and each non-classifier file tensor is used once
    own = model.backbone.state_dict()
    file_values = [float(i + 1) for i, k in enumerate(file_keys)
                   if not k.startswith(HEAD_PREFIXES) and not k.endswith("num_batches_tracked")]
    loaded = _values(own)
    assert all(bool((v == v.flatten()[0]).all()) for k, v in own.items())
    assert sorted(loaded) == sorted(file_values)

    if layout == "cirkd_resnet18_v1s":  # CIRKD's student: 64-64-128 stem, so layer1.0 has a downsample
        names = list(file_keys)
        assert model.backbone.stem[6].weight.shape == (128, 64, 3, 3)
        assert float(model.backbone.stem[6].weight.detach()[0, 0, 0, 0]) == names.index("conv3.weight") + 1
        assert model.backbone.layer1[0].downsample[0].weight.shape == (64, 128, 1, 1)
    if layout == "torchvision_resnet18":
        assert model.backbone.conv1.weight.shape == (64, 3, 7, 7)
    if layout == "mmseg_mobilenet_v2":
        names = list(file_keys)
        w = model.backbone.features[2].conv[0][0].weight  # torchvision's block 2 expand conv = mmseg layer2.0 conv.0
        assert float(w.detach().flatten()[0]) == names.index("layer2.0.conv.0.conv.weight") + 1

    if "101" not in layout:  # what export and evaluation read: the checkpoint rebuilds the same model
        from tests.conftest import MEAN, STD
        meta = checkpoint.make_meta(arch, model.arch_kwargs, 19, [str(i) for i in range(19)], [[0, 0, 0]] * 19,
                                    MEAN, STD, [64, 128], "cityscapes")
        checkpoint.save(tmp_path / "student.pt", model, meta)
        again, _ = checkpoint.load(tmp_path / "student.pt")
        for k, v in model.state_dict().items():
            assert torch.equal(v, again.state_dict()[k]), k


def test_incomplete_or_foreign_files_are_errors_naming_file_and_keys(tmp_path, capsys):
    short = weight_file(tmp_path / "short.pth", "torchvision_resnet18", drop={"layer3.1.bn2.running_var"})
    with pytest.raises(PretrainedError, match=r"short\.pth: does not fill .*missing 1 \(layer3\.1\.bn2\.running_var\)"
                                              r".*pretrained_strict=false"):
        build_model("deeplabv3_resnet18", 19, pretrained=str(short), stem="7x7")

    # ResNet-101's file into ResNet-18: the shared names have other shapes, the rest has no place
    big = weight_file(tmp_path / "r101.pth", "cirkd_resnet101_v1s")
    with pytest.raises(PretrainedError, match=r"r101\.pth: .*shape-mismatched .*layer1\.0\.conv1\.weight \(file "
                                              r"\[64, 128, 1, 1\], model \[64, 128, 3, 3\]\).*unexpected"):
        build_model("deeplabv3_resnet18", 19, pretrained=str(big), stem="v1s")

    # extra backbone tensors (a deeper network's) are not silently ignored either
    extra = weight_file(tmp_path / "extra.pth", "mmseg_resnet18_v1c", extra={"layer1.2.conv1.weight": torch.zeros(64, 64, 3, 3)})
    with pytest.raises(PretrainedError, match=r"unexpected 1 \(layer1\.2\.conv1\.weight\)"):
        build_model("deeplabv3_resnet18", 19, pretrained=str(extra))

    # asked for explicitly, a partial load goes through, loudly
    model = build_model("deeplabv3_resnet18", 19, pretrained=str(short), pretrained_strict=False, stem="7x7")
    assert model.pretrained_report.missing == ["layer3.1.bn2.running_var"]
    err = capsys.readouterr().err
    assert "WARNING: PARTIAL PRETRAINED LOAD" in err and "short.pth" in err and "layer3.1.bn2.running_var" in err

    # a stem asked for that the file does not have; a model already built with another stem
    cirkd = weight_file(tmp_path / "cirkd.pth", "cirkd_resnet18_v1s")
    with pytest.raises(PretrainedError, match=r"cirkd\.pth: the file has the 'v1s' ResNet stem but deeplabv3_resnet18 "
                                              r"is built with stem='v1c' \(which was asked for\)"):
        build_model("deeplabv3_resnet18", 19, pretrained=str(cirkd), stem="v1c")
    with pytest.raises(PretrainedError, match=r"cirkd\.pth: the file has the 'v1s' ResNet stem but the model was built "
                                              r"with stem='v1c'"):
        load_pretrained(build_model("deeplabv3_resnet18", 19), cirkd)

    with pytest.raises(FileNotFoundError, match="pretrained weights not found: .*nothing is downloaded"):
        build_model("deeplabv3_resnet18", 19, pretrained=str(tmp_path / "missing.pth"))
    torch.save({"a": torch.zeros(3)}, tmp_path / "foreign.pth")
    with pytest.raises(PretrainedError, match=r"foreign\.pth: no tensor fits"):
        build_model("deeplabv3_mobilenetv2", 19, pretrained=str(tmp_path / "foreign.pth"))


def test_the_file_never_picks_the_network(tmp_path):
    """Without stem= the name's default stem is built: a file made for another stem is an error naming the file,
    the stem it needs and how to ask for it, never a silently different network (CIRKD's file would give a
    13.6M-parameter network under the name that is 18.1M with any other file)."""
    default = sum(p.numel() for p in build_model("deeplabv3_resnet18", 19).parameters())
    for layout, need in (("cirkd_resnet18_v1s", "v1s"), ("torchvision_resnet18", "7x7")):
        path = weight_file(tmp_path / f"{layout}.pth", layout)
        with pytest.raises(PretrainedError) as e:
            build_model("deeplabv3_resnet18", 19, pretrained=str(path))
        msg = str(e.value)
        assert msg.startswith(f"{path}: the file has the '{need}' ResNet stem") and "(which is its default)" in msg
        assert f"stem='{need}' in code" in msg and f"model.kwargs.stem: {need} in a config" in msg
        model = build_model("deeplabv3_resnet18", 19, pretrained=str(path), stem=need)
        assert model.arch_kwargs == {"stem": need} and model.pretrained_report.complete
    mmseg = weight_file(tmp_path / "v1c.pth", "mmseg_resnet18_v1c", "state_dict")
    model = build_model("deeplabv3_resnet18", 19, pretrained=str(mmseg))  # the default stem's file: no stem= needed
    assert model.arch_kwargs == {} and sum(p.numel() for p in model.parameters()) == default == 18_102_726
    cirkd = build_model("deeplabv3_resnet18", 19, stem="v1s")
    assert sum(p.numel() for p in cirkd.parameters()) == 13_607_974


def test_old_deep_stem_false_checkpoints_still_rebuild():
    model = build_model("deeplabv3_resnet10_w16", 3, deep_stem=False)
    assert model.backbone.stem_type == "7x7" and model.backbone.conv1.kernel_size == (7, 7)


def test_config_pretrained_reaches_the_checkpoint_and_partial_files_stop_the_run(tmp_path):
    """model.pretrained in a config whose model.kwargs.stem names the file's stem: the run's model.pt records
    it (so export/evaluate rebuild CIRKD's student without the file); an incomplete file, or a file of another
    stem, is a one-line error before training starts."""
    from distill.config import load_config
    from distill.engine import train

    cirkd = weight_file(tmp_path / "resnet18-imagenet.pth", "cirkd_resnet18_v1s")
    over = [f"out_dir={tmp_path / 'run'}", f"data.root={tmp_path / 'data'}", "data.dataset=synthetic",
            "data.crop_size=[64,128]", "data.kwargs={num_images: 2, size: [64, 128], seed: 0}",
            "data.val_kwargs={num_images: 1, size: [64, 128], seed: 0}", "train.iters=1", "train.batch_size=2",
            "train.threads=1", "eval.input_size=[64,128]", "data.num_workers=0"]
    cfg = load_config(ROOT / "configs" / "cityscapes_plain.yaml", over + [f"model.pretrained={cirkd}"])
    assert cfg.model.arch == "deeplabv3_resnet18"
    train(cfg)
    model, meta = checkpoint.load(tmp_path / "run" / "model.pt")
    assert meta["arch_kwargs"] == {"stem": "v1s"} and model.backbone.layer1[0].downsample is not None

    short = weight_file(tmp_path / "short.pth", "cirkd_resnet18_v1s", drop={"bn3.weight"})
    v1c = weight_file(tmp_path / "resnet18_v1c.pth", "mmseg_resnet18_v1c", "state_dict")
    # both bad files at once, one process each (each is mostly its imports)
    procs = [subprocess.Popen([sys.executable, "-m", "distill.run", "--cfg", "cityscapes_plain.yaml", "--set", *over,
                               f"out_dir={tmp_path / run}", f"model.pretrained={file}"],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for run, file in (("run2", short), ("run3", v1c))]
    short_err, v1c_err = (p.communicate(timeout=120)[1] for p in procs)
    short_rc, v1c_rc = (p.returncode for p in procs)
    assert short_rc == 2, short_err[-2000:]
    assert short_err.startswith("error: ") and "short.pth" in short_err and "stem.7.weight" in short_err
    assert "Traceback" not in short_err and not (tmp_path / "run2" / "last.pt").exists()
    assert v1c_rc == 2 and len(v1c_err.strip().splitlines()) == 1, v1c_err[-2000:]
    assert "resnet18_v1c.pth: the file has the 'v1c' ResNet stem" in v1c_err and "model.kwargs.stem" in v1c_err
