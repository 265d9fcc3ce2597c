"""The shipped configs (package data, so they exist wherever BRD Edge is installed) and name lookup.

`resolve("cityscapes.yaml")` -> this folder's file. An existing path always wins, so a user's own
`configs/cityscapes.yaml` or `my/run.yaml` is read as given. A bare name that is not a file
(`cityscapes`, `cityscapes.yaml`), or `configs/NAME.yaml` outside the repository (the form the docs use),
is looked up here. Any other missing path stays missing: a mistyped folder must not silently become
a shipped config.
"""
from __future__ import annotations

from pathlib import Path

SHIPPED = Path(__file__).resolve().parent


def names() -> list[str]:
    """File names of the shipped configs."""
    return sorted(p.name for p in SHIPPED.glob("*.yaml"))


def resolve(path: str | Path) -> Path | None:
    """The file `path` names: itself if it exists, else the shipped config of that name, else None."""
    path = Path(path)
    if path.is_file():
        return path
    return shipped(path)


def shipped(name: str | Path) -> Path | None:
    """The shipped config `name` means (`camvid`, `camvid.yaml`, `configs/camvid.yaml`), whatever the current
    folder holds; None for any other name."""
    name = Path(name)
    if str(name.parent) not in (".", "configs"):
        return None
    found = SHIPPED / (name.name if name.suffix in (".yaml", ".yml") else name.name + ".yaml")
    return found if found.is_file() else None
