"""`--cfg NAME.yaml` finds the configs shipped inside the package, from any folder and from a built wheel;
an existing path always wins."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from distill.config import ConfigError, load_config
from distill.configs import SHIPPED, names

ROOT = Path(__file__).parent.parent


def test_shipped_configs_are_the_repository_configs():
    # configs/ at the repository root is the package folder itself (a link), not a second copy
    assert (ROOT / "configs").resolve() == SHIPPED
    assert {"cityscapes.yaml", "cityscapes_teacher.yaml", "voc.yaml", "ade20k.yaml", "cocostuff10k.yaml",
            "synthetic.yaml"} <= set(names())


def test_bare_names_resolve_from_any_folder_and_an_existing_path_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("cityscapes.yaml", "cityscapes", "configs/cityscapes.yaml"):
        cfg = load_config(name)
        assert cfg.name == "cityscapes" and cfg.model.arch == "deeplabv3_resnet18" and cfg.teacher.ckpt

    (tmp_path / "cityscapes.yaml").write_text("model: {arch: deeplabv3_mobilenetv2}\n")
    assert load_config("cityscapes.yaml").model.arch == "deeplabv3_mobilenetv2"   # the user's own file
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "voc.yaml").write_text("data: {dataset: voc}\ntrain: {iters: 7}\n")
    assert load_config("configs/voc.yaml").train.iters == 7

    # a missing path in some other folder is not silently replaced by a shipped config
    with pytest.raises(ConfigError, match=r"mine/cityscapes\.yaml: no such config file.*cityscapes_teacher\.yaml"):
        load_config("mine/cityscapes.yaml")
    with pytest.raises(ConfigError, match="nope.yaml: no such config file"):
        load_config("nope.yaml")


def _env_with(path):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(path)
    return env


def test_cli_trains_a_shipped_config_by_name_outside_the_repository(tmp_path):
    over = [f"out_dir={tmp_path / 'run'}", f"data.root={tmp_path / 'data'}", "data.crop_size=[32,64]",
            "data.kwargs={num_images: 2, size: [32, 64], seed: 0}",
            "data.val_kwargs={num_images: 1, size: [32, 64], seed: 0}", "train.iters=1", "train.batch_size=2",
            "train.threads=1", "eval.input_size=[32,64]"]
    done = subprocess.run([sys.executable, "-m", "distill.run", "--cfg", "synthetic_plain.yaml", "--set", *over],
                          cwd=tmp_path, env=_env_with(ROOT), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "run" / "model.pt").is_file()

    helped = subprocess.run([sys.executable, "-m", "distill.run", "--help"], cwd=tmp_path, env=_env_with(ROOT),
                            capture_output=True, text=True, timeout=60)
    assert "shipped" in helped.stdout and "cityscapes.yaml" in helped.stdout and "--rdzv-endpoint" in helped.stdout


def test_built_wheel_carries_the_configs(tmp_path):
    """What `pip install brd-edge` gets: the wheel holds the YAML files, and load_config finds them there."""
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "dist"), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("brd_edge-*.whl")
    with zipfile.ZipFile(wheel) as z:
        inside = {n for n in z.namelist() if n.startswith("distill/configs/")}
        assert {f"distill/configs/{n}" for n in names()} <= inside
        z.extractall(tmp_path / "site")           # a pure-Python wheel installs by unpacking
    work = tmp_path / "elsewhere"
    work.mkdir()
    probe = ("import distill, distill.config as c; cfg = c.load_config('cityscapes_teacher.yaml'); "
             "print(distill.__file__); print(cfg.model.arch)")
    done = subprocess.run([sys.executable, "-c", probe], cwd=work, env=_env_with(tmp_path / "site"),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    where, arch = done.stdout.split()
    assert where.startswith(str(tmp_path / "site")) and arch == "deeplabv3_resnet101"
