"""Write the key layouts (key -> shape) of the ImageNet weight files users have, from the real model code.

Not run by the tests (they read the JSON files it wrote); rerun it when a source changes:

    pip download --no-deps torchvision -d /tmp/tv
    python tests/layouts/make_layouts.py /tmp/tv/torchvision-*.whl /path/to/CIRKD/models/base_models/resnetv1b.py \
        [/path/to/CIRKD]

- torchvision: `torchvision/models/resnet.py`, `mobilenetv2.py` and `mobilenetv3.py` (+ `ops/misc.py`) are executed from the
  wheel as they are (only their package-relative imports are replaced: torchvision's compiled ops need a
  torch build of the same version, which a model's key layout does not depend on).
- CIRKD (winycg/CIRKD `models/base_models/resnetv1b.py`): `resnet18_v1s` / `resnet101_v1s`, the deep-stem
  backbones of its `deeplabv3` student and teacher, executed from that file.
- CIRKD's whole DeepLabV3 networks (`cirkd_deeplabv3_resnet18/101.json`, with a CIRKD checkout at commit
  7e0d21f, the code of its published Cityscapes results): `models/deeplabv3.py` `get_deeplabv3` with
  `segbase.py` and `base_models/resnetv1b.py`, imported as they are from `models/` (an empty
  `models/__init__.py` stands in for CIRKD's, which imports every model). Besides the keys: the parameter
  count, every conv's kernel/stride/padding/dilation, and the eval-mode outputs (logits, aux logits, the
  per-channel mean of `x_feat_after_aspp`) for the weights `seeded_state` gives and a fixed input, so a test can check that our
  network computes what CIRKD's does.
- mmseg (open-mmlab/mmsegmentation `mmseg/models/backbones/resnet.py`, `mobilenet_v2.py`): needs mmcv, so
  its layouts are written from that code: ResNetV1c's `stem` is conv(3, 32, s2), BN, ReLU, conv(32, 32),
  BN, ReLU, conv(32, 64), BN, ReLU (`stem_channels // 2` then `stem_channels`), its blocks name their
  layers conv1/bn1/conv2/bn2[/conv3/bn3]/downsample.0|1 like torchvision's; MobileNetV2 is
  `conv1.conv|bn` then `layerK.J.conv.I.conv|bn` (ConvModule) for arch_settings
  [[1,16,1],[6,24,2],[6,32,3],[6,64,4],[6,96,3],[6,160,3],[6,320,1]], and mmcls's ImageNet file adds
  `conv2` (320 -> 1280) and `head.fc`.
"""
from __future__ import annotations

import importlib
import json
import re
import sys
import zipfile
import zlib
from pathlib import Path

import torch
import torch.nn as nn

HERE = Path(__file__).parent


def _exec(source: str, namespace: dict, cut: str | None = None) -> dict:
    source = re.sub(r"^from \.\.?[\w.]* import .*$", "", source, flags=re.M)
    if cut:
        source = source[:source.index(cut)]
    exec(compile(source, "<layout source>", "exec"), namespace)
    return namespace


def _layout(module: nn.Module, source: str) -> dict:
    return {"source": source, "keys": {k: list(v.shape) for k, v in module.state_dict().items()}}


def torchvision_layouts(wheel: Path) -> dict:
    with zipfile.ZipFile(wheel) as z:
        read = lambda name: z.read(f"torchvision/{name}").decode()  # noqa: E731
        resnet_src, mbv2_src, misc_src = read("models/resnet.py"), read("models/mobilenetv2.py"), read("ops/misc.py")
        mbv3_src = read("models/mobilenetv3.py")
    stub = {"_log_api_usage_once": lambda *a, **k: None}
    misc = _exec(misc_src, {**stub, "__name__": "tv_misc"}, cut="class MLP")
    res = _exec(resnet_src, {**stub, "__name__": "tv_resnet"}, cut="_COMMON_META")
    mb = _exec(mbv2_src, {**stub, "__name__": "tv_mbv2", "Conv2dNormActivation": misc["Conv2dNormActivation"],
                          "_make_divisible": _make_divisible}, cut="_COMMON_META")
    mb3 = _exec(mbv3_src, {**stub, "__name__": "tv_mbv3", "Conv2dNormActivation": misc["Conv2dNormActivation"],
                           "SElayer": misc["SqueezeExcitation"], "_make_divisible": _make_divisible}, cut="_COMMON_META")
    setting, last_channel = mb3["_mobilenet_v3_conf"]("mobilenet_v3_large")
    tag = f"torchvision {wheel.name}"
    return {
        "torchvision_resnet18": _layout(res["ResNet"](res["BasicBlock"], [2, 2, 2, 2]), f"{tag} models/resnet.py resnet18"),
        "torchvision_resnet101": _layout(res["ResNet"](res["Bottleneck"], [3, 4, 23, 3]), f"{tag} models/resnet.py resnet101"),
        "torchvision_mobilenet_v2": _layout(mb["MobileNetV2"](), f"{tag} models/mobilenetv2.py mobilenet_v2"),
        "torchvision_mobilenet_v3_large": _layout(mb3["MobileNetV3"](setting, last_channel),
                                                  f"{tag} models/mobilenetv3.py mobilenet_v3_large"),
    }


def _make_divisible(v, divisor, min_value=None):  # torchvision/models/_utils.py
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def cirkd_layouts(resnetv1b: Path) -> dict:
    ns = _exec(resnetv1b.read_text(), {"__name__": "cirkd_resnetv1b"})
    out = {}
    for depth in (18, 101):
        # the file's builders also load weights; build the network class itself, as resnet*_v1s do
        block, layers = (ns["BasicBlockV1b"], [2, 2, 2, 2]) if depth == 18 else (ns["BottleneckV1b"], [3, 4, 23, 3])
        net = ns["ResNetV1b"](block, layers, deep_stem=True)
        lay = _layout(net, f"winycg/CIRKD models/base_models/resnetv1b.py resnet{depth}_v1s")
        # the published ImageNet files (resnet18-imagenet.pth, resnet101-imagenet.pth) keep the classifier
        width = 512 * (1 if depth == 18 else 4)
        lay["keys"].update({"fc.weight": [1000, width], "fc.bias": [1000]})
        out[f"cirkd_resnet{depth}_v1s"] = lay
    return out


CIRKD_INPUT = (1, 3, 64, 96)     # the fingerprint input: 8x12 logits at output stride 8


def seeded_state(shapes: dict) -> dict:
    """Weights from each key's name alone (order-free, so two networks that name a tensor differently but map
    the names get the same values): He-scaled convs, BN with non-trivial statistics."""
    sd = {}
    for key, shape in shapes.items():
        g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
        if key.endswith("num_batches_tracked"):
            sd[key] = torch.tensor(0)
        elif key.endswith("running_var"):
            sd[key] = torch.rand(shape, generator=g) + 0.5
        elif len(shape) == 4:
            sd[key] = torch.randn(shape, generator=g) * (2.0 / (shape[1] * shape[2] * shape[3])) ** 0.5
        else:
            sd[key] = torch.randn(shape, generator=g) * 0.1 + (1.0 if key.endswith(".weight") else 0.0)
    return sd


def fingerprint_input() -> torch.Tensor:
    return torch.randn(CIRKD_INPUT, generator=torch.Generator().manual_seed(0))


def cirkd_deeplabv3_layouts(cirkd: Path) -> dict:
    sys.path.insert(0, str(cirkd))
    deeplabv3 = importlib.import_module("models.deeplabv3")
    out = {}
    for backbone in ("resnet18", "resnet101"):
        # CIRKD's training scripts build both networks with aux=True (train_cirkd.py), 19 Cityscapes classes
        net = deeplabv3.get_deeplabv3(backbone=backbone, pretrained="None", pretrained_base="None", num_class=19,
                                      aux=True, norm_layer=nn.BatchNorm2d)
        shapes = {k: list(v.shape) for k, v in net.state_dict().items()}
        net.load_state_dict(seeded_state(shapes))
        with torch.no_grad():
            logits, aux, feat = net.eval()(fingerprint_input())
        out[f"cirkd_deeplabv3_{backbone}"] = {
            "source": f"winycg/CIRKD@7e0d21f models/deeplabv3.py get_deeplabv3(backbone='{backbone}', num_class=19, "
                      "aux=True) with models/segbase.py, models/base_models/resnetv1b.py",
            "keys": shapes,
            "params": sum(p.numel() for p in net.parameters()),
            "convs": {n: [*m.kernel_size, *m.stride, *m.padding, *m.dilation] for n, m in net.named_modules()
                      if isinstance(m, nn.Conv2d)},
            # the head feature (up to 24k numbers) as its per-channel means, to keep the file small
            "outputs": {name: {"shape": list(t.shape), "values": [round(v, 7) for v in t.flatten().tolist()]}
                        for name, t in (("logits", logits), ("aux", aux), ("feat_channel_mean", feat.mean((0, 2, 3))))},
        }
    return out


def _bn(prefix: str, c: int) -> dict:
    return {f"{prefix}.weight": [c], f"{prefix}.bias": [c], f"{prefix}.running_mean": [c],
            f"{prefix}.running_var": [c], f"{prefix}.num_batches_tracked": []}


def mmseg_resnet_v1c(tv: dict, depth: int) -> dict:
    keys = {k: v for k, v in tv["keys"].items() if not k.startswith(("conv1.", "bn1.", "fc."))}
    stem = {"stem.0.weight": [32, 3, 3, 3], **_bn("stem.1", 32), "stem.3.weight": [32, 32, 3, 3],
            **_bn("stem.4", 32), "stem.6.weight": [64, 32, 3, 3], **_bn("stem.7", 64)}
    fc = {"fc.weight": [1000, 512 * (1 if depth == 18 else 4)], "fc.bias": [1000]}
    return {"source": f"open-mmlab/mmsegmentation mmseg/models/backbones/resnet.py ResNetV1c depth {depth} "
                      "(mmcls ImageNet file: + fc)", "keys": {**stem, **keys, **fc}}


def mmseg_mobilenet_v2() -> dict:
    keys = {"conv1.conv.weight": [32, 3, 3, 3], **_bn("conv1.bn", 32)}
    cin = 32
    for li, (t, c, n) in enumerate([[1, 16, 1], [6, 24, 2], [6, 32, 3], [6, 64, 4], [6, 96, 3], [6, 160, 3], [6, 320, 1]]):
        for j in range(n):
            hidden, units = cin * t, []
            if t != 1:
                units.append(([hidden, cin, 1, 1], hidden))
            units += [([hidden, 1, 3, 3], hidden), ([c, hidden, 1, 1], c)]
            for i, (shape, ch) in enumerate(units):
                p = f"layer{li + 1}.{j}.conv.{i}"
                keys.update({f"{p}.conv.weight": shape, **_bn(f"{p}.bn", ch)})
            cin = c
    keys.update({"conv2.conv.weight": [1280, 320, 1, 1], **_bn("conv2.bn", 1280),
                 "head.fc.weight": [1000, 1280], "head.fc.bias": [1000]})
    return {"source": "open-mmlab/mmsegmentation mmseg/models/backbones/mobilenet_v2.py (mmcls ImageNet file: "
                      "+ conv2, head.fc)", "keys": keys}


def main(wheel: str, cirkd: str, cirkd_repo: str | None = None) -> None:
    layouts = torchvision_layouts(Path(wheel))
    layouts.update(cirkd_layouts(Path(cirkd)))
    if cirkd_repo:
        layouts.update(cirkd_deeplabv3_layouts(Path(cirkd_repo)))
    layouts["mmseg_resnet18_v1c"] = mmseg_resnet_v1c(layouts["torchvision_resnet18"], 18)
    layouts["mmseg_resnet101_v1c"] = mmseg_resnet_v1c(layouts["torchvision_resnet101"], 101)
    layouts["mmseg_mobilenet_v2"] = mmseg_mobilenet_v2()
    for name, lay in layouts.items():
        (HERE / f"{name}.json").write_text(json.dumps(lay, separators=(",", ":")) + "\n")
        print(f"{name}: {len(lay['keys'])} keys")


if __name__ == "__main__":
    main(*sys.argv[1:4])
