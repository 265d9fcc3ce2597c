"""Config files map one-to-one onto dataclasses: unknown keys and wrong types name the key and the file."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from distill.config import ConfigError, load_config

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))
# every family but CamVid as it was before its configs named bases: each file's mapping, frozen from git
FLAT = yaml.safe_load((Path(__file__).parent / "flat_configs.yaml").read_text())


def _write(tmp_path, text, name="run.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_defaults_are_the_field_recipe_and_name_comes_from_the_file(tmp_path):
    cfg = load_config(_write(tmp_path, "model: {arch: deeplabv3_resnet18}\n", "cityscapes_plain.yaml"))
    t = cfg.train
    assert (t.lr, t.momentum, t.weight_decay, t.poly_power, t.iters, t.batch_size, t.aux_weight) == \
        (0.02, 0.9, 1e-4, 0.9, 40000, 16, 0.4)
    assert cfg.data.crop_size == [512, 1024]
    assert cfg.name == "cityscapes_plain" and cfg.out_dir == str(Path("runs/cityscapes_plain"))
    assert cfg.distill.active() == []


def test_unknown_key_is_an_error_naming_key_and_file(tmp_path):
    p = _write(tmp_path, "train:\n  lr: 0.01\n  lr_sheduler: poly\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert str(p) in str(e.value) and "train.lr_sheduler" in str(e.value)
    with pytest.raises(ConfigError, match="unknown key 'distil'"):
        load_config(_write(tmp_path, "distil: {kd: {weight: 1}}\n"))


@pytest.mark.parametrize("text, key", [
    ("train: {lr: fast}\n", "train.lr"),
    ("train: {iters: 10.5}\n", "train.iters"),
    ("train: {amp: 1}\n", "train.amp"),
    ("data: {crop_size: 512}\n", "data.crop_size"),
    ("data: {crop_size: [512, big]}\n", "data.crop_size[1]"),
    ("distill: {relation: 3}\n", "distill.relation"),
    ("model: {kwargs: [1]}\n", "model.kwargs"),
])
def test_wrong_type_is_an_error_naming_key_and_file(tmp_path, text, key):
    p = _write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert str(p) in str(e.value) and f"{key}:" in str(e.value) and "expected" in str(e.value)


def test_ints_widen_to_floats_and_optional_accepts_null(tmp_path):
    cfg = load_config(_write(tmp_path, "train: {lr: 1}\neval: {max_images: null}\n"))
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float) and cfg.eval.max_images is None


def test_cli_overrides_with_dotted_keys(tmp_path):
    p = _write(tmp_path, "train: {lr: 0.02}\nteacher: {ckpt: t.pt}\n")
    cfg = load_config(p, ["train.lr=0.01", "data.crop_size=[128,256]", "distill.kd.weight=1",
                          "data.kwargs.num_images=8", "out_dir=elsewhere"])
    assert cfg.train.lr == 0.01 and cfg.data.crop_size == [128, 256] and cfg.distill.kd.weight == 1.0
    assert cfg.data.kwargs == {"num_images": 8} and cfg.out_dir == "elsewhere"
    assert cfg.distill.active() == ["kd"]
    with pytest.raises(ConfigError, match="command line: unknown key 'train.lrr'"):
        load_config(p, ["train.lrr=1"])
    with pytest.raises(ConfigError, match="command line: train.iters: expected an integer"):
        load_config(p, ["train.iters=many"])
    with pytest.raises(ConfigError, match="not key=value"):
        load_config(p, ["train.lr"])


def test_distillation_without_a_teacher_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="teacher.ckpt"):
        load_config(_write(tmp_path, "distill: {boundary: {weight: 1}}\n"))


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path, "train: {lr: [\n"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_loads(path):
    cfg = load_config(path)
    assert cfg.name == path.stem
    if path.stem.endswith(("_teacher", "_plain")):
        assert cfg.distill.active() == []
    else:
        assert cfg.distill.active() and cfg.teacher.config and Path(cfg.teacher.config).name.endswith("_teacher.yaml")


def test_shipped_config_set_is_complete():
    names = {p.stem for p in CONFIGS}
    for ds in ("cityscapes", "voc", "ade20k", "cocostuff10k"):
        assert {ds, f"{ds}_teacher", f"{ds}_plain"} <= names
    assert {f"synthetic{s}" for s in ("", "_teacher", "_plain", "_kd", "_cwd", "_skd", "_boundary", "_relation")} <= names
    brd = load_config(Path(__file__).parent.parent / "configs" / "cityscapes.yaml")
    assert brd.model.arch == "deeplabv3_resnet18" and set(brd.distill.active()) == {"kd", "boundary", "relation"}
    teacher = load_config(Path(__file__).parent.parent / "configs" / "cityscapes_teacher.yaml")
    assert teacher.model.arch == "deeplabv3_resnet101" and brd.teacher.ckpt == str(Path(teacher.out_dir) / "model.pt")


def test_bases_merge_deeply_child_wins_lists_replaced(tmp_path):
    from distill.config import load_config
    from distill.config_bases import merge

    assert merge({"a": {"x": 1, "y": [1, 2]}, "b": 1}, {"a": {"y": [3]}, "c": 2}) == {"a": {"x": 1, "y": [3]}, "b": 1, "c": 2}
    # `_replace_: true` takes the child's mapping whole (a new network drops the base's arch arguments)
    assert merge({"m": {"arch": "r18", "kwargs": {"stem": "v1s"}}, "d": 1},
                 {"m": {"_replace_": True, "arch": "mnv3", "x": {"_replace_": True, "k": 1}}}) == \
        {"m": {"arch": "mnv3", "x": {"k": 1}}, "d": 1}
    (tmp_path / "base.yaml").write_text("data: {dataset: synthetic, root: d, crop_size: [64, 128]}\n"
                                        "train: {iters: 50, lr: 0.05}\n"
                                        "distill: {boundary: {stages: [1, 2, 3, 4]}}\n")
    (tmp_path / "mid.yaml").write_text("base: base.yaml\ntrain: {iters: 70}\n")
    (tmp_path / "child.yaml").write_text("base: mid.yaml\ndistill: {boundary: {stages: [2, 3, 4]}}\n")
    cfg = load_config(tmp_path / "child.yaml", ["train.seed=3"])
    assert (cfg.train.iters, cfg.train.lr, cfg.train.seed) == (70, 0.05, 3)
    assert cfg.data.crop_size == [64, 128] and cfg.distill.boundary.stages == [2, 3, 4]
    assert cfg.name == "child"                                   # the file asked for names the run


def test_base_cycles_and_missing_bases_are_one_line_naming_the_chain(tmp_path):
    from distill.config import ConfigError, load_config

    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: [c.yaml]\n")
    (tmp_path / "c.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match=r"base cycle: a\.yaml -> b\.yaml -> c\.yaml -> a\.yaml"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("base: nowhere.yaml\n")
    with pytest.raises(ConfigError, match=r"base 'nowhere\.yaml' not found.*a\.yaml -> b\.yaml -> c\.yaml -> nowhere\.yaml"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("base: {x: 1}\n")
    with pytest.raises(ConfigError, match="base: expected a config name or a list"):
        load_config(tmp_path / "a.yaml")


def test_a_shipped_method_config_is_its_base_plus_its_terms():
    """camvid.yaml (BRD) = camvid_kd.yaml + boundary + relation; camvid_kd.yaml = camvid_plain.yaml + teacher + KD:
    everything else, the data recipe and the schedule, is the plain config's."""
    from distill.config import load_config

    plain, kd, brd = (load_config(n).to_dict() for n in ("camvid_plain.yaml", "camvid_kd.yaml", "camvid.yaml"))
    for d in (plain, kd, brd):
        d.pop("name"), d.pop("out_dir")
    assert {k: v for k, v in kd.items() if k not in ("teacher", "distill")} == \
        {k: v for k, v in plain.items() if k not in ("teacher", "distill")}
    assert kd["distill"]["kd"] == {"weight": 1.0, "temperature": 1.0} and kd["teacher"]["ckpt"] == "models/camvid/teacher.pt"
    assert brd["distill"]["kd"] == kd["distill"]["kd"] and brd["distill"]["boundary"]["weight"] == 10.0
    assert brd["distill"]["relation"]["weight"] == 1.0 and brd["data"] == plain["data"] and brd["train"] == plain["train"]


@pytest.mark.parametrize("name", sorted(FLAT))
def test_a_config_with_bases_is_exactly_its_old_flat_form(name):
    """Each family's configs now name a base and keep only the keys that make them that method or model; read
    with their bases they must be, key for key and value for value, the flat files they replaced: a value that
    moved would change what a run learns (and its benchmark ledger fingerprint)."""
    from distill.config_bases import read_with_bases
    from distill.configs import SHIPPED

    path = SHIPPED / f"{name}.yaml"
    assert name.endswith("_plain") or "base" in yaml.safe_load(path.read_text())   # converted: it names a base
    assert read_with_bases(path) == FLAT[name]


def test_print_config_prints_the_resolved_config(capsys):
    import yaml

    from distill.run import main

    assert main(["--cfg", "camvid.yaml", "--print-config", "--set", "train.iters=7"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["train"]["iters"] == 7 and printed["model"]["arch"] == "lraspp_mobilenetv3_large"
    assert printed["distill"]["boundary"]["weight"] == 10.0 and "base" not in printed
