"""Config files that name bases: `base: camvid_plain.yaml` (or a list) is read first, recursively, and the
file's own keys are merged over it deeply. Lists are replaced, not merged; a mapping that says `_replace_: true`
replaces the base's mapping whole (a new network's `model:` must not keep the base's architecture arguments).
A missing base or a cycle is one error naming the chain of files."""
from __future__ import annotations

from pathlib import Path

import yaml

from runtime import contract


class ConfigError(contract.ConfigError):
    """A bad config key or value; the message names the key and where it came from."""


# a mapping's key asking for it to replace the base's mapping instead of merging into it (mmengine's `_delete_`)
REPLACE = "_replace_"


def merge(base: dict, child: dict) -> dict:
    """`child` over `base`, deeply: mappings merge key by key (the child's keys win), anything else, lists
    included, is replaced whole (a child's `stages: [2, 3, 4]` is the list, not an addition to the base's).
    A child mapping with `_replace_: true` replaces the base's mapping whole; the marker itself is dropped."""
    out = dict(base)
    for k, v in child.items():
        if isinstance(v, dict):
            below = out.get(k) if isinstance(out.get(k), dict) and not v.get(REPLACE) else {}
            out[k] = merge(below, {kk: vv for kk, vv in v.items() if kk != REPLACE})
        else:
            out[k] = v
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
        return merge({}, data) if isinstance(data, dict) else data   # drops `_replace_` markers
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
