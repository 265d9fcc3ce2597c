"""Outputs checked before the work, written atomically, as strict JSON; leftovers of killed writers removed;
the sha256 by which a record names the bytes of a file it describes.

Temporary files and work folders carry the writer's pid (`.name.pid<N>.*.tmp`, `brd-export-pid<N>-*`), so
the next start of a command removes those of dead processes (`clean_stale`).
"""
import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from .errors import OutputError

MIN_FREE_BYTES = 1 << 20  # below this a write is refused before it starts (and a video sink stops)


def check_output(path, need_bytes=0, what="output"):
    """Fail before any work if `path` cannot be written: its folder is made (and removed again if the command
    fails while it is empty: make_folder), a probe file is created and
    removed there (root ignores permission bits, so os.access would lie on a read-only mount), and the
    free space must cover `need_bytes` plus a margin. Returns the Path."""
    path = Path(path)
    if path.is_dir():
        raise OutputError("{}: {} is a folder, expected a file name".format(path, what))
    folder = path.parent if str(path.parent) else Path(".")
    check_folder(folder, need_bytes, what, path)
    return path


_MADE = []  # folders make_folder created in this process: a command that fails removes those left empty


def make_folder(folder):
    """`folder.mkdir(parents=True, exist_ok=True)`, remembering the folders it creates, so that a command that
    then fails leaves no empty folder behind (remove_made_folders, called by `command`)."""
    folder = Path(folder)
    missing, p = [], folder
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    _MADE.extend(missing)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def remove_made_folders(keep=False):
    """Remove the folders make_folder created that are still empty, deepest first (a folder the command wrote
    into stays, with its parents); with `keep`, only forget them (the command succeeded)."""
    made = sorted(set(_MADE), key=lambda p: len(p.parts), reverse=True)
    del _MADE[:]
    for p in made if not keep else ():
        try:
            p.rmdir()
        except OSError:  # not empty, or gone
            pass


def check_folder(folder, need_bytes=0, what="output", name=None):
    folder = Path(folder)
    name = name or folder
    try:
        make_folder(folder)
        clean_stale(folder, ".brd-probe-pid*")  # a probe whose writer was killed between making and removing it
        fd, probe = tempfile.mkstemp(prefix=".brd-probe-{}-".format(pid_tag()), dir=str(folder))
        try:  # removed however this ends: a Ctrl-C here left it behind (found by the fault trial)
            os.close(fd)
        finally:
            os.unlink(probe)
    except OSError as e:
        raise OutputError("{}: {} cannot be written ({})".format(name, what, e.strerror or e)) from None
    free = shutil.disk_usage(str(folder)).free
    if free < need_bytes + MIN_FREE_BYTES:
        raise OutputError("{}: {} needs about {:.1f} MB but only {:.1f} MB are free on that disk".format(
            name, what, (need_bytes + MIN_FREE_BYTES) / 1e6, free / 1e6))
    return folder


@contextlib.contextmanager
def atomic_path(out, suffix=None):
    """The one atomic write: yield a temporary path next to `out`, named `.<name>.pid<N>.<random>.tmp<suffix>`
    (`suffix` defaults to out's and moves to the end, for writers that go by it: `.m.pid7.x.tmp.onnx`;
    `suffix=""` keeps the whole name: `.last.pt.pid7.x.tmp`; the pid lets a later run remove a killed
    run's leftover, see clean_stale). When the block succeeds the file is flushed to disk and renamed to
    `out`; however it ends otherwise, it is removed and an older `out` stays intact."""
    out = Path(out)
    suffix = out.suffix if suffix is None else suffix
    base = out.name[:-len(suffix)] if suffix and out.name.endswith(suffix) else out.name
    fd, tmp = tempfile.mkstemp(prefix=".{}.{}.".format(base, pid_tag()), suffix=".tmp" + suffix,
                               dir=str(out.parent))
    os.close(fd)
    os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; the result should look like any new file
    tmp = Path(tmp)
    try:
        yield tmp
        fd = os.open(str(tmp), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(str(tmp), str(out))
    finally:
        if tmp.exists():
            tmp.unlink()


def current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json_file(path, obj, sort_keys=False):
    """Write JSON atomically (atomic_path); an OSError (disk full, read-only) becomes an OutputError
    naming the path and leaves no partial file. Strict JSON: NaN and Infinity are written as null,
    with the reason beside them (finite_json)."""
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(finite_json(obj), indent=2, sort_keys=sort_keys, allow_nan=False) + "\n")
    except OSError as e:
        if isinstance(e, OutputError):
            raise
        raise OutputError("{}: cannot write it ({})".format(path, e.strerror or e)) from None
    return path


NULL_NOTE = "_null"  # the key beside a value written as null: why it is null


def _non_finite(v):
    return isinstance(v, float) and (v != v or v in (float("inf"), float("-inf")))


def _why(v):
    return "NaN: not measurable here (no pixel to measure it on)" if v != v else "{}: not finite".format(v)


def finite_json(obj):
    """`obj` with every NaN/Infinity float replaced by None (strict JSON has neither). In a mapping, key
    `k` so replaced gets a key `k_null` beside it saying why (for a list: which entries and why), unless the
    caller already put one there."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            out[k] = finite_json(v)
            note = "{}{}".format(k, NULL_NOTE)
            if note in obj:
                continue
            if _non_finite(v):
                out[note] = _why(v)
            elif isinstance(v, (list, tuple)):
                bad = [i for i, x in enumerate(v) if _non_finite(x)]
                if bad:
                    out[note] = "entries {} are null: {}".format(bad, _why(v[bad[0]]))
        return out
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    if _non_finite(obj):
        return None
    return obj


def clean_stale(folder, pattern, max_age_without_pid=None):
    """Remove leftovers of killed runs: files/folders matching `pattern` whose name carries the pid
    (`...-pid<N>-...`) of a process that no longer exists; with `max_age_without_pid` (seconds), also
    those without a pid (written before names carried one) untouched for that long. Returns the removed paths."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    now = time.time()
    for p in folder.glob(pattern):
        pid = _pid_in(p.name)
        if pid is None:
            try:
                old = max_age_without_pid is not None and now - p.stat().st_mtime > max_age_without_pid
            except OSError:
                old = False
            if not old:
                continue
        elif pid == os.getpid() or _alive(pid):
            continue
        try:
            shutil.rmtree(str(p)) if p.is_dir() and not p.is_symlink() else p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed


def sha256_file(path):
    """The hex sha256 of a file's bytes, read in 1 MiB blocks (a model file may be large)."""
    h = hashlib.sha256()
    with open(str(path), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def pid_tag():
    return "pid{}".format(os.getpid())


def _pid_in(name):
    for part in name.replace(".", "-").split("-"):
        if part.startswith("pid") and part[3:].isdigit():
            return int(part[3:])
    return None


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
