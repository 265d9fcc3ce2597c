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
    assert kd["distill"]["kd"] == {"weight": 1.0, "temperature": 1.0} and kd["teacher"]["ckpt"] == "runs/camvid_teacher/model.pt"
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


# ------------------------------------------------------------------ issue 29: bases, binary files, 1e-3, duplicates
def test_a_user_config_named_like_a_shipped_one_extends_it(tmp_path, monkeypatch):
    """`base: camvid_kd.yaml` inside the user's own camvid_kd.yaml is the shipped camvid_kd.yaml (not a cycle),
    whose own bases are found next to it, among the shipped configs, whatever the user's folder holds."""
    mine = tmp_path / "mine"
    mine.mkdir()
    _write(mine, "base: camvid_kd.yaml\ntrain: {iters: 7}\n", "camvid_kd.yaml")
    _write(mine, "train: {iters: 99, lr: 9.0}\n", "camvid_plain.yaml")  # not the shipped kd's base
    monkeypatch.chdir(tmp_path)
    cfg = load_config(mine / "camvid_kd.yaml")
    shipped = load_config("camvid_kd.yaml")
    assert cfg.train.iters == 7 and cfg.train.lr == shipped.train.lr and cfg.distill.kd == shipped.distill.kd
    assert cfg.teacher.ckpt == "runs/camvid_teacher/model.pt" and cfg.name == "camvid_kd"
    _write(mine, "base: mine.yaml\n", "mine.yaml")  # a name no shipped config has: its own name is an error
    with pytest.raises(ConfigError, match=r"base 'mine\.yaml' not found \(it is this file's own name"):
        load_config(mine / "mine.yaml")


def test_a_base_is_next_to_the_file_that_names_it_then_shipped_never_in_the_current_folder(tmp_path, monkeypatch):
    """The documented rule (distill/config_bases.py): a base is a path relative to the including file first,
    then a shipped config; a file in the folder a command runs from stands in for nothing."""
    here, mine = tmp_path / "here", tmp_path / "mine"
    here.mkdir(), mine.mkdir()
    _write(here, "train: {iters: 123}\n", "camvid_plain.yaml")  # in the current folder only
    _write(mine, "base: camvid_plain.yaml\n", "run.yaml")
    monkeypatch.chdir(here)
    assert load_config(mine / "run.yaml").train.iters == load_config(Path(__file__).parent.parent / "configs" /
                                                                      "camvid_plain.yaml").train.iters != 123
    _write(mine, "train: {iters: 5}\n", "camvid_plain.yaml")  # next to run.yaml: the folder's own file comes first
    assert load_config(mine / "run.yaml").train.iters == 5


def test_a_binary_config_file_is_one_error_naming_it(tmp_path):
    p = tmp_path / "model.yaml"
    p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
    with pytest.raises(ConfigError, match=rf"{p}: not a YAML text file \(byte 0 is not UTF-8"):
        load_config(p)
    _write(tmp_path, f"base: {p.name}\n", "child.yaml")
    with pytest.raises(ConfigError, match=rf"{p}: not a YAML text file .*chain: child\.yaml -> model\.yaml"):
        load_config(tmp_path / "child.yaml")


def test_a_float_field_takes_the_numbers_yaml_1_1_reads_as_text(tmp_path):
    p = _write(tmp_path, "train: {lr: 5e-3, weight_decay: 1E-4}\ndistill: {kd: {temperature: 2}}\n"
                         "teacher: {ckpt: t.pt}\n")
    cfg = load_config(p)
    assert (cfg.train.lr, cfg.train.weight_decay) == (0.005, 0.0001)
    cfg = load_config(p, ["train.lr=1e-3", "distill.kd.weight=+2E0"])
    assert (cfg.train.lr, cfg.distill.kd.weight) == (0.001, 2.0)
    with pytest.raises(ConfigError, match=r"command line: train.lr: expected a number, got str '1e-3x'"):
        load_config(p, ["train.lr=1e-3x"])
    with pytest.raises(ConfigError, match="train.iters: expected an integer"):
        load_config(p, ["train.iters=1e3"])  # an integer field still takes integers only


def test_a_key_given_twice_is_an_error_naming_the_file_and_the_key(tmp_path):
    p = _write(tmp_path, "train:\n  lr: 0.1\n  iters: 5\n  lr: 0.2\n")
    with pytest.raises(ConfigError, match=rf"^{p}: duplicate key 'train.lr' \(on lines 2 and 4\)"):
        load_config(p)
    base = _write(tmp_path, "data: {dataset: synthetic, dataset: camvid}\n", "base.yaml")
    _write(tmp_path, "base: base.yaml\n", "child.yaml")
    with pytest.raises(ConfigError, match=rf"^{base}: duplicate key 'data.dataset' \(twice on line 1\)"):
        load_config(tmp_path / "child.yaml")
    ok = _write(tmp_path, "defaults: &d {lr: 0.1}\ntrain:\n  <<: *d\n  lr: 0.2\n", "merge.yaml")  # YAML merge keys
    with pytest.raises(ConfigError, match="unknown key 'defaults'"):  # read past the merge key: no duplicate
        load_config(ok)


def test_the_config_cases_through_the_command_line(tmp_path):
    """As a user meets them: one `error:` line naming the file (and key), exit 2, no traceback; 1e-3 accepted."""
    from .cli_driver import run_in_one_process

    binary = tmp_path / "binary.yaml"
    binary.write_bytes(bytes(range(256)))
    twice = _write(tmp_path, "base: synthetic.yaml\ntrain: {iters: 3, iters: 4}\n", "twice.yaml")
    bad, dup, lr = run_in_one_process([
        ("distill.run", ["--cfg", binary]), ("distill.run", ["--cfg", twice]),
        ("distill.run", ["--cfg", "synthetic.yaml", "--set", "train.lr=1e-3", "--print-config"])],
        env=dict(__import__("os").environ, OMP_NUM_THREADS="1"))
    for r, phrase in ((bad, f"{binary}: not a YAML text file"), (dup, f"{twice}: duplicate key 'train.iters'")):
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.strip().splitlines() == [r.stderr.strip()] and r.stderr.startswith(f"error: {phrase}")
    assert lr.returncode == 0, lr.stderr
    assert yaml.safe_load(lr.stdout)["train"]["lr"] == 0.001
