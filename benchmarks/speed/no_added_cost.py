"""`python -m benchmarks.speed.no_added_cost --pair NAME PLAIN.pt BRD.pt [--teacher T.pt]`

BRD changes a student's weights, never its architecture, so a BRD student must cost exactly what
the plain student costs at inference. This measures it instead of claiming it: parameters, MACs,
file size per format, structural identity of the exported graphs, and latency p50/p90 for every
available backend x precision, with plain and BRD timed interleaved in one process so that
machine drift (thermal, other load) hits both alike. Output: table.md, results.csv, latency.png.

It times the checked models found in --models-dir (published by the exporters with their parity check and
INT8 gate) where they exist. Anything it has to build itself is a timing copy, never published: written
under <out-dir>/unchecked_timing_copies/ as <name>.unchecked<suffix> (INT8 copies record "gate": null, so
the runtime warns if one is ever loaded), and the table says which files were which.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime import formats
from runtime.contract import (ArgumentParser, CheckpointError, check_folder, command, finite_json, GateError,
                              non_negative_int, positive_int)
from runtime.stats import time_calls

from .model_cost import compare_structure, count_macs, file_size, network
from ..report import bar_chart, markdown_table, write_csv


@dataclass(frozen=True)
class Variant:
    """A row of runtime.formats.FORMATS, named e.g. "openvino-int8"."""
    fmt: formats.Format

    @property
    def name(self) -> str:
        return f"{self.fmt.name}-{self.fmt.precision}"

    @property
    def precision(self) -> str:
        return self.fmt.precision

    @property
    def suffix(self) -> str:
        return self.fmt.suffix


# every exported format x precision but TensorRT FP32 (nobody deploys it: FP16 costs no accuracy there)
VARIANTS = tuple(Variant(f) for f in formats.FORMATS if (f.name, f.precision) != ("tensorrt", "fp32"))
# the Python modules a variant needs on this machine (NNCF only for OpenVINO INT8)
NEEDS = {"onnx": ["onnxruntime"], "openvino": ["openvino"], "tensorrt": ["tensorrt", "pycuda"]}
# ratio BRD/plain of p50 latency counted as "the same" (timing noise on a shared CPU)
SAME_COST_TOLERANCE = 0.05
# what must match for a plain/BRD pair to be comparable at all (checked before any export or timing)
PAIR_KEYS = (("arch", "architecture"), ("arch_kwargs", "architecture settings"), ("num_classes", "classes"),
             ("classes", "class names"), ("input_size", "input size"))


class PairError(CheckpointError):
    """A plain/BRD pair that cannot be compared (a missing file, another architecture, classes or input size)."""


class GraphMismatch(GateError):
    """The exported plain and BRD graphs differ, so "no added cost" cannot be claimed for the pair."""


def check_pairs(pairs, teacher=None) -> None:
    """Every file exists and is a student checkpoint; plain and BRD agree on PAIR_KEYS. One sentence each."""
    from distill import checkpoint

    for label, plain, brd in pairs:
        metas = {}
        for role, path in (("plain", plain), ("BRD", brd)):
            if not Path(path).is_file():
                raise PairError(f"pair {label}: the {role} checkpoint {path} does not exist")
            try:
                metas[role] = checkpoint.load_meta(path)
            except checkpoint.CheckpointError as e:
                raise PairError(f"pair {label}: {e}") from None
        for key, what in PAIR_KEYS:
            a, b = metas["plain"].get(key), metas["BRD"].get(key)
            if a != b:
                raise PairError(f"pair {label}: the plain and BRD students differ in {what} ({key}: plain {a}, "
                                f"BRD {b}), so their inference cost cannot be compared")
    if teacher and not Path(teacher).is_file():
        raise PairError(f"the teacher checkpoint {teacher} does not exist")


def unavailable(variant: Variant) -> str | None:
    """Why this machine cannot build/run a variant, or None."""
    needs = NEEDS[variant.fmt.name] + (["nncf"] if variant.fmt.name == "openvino" and variant.precision == "int8" else [])
    missing = [m for m in needs if importlib.util.find_spec(m) is None]
    return f"{', '.join(missing)} not installed" if missing else None


COPIES = "unchecked_timing_copies"  # the folder (under --out-dir) of what this benchmark builds itself


def copy_path(copies: Path, name: str, suffix: str) -> Path:
    """A timing copy's name says what it is: <copies>/<name>.unchecked<suffix> (the suffix keeps the backend)."""
    return copies / f"{name}.unchecked{suffix}"


def export_variant(variant: Variant, onnx_path: Path, out: Path, calib: list) -> Path:
    """Build one timing copy from the FP32 ONNX (reused when newer than the ONNX); no checks, no gate."""
    if out.exists() and out.stat().st_mtime >= onnx_path.stat().st_mtime:
        return out
    export = formats.exporter(variant.fmt)  # the table's function; each takes the FP32 ONNX
    if variant.fmt.name == "onnx":
        return export(onnx_path, out, calib)
    if variant.fmt.name == "openvino":
        return export(onnx_path, out, variant.precision, calib_images=calib)
    return export(onnx_path, out, fp16=True, int8=variant.precision == "int8", calib_images=calib)


def checked(models_dir, name: str, suffix: str, ckpt: Path) -> Path | None:
    """The checked model <models_dir>/<name><suffix> an exporter published (with its parity record), if it
    is there and newer than its checkpoint."""
    if not models_dir:
        return None
    path = Path(models_dir) / f"{name}{suffix}"
    parity = Path(str(path) + ".parity.json")
    if path.exists() and parity.exists() and path.stat().st_mtime >= ckpt.stat().st_mtime:
        return path
    return None


def time_interleaved(backends: dict, batch: np.ndarray, iters: int, warmup: int, rounds: int) -> dict:
    """Per-call latencies (ms) of each backend, alternating backends round by round."""
    for b in backends.values():
        time_calls(lambda: b.infer(batch), 0, warmup)
    times = {k: [] for k in backends}
    for r in range(rounds):
        order = list(backends) if r % 2 == 0 else list(reversed(backends))  # neither always goes first
        for k in order:
            times[k] += [t * 1e3 for t in time_calls(lambda: backends[k].infer(batch), iters)]
    return times


def _pair_onnx(label: str, roles: dict[str, Path], copies: Path, models_dir, cost_rows: list) -> tuple[dict, dict, dict]:
    """Each role's FP32 ONNX (the checked one in `models_dir`, else a timing copy) and its cost row.
    Returns ({role: onnx path}, {role: meta}, {role: file name stem})."""
    from distill import checkpoint
    from export.onnx import torch_to_onnx

    onnx_files, metas, names = {}, {}, {}
    for role, ckpt in roles.items():
        model, meta = checkpoint.load(ckpt)
        metas[role] = meta
        name = "teacher" if role == "teacher" else f"{label}_{role}"
        names[role] = name
        onnx_path = checked(models_dir, name, ".onnx", Path(ckpt))
        if onnx_path is None:
            onnx_path = copy_path(copies, name, ".onnx")
            if not onnx_path.exists() or onnx_path.stat().st_mtime < Path(ckpt).stat().st_mtime:
                torch_to_onnx(ckpt, onnx_path, model_meta=(model, meta))
        onnx_files[role] = onnx_path
        cost_rows.append({"pair": label, "model": role, **network(model),  # registry name, stem, parameters
                          "GMACs": count_macs(model, meta["input_size"]) / 1e9,
                          "input": "x".join(map(str, meta["input_size"])), "onnx_MB": file_size(onnx_path) / 1e6})
    return onnx_files, metas, names


def _variant_files(label, variant: Variant, onnx_files, names, roles, copies, models_dir, calib, notes) -> dict | None:
    """Each role's file in this variant (checked, else a timing copy); None, with a note, when it cannot be had."""
    reason = unavailable(variant)
    if reason:
        notes.append(f"{label} {variant.name}: skipped ({reason})")
        return None
    files = {}
    try:
        for role, onnx_path in onnx_files.items():
            files[role] = checked(models_dir, names[role], variant.suffix, roles[role]) or export_variant(
                variant, onnx_path, copy_path(copies, names[role], variant.suffix), calib)
    except Exception as e:  # one variant failing (e.g. no GPU for TensorRT) must not hide the others
        notes.append(f"{label} {variant.name}: export failed ({type(e).__name__}: {str(e)[:160]})")
        return None
    if variant.name == "onnx-int8":
        d = compare_structure(files["plain"], files["brd"])
        notes.append(f"{label}: INT8 Q/DQ graphs are " + ("structurally identical" if not d else "DIFFERENT: " + d[0]))
    return files


def _time_variant(label, variant: Variant, files: dict, batch, copies: Path, iters, warmup, rounds, threads,
                  notes, log) -> list[dict]:
    """The latency rows of every role's file in one variant, timed interleaved; a note when BRD/plain is off 1."""
    from runtime.backends import load_backend

    kw = {"threads": threads} if threads else {}
    if variant.fmt.name == "openvino" and variant.precision != "int8":
        kw["inference_precision"] = variant.precision
    backends = {role: load_backend(f, **kw) for role, f in files.items()}
    log(f"[no_added_cost] {label} {variant.name}: timing {len(backends)} models x {rounds} rounds x {iters} iters")
    times = time_interleaved(backends, batch, iters, warmup, rounds)
    device = backends["plain"].describe()
    for b in backends.values():
        b.close()
    p50 = {k: float(np.percentile(v, 50)) for k, v in times.items()}
    rows = [{
        "pair": label, "variant": variant.name, "model": role, "device": device["device"],
        "runs_as": device["precision"],  # what the backend computes in (e.g. OpenVINO's bf16 on AVX512-BF16 CPUs)
        "threads": device["threads"], "size_MB": file_size(files[role]) / 1e6,
        "file": files[role].name if files[role].parent != copies else f"{COPIES}/{files[role].name}",
        "p50_ms": p50[role], "p90_ms": float(np.percentile(t, 90)),
        "BRD/plain": p50[role] / p50["plain"] if role != "teacher" else None,
    } for role, t in times.items()]
    ratio = p50["brd"] / p50["plain"]
    if abs(ratio - 1) > SAME_COST_TOLERANCE:
        notes.append(f"{label} {variant.name}: BRD/plain p50 ratio {ratio:.3f} is outside "
                     f"1 +/- {SAME_COST_TOLERANCE} (same graph, so this is timing noise; rerun with more --rounds)")
    return rows


def run_no_added_cost(pairs: list[tuple[str, Path, Path]], out_dir: Path, teacher: Path | None = None,
                      data_root: str | None = None, num_calib: int = 32, variants: list[str] | None = None,
                      iters: int = 50, warmup: int = 10, rounds: int = 4, threads: int | None = None,
                      models_dir: Path | None = None, log=print) -> dict:
    """Time every model in every available variant: the checked file in `models_dir` (named
    <pair>_<plain|brd><suffix>, teacher<suffix>) where it is there and newer than the checkpoint, else a timing
    copy built under <out_dir>/unchecked_timing_copies/ (copy_path); then compare and time them."""
    from export.data import synthetic_images
    from export.data import calibration_images

    check_pairs(pairs, teacher)  # before any export or timing
    out_dir = Path(out_dir)
    copies = out_dir / COPIES
    copies.mkdir(parents=True, exist_ok=True)
    chosen = [v for v in VARIANTS if variants is None or v.name in variants]
    cost_rows, latency_rows, notes = [], [], []
    for label, plain_ckpt, brd_ckpt in pairs:
        roles = {"plain": Path(plain_ckpt), "brd": Path(brd_ckpt)}
        if teacher:
            roles["teacher"] = Path(teacher)
        onnx_files, metas, names = _pair_onnx(label, roles, copies, models_dir, cost_rows)
        meta = metas["plain"]
        calib = (calibration_images(meta, data_root=data_root, num_calib=num_calib) if data_root
                 else synthetic_images(num_calib, meta["input_size"]))
        diffs = compare_structure(onnx_files["plain"], onnx_files["brd"])
        if diffs:  # timing two different graphs would answer another question
            raise GraphMismatch(f"pair {label}: the plain and BRD ONNX graphs differ ({diffs[0]}; "
                                f"{onnx_files['plain'].name} vs {onnx_files['brd'].name}), so no timing was done")
        notes.append(f"{label}: plain and BRD ONNX graphs are structurally identical "
                     "(same nodes, ops, attributes, initializer shapes, I/O)")
        h, w = meta["input_size"]
        batch = np.random.default_rng(0).standard_normal((1, 3, h, w)).astype(np.float32)
        for variant in chosen:
            files = _variant_files(label, variant, onnx_files, names, roles, copies, models_dir, calib, notes)
            if files is not None:
                latency_rows += _time_variant(label, variant, files, batch, copies, iters, warmup, rounds, threads,
                                              notes, log)
    return write_outputs(out_dir, cost_rows, latency_rows, notes)


def write_outputs(out_dir: Path, cost_rows, latency_rows, notes) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    md = ["# No added inference cost: plain vs BRD student", "",
          f"`file`: the checked model an exporter published, or `{COPIES}/...`, a copy this benchmark built for "
          "timing only (no parity check, no INT8 gate).", "",
          "## Model cost", "", markdown_table(cost_rows),
          "## Latency (interleaved, batch 1)", "", markdown_table(latency_rows),
          "## Notes", ""] + [f"- {n}" for n in notes] + [""]
    (out_dir / "table.md").write_text("\n".join(md))
    write_csv(cost_rows, out_dir / "cost.csv")
    write_csv(latency_rows, out_dir / "results.csv")
    if latency_rows:
        groups = list(dict.fromkeys(f"{r['pair']} {r['variant']}" for r in latency_rows))
        roles = list(dict.fromkeys(r["model"] for r in latency_rows))
        series = {role: [next((r["p50_ms"] for r in latency_rows if f"{r['pair']} {r['variant']}" == g
                               and r["model"] == role), 0.0) for g in groups] for role in roles}
        bar_chart(groups, series, out_dir / "latency.png", "p50 latency (ms)", "Plain vs BRD student: latency")
    (out_dir / "results.json").write_text(json.dumps(finite_json({"cost": cost_rows, "latency": latency_rows, "notes": notes}),
                                                     indent=1, allow_nan=False))
    return {"cost": cost_rows, "latency": latency_rows, "notes": notes, "table": out_dir / "table.md"}


@command
def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m benchmarks.speed.no_added_cost", description=__doc__, examples=(
        "python -m benchmarks.speed.no_added_cost --pair r10 runs/plain/model.pt runs/brd/model.pt",
        "python -m benchmarks.speed.no_added_cost --pair r10 plain.pt brd.pt --teacher teacher.pt --data-root data/synthetic",
        "python -m benchmarks.speed.no_added_cost --pair r10 plain.pt brd.pt --variants onnx-fp32,openvino-int8 --threads 2"))
    p.add_argument("--pair", nargs=3, action="append", required=True, metavar=("NAME", "PLAIN_PT", "BRD_PT"),
                   help="a plain and a BRD student of the same architecture (repeatable)")
    p.add_argument("--teacher", help="teacher checkpoint, timed for reference")
    p.add_argument("--out-dir", default="runs/no_added_cost", help="report folder (default runs/no_added_cost)")
    p.add_argument("--data-root", help="dataset root for INT8 calibration (default: synthetic images)")
    p.add_argument("--num-calib", type=positive_int, default=32, help="INT8 calibration images (default 32)")
    p.add_argument("--variants", help=f"comma list of {', '.join(v.name for v in VARIANTS)} (default: all available)")
    p.add_argument("--iters", type=positive_int, default=50, help="timed calls per model per round (default 50)")
    p.add_argument("--warmup", type=non_negative_int, default=10, help="untimed calls per model first (default 10)")
    p.add_argument("--rounds", type=positive_int, default=4, help="rounds, alternating which model goes first (default 4)")
    p.add_argument("--threads", type=positive_int, help="inference threads (default: the backend's)")
    p.add_argument("--models-dir", help="the exporters' published models to time (<pair>_plain.onnx, ... with their "
                   "parity records); what is missing is built as timing copies under --out-dir")
    args = p.parse_args(argv)
    unknown = set(args.variants.split(",")) - {v.name for v in VARIANTS} if args.variants else set()
    if unknown:
        p.error(f"argument --variants: unknown {', '.join(sorted(unknown))}")
    check_folder(args.out_dir, 0, "--out-dir")  # before the exports and timings: the report must have a place
    result = run_no_added_cost([(n, Path(a), Path(b)) for n, a, b in args.pair], Path(args.out_dir), args.teacher,
                               args.data_root, args.num_calib, args.variants.split(",") if args.variants else None,
                               args.iters, args.warmup, args.rounds, args.threads,
                               models_dir=Path(args.models_dir) if args.models_dir else None)
    print(result["table"].read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
