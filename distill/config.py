"""Run configuration: typed dataclasses that YAML files map onto one-to-one.

A file may name bases (`base: camvid.yaml`, or a list): they are read first and the file's own keys
merged over them deeply; lists are replaced, not merged (`read_with_bases`, `merge`).

`load_config(path, overrides)` reads a YAML file, rejects unknown keys and wrong types with an
error naming the key and the file, then applies `key=value` command-line overrides (dotted keys,
values parsed as YAML: `train.lr=0.01`, `data.crop_size=[256,512]`, `teacher.ckpt=null`).
Every field has the field's recipe as default, so a file only says what differs.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from runtime import contract


class ConfigError(contract.ConfigError):
    """A bad config key or value; the message names the key and where it came from."""


@dataclass
class ModelCfg:
    arch: str = "deeplabv3_resnet18"
    kwargs: dict = field(default_factory=dict)      # architecture keyword arguments (stored as arch_kwargs)
    pretrained: Optional[str] = None                # ImageNet backbone weights file (never downloaded)
    pretrained_strict: bool = True                  # false: allow a file that fills the backbone only partly


@dataclass
class TeacherCfg:
    ckpt: Optional[str] = None                      # student-format checkpoint of the trained teacher
    config: Optional[str] = None                    # the config that trains it (named in the missing-file error)


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
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
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
    _check(cfg, str(path), overrides)
    return cfg


def merge(base: dict, child: dict) -> dict:
    """`child` over `base`, deeply: mappings merge key by key (the child's keys win), anything else, lists
    included, is replaced whole (a child's `stages: [2, 3, 4]` is the list, not an addition to the base's)."""
    out = dict(base)
    for k, v in child.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _find_base(name: str, child: Path) -> Path | None:
    """A base named in `child`: a path relative to the child's folder, else a shipped config's name."""
    from .configs import resolve

    near = child.parent / name
    return near if near.is_file() else resolve(name)


def read_with_bases(path: Path, chain: tuple[Path, ...] = ()) -> dict:
    """The YAML mapping of `path` merged over its `base:` (one name or a list, merged in order, later bases
    winning), recursively. A missing base or a cycle is one error naming the chain."""
    chain = (*chain, path.resolve())
    shown = " -> ".join(p.name for p in chain)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config ({e.strerror or e}); chain: {shown}") from None
    if not isinstance(data, dict) or "base" not in data:
        return data
    bases = data.pop("base")
    bases = [bases] if isinstance(bases, str) else bases
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{path}: base: expected a config name or a list of them, got {bases!r}")
    merged: dict = {}
    for name in bases:
        found = _find_base(name, path)
        if found is None:
            raise ConfigError(f"{path}: base {name!r} not found (next to it or among the shipped configs); "
                              f"chain: {shown} -> {name}")
        if found.resolve() in chain:
            raise ConfigError(f"{path}: base cycle: {shown} -> {found.name}")
        parent = read_with_bases(found, chain)
        if not isinstance(parent, dict):
            raise ConfigError(f"{found}: a base config must be a mapping (chain: {shown} -> {found.name})")
        merged = merge(merged, parent)
    return merge(merged, data)


def _source_of(key: str, source: str, overrides) -> str:
    """Where the value of `key` came from: the last `--set` that set it (or a key above or below it), else
    the config file."""
    found = source
    for item in overrides or ():
        k = item.split("=", 1)[0].strip()
        if k == key or key.startswith(k + ".") or k.startswith(key + "."):
            found = f"--set {item}"
    return found


def _check_top(data, source: str) -> None:
    """An empty file would train the Cityscapes recipe on whatever is in data/cityscapes: refuse it."""
    if data is None or data == {}:
        raise ConfigError(f"{source}: the config is empty; a run needs at least data.dataset and data.root "
                          f"(see configs/*.yaml)")
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")


# Valid ranges of the numeric fields: key -> (low, high, low excluded, high excluded); None = unbounded.
RANGES = {
    "data.num_workers": (0, None, False, False),
    "train.iters": (1, None, False, False), "train.batch_size": (1, None, False, False),
    "train.lr": (0, None, True, False), "train.momentum": (0, 1, False, True),
    "train.weight_decay": (0, None, False, False), "train.poly_power": (0, None, False, False),
    "train.aux_weight": (0, None, False, False), "train.seed": (0, None, False, False),
    "train.threads": (0, None, False, False), "train.log_every": (1, None, False, False),
    "train.ckpt_every": (1, None, False, False), "train.val_every": (1, None, False, False),
    "eval.max_images": (1, None, False, False),
    "distill.kd.weight": (0, None, False, False), "distill.kd.temperature": (0, None, True, False),
    "distill.cwd.weight": (0, None, False, False), "distill.cwd.temperature": (0, None, True, False),
    "distill.skd.weight": (0, None, False, False), "distill.skd.max_tokens": (1, None, False, False),
    "distill.boundary.weight": (0, None, False, False), "distill.boundary.kernel": (1, None, False, False),
    "distill.boundary.edge_weight": (0, None, False, False),
    "distill.relation.weight": (0, None, False, False), "distill.relation.temperature": (0, None, True, False),
    "distill.relation.max_tokens": (1, None, False, False),
}
SIZES = ("data.crop_size", "data.min_size", "eval.crop_size", "eval.stride", "eval.size", "eval.input_size")  # [H, W], each >= 1


def _get(cfg, key):
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


def _range_text(lo, hi, lo_open, hi_open) -> str:
    if hi is None:
        return f"must be {'>' if lo_open else '>='} {lo}"
    return f"must be in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"


def _check(cfg: Config, source: str, overrides=()) -> None:
    """Every value check a type cannot express, run when the config is read (before any work). An error
    names where the value came from: the `--set` that gave it, else the file."""
    def need(ok, key, what):
        if not ok:
            raise ConfigError(f"{_source_of(key, source, overrides)}: {key}: {what}")

    for key, (lo, hi, lo_open, hi_open) in RANGES.items():
        v = _get(cfg, key)
        if v is None:
            continue
        ok = v == v and v not in (float("inf"), float("-inf")) and (v > lo if lo_open else v >= lo) and (
            hi is None or (v < hi if hi_open else v <= hi))
        need(ok, key, f"{_range_text(lo, hi, lo_open, hi_open)}, got {v}")
    for key in SIZES:
        v = _get(cfg, key)
        if v is not None:
            need(len(v) == 2 and all(x >= 1 for x in v), key, f"expected [H, W] with H, W >= 1, got {v}")
    lo, hi = (cfg.data.scale_range + [None, None])[:2] if len(cfg.data.scale_range) == 2 else (None, None)
    need(lo is not None and 0 < lo <= hi, "data.scale_range", f"expected [min, max] with 0 < min <= max, got "
         f"{cfg.data.scale_range}")
    need(cfg.distill.boundary.kernel % 2 == 1, "distill.boundary.kernel", f"must be odd, got {cfg.distill.boundary.kernel}")
    from .data.balance import CHOICES
    need(cfg.train.class_weights in CHOICES, "train.class_weights",
         f"expected one of {', '.join(CHOICES)}, got {cfg.train.class_weights!r}")
    need(cfg.eval.mode in ("whole", "slide"), "eval.mode", f"expected whole or slide, got {cfg.eval.mode!r}")
    need(cfg.eval.mode != "slide" or cfg.eval.crop_size, "eval.crop_size", "slide evaluation needs a window size")
    stages = cfg.distill.boundary.stages
    need(stages and all(1 <= s <= 4 for s in stages), "distill.boundary.stages", f"stages are 1..4, got {stages}")
    if cfg.distill.active():
        need(cfg.teacher.ckpt, "teacher.ckpt", f"distillation losses {cfg.distill.active()} need a teacher checkpoint")
    _check_names(cfg, need)
    _check_model_kwargs(cfg, need)
    _check_crop(cfg, need)
    _check_device(cfg.train.device, need)


def _check_names(cfg: Config, need) -> None:
    from .data import DATASETS
    from .models import list_models

    need(cfg.data.dataset in DATASETS, "data.dataset",
         f"unknown dataset {cfg.data.dataset!r}; expected one of {', '.join(DATASETS)}")
    need(cfg.model.arch in list_models(), "model.arch",
         f"unknown architecture {cfg.model.arch!r}; expected one of {', '.join(list_models())}")


def _check_model_kwargs(cfg: Config, need) -> None:
    """model.kwargs must be arguments the architecture takes, with values it accepts: the model is built
    on torch's meta device (no memory, no weights), so a misspelt key or a bad value is one line here,
    not a traceback once the run has started. (The pretrained file's own check comes with the real build.)"""
    kwargs = dict(cfg.model.kwargs)
    if not kwargs:
        return
    import re

    import torch

    from .models import build_model

    import warnings

    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Initializing zero-element tensors is a no-op"
            build_model(cfg.model.arch, 2, **kwargs).eval()(torch.zeros(1, 3, 64, 64))  # shapes only
    except TypeError as e:
        m = re.search(r"(?:unexpected keyword argument|multiple values for (?:keyword )?argument) '(\w+)'", str(e))
        if m is None:
            key = f"model.kwargs.{next(iter(kwargs))}" if len(kwargs) == 1 else "model.kwargs"
            need(False, key, f"{cfg.model.arch} does not take {kwargs} (TypeError: {e})")
        name = m.group(1)
        why = "takes no argument" if "unexpected" in str(e) else "sets itself the argument"
        need(False, f"model.kwargs.{name}", f"{cfg.model.arch} {why} {name!r}")
    except (ValueError, RuntimeError, ZeroDivisionError, AssertionError, KeyError, IndexError) as e:
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        named = [k for k in kwargs if re.search(rf"\b{re.escape(k)}\b", text)] or (list(kwargs)[:1] if len(kwargs) == 1 else [])
        key = f"model.kwargs.{named[0]}" if len(named) == 1 else "model.kwargs"
        need(False, key, f"{cfg.model.arch} does not accept {kwargs if len(named) != 1 else repr(kwargs[named[0]])}"
                         f" ({type(e).__name__}: {text[:200]})")


def _check_crop(cfg: Config, need) -> None:
    """A crop larger than every scaled image would be mostly padding in every sample. Crops larger than
    the image at *some* scales are the field's recipe and are padded (image: the mean colour, label:
    ignore; distill.data.transforms), so only a crop that no scale can fill is an error. The image size
    is known here only where the config gives it (the synthetic dataset's data.kwargs.size; an
    evaluation-only config that gives none keeps the default crop without complaint)."""
    size = cfg.data.kwargs.get("size")
    if cfg.data.dataset != "synthetic" or not isinstance(size, (list, tuple)) or len(size) != 2:
        return
    top = max(cfg.data.scale_range)
    biggest = [int(round(s * top)) for s in size]
    ch, cw = cfg.data.crop_size
    need(ch <= biggest[0] and cw <= biggest[1], "data.crop_size",
         f"{ch}x{cw} is larger than the largest scaled image {biggest[0]}x{biggest[1]} (data.kwargs.size "
         f"{list(size)} x data.scale_range max {top}): every crop would be mostly padding")


def _check_device(device: str, need) -> None:
    kind, _, index = device.partition(":")
    need(device in ("auto", "cpu", "cuda") or (kind == "cuda" and index.isdigit()), "train.device",
         f"expected auto, cpu, cuda or cuda:N, got {device!r}")
    if kind == "cuda":
        import torch

        need(torch.cuda.is_available(), "train.device", f"{device} asked for, but this machine has no CUDA "
             f"(torch {torch.__version__}); use train.device=cpu or auto")
        need(not index or int(index) < torch.cuda.device_count(), "train.device",
             f"{device} asked for, but this machine has {torch.cuda.device_count()} CUDA device(s)")


def save_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
