"""Run configuration: typed dataclasses that YAML files map onto one-to-one.

A file may name bases (`base: camvid.yaml`, or a list): they are read first and the file's own keys
merged over them deeply; lists are replaced, not merged, and so is a mapping that says
`_replace_: true` (distill/config_bases.py).

`load_config(path, overrides)` reads a YAML file, rejects unknown keys, keys given twice and wrong types
with an error naming the key and the file, then applies `key=value` command-line overrides (dotted keys,
values parsed as YAML: `train.lr=0.01`, `data.crop_size=[256,512]`, `teacher.ckpt=null`). A number field
takes what looks like a number even where YAML 1.1 reads text: `1e-3` (no dot) is 0.001.
Every field has the field's recipe as default, so a file only says what differs.
"""
from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from .config_bases import ConfigError, load_yaml, read_with_bases  # noqa: F401  (ConfigError: defined there)
from .config_checks import check


@dataclass
class ModelCfg:
    arch: str = "deeplabv3_resnet18"
    kwargs: dict = field(default_factory=dict)      # architecture keyword arguments (stored as arch_kwargs)
    pretrained: Optional[str] = None                # ImageNet backbone file, or "imagenet": the installed package's
    pretrained_strict: bool = True                  # false: allow a file that fills the backbone only partly
    init_from: Optional[str] = None                 # a trained model file (model.pt, best.pt) whose every weight
                                                    # starts the run (fine-tuning; mmseg's load_from)


@dataclass
class TeacherCfg:
    ckpt: Optional[str] = None                      # student-format checkpoint of the trained teacher
    config: Optional[str] = None                    # the config that trains it (named in the missing-file error)
    input_scale: float = 1.0                        # the teacher sees the batch resized by this, its maps resized back


@dataclass
class DataCfg:
    dataset: str = "cityscapes"
    root: str = "data/cityscapes"
    train_split: str = "train"
    val_split: str = "val"
    crop_size: list[int] = field(default_factory=lambda: [512, 1024])
    scale_range: list[float] = field(default_factory=lambda: [0.5, 2.0])
    flip: bool = True
    jitter: bool = True
    exposure: Optional[list[float]] = None          # [low, high]: scale images by a log-uniform factor (dusk, night)
    num_workers: int = 4
    min_size: list[int] = field(default_factory=lambda: [16, 16])  # smaller images are skipped and counted
    kwargs: dict = field(default_factory=dict)      # extra build_dataset arguments for the train split
    val_kwargs: dict = field(default_factory=dict)  # ... and for the val split


@dataclass
class TrainCfg:
    iters: int = 40000
    batch_size: int = 16                            # global batch (split over torchrun processes)
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 1e-4
    poly_power: float = 0.9
    aux_weight: float = 0.4                         # auxiliary CE, where the model has an aux head
    class_weights: str = "none"                     # CE class weights: none | median_freq | sqrt_median_freq
    amp: bool = True                                # mixed precision: fp16 autocast + GradScaler on CUDA
    amp_cpu: bool = False                           # with amp: bf16 autocast on CPU too (off: CPU runs float32)
    sync_bn: bool = True                            # SyncBatchNorm under torchrun on CUDA (torch has none for CPU)
    device: str = "auto"                            # auto | cpu | cuda | cuda:N
    seed: int = 0
    threads: int = 0                                # torch CPU threads (0: torch's default)
    log_every: int = 50
    ckpt_every: int = 1000                          # last.pt (resume point)
    val_every: int = 4000                           # validation, best.pt


@dataclass
class EvalCfg:
    mode: str = "whole"                             # whole | slide
    crop_size: Optional[list[int]] = None           # slide window
    stride: Optional[list[int]] = None
    flip: bool = False
    max_images: Optional[int] = None
    size: Optional[list[int]] = None                # resize val images to this (H, W) (EvalTransform size)
    input_size: Optional[list[int]] = None          # meta input_size for export; default data.crop_size


@dataclass
class KDCfg:
    weight: float = 0.0
    temperature: float = 1.0


@dataclass
class CWDCfg:
    weight: float = 0.0
    temperature: float = 4.0
    tap: str = "logits"


@dataclass
class SKDCfg:
    weight: float = 0.0
    max_tokens: int = 512
    tap: str = "feat"
    connector: bool = False


@dataclass
class BoundaryCfg:
    weight: float = 0.0
    stages: list[int] = field(default_factory=lambda: [1, 2, 3, 4])
    kernel: int = 3
    edge_weight: float = 4.0
    fuse: bool = False                              # one map: stage maps averaged at stage 1's stride


@dataclass
class RelationCfg:
    weight: float = 0.0
    temperature: float = 0.1
    max_tokens: int = 2048
    tap: str = "feat"
    connector: bool = False


@dataclass
class DistillCfg:
    kd: KDCfg = field(default_factory=KDCfg)
    cwd: CWDCfg = field(default_factory=CWDCfg)
    skd: SKDCfg = field(default_factory=SKDCfg)
    boundary: BoundaryCfg = field(default_factory=BoundaryCfg)
    relation: RelationCfg = field(default_factory=RelationCfg)

    def active(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self) if getattr(self, f.name).weight]


@dataclass
class Config:
    name: str = ""                                  # default: the config file's stem
    out_dir: str = ""                               # default: runs/<name>
    model: ModelCfg = field(default_factory=ModelCfg)
    teacher: TeacherCfg = field(default_factory=TeacherCfg)
    data: DataCfg = field(default_factory=DataCfg)
    train: TrainCfg = field(default_factory=TrainCfg)
    eval: EvalCfg = field(default_factory=EvalCfg)
    distill: DistillCfg = field(default_factory=DistillCfg)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# what a float looks like in YAML 1.2 and Python; YAML 1.1 (PyYAML) reads `1e-3` and `5E2` as text
FLOAT_TEXT = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?")


def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(tp, value: Any, key: str, source: str):
    """Check `value` against the annotation `tp`; return it (ints widen to floats). Raise ConfigError."""
    def bad(expected=None):
        return ConfigError(f"{source}: {key}: expected {expected or _type_name(tp)}, got "
                           f"{type(value).__name__} {value!r}")

    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, key, source)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise bad(f"a mapping of {', '.join(f.name for f in dataclasses.fields(tp))}")
        return _build(tp, value, key, source)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise bad(f"a list ({_type_name(tp)})")
        (item,) = typing.get_args(tp)
        return [_convert(item, v, f"{key}[{i}]", source) for i, v in enumerate(value)]
    if tp is dict:
        if not isinstance(value, dict):
            raise bad("a mapping")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        return value
    if tp is float:
        if isinstance(value, str) and FLOAT_TEXT.fullmatch(value.strip()):
            return float(value)  # `lr: 1e-3`, `--set train.lr=1e-3`: the number it is
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad("a string")
        return value
    raise TypeError(f"config field {key}: unsupported annotation {tp}")


def _build(cls, data: dict, prefix: str, source: str):
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for k in data:
        if k not in names:
            where = f"{prefix}.{k}" if prefix else k
            raise ConfigError(f"{source}: unknown key {where!r} (known in {prefix or 'the top level'}: {', '.join(names)})")
    kwargs = {k: _convert(hints[k], v, f"{prefix}.{k}" if prefix else k, source) for k, v in data.items()}
    return cls(**kwargs)


def apply_override(cfg: Config, item: str, source: str = "command line") -> None:
    """Apply one `dotted.key=value` override in place; the value is parsed as YAML."""
    if "=" not in item:
        raise ConfigError(f"{source}: {item!r} is not key=value")
    key, raw = item.split("=", 1)
    if not all(key.strip().split(".")):  # '=3', 'train.=3', 'a..b=1': no key to set
        raise ConfigError(f"{source}: {item!r} names no key before '=' "
                          f"(expected dotted.key=value, e.g. train.iters=100)")
    try:
        value = load_yaml(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: {key}: value {raw!r} is not valid YAML ({e})") from None
    parts = key.strip().split(".")
    obj, path = cfg, []
    for i, part in enumerate(parts):
        path.append(part)
        if isinstance(obj, dict):  # free-form mapping (model.kwargs, data.kwargs): set deeper keys as given
            if i == len(parts) - 1:
                obj[part] = value
            else:
                obj = obj.setdefault(part, {})
            continue
        names = [f.name for f in dataclasses.fields(obj)]
        if part not in names:
            raise ConfigError(f"{source}: unknown key {'.'.join(path)!r} (known: {', '.join(names)})")
        if i == len(parts) - 1:
            tp = typing.get_type_hints(type(obj))[part]
            setattr(obj, part, _convert(tp, value, key, source))
        else:
            obj = getattr(obj, part)


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """`path`: a YAML file, or the name of a shipped config (`cityscapes.yaml`); an existing file wins."""
    from .configs import names, resolve

    found = resolve(path)
    if found is None:
        raise ConfigError(f"{path}: no such config file (shipped configs, usable by name from any folder: "
                          f"{', '.join(names())})")
    path = found
    data = read_with_bases(path)
    _check_top(data, str(path))
    cfg = _build(Config, data, "", str(path))
    for item in overrides:
        apply_override(cfg, item)
    cfg.name = cfg.name or path.stem
    cfg.out_dir = cfg.out_dir or str(Path("runs") / cfg.name)
    check(cfg, str(path), overrides)
    return cfg


def _check_top(data, source: str) -> None:
    """An empty file would train the Cityscapes recipe on whatever is in data/cityscapes: refuse it."""
    if data is None or data == {}:
        raise ConfigError(f"{source}: the config is empty; a run needs at least data.dataset and data.root "
                          f"(see configs/*.yaml)")
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")


def save_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
