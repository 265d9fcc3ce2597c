"""The INT8 accuracy gate as every exporter applies it: its flags, what a candidate's metadata says before the
gate (the limits it is judged by, `passed: null`), and the verdict written into the metadata after it. The
gate itself (FP32 and INT8 scored on labelled val data) is export.quantize.accuracy_gate.

Python 3.8 compatible and torch-free (export.trt imports it on JetPack).
"""
from pathlib import Path

from runtime.contract import ExportError, finite_float

from .metadata import model_meta, set_model_meta

GATE_RECORD = ".gate.json"  # the gate's record next to the model file it judged: <model>.gate.json

NO_GATE = ("INT8 is published only after its accuracy gate on labelled validation data: pass --data-root DIR "
           "(the dataset the model was trained on; its val split is scored, --dataset NAME if the model does not "
           "say), or --no-gate to publish it unchecked")


def add_gate_args(p):
    """The INT8 gate's flags, the same in export.quantize, export.openvino and export.trt (export.openvino's
    --compute bf16 is gated by them too)."""
    p.add_argument("--max-drop", type=finite_float, default=1.0,
                   help="accuracy gate: max mIoU drop in points (default 1.0; negative: INT8 must beat FP32 by that much)")
    p.add_argument("--max-boundary-drop", type=finite_float, default=1.0,
                   help="accuracy gate: max boundary-F1 drop in points (default 1.0)")
    p.add_argument("--no-gate", action="store_true",
                   help="publish INT8 without the accuracy gate (no labelled data): its metadata records "
                        "\"gate\": null and the runtime warns when it loads it")


def require_gate(args):
    """Before any work: INT8 needs labelled validation data (--data-root) unless --no-gate says otherwise."""
    if not getattr(args, "no_gate", False) and not getattr(args, "data_root", None):
        raise ExportError(NO_GATE)


def gate_record(args, out=None):
    """What an INT8 candidate's metadata says about its gate before the gate has run (export.gate): the
    limits it is judged by and `passed: null` (not judged yet); None with --no-gate (the runtime then warns
    on load). The verdict is written after the gate, under the name the model is kept as (seal_gate, from
    export.publish.publish)."""
    if getattr(args, "no_gate", False):
        return None
    return {"max_drop": args.max_drop, "max_boundary_drop": args.max_boundary_drop, "split": "val", "passed": None}


# what the metadata's gate section copies from the gate's report
VERDICT_KEYS = ("passed", "max_drop", "max_boundary_drop", "drop", "boundary_f1_drop", "fp32_miou", "int8_miou",
                "bf16_miou", "compute", "images")


def seal_gate(path, final_name, report=None, not_run=None):
    """Write the gate's verdict into the metadata of the model file at `path`, after the gate: export.gate
    gets `passed` and the numbers of `report` (the gate's record, <model>.gate.json) and names the record
    the model is kept with (`final_name` + .gate.json); without a report (the gate never ran: `not_run`
    says why) it says passed: false. Only the metadata changes: an IR's weights (.bin) are checked to be
    byte-identical. Returns the gate section written."""
    meta = model_meta(path)
    export = meta.setdefault("export", {})
    gate = dict(export.get("gate") or {})
    if report is not None:
        gate.update({k: report[k] for k in VERDICT_KEYS if k in report})
        gate.update(passed=bool(report["passed"]), report=Path(str(final_name) + GATE_RECORD).name)
    else:
        gate.update(passed=False, report=None, not_run=not_run or "the gate did not run")
    export["gate"] = gate
    set_model_meta(path, meta)
    return gate
