"""One case of the fault trial, as data (so the whole list can be printed, counted and tested), and the verdict
on what it did: `classify` is a pure function of the case and its `Outcome`.

Verdicts:
- clean: a documented exit code the case expects; for exit 2 (bad input) or 1 (a check failed) exactly one
  `error:` line, naming the file or key when the case says which; for 130/143 the `interrupted by` line of the
  signal sent; no traceback; nothing left behind (no new file or folder, no temporary name) unless the case
  documents it as kept (a resumable last.pt, a closed video), and every kept file loads or plays.
- not clean: anything else (another exit code, a hang, a traceback, no or several `error:` lines, an error line
  that does not name what was wrong, a file or folder left behind).
- data lost: a file that existed before the command (an input, an earlier output) changed or removed, or a file
  under a final name (not a temporary one) that does not load or play.
"""
from __future__ import annotations

import fnmatch
import re
import shlex
from dataclasses import dataclass, field

CLEAN, NOT_CLEAN, DATA_LOST = "clean", "not clean", "data lost"
# what libraries keep in TMPDIR across runs on their own (torch's compile cache): not a command's leftover
LIBRARY_CACHES = ("tmp/torchinductor_*",)
SIGNAL_CODES = {"SIGINT": 130, "SIGTERM": 143}


def _quote(arg: str) -> str:
    """Shell quoting that leaves $CASE and $FX to the shell (set them to the case's and fixtures' folders)."""
    return arg if re.fullmatch(r"[\w@%+=:,./$-]+", arg) else shlex.quote(arg)


@dataclass(frozen=True)
class Case:
    """`args` may hold `{c}` (the case's own folder, the command's working folder) and `{fx}` (the shared
    fixtures, read only). `setup` steps prepare the case folder before the command (see runner.SETUP);
    `trigger` + `action` act on the running command (a signal, a disk filled by another writer); `keep` are
    globs (relative to the case folder) of files the command may leave after a failure or an interrupt."""
    module: str
    kind: str                  # the family of fault (missing file, junk bytes, signal, ...)
    fault: str                 # what exactly is wrong, in words
    args: tuple
    expect: tuple = (2,)
    names: str = ""            # what the one error line must name (a file's name, a key, a flag)
    setup: tuple = ()
    trigger: tuple = ()        # ("after", s) | ("text", substring) | ("file", glob) | ("lines", path, n)
    action: tuple = ()         # ("signal", "SIGINT"|"SIGTERM") | ("fill", mount)
    keep: tuple = ()
    may_change: tuple = ()     # globs of files there before that a command which succeeds may rewrite
    timeout: float = 120.0

    @property
    def command(self) -> str:
        shown = [_quote(str(a).replace("{c}", "$CASE").replace("{fx}", "$FX")) for a in self.args]
        return f"python -m {self.module} {' '.join(shown)}".strip()

    @property
    def key(self) -> tuple:
        return self.module, self.fault

    @property
    def signal(self) -> str:
        return self.action[1] if self.action and self.action[0] == "signal" else ""


@dataclass
class Outcome:
    """What a case did. `rc` None: it did not end within its timeout (killed)."""
    rc: int | None
    stderr: str = ""
    new: list = field(default_factory=list)       # files and folders (ending in /) that were not there before
    changed: list = field(default_factory=list)   # files there before, changed or removed
    invalid: list = field(default_factory=list)   # files under a final name that do not load or play
    fired: bool = True                            # the trigger came (cases without one: True)
    seconds: float = 0.0
    note: str = ""


def error_lines(stderr: str) -> list[str]:
    return [ln.strip() for ln in stderr.replace("\r", "\n").splitlines() if ln.strip().startswith("error:")]


def interrupt_lines(stderr: str) -> list[str]:
    return [ln.strip() for ln in stderr.replace("\r", "\n").splitlines() if ln.strip().startswith("interrupted by")]


def is_temporary(rel: str) -> bool:
    """A name no reader mistakes for a result: hidden, .tmp, a writer's pid tag, a candidate."""
    name = rel.rstrip("/").rsplit("/", 1)[-1]
    return name.startswith(".") or name.endswith((".tmp", ".part")) or ".pid" in name or "candidate" in name


def kept(case: Case, rel: str) -> bool:
    """A new path the case allows (a folder is allowed when something kept lies in it)."""
    path = rel.rstrip("/")
    return any(fnmatch.fnmatch(path, g) or (rel.endswith("/") and g.startswith(path + "/")) for g in case.keep)


def library_cache(rel: str) -> bool:
    return any(fnmatch.fnmatch(rel.rstrip("/"), g) or fnmatch.fnmatch(rel, g + "/*") for g in LIBRARY_CACHES)


def _exit_reasons(case: Case, o: Outcome) -> list[str]:
    if o.rc is None:
        return [f"did not end within {case.timeout:.0f} s (killed)"]
    if o.rc < 0:
        return [f"killed by signal {-o.rc} (no handler: no message, outputs not closed)"]
    if o.rc not in case.expect:
        return [f"exit {o.rc}, expected {'/'.join(map(str, case.expect))}"]
    return []


def _message_reasons(case: Case, o: Outcome) -> list[str]:
    reasons = []
    if "Traceback (most recent call last)" in o.stderr:
        reasons.append("traceback on stderr")
    errors = error_lines(o.stderr)
    if o.rc in (1, 2):
        if len(errors) != 1:  # (worded without "<n> error", which reads as a test count)
            reasons.append("no `error:` line" if not errors else f"`error:` on {len(errors)} lines, not one")
        elif case.names and case.names not in errors[0]:
            reasons.append(f"the error line does not name {case.names!r}")
    if o.rc in (130, 143):
        said = interrupt_lines(o.stderr)
        if not said:
            reasons.append("no 'interrupted by' line")
        if case.signal and SIGNAL_CODES.get(case.signal) != o.rc:
            reasons.append(f"exit {o.rc} after {case.signal}")
    return reasons


def classify(case: Case, o: Outcome) -> tuple[str, list[str]]:
    """(verdict, reasons): see the module's docstring."""
    succeeded = o.rc == 0 and 0 in case.expect
    changed = [p for p in o.changed if not (succeeded and any(fnmatch.fnmatch(p, g) for g in case.may_change))]
    lost = [f"changed or removed: {', '.join(changed)}"] if changed else []
    if o.invalid:
        lost.append(f"does not load or play under its final name: {', '.join(o.invalid)}")
    reasons = [] if o.fired else ["the trigger never came: the command ended first"]
    reasons += _exit_reasons(case, o) + _message_reasons(case, o)
    left = [] if succeeded else [p for p in o.new if not kept(case, p) and not library_cache(p)]
    if left:
        temp = [p for p in left if is_temporary(p)]
        shown = ", ".join(left[:6]) + (f" and {len(left) - 6} more" if len(left) > 6 else "")
        reasons.append(f"left behind: {shown}" + (" (temporary names)" if len(temp) == len(left) else ""))
    verdict = DATA_LOST if lost else NOT_CLEAN if reasons else CLEAN
    return verdict, lost + reasons
