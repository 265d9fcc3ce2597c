"""benchmarks.speed.streams: a tiny real run (the real runtime.run with one and two --source, the real
benchmark_app ceiling, two repeats) on a small IR exported here, and its report's arithmetic. No speed is
asserted: the figures are the machine's; what is checked is that they are read, added up, paired within a
repeat, summarised over the repeats and written consistently."""
from __future__ import annotations

import csv
import statistics
import subprocess

import pytest

from .conftest import write_student


@pytest.fixture(scope="module")
def tiny_ir(tmp_path_factory):
    from export.onnx import torch_to_onnx
    from export.openvino import onnx_to_openvino

    d = tmp_path_factory.mktemp("streams_model")
    onnx = torch_to_onnx(write_student(d / "s.pt", input_size=(32, 64)), d / "s.onnx", simplify=False)
    return onnx_to_openvino(onnx, d / "s.xml"), onnx


def _csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def report(tiny_ir, tmp_path_factory):
    """One run: 1 and 2 streams of a 48x64 video through the tiny IR and its ONNX, about half a second each,
    two repeats. (every run's row, the per-count summary rows, the markdown)"""
    from benchmarks.speed.streams import main

    ir, onnx = tiny_ir
    d = tmp_path_factory.mktemp("streams_run")
    argv = ["--model", str(ir), "--onnx", str(onnx), "--backends", "openvino", "onnxruntime", "--streams", "1", "2",
            "--sizes", "48x64", "--seconds", "0.5", "--repeats", "2", "--work-dir", str(d / "work"),
            "--out-dir", str(d / "out")]
    assert main(argv) == 0
    out = d / "out"
    return _csv(out / "streams_runs.csv"), _csv(out / "streams.csv"), (out / "streams.md").read_text()


def test_every_backend_count_and_repeat_has_its_run_with_consistent_totals(report):
    rows, _, _ = report
    assert sorted((r["backend"], r["source_hw"], int(r["streams"]), int(r["repeat"])) for r in rows) == [
        (b, "48x64", n, rep) for b in ("onnxruntime", "openvino") for n in (1, 2) for rep in (0, 1)]
    for r in rows:
        n, per_stream = int(r["streams"]), int(r["frames_per_stream"])
        frames = [int(f) for f in r["stream_frames"].split(";")]
        fps = [float(f) for f in r["stream_fps"].split(";")]
        assert len(frames) == len(fps) == n
        assert frames == [per_stream] * n and int(r["frames"]) == sum(frames)  # every stream ran to --max-frames
        assert float(r["total_fps"]) == pytest.approx(int(r["frames"]) / float(r["wall_s"]), rel=0.01)
        assert float(r["stream_fps_mean"]) == pytest.approx(sum(fps) / n, abs=0.011)
        assert float(r["stream_fps_min"]) == pytest.approx(min(fps), abs=0.006)
        # each stream's frames over no more than the run's wall time (plus rounding)
        assert min(fps) >= per_stream / float(r["wall_s"]) * 0.99
        assert float(r["p99_ms"]) > 0 and float(r["process_cpu_ms"]) >= float(r["outside_cpu_ms"]) > 0
        assert float(r["cpu_decode_ms"]) > 0 and float(r["cpu_overlay_ms"]) == 0  # bare: no overlay drawn
        assert r["compute"] == "f32"


def test_each_runs_ratios_pair_it_with_its_own_repeats_one_stream_and_ceiling(report):
    rows, _, _ = report
    for backend in ("openvino", "onnxruntime"):
        for rep in (0, 1):
            sel = {int(r["streams"]): r for r in rows if r["backend"] == backend and int(r["repeat"]) == rep}
            ceilings = {r["ceiling_fps"] for r in sel.values()}
            assert len(ceilings) == 1 and float(ceilings.pop()) > 0  # one ceiling per repeat, shared by its counts
            for r in sel.values():
                assert r["ceiling_compute"] == "f32"  # same precision as the runs
                assert float(r["ceiling_ratio"]) == pytest.approx(float(r["total_fps"]) / float(r["ceiling_fps"]),
                                                                  abs=0.002)
            assert float(sel[1]["vs_1_stream"]) == 1.0
            assert float(sel[2]["vs_1_stream"]) == pytest.approx(
                float(sel[2]["total_fps"]) / float(sel[1]["total_fps"]), abs=0.002)
        # run lengths are set once (the probe, then the first repeat's): every repeat of a count runs as long
        for n in ("1", "2"):
            assert len({r["frames_per_stream"] for r in rows if (r["backend"], r["streams"]) == (backend, n)}) == 1


def test_each_counts_row_is_the_median_of_its_repeats_and_lists_their_paired_values(report):
    rows, summary, text = report
    assert sorted((r["backend"], int(r["streams"])) for r in summary) == [
        ("onnxruntime", 1), ("onnxruntime", 2), ("openvino", 1), ("openvino", 2)]
    for s in summary:
        runs = sorted((r for r in rows if r["backend"] == s["backend"] and r["streams"] == s["streams"]),
                      key=lambda r: int(r["repeat"]))
        assert int(s["repeats"]) == len(runs) == 2
        for key in ("total_fps", "ceiling_fps", "ceiling_ratio", "vs_1_stream"):
            each = [float(r[key]) for r in runs]
            # the per-repeat values, in repeat order, and their median (for the ratios: of the paired ratios)
            assert [float(v) for v in s[f"{key}_repeats"].split(";")] == pytest.approx(each, abs=1e-9)
            assert float(s[key]) == pytest.approx(statistics.median(each), abs=0.0006)
        total = [float(r["total_fps"]) for r in runs]
        assert float(s["total_fps_min"]) == min(total) and float(s["total_fps_max"]) == max(total)
        for key in ("p99_ms", "stream_fps_mean", "outside_cpu_ms", "frames_per_stream"):
            assert float(s[key]) == pytest.approx(statistics.median(float(r[key]) for r in runs), abs=0.0006)
    two = next(s for s in summary if s["backend"] == "openvino" and s["streams"] == "2")
    # the target's value and its per-repeat values, as the md states them
    assert (f"2 streams / 1 stream, total FPS = {float(two['vs_1_stream']):.3g} (median of 2 paired repeats, each: "
            f"{two['vs_1_stream_repeats'].replace(';', ', ')}; goal >= 1.25)") in text


def test_the_markdown_has_the_command_commit_machine_and_target_lines(report):
    _, _, text = report
    commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert "Made by `python -m benchmarks.speed.streams --model " in text and "--streams 1 2 --sizes" in text
    assert "--repeats 2" in text and "2 repeats, each running every count of a size and then its ceiling" in text
    assert f"at commit `{commit}`" in text
    assert "avx512_bf16" in text and "amx_bf16" in text  # said present or absent, either way
    header = text.split("## Each count (medians over the repeats)")[1].strip().splitlines()[0]
    assert "| total_fps | total_fps_min | total_fps_max |" in header
    assert "| ceiling_fps | ceiling_ratio | vs_1_stream |" in header
    paired = text.split("## Each repeat's paired figures (repeat order)")[1].strip().splitlines()[0]
    assert "| total_fps_repeats | ceiling_fps_repeats | ceiling_ratio_repeats | vs_1_stream_repeats |" in paired
    # two streams vs one: judged (PASS or FAIL, never asserted here); the 360x480 ceiling target: not measured
    assert text.count("2 streams / 1 stream, total FPS = ") == 2
    assert "NOT MEASURED: total FPS / throughput ceiling" in text and "not the shipped student" in text


def test_the_summary_takes_medians_of_the_paired_ratios_not_ratios_of_medians():
    from benchmarks.speed.streams_report import summarise, targets

    one, two = (40.0, 50.0, 60.0), (50.0, 55.0, 90.0)  # paired 2/1: 1.25, 1.1, 1.5; medians' ratio 55/50 = 1.1
    runs = [{"backend": "openvino", "source_hw": "360x480", "streams": n, "repeat": rep, "total_fps": fps,
             "ceiling_fps": c, "ceiling_ratio": round(fps / c, 3), "vs_1_stream": round(fps / one[rep], 3),
             "compute": "f32"}
            for n, totals in ((1, one), (2, two)) for rep, (fps, c) in enumerate(zip(totals, (80.0, 100.0, 60.0)))]
    summary = {r["streams"]: r for r in summarise(runs)}
    assert summary[2]["vs_1_stream"] == 1.25 and summary[2]["vs_1_stream_repeats"] == "1.25;1.1;1.5"
    assert summary[2]["total_fps"] == 55.0 and (summary[2]["total_fps_min"], summary[2]["total_fps_max"]) == (50, 90)
    assert summary[2]["ceiling_ratio"] == 0.625 and summary[2]["ceiling_ratio_repeats"] == "0.625;0.55;1.5"
    assert summary[1]["ceiling_fps"] == 80.0 and summary[1]["repeats"] == 3 and summary[1]["compute"] == "f32"
    got = {c["target"]: (c["value"], c["per_repeat"], c["met"]) for c in targets(list(summary.values()))}
    assert got["2 streams / 1 stream, total FPS"] == (1.25, "1.25;1.1;1.5", True)
    assert got["total FPS / throughput ceiling, best at 2 streams"] == (0.625, "0.625;0.55;1.5", False)


def test_targets_are_judged_on_the_rows():
    from benchmarks.speed.streams_report import targets, verdict_lines

    rows = [{"backend": "openvino", "source_hw": "360x480", "streams": n, "vs_1_stream": g, "ceiling_ratio": c}
            for n, g, c in ((1, 1.0, 0.5), (2, 1.3, 0.65), (4, 1.6, 0.82), (8, 1.5, 0.75))]
    rows += [{"backend": "openvino", "source_hw": "720x1280", "streams": n, "vs_1_stream": g, "ceiling_ratio": None}
             for n, g in ((1, 1.0), (2, 1.1))]
    got = {(c["source_hw"], c["target"]): (c["value"], c["met"]) for c in targets(rows)}
    assert got[("360x480", "2 streams / 1 stream, total FPS")] == (1.3, True)
    assert got[("720x1280", "2 streams / 1 stream, total FPS")] == (1.1, False)
    assert got[("360x480", "total FPS / throughput ceiling, best at 4 streams")] == (0.82, True)
    lines = verdict_lines(targets(rows), {"openvino": "the shipped CamVid student"})
    assert lines[0].startswith("PASS: 2 streams") and "the shipped CamVid student" in lines[0]
    assert sum(line.startswith("FAIL") for line in lines) == 1


def test_the_loop_report_shows_the_throughput_ceiling_beside_the_bench(tiny_ir, tmp_path, monkeypatch):
    """benchmarks.speed.loop on an IR runs benchmark_app -hint throughput too (the ceiling), at bench's compute
    precision, and its report gives each loop's ratio to it and says what a loop / bench ratio above 1 meant."""
    import cv2
    import numpy as np

    from benchmarks.speed import loop
    from benchmarks.speed.loop_report import write_report

    monkeypatch.setattr(loop, "APP_SECONDS", 1)
    video = tmp_path / "v.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 32))
    for i in range(6):
        writer.write(np.full((32, 64, 3), 20 * i, np.uint8))
    writer.release()
    ir, _ = tiny_ir
    rows = loop.measure(ir, video, repeats=1, frames=4, iters=3, threads=1, shape=(32, 64), report=lambda _: None,
                        bench_seconds=0.2)
    by = {r["run"]: r for r in rows}
    assert {"bench", "loop_bare", "loop_full", "bench_app", "bench_app_default", "ceiling"} == set(by)
    assert by["ceiling"]["compute"] == by["bench"]["compute"] == "f32" and by["ceiling"]["fps"] > 0
    text = write_report(rows, ir, video, 4, 1, tmp_path / "out", ["--repeats", "1"], name="t").read_text()
    header = text.split("## Each repeat")[1].strip().splitlines()[0]
    assert "ceiling_fps" in header and "loop_bare_ceiling_ratio" in header and "loop_full_ceiling_ratio" in header
    assert "loop_bare FPS / throughput ceiling FPS" in text
    assert "ratio above 1" in text and "the throughput ceiling" in text
