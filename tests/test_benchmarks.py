"""Benchmark building blocks: the structural-identity check behind "no added inference cost"."""
from __future__ import annotations

import statistics

import pytest
import torch

from benchmarks.speed.model_cost import compare_structure, count_macs, count_params, file_size
from distill import checkpoint
from export.onnx import torch_to_onnx

from . import trees
from .conftest import write_student


@pytest.fixture(scope="module")
def onnx_pair(tmp_path_factory, trained_plain, trained_brd):
    """The ONNX exports of a plain-trained and a BRD-trained student (real 40-step trainings, tests/conftest.py),
    and of a student of another architecture."""
    d = tmp_path_factory.mktemp("pair")
    a = torch_to_onnx(trained_plain["plain"], d / "plain.onnx")
    b = torch_to_onnx(trained_brd, d / "brd.onnx")
    c = torch_to_onnx(write_student(d / "mbv2.pt", arch="lraspp_mobilenetv2_w035"), d / "mbv2.onnx")
    return a, b, c


def test_plain_and_brd_trained_students_have_identical_graphs(onnx_pair, trained_plain, trained_brd):
    """BRD's training adds losses and, here, a relation connector; none of it may reach the exported student.
    Both runs start from the same seeded weights; their trainings took different paths (the weights differ),
    and their graphs are the same node for node."""
    plain, brd, other = onnx_pair
    training = checkpoint.load_training(trained_brd.parent / "last.pt")
    assert any(k.startswith("connectors.") for k in training["connectors"])  # BRD trained a connector
    distill = training["config"]["distill"]
    assert distill["kd"]["weight"] > 0 and distill["boundary"]["weight"] > 0 and distill["relation"]["weight"] > 0
    a, b = (checkpoint.load(p)[0].state_dict() for p in (trained_plain["plain"], trained_brd))
    assert a.keys() == b.keys() and any(not torch.equal(a[k], b[k]) for k in a)  # the weights really differ
    assert compare_structure(plain, brd) == []
    assert file_size(plain) == pytest.approx(file_size(brd), rel=0.01)
    diffs = compare_structure(plain, other)
    assert diffs and any(d.startswith("nodes") for d in diffs)


def test_macs_and_params_depend_on_arch_not_weights(tmp_path):
    a, _ = checkpoint.load(write_student(tmp_path / "a.pt", seed=1))
    b, _ = checkpoint.load(write_student(tmp_path / "b.pt", seed=2))
    assert count_params(a) == count_params(b) > 0
    macs = count_macs(a, (64, 128))
    assert macs == count_macs(b, (64, 128))
    # doubling the pixels doubles the convolution work (up to the global-pool branch)
    assert count_macs(a, (128, 128)) == pytest.approx(2 * macs, rel=0.02)


def test_no_added_cost_report(tmp_path):
    """The benchmark's verdicts: identical graphs for plain/BRD, a flagged pair for a different arch. It times the
    checked models it finds and builds what is missing as timing copies only, in a folder and under names that
    say so: nothing it writes sits under a name or folder the runtime's models are loaded from."""
    from benchmarks.speed.no_added_cost import run_no_added_cost
    from export import onnx as export_onnx

    plain = write_student(tmp_path / "plain.pt", seed=1)
    brd = write_student(tmp_path / "brd.pt", seed=2)
    models = tmp_path / "models"
    assert export_onnx.main([str(plain), "-o", str(models / "r10_plain.onnx")]) == 0  # checked: parity record
    published = sorted(p.name for p in models.iterdir())
    out = run_no_added_cost([("r10", plain, brd)], tmp_path / "out", variants=["onnx-fp32", "onnx-int8"],
                            num_calib=2, iters=2, warmup=1, rounds=2, models_dir=models, log=lambda *_: None)
    assert sorted(p.name for p in models.iterdir()) == published
    files = {(r["variant"], r["model"]): r["file"] for r in out["latency"]}
    assert files == {("onnx-fp32", "plain"): "r10_plain.onnx",
                     ("onnx-fp32", "brd"): "unchecked_timing_copies/r10_brd.unchecked.onnx",
                     ("onnx-int8", "plain"): "unchecked_timing_copies/r10_plain.unchecked.int8.onnx",
                     ("onnx-int8", "brd"): "unchecked_timing_copies/r10_brd.unchecked.int8.onnx"}
    copy = tmp_path / "out" / "unchecked_timing_copies" / "r10_plain.unchecked.int8.onnx"
    from export.metadata import onnx_meta
    assert onnx_meta(copy)["export"]["gate"] is None  # the runtime warns if it is ever loaded
    assert {r["model"] for r in out["cost"]} == {"plain", "brd"}
    assert {(r["network"], r["stem"]) for r in out["cost"]} == {("deeplabv3_resnet10_w16", "v1c")}
    assert out["cost"][0]["params"] == out["cost"][1]["params"] > 0
    assert out["cost"][0]["GMACs"] == out["cost"][1]["GMACs"] > 0
    assert all(r["p50_ms"] > 0 and r["p90_ms"] >= r["p50_ms"] for r in out["latency"])
    assert any("structurally identical" in n for n in out["notes"])
    text = (tmp_path / "out" / "table.md").read_text()
    assert "| r10 | onnx-fp32 | brd |" in text and "timing only (no parity check, no INT8 gate)" in text
    assert (tmp_path / "out" / "latency.png").stat().st_size > 1000

    other = write_student(tmp_path / "mbv2.pt", arch="lraspp_mobilenetv2_w035")
    with pytest.raises(ValueError, match="differ in architecture .arch: plain deeplabv3_resnet10_w16, BRD lraspp_mob"):
        run_no_added_cost([("bad", plain, other)], tmp_path / "out2", variants=["onnx-fp32"], log=lambda *_: None)


def test_reports_name_the_exact_network():
    """One registry name is two networks (mmseg's default stem, CIRKD's v1s): reports name the stem and the
    exact parameter count, from the arguments the network was built with."""
    from benchmarks.speed.model_cost import network, parse_arch
    from distill.models import build_model

    assert parse_arch("deeplabv3_resnet18:stem=v1s,aux=false") == ("deeplabv3_resnet18", {"stem": "v1s", "aux": False})
    assert parse_arch("lraspp_mobilenetv2") == ("lraspp_mobilenetv2", {})
    with pytest.raises(ValueError, match="expected NAME"):
        parse_arch("deeplabv3_resnet18:v1s")
    cirkd = network(build_model(*parse_arch("deeplabv3_resnet18:stem=v1s")[:1], 19, stem="v1s"))
    default = network(build_model("deeplabv3_resnet18", 19))
    assert cirkd == {"network": "deeplabv3_resnet18", "stem": "v1s", "params": 13_607_974}
    assert default == {"network": "deeplabv3_resnet18", "stem": "v1c", "params": 18_102_726}


def test_speed_report_says_what_ran_where(tmp_path):
    """benchmarks.speed on a small input: every asked backend gets a latency column, the speed-ups follow from
    them (a column per asked pair), ONNX Runtime runs every conv of the INT8 model as QLinearConv, and the machine and versions are named."""
    import csv

    from benchmarks.speed import table as speed

    out = tmp_path / "out"
    argv = ["--arch", "lraspp_mobilenetv2_w035", "--size", "64x128", "--rounds", "2", "--warmup", "1", "--calib", "2",
            "--backends", "ort-fp32", "ort-int8", "ov-int8", "--work-dir", str(tmp_path / "work"), "--out-dir", str(out),
            "--name", "speed_small"]
    assert speed.main(argv) == 0
    assert sorted(f.name for f in out.iterdir()) == ["speed_small.csv", "speed_small.md"]  # beside speed.md, not over it
    row = next(csv.DictReader(open(out / "speed_small.csv")))
    assert row["arch"] == "lraspp_mobilenetv2_w035" and float(row["GMACs"]) > 0
    assert row["stem"] == "-" and int(row["params"]) > 0
    assert all(float(row[f"{b}_ms"]) > 0 for b in ("ort-fp32", "ort-int8", "ov-int8")) and "torch_ms" not in row
    fused, total = (int(v) for v in row["ort_int8_convs_fused"].split("/"))
    assert fused == total > 10
    text = (out / "speed_small.md").read_text()
    assert "## Speed-ups and FPS" in text  # its numbers: test_speed_ups_from_hand_written_latencies
    assert "onnxruntime " in text and "openvino " in text and "cores" in text and "interleaved" in text
    assert "Not asked: torch, ort-int8-trt, ov-f32, ov-bf16, ov-fp16, trt-fp16, trt-int8." in text
    assert "Made by `python -m benchmarks.speed --arch lraspp_mobilenetv2_w035" in text
    for bad in (["--arch", "no_such_model"], ["--name", "docs/speed"]):
        with pytest.raises(SystemExit):
            speed.main([*bad, "--work-dir", str(tmp_path / "w"), "--out-dir", str(out)])


def test_speed_ups_from_hand_written_latencies(tmp_path):
    """Speed-up = the slower backend's p50 / the faster one's, so > 1 when INT8 is faster; FPS = 1000 / p50.
    Model A: ORT FP32 30 ms, INT8 12 ms -> 2.5x; OpenVINO f32 20, bf16 16, INT8 8 -> 2.5x and 2.0x; torch 50 ms
    -> OV INT8 6.25x -> 6.25 (two decimals kept); FPS 33.3, 83.3, 50.0, 62.5, 125.0, 20.0.
    Model B: INT8 slower than FP32 (10 ms vs 12 ms) -> 0.83x; no OpenVINO or torch timings -> no such speed-up."""
    from benchmarks.speed import table as speed

    rows = [{"arch": "a", "stem": "v1c", "GMACs": 1.0, "torch_ms": 50.0, "ort-fp32_ms": 30.0, "ort-int8_ms": 12.0, "ov-f32_ms": 20.0,
             "ov-bf16_ms": 16.0, "ov-int8_ms": 8.0},
            {"arch": "b", "GMACs": 0.5, "ort-fp32_ms": 10.0, "ort-int8_ms": 12.0}]
    assert speed.speedups(rows) == [
        {"arch": "a", "stem": "v1c", "ORT INT8 vs FP32": 2.5, "ORT INT8 (trt form) vs FP32": None,
         "OV INT8 vs f32": 2.5, "OV INT8 vs bf16": 2.0, "OV INT8 vs torch": 6.25, "torch FPS": 20.0,
         "ort-fp32 FPS": 33.3, "ort-int8 FPS": 83.3, "ov-f32 FPS": 50.0, "ov-bf16 FPS": 62.5, "ov-int8 FPS": 125.0},
        {"arch": "b", "stem": "-", "ORT INT8 vs FP32": 0.83, "ORT INT8 (trt form) vs FP32": None,
         "OV INT8 vs f32": None, "OV INT8 vs bf16": None, "OV INT8 vs torch": None, "ort-fp32 FPS": 100.0,
         "ort-int8 FPS": 83.3}]
    text = speed.write_report(rows, ["ort-fp32", "ort-int8"], (64, 128), 2, 3, 1, tmp_path, []).read_text()
    table = text.split("## Speed-ups and FPS")[1].splitlines()
    assert "| a | v1c | 2.5 |  | 2.5 | 2 | 6.25 | 20 | 33.3 | 83.3 | 50 | 62.5 | 125 |" in table
    assert "| b | - | 0.83 |  |  |  |  |  | 100 | 83.3 |  |  |  |" in table


def test_loop_goals_are_checked_on_each_repeats_own_ratio():
    """The ratio pairs each loop with the bench of its own repeat; the goal holds for the worst repeat and
    is only judged with >= 5 repeats. Medians of each side (the old figure) would hide repeat 0 here."""
    from benchmarks.speed.loop_report import limits, per_repeat, summarise

    bench = [(10, 100), (12, 80), (11, 90), (11, 90), (11, 90)]
    rows = [{"repeat": i, "run": "bench", "fps": f, "p50_ms": ms, "model_cpu_ms": 150.0} for i, (f, ms) in enumerate(bench)]
    rows += [{"repeat": 0, "run": "bench_app", "fps": 11.5, "p50_ms": 86.0, "compute": "f32"},
             {"repeat": 0, "run": "bench_app_default", "fps": 17.0, "p50_ms": 57.3, "compute": "bf16"}]
    rows += [{"repeat": i, "run": "loop_bare", "fps": f, "p50_ms": 95, "outside_cpu_ms": 6.0, "process_cpu_ms": 160.0}
             for i, f in enumerate([8.8, 11.0, 10.2, 10.0, 10.1])]
    rows += [{"repeat": i, "run": "loop_full", "fps": f, "p50_ms": 99, "outside_cpu_ms": ms, "process_cpu_ms": 170.0}
             for i, (f, ms) in enumerate([(8, 9.0), (10, 7.5), (9, 7.0), (9, 7.9), (9, 7.2)])]
    reps = per_repeat(rows)
    assert [r["loop_bare_ratio"] for r in reps] == [0.88, round(11 / 12, 3), round(10.2 / 11, 3), round(10 / 11, 3),
                                                     round(10.1 / 11, 3)]
    med, checks = summarise(rows, goals=(0.9, 0.8))
    got = {c["check"].split(",")[0]: (c["value"], c["median"], c["met"]) for c in checks}
    assert got["loop_bare FPS / bench FPS"] == (0.88, round(11 / 12, 3), False)     # repeat 0 fails it
    assert got["loop_full FPS / bench FPS"][0] == 0.8 and got["loop_full FPS / bench FPS"][2] is True
    assert got["loop_full CPU outside the model"] == (9.0, 7.5, False)              # 9.0 ms > 8 in repeat 0
    # paired with repeat 0's bench (p50 100), not with the median bench
    assert got["bench p50 / benchmark_app median - 1"] == (round(100 / 86 - 1, 3), None, False)
    assert got["benchmark_app median at the checked precision / at OpenVINO's default (median over repeats)"] == (
        round(86 / 57.3, 3), None, None)  # no goal
    assert {m["run"]: m["repeats"] for m in med} == {"bench": 5, "bench_app": 1, "bench_app_default": 1,
                                                     "loop_bare": 5, "loop_full": 5}
    assert "compute" not in med[0]  # a precision is a name, not a median
    few = {c["check"].split(",")[0]: c["met"] for c in summarise(rows[:3] + rows[6:9] + rows[11:14])[1]}
    assert few["loop_bare FPS / bench FPS"] is None  # 3 repeats: reported, not judged
    bare = {r["run"]: r for r in limits(rows, cores=2)}["loop_bare"]
    # 2 cores at 11 FPS give 181.8 core-ms a frame; the model takes 150: 31.8 free, and 150 + 6 fit
    assert bare["free_cpu_ms"] == round(2000 / 11 - 150, 3) and bare["limit_ratio"] == 1.0
    assert bare["ratio_min"] == 0.88 and bare["cores_busy"] == round(160 * 10.1 / 2000, 3)
    assert bare["loop_model_cpu_ms"] == 160 - 6  # the process's CPU less the stages outside the model
    from benchmarks.speed.loop_report import outside_floor
    for i, r in enumerate(rows[-5:]):  # loop_full's stages: the codec (decode + encode) alone is over the goal
        r.update(cpu_decode_ms=2.5, cpu_sink_ms=6.0 + i / 10, cpu_preprocess_ms=1.0, cpu_postprocess_ms=0.5,
                 cpu_overlay_ms=3.0)
    floor = outside_floor(rows)
    assert "takes 8.7 ms, more than the 8 ms goal by themselves" in floor and "4.5 ms together" in floor
    tight = {r["run"]: r for r in limits(rows, cores=1)}["loop_full"]  # one core: 90.9 core-ms < 150 + 7.5
    each = [1000 / f / (150 + x) for f, x in zip([10, 12, 11, 11, 11], [9.0, 7.5, 7.0, 7.9, 7.2])]  # per repeat
    assert tight["limit_ratio"] == round(statistics.median(each), 3) and tight["free_cpu_ms"] < 0


def test_loop_benchmark_runs_the_current_clis_and_writes_its_report(tmp_path):
    """bench and both loops through their real CLIs on a small ONNX student and a short video: the flags
    they are called with and the JSON keys read back are the CLIs' current ones."""
    import cv2
    import numpy as np
    from benchmarks.speed.loop import measure
    from benchmarks.speed.loop_report import write_report

    model = torch_to_onnx(write_student(tmp_path / "s.pt"), tmp_path / "s.onnx", simplify=False)
    video = tmp_path / "v.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (256, 128))
    for i in range(6):
        writer.write(np.full((128, 256, 3), 20 * i, np.uint8))
    writer.release()
    rows = measure(model, video, repeats=1, frames=4, iters=3, threads=1, shape=(64, 128), report=lambda _: None,
                   writer_nice=0, bench_seconds=0.2)
    by = {r["run"]: r for r in rows}
    assert sorted(by) == ["bench", "loop_bare", "loop_full"]  # no benchmark_app for an ONNX file
    assert by["bench"]["compute"] == "f32"
    assert by["bench"]["calls"] > 3  # 0.2 s of a 64x128 model is more than --iters 3: the probe set the count
    assert by["bench"]["model_cpu_ms"] > 0 and by["loop_full"]["cpu_overlay_ms"] > 0 == by["loop_bare"]["cpu_overlay_ms"]
    assert by["loop_full"]["cpu_sink_ms"] > 0 and by["loop_full"]["process_cpu_ms"] > by["loop_full"]["outside_cpu_ms"]
    path = write_report(rows, model, video, 4, 1, tmp_path / "out", ["--repeats", "1"], name="t", goals=(0.85, 0.75))
    text = path.read_text()
    assert "## Each repeat" in text and "| 0 | " in text and ">= 0.85" in text and ">= 0.75" in text
    assert "loop_full CPU outside the model" in text and "limit_ratio" in text and (tmp_path / "out" / "t.csv").exists()

def test_compute_precision_reads_runtime_bench_precision_field():
    from benchmarks.speed.clis import compute_precision

    assert compute_precision("int8 (fp32 compute)") == "f32" and compute_precision("int8 (bf16 compute)") == "bf16"
    assert compute_precision("fp16") == "f16" and compute_precision("fp32") == "f32"


def test_benchmark_app_runs_at_the_precision_it_is_given():
    """The like-for-like check hands benchmark_app runtime.bench's compute precision: on the shipped IR, the
    precision benchmark_app reports having used is the one asked for, and without one it is OpenVINO's own."""
    from benchmarks.speed.clis import benchmark_app
    from runtime import shipped

    model = shipped.MODELS_DIR / shipped.DEFAULT
    if not model.is_file():
        pytest.skip(f"{model}: the shipped model is not in this checkout")
    forced = benchmark_app(model, 1, 2, (360, 480), "f32")
    if forced is None:
        pytest.skip("benchmark_app is not installed (the openvino extra)")
    assert forced["compute"] == "f32" and forced["fps"] > 0 and forced["p50_ms"] > 0
    default = benchmark_app(model, 1, 2, (360, 480))
    assert default["compute"] in ("f32", "bf16", "f16")


def test_loop_camvid_preset_measures_the_model_runtime_runs_by_default(tmp_path, monkeypatch):
    """`--preset camvid` times what a user gets without --model (runtime.shipped), at its own input size;
    with the shipped model moved away it is the runtime's one-line error, not a silently built stand-in."""
    from benchmarks.speed.loop import PRESETS, default_model
    from runtime import shipped
    from runtime.contract import UserError

    assert PRESETS["camvid"][1:] == ("loop_camvid", 0.85, 0.75)
    if (shipped.MODELS_DIR / shipped.DEFAULT).is_file():
        assert default_model(tmp_path, PRESETS["camvid"][0]) == shipped.default_model()
    monkeypatch.setenv("BRD_EDGE_MODELS", str(tmp_path))
    with pytest.raises(UserError, match="no shipped model"):
        default_model(tmp_path, PRESETS["camvid"][0])
    assert not list(tmp_path.iterdir())


def test_overlay_benchmark_compares_like_for_like_and_writes_its_report(tmp_path):
    """benchmarks.speed.overlay: the colouring it measures against (the index-image method) gives the same
    image as the Overlay's, on its drawn street and on CamVid-layout labels; the report has every part."""
    import csv

    import numpy as np
    from benchmarks.speed.overlay import index_colour, label_maps, main
    from runtime.overlay import Overlay

    root = trees.camvid(tmp_path / "cv", size=(36, 48), train=(("0016E5", 1),), val=(("0016E5", 2),))
    overlay = Overlay(["c"] * 11, np.random.default_rng(0).integers(0, 256, (11, 3)).tolist())
    maps = label_maps(None, (72, 128), 2) + label_maps(root, (72, 128), 2)
    assert len(maps) == 4 and all(m.shape == (72, 128) for m in maps)
    for m in maps:
        assert np.array_equal(index_colour(overlay.lut, m), overlay.colorize(m))
    assert main(["--root", str(root), "--size", "72x128", "--maps", "2", "--rounds", "2",
                 "--out-dir", str(tmp_path / "out")]) == 0
    rows = list(csv.DictReader(open(tmp_path / "out" / "overlay.csv")))
    assert [r["part"] for r in rows] == ["colour", "colour_fresh", "colour_index", "blend", "legend", "draw"]
    assert all(int(r["calls"]) == 4 and float(r["cpu_ms_p50"]) >= 0 for r in rows)
    text = (tmp_path / "out" / "overlay.md").read_text()
    assert "128x72 frames, 2 class maps (CamVid val labels" in text and "Made by `python -m benchmarks.speed.overlay" in text
    assert main(["--root", str(tmp_path / "nowhere"), "--maps", "1"]) == 2  # no labels there: one line, exit 2


def test_curve_reads_each_runs_validation_and_says_where_it_stands(tmp_path):
    """benchmarks.gain.curve on two run folders laid out as distill.run writes them (config.yaml, val_log.csv)."""
    from benchmarks.gain.curve import main

    for name, values in (("plain", (0.30, 0.41, 0.42)), ("teacher", (0.35, 0.48, 0.52))):
        run = tmp_path / name
        run.mkdir()
        (run / "config.yaml").write_text("data:\n  val_split: tune\n")
        rows = ["step,mIoU,aAcc,boundary_iou,boundary_f1,split_rate,miss_rate,spurious_rate"]
        rows += [f"{250 * (i + 1)},{v},0.8,0.2,0.3,0.1,0.2,0.5" for i, v in enumerate(values)]
        (run / "val_log.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    assert main(["--run", f"plain={tmp_path / 'plain'}", "--run", f"teacher={tmp_path / 'teacher'}",
                 "--name", "c", "--out-dir", str(out)]) == 0
    md = (out / "c.md").read_text()
    assert md.startswith("# Learning curves on tune")
    assert "plain: best 42.0 mIoU at step 750; the last 250 iterations (steps 500->750) moved it +1.0 points." in md
    assert "teacher: best 52.0 mIoU at step 750" in md
    assert (out / "c.png").stat().st_size > 0 and len((out / "c.csv").read_text().splitlines()) == 7
