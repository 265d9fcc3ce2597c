"""Ship a trained model: store its checkpoint (fp16 weights, optional) under models/, score the stored file
itself with `distill.evaluate` (the command the card names, so anyone can reproduce the card's numbers),
and write the model card next to it: data, split, training command, commit, training time, per-class
metrics on each split the dataset's reports give (CamVid: val, marked as sharing its drive 0016E5 with
training, and the held-out drive 0001TP, whose number does not count as held-out for a model trained on a
split that contains it), each with its reproduce command, and the targets the model was trained to meet.
With `--int8 IR` the card adds that exported model's per-class metrics on the same splits (scored by the
same command) and its speed at the model's input size on this machine (`runtime.bench`: the model alone,
as the runtime runs it). The model, its scores and its card are published together at the end (written
under temporary names beside their final ones, the model renamed last): a run that fails publishes nothing.

    python -m benchmarks.demo.model_card runs/camvid_lite_teacher/model.pt models/camvid_lite/teacher.pt --fp16 \\
        --root ../shared/camvid --run runs/camvid_teacher --title "CamVid teacher" --target-miou 52 --target-class-iou 10
"""
from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

from runtime.contract import (ArgumentParser, atomic_path, check_output, clean_stale, command, DataError, make_folder,
                              positive_float, UserError)

from ..gain.runs import logged_train_s, report_splits, split_label


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


def card(title: str, path: Path, meta: dict, sections: list[dict], seconds: float | None,
         targets: list[tuple[str, bool]], extra: str = "", command: str | None = None, int8: dict | None = None) -> str:
    """The card's Markdown: training, then one metrics section per split (`sections`, see `_sections`: CamVid's
    val and its held-out drive), each with its reproduce command. `int8`: {"path", "speed" (runtime.bench's
    JSON), "bench_command"}, its scores in each section's "int8"."""
    cfg = meta.get("config") or {}
    data, train = cfg.get("data", {}), cfg.get("train", {})
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
    for sec in sections:
        lines += metrics_section(meta, sec)
    if int8:
        lines += int8_section(int8, sections)
    if targets:
        lines += ["## Targets", ""] + [f"- {'met' if ok else '**not met**'}: {what}" for what, ok in targets] + [""]
    if extra:
        lines += [extra.rstrip(), ""]
    return "\n".join(lines)


def metrics_section(meta: dict, sec: dict) -> list[str]:
    """One split's headline, per-class table (with the INT8 model's columns when it was scored) and command."""
    results, q = sec["results"], sec.get("int8")
    classes = results["classes"]
    where = (f"{results['settings']['dataset']}/{results['settings']['split']}, {results['num_images']} images, "
             f"whole {meta['input_size'][0]}x{meta['input_size'][1]} frames")
    lines = [f"## {sec['label']}: {where}" if sec.get("label") else f"## Val metrics ({where})", ""]
    if sec.get("note"):
        lines += [sec["note"], ""]
    lines += [f"mIoU **{pct(results['mIoU'])}**, boundary F1 {pct(results.get('boundary_f1'))}, boundary IoU "
              f"{pct(results.get('boundary_iou'))}, pixel accuracy {pct(results['aAcc'])}, split rate "
              f"{pct(results.get('split_rate'))}, miss rate {pct(results.get('miss_rate'))}, spurious rate "
              f"{pct(results.get('spurious_rate'))} (percent).", "",
              "| class | IoU | Acc | boundary F1 | boundary IoU |" + (" INT8 IoU | INT8 boundary F1 |" if q else ""),
              "|---|---|---|---|---|" + ("---|---|" if q else "")]
    for i, c in enumerate(classes):
        row = (f"| {c} | {pct(results['IoU'][i])} | {pct(results['Acc'][i])} | "
               f"{pct(results['boundary_f1_per_class'][i])} | {pct(results['boundary_iou_per_class'][i])} |")
        if q:
            row += f" {pct(q['results']['IoU'][i])} | {pct(q['results']['boundary_f1_per_class'][i])} |"
        lines.append(row)
    return lines + ["", f"Reproduce: `{sec['command']}`", ""]


def int8_section(int8: dict, sections: list[dict]) -> list[str]:
    sp = int8["speed"]
    lat = sp["latency_ms"]
    scored = [(sec, sec["int8"]) for sec in sections if sec.get("int8")]
    first, q = scored[0]
    lines = ["## INT8 (what the runtime runs)", "",
             f"`{Path(int8['path']).name}`: mIoU **{pct(q['results']['mIoU'])}**, boundary F1 "
             f"{pct(q['results'].get('boundary_f1'))}, pixel accuracy {pct(q['results']['aAcc'])} on the same frames "
             f"(per class in the table above). Reproduce: `{q['command']}`", ""]
    for sec, q in scored[1:]:
        where = sec.get("label") or sec["results"]["settings"]["split"]
        lines += [f"On {where}: mIoU **{pct(q['results']['mIoU'])}**, "
                  f"boundary F1 {pct(q['results'].get('boundary_f1'))}, pixel accuracy {pct(q['results']['aAcc'])} "
                  f"(per class in its table above). Reproduce: `{q['command']}`", ""]
    return lines + [
        f"Speed at {sp['shape'][2]}x{sp['shape'][3]} on this machine ({sp.get('cpus', '?')} CPU cores, "
        f"{sp['backend']} {sp['precision']} on {sp['device']}, {sp['threads']} threads; the model alone, "
        f"{sp['iters']} calls after {sp['warmup']} warm-up): median {lat['p50']:.1f} ms, p90 {lat['p90']:.1f} ms, "
        f"{sp['throughput_fps']:.1f} FPS, {sp['cpu_ms_per_iter']:.1f} ms of CPU per frame. "
        f"Reproduce: `{int8['bench_command']}`", ""]


def score_file(flag: str, path: Path, data_args: list[str], named: Path | None = None) -> tuple[dict, str]:
    """`distill.evaluate` on one split (`data_args`: --dataset, --root, --split): the results and the command
    that reproduces them. `named`: the name the scored file will be published under (it is scored under its
    temporary one); the command and the results' settings name it."""
    from distill import evaluate

    named = named or path
    results = evaluate.main([flag, str(path), *data_args])
    results["settings"]["model"] = str(named)
    return results, "python -m distill.evaluate " + " ".join([flag, str(named), *data_args])


def bench_int8(ir: Path, iters: int = 200) -> dict:
    """Time the exported model alone with runtime.bench."""
    import json
    import tempfile

    from runtime import bench

    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "bench.json"
        b_args = ["--model", str(ir), "--iters", str(iters), "--warmup", "20"]
        if bench.main([*b_args, "-o", str(out)]):
            raise DataError(f"runtime.bench {' '.join(b_args)} failed")
        speed = json.loads(out.read_text())
    return {"path": ir, "speed": speed, "bench_command": "python -m runtime.bench " + " ".join(b_args)}


def _sections(meta: dict, split: str) -> list[dict]:
    """The splits the card reports, each {"split", "label", "note"}: the dataset's report splits (CamVid: val,
    which shares its drive 0016E5 with training, and the held-out drive 0001TP; its note says when this model
    trained on a split that contains that drive, whose number then does not count as held-out), `split` first;
    a dataset without them: `split` alone, as "Val metrics"."""
    specs = report_splits(meta.get("dataset") or "")
    if not specs:
        return [{"split": split, "label": None, "note": None}]
    train_split = ((meta.get("config") or {}).get("data") or {}).get("train_split")
    ordered = [s for s in specs if s[0] == split] + [s for s in specs if s[0] != split]
    if not any(s[0] == split for s in specs):
        ordered.insert(0, (split, split, None, None))
    out = []
    for spec in ordered:
        name, held_out_of = spec[1], spec[3]
        label = split_label(spec, train_split) if spec[2] else name
        note = None
        if held_out_of is not None and train_split is None:
            label = f"{name} (held out of models trained on {', '.join(f'`{t}`' for t in held_out_of)})"
            note = "This checkpoint's config names no training split: whether it saw this drive is not known."
        elif held_out_of is not None and train_split not in held_out_of:
            note = (f"This model trained on `{train_split}`, which contains this drive: its number here does not "
                    f"count as held-out (only a model trained on {', '.join(f'`{t}`' for t in held_out_of)} "
                    f"never saw it).")
        elif held_out_of is not None:
            note = f"This model trained on `{train_split}`, which does not contain this drive: held out."
        out.append({"split": spec[0], "label": label, "note": note})
    return out


def ship(src, dst, fp16=False, root=None, split="val", run=None, title=None, target_miou=None,
         target_class_iou=None, extra="", command=None, int8=None, target_held_out_miou=None) -> dict:
    """Store the model, score the stored file on each split the card reports (<name>.<split>.json beside it; the
    INT8 model's beside that), write the card; the first split's results. All of it is written under temporary
    names beside the final ones and renamed at the end, the model last: a failure on the way (a split that does
    not score, a full disk) publishes nothing, and an older model, its scores and card stay as they were."""
    from distill.evaluate import write_json

    src, dst = Path(src), Path(dst)
    make_folder(dst.parent)
    clean_stale(dst.parent, ".*.pid*.tmp*")  # what a killed run left
    with contextlib.ExitStack() as publish:  # unwinds in reverse: the card, the scores, then the model
        stored = publish.enter_context(atomic_path(dst))
        meta = store(src, stored, fp16)
        dataset = meta.get("dataset")
        root = root or (meta.get("config") or {}).get("data", {}).get("root")
        if not root:
            raise DataError(f"{src}: its metadata names no data root; pass --root")
        sections = _sections(meta, split)
        scores = []
        data = (meta.get("config") or {}).get("data") or {}
        # the data settings the model was validated with (the synthetic set's size and count), not the defaults
        kwargs = data.get("val_kwargs") if data.get("dataset") == dataset else None
        for sec in sections:
            data_args = ["--dataset", dataset, "--root", str(root), "--split", sec["split"],
                         *(["--data-kwargs", json.dumps(kwargs)] if kwargs else [])]
            try:
                sec["results"], sec["command"] = score_file("--model", stored, data_args, named=dst)
            except UserError as e:  # it names the file it read, a hidden copy of `src`: name `src`
                e.args = (str(e).replace(str(stored), str(src)),) + e.args[1:]
                raise
            scores.append((dst.with_suffix(f".{sec['split']}.json"), sec["results"]))
            if int8:
                sec["int8"] = dict(zip(("results", "command"), score_file("--model", Path(int8), data_args)))
                scores.append((Path(int8).with_suffix(f".{sec['split']}.json"), sec["int8"]["results"]))
        results = sections[0]["results"]
        targets = _targets(sections, target_miou, target_class_iou, target_held_out_miou)
        text = card(title or dst.stem, dst, meta, sections, logged_train_s(run), targets, extra, command,
                    bench_int8(Path(int8)) if int8 else None)
        for path, scored in scores:
            write_json(scored, publish.enter_context(atomic_path(path)))
        publish.enter_context(atomic_path(dst.with_suffix(".md"))).write_text(text)
    print(f"wrote {dst} ({dst.stat().st_size / 1e6:.1f} MB), its scores and {dst.with_suffix('.md')}")
    return results


def _targets(sections, target_miou, target_class_iou, target_held_out_miou) -> list[tuple[str, bool]]:
    results, targets = sections[0]["results"], []
    first = results["settings"]["split"]
    if target_miou is not None:
        targets.append((f"{first} mIoU >= {target_miou:g} (is {pct(results['mIoU'])})",
                        100 * results["mIoU"] >= target_miou))
    if target_class_iou is not None:
        low = min((v, c) for v, c in zip(results["IoU"], results["classes"]) if v == v)
        targets.append((f"every class >= {target_class_iou:g} IoU on {first} (lowest: {low[1]} {pct(low[0])})",
                        100 * low[0] >= target_class_iou))
    held = next((sec for sec in sections[1:] if sec["note"]), None)
    if target_held_out_miou is not None and held is not None:
        got = held["results"]["mIoU"]
        counts = "does not count" not in held["note"] and "not known" not in held["note"]
        targets.append((f"{held['label'].split(' (')[0]} mIoU >= {target_held_out_miou:g} (is {pct(got)}"
                        + ("" if counts else "; does not count as held-out") + ")",
                        counts and 100 * got >= target_held_out_miou))
    return targets


@command(interrupted="the model, its scores and card are renamed into place only at the end, the model last")
def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m benchmarks.demo.model_card", description=__doc__, examples=(
        "python -m benchmarks.demo.model_card runs/camvid_lite_teacher/model.pt models/camvid_lite/teacher.pt --fp16 "
        "--run runs/camvid_teacher --target-miou 52 --target-class-iou 10",))
    p.add_argument("ckpt", help="the trained checkpoint (a run folder's model.pt; student.pt from an earlier release)")
    p.add_argument("out", help="where to ship it (models/<dataset>/<name>.pt); the card is <name>.md beside it")
    p.add_argument("--fp16", action="store_true", help="store the weights in fp16 (half the size)")
    p.add_argument("--root", help="dataset root (default: the checkpoint config's data.root)")
    p.add_argument("--split", default="val", help="split the card reports first (default val); a dataset with a "
                   "held-out split (CamVid: the 0001TP drive) gets that section too")
    p.add_argument("--run", help="the run folder, for the training time (its train_log.csv)")
    p.add_argument("--title", help="the card's title")
    p.add_argument("--target-miou", type=positive_float, help="the mIoU target, in points")
    p.add_argument("--target-class-iou", type=positive_float, help="the lowest per-class IoU target, in points")
    p.add_argument("--target-held-out-miou", type=positive_float,
                   help="the mIoU target on the held-out split (CamVid: the 0001TP drive), in points")
    p.add_argument("--note", default="", help="a paragraph added to the card (Markdown)")
    p.add_argument("--command", help="the command that trained it (default: python -m distill.run --cfg <run name>.yaml)")
    p.add_argument("--int8", help="its exported INT8 model (an OpenVINO .xml or ONNX file that passed its gate): "
                                  "the card adds its per-class metrics and its speed on this machine")
    a = p.parse_args(argv)
    if a.int8 and not Path(a.int8).is_file():
        p.error(f"--int8 {a.int8}: no such file")
    check_output(a.out, 0, "out")  # before the evaluation: the shipped file must have somewhere to go
    ship(a.ckpt, a.out, a.fp16, a.root, a.split, a.run, a.title, a.target_miou, a.target_class_iou, a.note, a.command,
         a.int8, a.target_held_out_miou)
    return 0


if __name__ == "__main__":
    sys.exit(main())
