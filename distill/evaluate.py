"""Evaluate a segmentation model, checkpoint or exported file: whole-image or sliding-window inference,
optional flip, `SegMetric`, at the labels' native resolution.

    python -m distill.evaluate --model model.pt --cfg synthetic.yaml [-o metrics.json]
    python -m distill.evaluate --model student.int8.xml --cfg cityscapes.yaml     # ONNX, IR, engine: no torch
    python -m distill.evaluate --model model.pt --dataset cityscapes --root data/cityscapes --split val \\
        --mode slide --window 512x1024 --stride 341x683 --flip

Every model file goes through one scorer (distill.score.Scorer: the runtime's preprocessing, its resolution
policy, flip, eval.size, data.min_size and the metric): a checkpoint (.pt) is one more backend, run in
PyTorch with a dynamic input; any other file (.onnx FP32/INT8, OpenVINO .xml at the precision it will run,
TensorRT .engine) runs in the runtime's backend, without torch or Pillow. Settings come from the flags, then
--cfg, then the model's own metadata (its dataset, its config's eval section, data.val_split and
data.min_size: what the INT8 gate scores with), then the defaults. The trainer's in-loop validation uses
`evaluate(model, dataset, ...)`, which takes a dataset whose items are already `EvalTransform`ed
(normalised tensor, long label);
`evaluate_predictions(predict_fn, raw_dataset, ...)` scores any predictor of uint8 RGB images with the same
metric. Importing this module imports no torch.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from runtime.contract import (ArgumentParser, ConfigError, DataError, add_overrides, check_output, command, pair,
                              positive_int, size_arg, write_json_file)
from runtime.formats import is_checkpoint

from .metrics import SegMetric
from .score import Scorer, eval_settings, open_model, score


def _forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    import torch.nn.functional as F

    logits = model(x)
    if logits.shape[-2:] != x.shape[-2:]:
        logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return logits


def slide_logits(model: nn.Module, x: torch.Tensor, crop_size, stride) -> torch.Tensor:
    """Logits of overlapping crop_size windows taken every `stride`, averaged where windows overlap.
    An image smaller than the window is zero-padded (the normalised mean colour) and cropped back."""
    import torch.nn.functional as F

    from .score import window_grid

    (ch, cw), (sh, sw) = pair(crop_size), pair(stride)
    n, _, h, w = x.shape
    ph, pw = max(ch - h, 0), max(cw - w, 0)
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph))
    H, W = x.shape[-2:]
    total = count = None
    for y1, y2, x1, x2 in window_grid(H, W, (ch, cw), (sh, sw)):
        out = _forward(model, x[:, :, y1:y2, x1:x2])
        if total is None:
            total = x.new_zeros((n, out.shape[1], H, W))
            count = x.new_zeros((1, 1, H, W))
        total[:, :, y1:y2, x1:x2] += out
        count[:, :, y1:y2, x1:x2] += 1
    return (total / count)[:, :, :h, :w]


def predict_logits(model: nn.Module, x: torch.Tensor, mode: str = "whole", crop_size=None, stride=None,
                   flip: bool = False) -> torch.Tensor:
    """(N,3,H,W) normalised images -> (N,C,H,W) logits; with flip, averaged with the mirrored pass."""
    if mode == "whole":
        run = lambda t: _forward(model, t)  # noqa: E731
    elif mode == "slide":
        if crop_size is None:
            raise ValueError("slide inference needs crop_size (and stride, default 2/3 of it)")
        crop = pair(crop_size)
        step = pair(stride) if stride is not None else (max(1, crop[0] * 2 // 3), max(1, crop[1] * 2 // 3))
        run = lambda t: slide_logits(model, t, crop, step)  # noqa: E731
    else:
        raise ValueError(f"mode must be 'whole' or 'slide', got {mode!r}")
    logits = run(x)
    if flip:
        logits = (logits + run(x.flip(-1)).flip(-1)) / 2
    return logits


def evaluate(model: nn.Module, dataset, num_classes: int, mode: str = "whole", crop_size=None, stride=None,
             flip: bool = False, device="cpu", max_images: int | None = None, ignore_index: int = 255,
             progress: bool = False) -> dict:
    """Score `model` on a dataset of (normalised 3xHxW tensor, HxW label) items; returns SegMetric's dict.
    The model's train/eval mode is restored afterwards."""
    import torch

    metric = SegMetric(num_classes, ignore_index)
    n = len(dataset) if max_images is None else min(len(dataset), max_images)
    was_training = model.training
    model.eval()
    indices = range(n)
    if progress:
        from tqdm import tqdm
        indices = tqdm(indices, desc="evaluate", unit="img")
    try:
        with torch.no_grad():
            for i in indices:
                image, label = dataset[i]
                image = torch.as_tensor(image).to(device)[None]
                logits = predict_logits(model, image, mode, crop_size, stride, flip)
                if logits.shape[1] != num_classes:
                    raise ValueError(f"model gives {logits.shape[1]} classes, dataset has {num_classes}")
                pred = logits.argmax(1)[0].cpu().numpy()
                metric.update(pred, np.asarray(label))
    finally:
        model.train(was_training)
    return metric.compute()


def evaluate_predictions(predict_fn: Callable[[np.ndarray], np.ndarray], dataset, num_classes: int,
                         max_images: int | None = None, ignore_index: int = 255) -> dict:
    """Score any predictor: `predict_fn(HxWx3 uint8 RGB) -> HxW integer labels`, on a dataset without
    transforms (raw uint8 image, uint8 label) items (distill.score.score)."""
    from .score import score

    return score(predict_fn, dataset, num_classes, max_images=max_images, ignore_index=ignore_index)


def format_table(results: dict, classes: list[str] | None = None) -> str:
    """Per-class IoU / boundary IoU / boundary F1 / split, miss and spurious rates and the means, as plain
    text (percent)."""
    iou = results["IoU"]
    classes = classes or [str(i) for i in range(len(iou))]
    cols = [("IoU", "IoU", 100), ("Acc", "Acc", 100), ("bIoU", "boundary_iou_per_class", 100),
            ("bF1", "boundary_f1_per_class", 100), ("split", "split_rate_per_class", 100),
            ("miss", "miss_rate_per_class", 100), ("spur", "spurious_rate_per_class", 100)]
    cols = [c for c in cols if c[1] in results]
    width = max(12, *(len(c) for c in classes))

    def fmt(v, scale):
        return "    -" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v * scale:5.1f}"

    lines = [f"{'class':<{width}} " + " ".join(f"{h:>6}" for h, _, _ in cols)]
    for i, name in enumerate(classes):
        lines.append(f"{name:<{width}} " + " ".join(f"{fmt(results[k][i], s):>6}" for _, k, s in cols))
    lines.append("-" * len(lines[0]))
    summary = [("mIoU", 100), ("mAcc", 100), ("aAcc", 100), ("boundary_iou", 100), ("boundary_f1", 100),
               ("split_rate", 100), ("miss_rate", 100), ("spurious_rate", 100)]
    lines.append("  ".join(f"{k} {fmt(results[k], s).strip()}" for k, s in summary if k in results))
    return "\n".join(lines)


def write_json(results: dict, path: str | Path) -> None:
    """Strict JSON, atomically: NaN (a class in neither the predictions nor the labels) is written as null,
    with a `<key>_null` entry beside it that says so (runtime.contract.finite_json)."""
    notes = {}
    for k, v in results.items():
        vals = v if isinstance(v, (list, tuple)) else [v]
        bad = [i for i, x in enumerate(vals) if isinstance(x, float) and math.isnan(x)]
        if bad:
            what = f"entries {bad} are null" if isinstance(v, (list, tuple)) else "null"
            notes[f"{k}_null"] = (f"{what}: the class is in neither the predictions nor the labels (undefined)"
                                  if isinstance(v, (list, tuple)) else
                                  f"{what}: undefined (no labelled pixel or no region to measure it on)")
    write_json_file(path, {**results, **notes})


def parse_args(argv=None) -> argparse.Namespace:
    p = ArgumentParser(prog="python -m distill.evaluate", description=__doc__.split("\n\n")[0], examples=(
        "python -m distill.evaluate --model runs/synthetic/model.pt --cfg synthetic.yaml -o metrics.json",
        "python -m distill.evaluate --model student.int8.xml --dataset voc --root data/VOCdevkit/VOC2012 -o m.json",
        "python -m distill.evaluate --model student.onnx --dataset cityscapes --root data/cityscapes "
        "--mode slide --window 512x1024 --stride 341x683 --flip"))
    p.add_argument("--model", required=True, help="the model file to score: a checkpoint (.pt, runs in PyTorch) or "
                   "an exported model (.onnx FP32/INT8, OpenVINO .xml, TensorRT .engine: runs in its runtime backend, "
                   "no torch needed)")
    p.add_argument("--cfg", help="run config YAML, or a shipped config's name (cityscapes.yaml): its data and eval "
                   "sections say what and how to evaluate")
    p.add_argument("--dataset", help="dataset name (overrides the config's data.dataset)")
    p.add_argument("--root", help="dataset root (overrides data.root)")
    p.add_argument("--split", help="split to evaluate (default: the config's data.val_split, else val)")
    p.add_argument("--data-kwargs", default=None,
                   help='extra build_dataset arguments as JSON, e.g. \'{"num_images": 60, "size": [128, 256]}\'')
    p.add_argument("--mode", choices=("whole", "slide"), help="inference mode (default: eval.mode or whole)")
    size_arg(p, "--window", dest="crop", help="sliding window size HxW (default: eval.crop_size)")
    size_arg(p, "--stride", help="sliding window stride HxW (default: 2/3 of the window)")
    p.add_argument("--flip", action="store_true", default=None, help="average with the mirrored image")
    size_arg(p, "--size", help="resize images to HxW before inference (default: eval.size)")
    p.add_argument("--max-images", type=positive_int, help="evaluate the first N images only")
    p.add_argument("--device", default="auto", help="a checkpoint's torch device: auto (cuda if present, else cpu), cpu, "
                   "cuda, cuda:N; an exported model's backend device (onnx: cpu|cuda|trt, openvino: cpu|gpu|npu) "
                   "(default auto)")
    p.add_argument("--threads", type=positive_int, help="an exported model's inference threads (default: the backend's)")
    p.add_argument("--precision-hint", choices=("fp32", "bf16", "fp16"),
                   help="OpenVINO: compute at this precision instead of the one the IR was checked at (its "
                        "metadata's; the run is then unchecked)")
    p.add_argument("-o", "--output", help="write the results as JSON to this file")
    add_overrides(p)
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    path = args.model
    if not is_checkpoint(path):
        from runtime.formats import format_for
        format_for(path)  # an unknown suffix: one line naming the file and the formats there are
    cfg = _config(args)  # a bad config or override is named before the model is read
    if args.output:  # before the work: results that cannot be written would be lost at the end
        check_output(args.output, 0, "-o/--output")
    backend = open_model(path, device=args.device, threads=args.threads, precision_hint=args.precision_hint)
    try:
        return _score_model(args, path, backend, cfg)
    finally:
        backend.close()


def _config(args):
    """The --cfg config with its overrides, or None."""
    if args.cfg:
        from .config import load_config
        return load_config(args.cfg, args.overrides)
    if args.overrides:
        raise ConfigError(f"config overrides {' '.join(args.overrides)} need --cfg")
    return None


def _settings(args, meta: dict, cfg=None) -> tuple[dict, dict]:
    """(data, eval) settings, each key from the first that has it: the flags, the config (--cfg, with its
    overrides), the model's own metadata (its dataset, its config's data.val_split, data.min_size and eval
    section: distill.score.eval_settings, what the INT8 gate scores with), the defaults."""
    own = eval_settings(meta)
    own_data = (meta.get("config") or {}).get("data") or {}
    data = {"dataset": meta.get("dataset"), "root": None, "split": own_data.get("val_split") or "val", "kwargs": {},
            "min_size": own.pop("min_size")}
    ev = {**own, "max_images": None}
    if cfg is not None:
        data.update(dataset=cfg.data.dataset, root=cfg.data.root, split=cfg.data.val_split,
                    kwargs=dict(cfg.data.val_kwargs), min_size=cfg.data.min_size)
        ev.update(mode=cfg.eval.mode, crop_size=cfg.eval.crop_size, stride=cfg.eval.stride, flip=cfg.eval.flip,
                  max_images=cfg.eval.max_images, size=cfg.eval.size)
    for key, value in (("dataset", args.dataset), ("root", args.root), ("split", args.split)):
        if value is not None:
            data[key] = value
    if args.data_kwargs:
        try:
            data["kwargs"].update(json.loads(args.data_kwargs))
        except (ValueError, AttributeError, TypeError) as e:
            raise ConfigError(f"--data-kwargs: expected a JSON object, got {args.data_kwargs!r} ({e})") from None
    for key, value in (("mode", args.mode), ("crop_size", args.crop), ("stride", args.stride),
                       ("flip", args.flip), ("max_images", args.max_images), ("size", args.size)):
        if value is not None:
            ev[key] = value
    if not data["dataset"] or not data["root"]:
        raise ConfigError("say what to evaluate on: --cfg CONFIG, or --dataset NAME --root DIR [--split val] "
                          "(--dataset defaults to the one the model names)")
    if data["dataset"] == "synthetic":
        data["kwargs"]["create"] = False  # evaluation reads a dataset, it never writes one
    return data, ev


def _score_model(args, path: str, backend, cfg=None) -> dict:
    """Any model file, a checkpoint included, through one scorer (distill.score.Scorer): the same
    preprocessing, resolution policy, flip, resize, data.min_size and metric for every format."""
    from .data import build_dataset
    from .data.checks import require_labels

    meta = backend.meta
    data, ev = _settings(args, meta, cfg)
    _check_classes(path, meta, data["dataset"])
    scorer = Scorer(backend, ev["mode"], ev["crop_size"], ev["stride"], ev["flip"])
    dataset = build_dataset(data["dataset"], data["root"], data["split"], **data["kwargs"])
    what = f"{data['split']} split"
    require_labels(dataset, what)
    results = score(scorer, dataset, meta["num_classes"], size=ev["size"], max_images=ev["max_images"],
                    progress=sys.stderr.isatty(), min_size=data["min_size"], what=what)
    info = backend.describe()
    results["classes"] = list(meta["classes"])
    export = meta.get("export") if isinstance(meta.get("export"), dict) else {}
    results["settings"] = {"model": str(path), "backend": info["backend"], "device": info["device"],
                           "precision": info["precision"], "file_precision": export.get("precision"),
                           "dataset": data["dataset"], "root": str(data["root"]), "split": data["split"],
                           "min_size": data["min_size"], **ev, "how": scorer.describe()}
    return _report(results, meta, args, f"{path} on {data['dataset']}/{data['split']} ({results['num_images']} "
                   f"images; {info['backend']} {info['device']}, {info['precision']}; {scorer.describe()})")


def _report(results: dict, meta: dict, args, headline: str) -> dict:
    """The headline, the per-class table and, with -o, the JSON: the same for a checkpoint and a file."""
    print(headline)
    print(format_table(results, meta["classes"]))
    if args.output:
        write_json(results, args.output)
        print(f"wrote {args.output}")
    return results


def _check_classes(path, meta, dataset):
    from .data import DATASETS

    info = DATASETS.get(dataset)
    if info is not None and info.num_classes != meta["num_classes"]:
        raise DataError(f"{path}: model has {meta['num_classes']} classes but {dataset} has {info.num_classes}")


@command(interrupted="no results written")
def cli(argv=None) -> int:
    """`main` with the CLI contract (runtime.contract): exit 0, or 2 with one `error:` line."""
    main(argv)
    return 0


if __name__ == "__main__":
    sys.exit(cli())
