"""Per-stage latency (p50/p90/p99) and frame counters for the loop and the bench."""
from __future__ import annotations

import json
import time

import numpy as np

from .contract import write_json_file

# capture_wait: time read() waited for the frame (decode, for files); infer: submit to result;
# sink: overlay + show/write; total: frame read -> sink done, queueing between stages included.
STAGES = ("capture_wait", "preprocess", "infer", "postprocess", "sink", "total")
# CPU time of the work outside the model, per stage, from the CPU clock of the thread that does it
# (time.thread_time): what the loop costs whatever else runs on the machine. decode: the source's
# reads (its capture thread for live sources); overlay: drawing; sink: showing/encoding/writing.
CPU_STAGES = ("decode", "preprocess", "postprocess", "overlay", "sink")


def time_calls(fn, iters, warmup=0):
    """The one timing loop: `warmup` untimed calls of fn(), then `iters` timed ones; their durations in
    seconds (time.perf_counter around each call)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def percentiles(values_s):
    """Seconds -> dict of milliseconds (p50/p90/p99/mean/max), or {} when there is nothing."""
    if len(values_s) == 0:
        return {}
    ms = np.asarray(values_s, np.float64) * 1000.0
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "mean": float(ms.mean()),
            "max": float(ms.max()), "n": int(ms.size)}


class Stats:
    """Per-frame stage times (seconds) and counts. One writer per stage; the summary is read at the
    end or by the periodic printer (list appends are atomic under the GIL)."""

    def __init__(self, stages=STAGES):
        self.stages = tuple(stages)
        self.samples = {s: [] for s in self.stages}
        self.processed = 0   # frames that went through the whole loop
        self.skipped = 0     # frames that could not be decoded/read
        self.dropped = 0     # live frames replaced by a newer one before the loop took them
        self.reconnects = 0
        self.stalls = 0      # live sources found stalled (no frame for --stall-timeout s), then reconnected
        self.ended = None
        self.cpu_s = {s: 0.0 for s in CPU_STAGES}  # thread CPU seconds per stage, summed over the frames
        self.process_cpu_s = None  # the whole process's CPU seconds over the loop (every thread)
        self.start_cpu()
        self.start()

    def add(self, stage, seconds):
        self.samples[stage].append(seconds)

    def add_cpu(self, stage, seconds):
        self.cpu_s[stage] += seconds  # one writer per stage

    def start_cpu(self):
        """The process's CPU clock starts here (before the first frame is read, which the loop counts)."""
        self._cpu0 = time.process_time()

    def start(self):
        self.started = time.perf_counter()
        self._mark = (self.started, 0, {s: 0 for s in self.stages})

    def end(self):
        self.ended = time.perf_counter()
        self.process_cpu_s = time.process_time() - self._cpu0

    def cpu_ms_per_frame(self):
        """Per stage, and `process`: the process's CPU over the loop (model threads, codec helper threads
        and Python included; CLOCK_PROCESS_CPUTIME_ID sums every thread) per processed frame. `process`
        minus the backend's CPU per call (runtime.bench's `cpu_ms_per_iter`) is the loop's own cost."""
        n = max(self.processed, 1)
        out = {s: v * 1000.0 / n for s, v in self.cpu_s.items()}
        out["outside_model"] = sum(out.values())
        cpu = self.process_cpu_s if self.process_cpu_s is not None else time.process_time() - self._cpu0
        out["process"] = cpu * 1000.0 / n
        return out

    def elapsed(self):
        return (self.ended or time.perf_counter()) - self.started

    def summary(self):
        wall = self.elapsed()
        return {
            "frames": {"processed": self.processed, "skipped": self.skipped, "dropped": self.dropped,
                       "reconnects": self.reconnects, "stalls": self.stalls},
            "wall_s": wall, "fps": self.processed / wall if wall > 0 else 0.0,
            "latency_ms": {s: percentiles(self.samples[s]) for s in self.stages},
            "cpu_ms_per_frame": self.cpu_ms_per_frame(),
        }

    def recent(self):
        """The summary of the frames since the previous call (for --stats-every)."""
        now = time.perf_counter()
        t0, n0, idx = self._mark
        self._mark = (now, self.processed, {s: len(self.samples[s]) for s in self.stages})
        return {"frames": self.processed - n0, "fps": (self.processed - n0) / max(now - t0, 1e-9),
                "latency_ms": {s: percentiles(self.samples[s][idx[s]:]) for s in self.stages}}

    def absorb(self, parts):
        """Add the frames, samples and stage CPU of `parts` (other Stats: the streams of one run) to these
        totals; the wall and process CPU clocks stay this object's own (the whole run's)."""
        for part in parts:
            for stage in self.stages:
                self.samples[stage].extend(part.samples.get(stage, ()))
            for stage, seconds in part.cpu_s.items():
                self.cpu_s[stage] = self.cpu_s.get(stage, 0.0) + seconds
            self.processed += part.processed
            self.skipped += part.skipped
            self.dropped += part.dropped
            self.reconnects += part.reconnects
            self.stalls += getattr(part, "stalls", 0)
        return self

    def write_json(self, path, extra=None):
        out = dict(extra or {})
        out.update(self.summary())
        write_json_file(path, out)  # atomic, strict JSON (NaN -> null with the reason beside it)


def table(latency_ms, title=""):
    """Stage | p50 | p90 | p99 | mean in milliseconds, as plain text."""
    lines = [title] if title else []
    lines.append("{:<14}{:>9}{:>9}{:>9}{:>9}{:>7}".format("stage (ms)", "p50", "p90", "p99", "mean", "n"))
    for stage, p in latency_ms.items():
        if p:
            lines.append("{:<14}{:>9.2f}{:>9.2f}{:>9.2f}{:>9.2f}{:>7d}".format(
                stage, p["p50"], p["p90"], p["p99"], p["mean"], p["n"]))
    return "\n".join(lines)


def format_summary(summary, backend=None):
    f = summary["frames"]
    head = "{} frames in {:.2f} s = {:.1f} FPS (skipped {}, dropped {}, reconnects {})".format(
        f["processed"], summary["wall_s"], summary["fps"], f["skipped"], f["dropped"], f["reconnects"])
    if backend:
        head = "{} | {} {} on {} ({} threads)\n".format(
            backend.get("model"), backend.get("backend"), backend.get("precision"), backend.get("device"),
            backend.get("threads")) + head
    text = head + "\n" + table(summary["latency_ms"])
    cpu = summary.get("cpu_ms_per_frame")
    if cpu and f["processed"]:
        text += "\nCPU per frame outside the model {:.2f} ms ({}); the whole process {:.2f} ms".format(
            cpu["outside_model"], ", ".join("{} {:.2f}".format(s, cpu[s]) for s in CPU_STAGES), cpu["process"])
    return text
