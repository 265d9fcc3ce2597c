"""What a model costs, independent of its weights: parameters, MACs, and the exported graph's structure."""
from __future__ import annotations

from pathlib import Path

from runtime.formats import format_for


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def network(model) -> dict:
    """The exact network a report is about: registry name, ResNet stem ('-' for a backbone without one) and
    parameter count (the same name is 13.6M or 18.1M parameters depending on the stem)."""
    stem = getattr(getattr(model, "backbone", None), "stem_type", None)
    return {"network": getattr(model, "arch", type(model).__name__), "stem": stem or "-", "params": count_params(model)}


def parse_arch(spec: str) -> tuple[str, dict]:
    """'deeplabv3_resnet18:stem=v1s,aspp=cirkd' -> ('deeplabv3_resnet18', {'stem': 'v1s', 'aspp': 'cirkd'})."""
    import yaml

    name, _, rest = spec.partition(":")
    kwargs = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ValueError(f"{spec!r}: expected NAME[:key=value,...], e.g. deeplabv3_resnet18:stem=v1s")
        kwargs[key.strip()] = yaml.safe_load(value)
    return name, kwargs


def count_macs(model, input_size) -> int:
    """Multiply-accumulates of one forward pass at (H, W), from torch's own FLOP counter (FLOPs / 2)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.eval()(torch.zeros(1, 3, *input_size))
    return counter.get_total_flops() // 2


def onnx_structure(path) -> dict:
    """Everything about an ONNX graph except its weight values: nodes in order (op, attributes,
    wiring), initializer names/shapes/dtypes, and input/output types."""
    import onnx
    from onnx import helper

    model = onnx.load(str(path))
    g = model.graph

    def value_info(v):
        t = v.type.tensor_type
        return (v.name, t.elem_type, tuple(d.dim_param or d.dim_value for d in t.shape.dim))

    def attr(a):
        value = helper.get_attribute_value(a)
        if isinstance(value, onnx.TensorProto):  # a Constant's payload is a weight: keep its shape only
            return (a.name, "tensor", tuple(value.dims), value.data_type)
        if isinstance(value, bytes):
            value = value.decode(errors="replace")
        return (a.name, repr(value))

    return {
        "nodes": [(n.op_type, tuple(n.input), tuple(n.output), tuple(attr(a) for a in n.attribute)) for n in g.node],
        "initializers": sorted((i.name, tuple(i.dims), i.data_type) for i in g.initializer),
        "inputs": [value_info(v) for v in g.input],
        "outputs": [value_info(v) for v in g.output],
        "opset": sorted((o.domain, o.version) for o in model.opset_import),
    }


def compare_structure(a, b) -> list[str]:
    """Differences between two ONNX graphs' structures ([] when identical)."""
    sa, sb = onnx_structure(a), onnx_structure(b)
    diffs = []
    for key in sa:
        if sa[key] != sb[key]:
            if isinstance(sa[key], list) and len(sa[key]) != len(sb[key]):
                diffs.append(f"{key}: {len(sa[key])} vs {len(sb[key])} entries")
            else:
                first = next((i for i, (x, y) in enumerate(zip(sa[key], sb[key])) if x != y), None)
                diffs.append(f"{key}[{first}]: {sa[key][first]} vs {sb[key][first]}")
    return diffs


def file_size(path) -> int:
    """Bytes on disk; an OpenVINO IR counts its .bin too."""
    path = Path(path)
    size = path.stat().st_size
    if format_for(path).name == "openvino" and path.with_suffix(".bin").exists():
        size += path.with_suffix(".bin").stat().st_size
    return size
