"""Config files that name bases: `base: camvid_plain.yaml` (or a list) is read first, recursively, and the
file's own keys are merged over it deeply. Lists are replaced, not merged; a mapping that says `_replace_: true`
replaces the base's mapping whole (a new network's `model:` must not keep the base's architecture arguments).
A missing base or a cycle is one error naming the chain of files.

Where a base is found (`_find_base`), for `base: NAME` in the file F:
1. NAME is a path relative to F's folder: that file, if it exists and is not F itself. A folder's own files
   come first, as in any include: a `camvid_plain.yaml` next to F is the base F names as `camvid_plain.yaml`,
   shipped config of that name or not (to extend the shipped one from such a folder, name the file itself:
   rule 2, or give its path).
2. Otherwise NAME is a shipped config (distill/configs/: `camvid_kd.yaml`, `camvid_kd`, `configs/camvid_kd.yaml`).
   This includes F naming itself: a user's own `camvid_kd.yaml` that says `base: camvid_kd.yaml` extends the
   shipped `camvid_kd.yaml` (not a cycle).
Never relative to the current folder: where a command runs from does not change what a config means.

A file is read as UTF-8 YAML; a key given twice in one mapping is an error naming the file, the key and its
lines (YAML loaders otherwise keep the last one silently).
"""
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


class DuplicateKey(yaml.YAMLError):
    def __init__(self, key: str, first: int, again: int):
        where = f"twice on line {first}" if first == again else f"on lines {first} and {again}"
        super().__init__(f"duplicate key {key!r} ({where}): give each key once")


def _refuse_duplicates(node, prefix: str = "", walked=None) -> None:
    """Walk a composed YAML node: a scalar key given twice in one mapping is a DuplicateKey naming its dotted
    path (`train.lr`). Merge keys (`<<`) are YAML's own way of taking keys again and are left alone."""
    walked = set() if walked is None else walked
    if id(node) in walked:  # an alias of a node walked already (or a recursive one)
        return
    walked.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen = {}
        for key_node, value in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key, line = f"{prefix}{key_node.value}", key_node.start_mark.line + 1
            if (key_node.tag, key_node.value) in seen:
                raise DuplicateKey(key, seen[key_node.tag, key_node.value], line)
            seen[key_node.tag, key_node.value] = line
            _refuse_duplicates(value, key + ".", walked)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _refuse_duplicates(item, f"{prefix[:-1]}[{i}]." if prefix else f"[{i}].", walked)


def load_yaml(text: str):
    """YAML text as yaml.safe_load reads it, a key given twice in one mapping refused (DuplicateKey, a
    yaml.YAMLError): safe_load would keep the last one silently."""
    _refuse_duplicates(yaml.compose(text, Loader=yaml.SafeLoader))
    return yaml.safe_load(text)


def _find_base(name: str, child: Path) -> Path | None:
    """The file `base: name` in `child` means (the module docstring's rule): a path relative to the child's
    folder that is not the child itself, else a shipped config's name, else None."""
    from .configs import shipped

    near = child.parent / name
    if near.is_file() and near.resolve() != child.resolve():
        return near
    return shipped(name)


def read_with_bases(path: Path, chain: tuple[Path, ...] = ()) -> dict:
    """The YAML mapping of `path` merged over its `base:` (one name or a list, merged in order, later bases
    winning), recursively. A missing base or a cycle is one error naming the chain."""
    chain = (*chain, path.resolve())
    shown = " -> ".join(p.name for p in chain)
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except DuplicateKey as e:
        raise ConfigError(f"{path}: {e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a YAML text file (byte {e.start} is not UTF-8: {e.reason}); "
                          f"chain: {shown}") from None
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
            where = ("it is this file's own name: a shipped config of that name" if (path.parent / name).is_file()
                     else "next to it or among the shipped configs")
            raise ConfigError(f"{path}: base {name!r} not found ({where}); chain: {shown} -> {name}")
        if found.resolve() in chain:
            raise ConfigError(f"{path}: base cycle: {shown} -> {found.name}")
        parent = read_with_bases(found, chain)
        if not isinstance(parent, dict):
            raise ConfigError(f"{found}: a base config must be a mapping (chain: {shown} -> {found.name})")
        merged = merge(merged, parent)
    return merge(merged, data)
