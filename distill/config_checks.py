"""Every value check of a run config that a type cannot express, run when the config is read (before any
work): numeric ranges, [H, W] sizes, names of datasets and architectures, the architecture's keyword
arguments, the crop against the data, the device. An error names the key and where its value came from
(the file, or the `--set` that gave it)."""
from __future__ import annotations

from .config_bases import ConfigError

# `cfg` below is a distill.config.Config, read by attribute only: config.py imports this module, and this one
# imports nothing of config.py, not even for annotations (tests/test_layering.py: no import circle).

def _source_of(key: str, source: str, overrides) -> str:
    """Where the value of `key` came from: the last `--set` that set it (or a key above or below it), else
    the config file."""
    found = source
    for item in overrides or ():
        k = item.split("=", 1)[0].strip()
        if k == key or key.startswith(k + ".") or k.startswith(key + "."):
            found = f"--set {item}"
    return found


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


def check(cfg, source: str, overrides=()) -> None:
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
    need(0 < cfg.teacher.input_scale <= 4, "teacher.input_scale",
         f"expected a factor in (0, 4], got {cfg.teacher.input_scale}")
    if cfg.distill.active():
        need(cfg.teacher.ckpt, "teacher.ckpt", f"distillation losses {cfg.distill.active()} need a teacher checkpoint")
    _check_names(cfg, need)
    _check_model_kwargs(cfg, need)
    _check_crop(cfg, need)
    _check_device(cfg.train.device, need)


def _check_names(cfg, need) -> None:
    from .data import DATASETS
    from .models import list_models

    need(cfg.data.dataset in DATASETS, "data.dataset",
         f"unknown dataset {cfg.data.dataset!r}; expected one of {', '.join(DATASETS)}")
    need(cfg.model.arch in list_models(), "model.arch",
         f"unknown architecture {cfg.model.arch!r}; expected one of {', '.join(list_models())}")


def _check_model_kwargs(cfg, need) -> None:
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


def _check_crop(cfg, need) -> None:
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


