"""The model the runtime runs when `--model` is omitted: the real-time CamVid student shipped in the
repository's models/camvid_lite/ (an OpenVINO INT8 IR that passed its accuracy gate; its card is CARD), the
one of the shipped students that scores best on the held-out drive 0001TP. A person with a webcam or a street
video gets real segmentation out of the box."""
from __future__ import annotations

import os
from pathlib import Path

from .contract import UserError

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
DEFAULT = Path("camvid_lite") / "brd.int8.xml"
CARD = Path("camvid_lite") / "brd.md"
CHECKPOINT = Path("camvid_lite") / "brd.pt"  # the weights DEFAULT was exported from (benchmarks rebuild from them)


def models_dir(folder=None) -> Path:
    """The folder the shipped files are in: `folder`, else `BRD_EDGE_MODELS` (an installed package has no
    models/ folder next to it), else the repository's models/."""
    return Path(folder or os.environ.get("BRD_EDGE_MODELS") or MODELS_DIR)


def default_model(folder=None) -> Path:
    """The shipped model's path, or a one-line error saying how to get one."""
    path = models_dir(folder) / DEFAULT
    if not path.is_file():
        raise UserError("no --model given and no shipped model at {} (a source checkout has it; elsewhere set "
                        "BRD_EDGE_MODELS to a folder holding {}, or pass --model FILE)".format(path, DEFAULT))
    return path


def describe(path: Path, meta: dict) -> str:
    """One line: which model and what it was trained on, from the model's own metadata."""
    trained = ((meta.get("config") or {}).get("data") or {}).get("train_split")
    return "no --model given: using the shipped {} ({}, {} classes of {}{}; its card: {})".format(
        path, meta.get("arch", "?"), meta.get("num_classes", "?"), meta.get("dataset", "?"),
        ", trained on its {} frames".format(trained) if trained else "", path.parent.parent / CARD)
