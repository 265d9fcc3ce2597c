"""Ship a trained model: store its checkpoint (fp16 weights, optional) under models/, score the stored file
itself with `distill.evaluate` (the command the card names, so anyone can reproduce the card's numbers),
and write the model card next to it: data, split, training command, commit, training time, per-class val
metrics, and the targets the model was trained to meet. With `--int8 IR` the card adds that exported model's
per-class metrics (scored by the same command) and its speed at the model's input size on this machine
(`runtime.bench`: the model alone, as the runtime runs it).

    python -m benchmarks.demo.model_card runs/camvid_teacher/model.pt models/camvid/teacher.pt --fp16 \\
        --root ../shared/camvid --run runs/camvid_teacher --title "CamVid teacher" --target-miou 52 --target-class-iou 10
"""
from __future__ import annotations

import sys
from pathlib import Path

from runtime.contract import ArgumentParser, command, DataError, positive_float

from ..gain.runs import logged_train_s


def store(src: Path, dst: Path, fp16: bool) -> dict:
    """Copy a student-format checkpoint to `dst`, its floating-point tensors in fp16 when asked (weights and
    BN statistics; the model computes in float32 after loading, as load_state_dict casts them back)."""
    import torch

    from distill import checkpoint

    obj = checkpoint._read(src, checkpoint.STUDENT_FORMAT)
    if fp16:
        obj["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in obj["state_dict"].items()}
        obj["meta"] = {**obj["meta"], "storage": "fp16"}
    dst.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.atomic_save(obj, dst)
    torch.load(dst, map_location="cpu", weights_only=True)  # it reads back
    return obj["meta"]


def pct(v) -> str:
    return "–" if v is None or v != v else f"{100 * v:.1f}"


def card(title: str, path: Path, meta: dict, results: dict, seconds: float | None, evaluate_cmd: str,
         targets: list[tuple[str, bool]], extra: str = "", command: str | None = None, int8: dict | None = None) -> str:
    """The card's Markdown. `int8`: {"path", "results", "command", "speed" (runtime.bench's JSON)}."""
    cfg = meta.get("config") or {}
    data, train = cfg.get("data", {}), cfg.get("train", {})
    classes = results["classes"]
    kwargs = f" {meta['arch_kwargs']}" if meta.get("arch_kwargs") else ""
    # a run of a benchmark was trained from a config plus overrides, so its run name is no config file
    trained_by = command or f"python -m distill.run --cfg {cfg.get('name', '?')}.yaml"
    lines = [f"# {title}", "",
             f"`{path.name}`: `{meta['arch']}`{kwargs}, "
             f"{meta['num_classes']} classes, input {meta['input_size'][0]}x{meta['input_size'][1]}, weights stored "
             f"{meta.get('storage', 'fp32')}; checkpoint written at commit `{meta.get('git_commit') or 'unknown'}` "
             f"(its metadata's `git_commit`).", "",
             "## Training", "",
             f"- Data: {data.get('dataset')} (`{data.get('root')}`), split `{data.get('train_split')}`, "
             f"{data.get('crop_size')} crops at scales {data.get('scale_range')}, batch {train.get('batch_size')}, "
             f"{train.get('iters')} iterations, lr {train.get('lr')}, weight decay {train.get('weight_decay')}, "
             f"class weights {train.get('class_weights', 'none')}, "
             f"{'bf16 autocast' if train.get('amp') and train.get('amp_cpu') else 'float32'} on CPU, seed {train.get('seed')}.",
             f"- Command: `{trained_by}` (resumable: rerun it to continue).",
             f"- Time: {seconds / 60:.0f} minutes of training steps on this machine's 2 CPU cores." if seconds
             else "- Time: not recorded.", ""]
    lines += [f"## Val metrics ({results['settings']['dataset']}/{results['settings']['split']}, "
              f"{results['num_images']} images, whole {meta['input_size'][0]}x{meta['input_size'][1]} frames)", "",
              f"mIoU **{pct(results['mIoU'])}**, boundary F1 {pct(results.get('boundary_f1'))}, boundary IoU "
              f"{pct(results.get('boundary_iou'))}, pixel accuracy {pct(results['aAcc'])}, split rate "
              f"{pct(results.get('split_rate'))}, miss rate {pct(results.get('miss_rate'))}, spurious rate "
              f"{pct(results.get('spurious_rate'))} (percent).", "",
              "| class | IoU | Acc | boundary F1 | boundary IoU |" + (" INT8 IoU | INT8 boundary F1 |" if int8 else ""),
              "|---|---|---|---|---|" + ("---|---|" if int8 else "")]
    for i, c in enumerate(classes):
        row = (f"| {c} | {pct(results['IoU'][i])} | {pct(results['Acc'][i])} | "
               f"{pct(results['boundary_f1_per_class'][i])} | {pct(results['boundary_iou_per_class'][i])} |")
        if int8:
            q = int8["results"]
            row += f" {pct(q['IoU'][i])} | {pct(q['boundary_f1_per_class'][i])} |"
        lines.append(row)
    lines += ["", f"Reproduce: `{evaluate_cmd}`", ""]
    if int8:
        lines += int8_section(int8)
    if targets:
        lines += ["## Targets", ""] + [f"- {'met' if ok else '**not met**'}: {what}" for what, ok in targets] + [""]
    if extra:
        lines += [extra.rstrip(), ""]
    return "\n".join(lines)


def int8_section(int8: dict) -> list[str]:
    q, sp = int8["results"], int8["speed"]
    lat = sp["latency_ms"]
    return ["## INT8 (what the runtime runs)", "",
            f"`{Path(int8['path']).name}`: mIoU **{pct(q['mIoU'])}**, boundary F1 {pct(q.get('boundary_f1'))}, "
            f"pixel accuracy {pct(q['aAcc'])} on the same frames (per class in the table above). "
            f"Reproduce: `{int8['command']}`", "",
            f"Speed at {sp['shape'][2]}x{sp['shape'][3]} on this machine ({sp.get('cpus', '?')} CPU cores, "
            f"{sp['backend']} {sp['precision']} on {sp['device']}, {sp['threads']} threads; the model alone, "
            f"{sp['iters']} calls after {sp['warmup']} warm-up): median {lat['p50']:.1f} ms, p90 {lat['p90']:.1f} ms, "
            f"{sp['throughput_fps']:.1f} FPS, {sp['cpu_ms_per_iter']:.1f} ms of CPU per frame. "
            f"Reproduce: `{int8['bench_command']}`", ""]


def measure_int8(ir: Path, data_args: list[str], iters: int = 200) -> dict:
    """Score the exported model on the card's data (`data_args`: --dataset, --root, --split), and time it
    alone with runtime.bench."""
    import json
    import tempfile

    from distill import evaluate
    from runtime import bench

    q_args = ["--model", str(ir), *data_args]
    results = evaluate.main([*q_args, "-o", str(ir.with_suffix(".val.json"))])
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "bench.json"
        b_args = ["--model", str(ir), "--iters", str(iters), "--warmup", "20"]
        if bench.main([*b_args, "-o", str(out)]):
            raise DataError(f"runtime.bench {' '.join(b_args)} failed")
        speed = json.loads(out.read_text())
    return {"path": ir, "results": results, "speed": speed, "command": "python -m distill.evaluate " + " ".join(q_args),
            "bench_command": "python -m runtime.bench " + " ".join(b_args)}


def ship(src, dst, fp16=False, root=None, split="val", run=None, title=None, target_miou=None,
         target_class_iou=None, extra="", command=None, int8=None) -> dict:
    from distill import evaluate

    src, dst = Path(src), Path(dst)
    meta = store(src, dst, fp16)
    dataset = meta.get("dataset")
    root = root or (meta.get("config") or {}).get("data", {}).get("root")
    if not root:
        raise DataError(f"{src}: its metadata names no data root; pass --root")
    data_args = ["--dataset", dataset, "--root", str(root), "--split", split]
    args = ["--model", str(dst), *data_args]
    results = evaluate.main([*args, "-o", str(dst.with_suffix(".val.json"))])
    targets = []
    if target_miou is not None:
        targets.append((f"val mIoU >= {target_miou:g} (is {pct(results['mIoU'])})", 100 * results["mIoU"] >= target_miou))
    if target_class_iou is not None:
        low = min((v, c) for v, c in zip(results["IoU"], results["classes"]) if v == v)
        targets.append((f"every class >= {target_class_iou:g} IoU (lowest: {low[1]} {pct(low[0])})",
                        100 * low[0] >= target_class_iou))
    quantized = measure_int8(Path(int8), data_args) if int8 else None
    text = card(title or dst.stem, dst, meta, results, logged_train_s(run),
                "python -m distill.evaluate " + " ".join(args), targets, extra, command, quantized)
    dst.with_suffix(".md").write_text(text)
    print(f"wrote {dst} ({dst.stat().st_size / 1e6:.1f} MB) and {dst.with_suffix('.md')}")
    return results


@command(interrupted="the model file is written atomically; the card may be missing")
def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m benchmarks.demo.model_card", description=__doc__, examples=(
        "python -m benchmarks.demo.model_card runs/camvid_teacher/model.pt models/camvid/teacher.pt --fp16 "
        "--run runs/camvid_teacher --target-miou 52 --target-class-iou 10",))
    p.add_argument("ckpt", help="the trained checkpoint (a run folder's model.pt; student.pt from an earlier release)")
    p.add_argument("out", help="where to ship it (models/<dataset>/<name>.pt); the card is <name>.md beside it")
    p.add_argument("--fp16", action="store_true", help="store the weights in fp16 (half the size)")
    p.add_argument("--root", help="dataset root (default: the checkpoint config's data.root)")
    p.add_argument("--split", default="val", help="split the card reports (default val)")
    p.add_argument("--run", help="the run folder, for the training time (its train_log.csv)")
    p.add_argument("--title", help="the card's title")
    p.add_argument("--target-miou", type=positive_float, help="the mIoU target, in points")
    p.add_argument("--target-class-iou", type=positive_float, help="the lowest per-class IoU target, in points")
    p.add_argument("--note", default="", help="a paragraph added to the card (Markdown)")
    p.add_argument("--command", help="the command that trained it (default: python -m distill.run --cfg <run name>.yaml)")
    p.add_argument("--int8", help="its exported INT8 model (an OpenVINO .xml or ONNX file that passed its gate): "
                                  "the card adds its per-class metrics and its speed on this machine")
    a = p.parse_args(argv)
    if a.int8 and not Path(a.int8).is_file():
        p.error(f"--int8 {a.int8}: no such file")
    ship(a.ckpt, a.out, a.fp16, a.root, a.split, a.run, a.title, a.target_miou, a.target_class_iou, a.note, a.command,
         a.int8)
    return 0


if __name__ == "__main__":
    sys.exit(main())
