"""The cases of the benchmarks: benchmarks.gain and its tools, benchmarks.demo and its tools, benchmarks.speed and
its tools, benchmarks.faults itself."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..case import Case
from .builders import (C, DATA, DATA_KW, PT_KINDS, TRAIN, file_faults, flag_faults, output_faults,
                       signal_cases)

CAMVID = Path(__file__).resolve().parents[4] / "shared" / "camvid"  # the real CamVid beside the checkout, if any
GAIN_SETS = tuple(s for s in TRAIN if not s.startswith("out_dir="))


def benchmarks_gain() -> list:
    m = "benchmarks.gain"
    base = ("--methods", "plain", "--seeds", "0", "--no-tune", "--out-dir", f"{C}/gain", "--set") + GAIN_SETS
    brd = ("--methods", "brd", "--seeds", "0", "--no-tune", "--out-dir", f"{C}/gain")
    bad = [("bad value", "--jobs", "0", "--jobs"), ("bad value", "--seeds", "abc", "--seeds"),
           ("bad value", "--methods", "nonesuch", "nonesuch"), ("bad value", "--prefix", "nonesuch", "nonesuch"),
           ("bad value", "--panel-images", "-1", "--panel-images")]
    cases = flag_faults(m, base, bad, setup=DATA)
    cases += [replace(c, setup=DATA + c.setup) for c in file_faults(
        m, lambda p: brd + ("--teacher", p, "--set") + GAIN_SETS, ".pt", "--teacher", valid="run/model.pt", cut=False,
        extra=PT_KINDS)]
    cases += [
        Case(m, "config key", "--set train.nope=1", base + ("train.nope=1",), names="train.nope", setup=DATA),
        Case(m, "missing file", "--configs-dir does not exist", base + ("--configs-dir", f"{C}/no/configs"),
             names="no/configs", setup=DATA),
    ]
    cases += output_faults(m, lambda p: ("--methods", "plain", "--seeds", "0", "--no-tune", "--out-dir", p,
                                         "--set") + GAIN_SETS, "gain", "--out-dir", setup=DATA, folder=True)
    long = ("--methods", "plain", "--seeds", "0", "--no-tune", "--out-dir", f"{C}/gain", "--set") + tuple(
        s for s in GAIN_SETS if not s.startswith(("train.iters", "train.val_every", "train.ckpt_every"))) + (
        "train.iters=100000", "train.val_every=100000", "train.ckpt_every=1000")
    cases += signal_cases(m, long, [("mid-training (3 steps logged)", ("lines", "gain/runs/plain_s0/train_log.csv",
                                                                       4))], setup=DATA, keep=("gain/*",),
                          timeout=240)
    return cases


def benchmarks_gain_tools() -> list:
    m = "benchmarks.gain.boundary_maps"
    base = lambda p="{fx}/run/model.pt", *extra: ("--model", p, "--cfg", "synthetic_plain.yaml", "--set",  # noqa
                                                  "data.root={fx}/data", "data.crop_size=[32,64]",
                                                  f"data.kwargs={DATA_KW}",
                                                  f"data.val_kwargs={DATA_KW}", "--split", "val", "--images", "2",
                                                  "--out-dir", f"{C}/maps") + extra
    cases = file_faults(m, lambda p: base(p), ".pt", "--model", valid="run/model.pt", extra=PT_KINDS + [
        ("wrong kind of model", "an ONNX model", "s.onnx", "model.onnx")])
    cases += flag_faults(m, base(), [("bad value", "--images", "0", "--images"),
                                     ("bad value", "--tolerance", "-1", "--tolerance"),
                                     ("bad value", "--split", "nonesuch", "nonesuch")],
                         required_missing=(("--cfg", "synthetic_plain.yaml"), "--model"))
    cases += output_faults(m, lambda p: base("{fx}/run/model.pt")[:-2] + ("--out-dir", p), "maps", "--out-dir",
                           folder=True)
    t = "benchmarks.gain.trials"
    tbase = ("--prefix", "camvid", "--out-dir", f"{C}/trials", "--runs-dir", f"{C}/runs", "--teacher",
             "{fx}/run/model.pt", "--no-train")
    cases += flag_faults(t, tbase, [("bad value", "--jobs", "0", "--jobs"), ("bad value", "--only", "nonesuch",
                                                                             "nonesuch"),
                                    ("bad value", "--prefix", "nonesuch", "nonesuch"),
                                    ("config key", "--set", "train.nope=1", "train.nope")])
    cases += [Case(t, "missing file", "--out-dir without the benchmark's tuning table", tbase,
                   names="camvid_tuning.csv"),
              Case(t, "missing file", "--teacher does not exist", tbase + ("--teacher", f"{C}/no/such/t.pt"),
                   (2,), names="t.pt"),
              Case(t, "output inside a file", "--out-dir inside a file", ("--prefix", "camvid", "--out-dir",
                                                                          f"{C}/afile/trials", "--teacher",
                                                                          "{fx}/run/model.pt", "--no-train"),
                   names="afile", setup=(("text", "afile", "x\n"),))]
    return cases


def benchmarks_gain_sizes() -> list:
    m = "benchmarks.gain.inference_sizes"
    base = lambda p="{fx}/run/model.pt", *extra: ("--model", f"x={p}", "--dataset", "synthetic",  # noqa
                                                  "--root", "{fx}/data", "--out-dir", f"{C}/sizes") + extra
    cases = file_faults(m, lambda p: base(p), ".pt", "--model", extra=PT_KINDS)
    cases += flag_faults(m, base(), [("bad size", "--sizes", "48x", "--sizes"),
                                     ("bad value", "--model", "{fx}/run/model.pt", "LABEL=FILE"),
                                     ("bad value", "--name", "a/b", "--name")],
                         required_missing=(("--model", "x={fx}/run/model.pt", "--root", "{fx}/data"), "--dataset"))
    cases += output_faults(m, lambda p: base()[:-2] + ("--out-dir", p), "sizes", "--out-dir", folder=True)
    return cases


def benchmarks_gain_curve() -> list:
    m = "benchmarks.gain.curve"
    base = ("--run", "plain={fx}/run", "--out-dir", f"{C}/curve")
    cases = flag_faults(m, base, [("bad value", "--run", "plain", "LABEL=DIR"),
                                  ("bad value", "--run", "=" + "{fx}/run", "--run")],
                        required_missing=(("--out-dir", f"{C}/curve"), "--run"))
    cases += [
        Case(m, "missing file", "--run names a folder that does not exist", ("--run", f"x={C}/no/such/run"),
             names="no/such/run"),
        Case(m, "missing file", "--run names a folder without val_log.csv", ("--run", "x={fx}/emptydir"),
             names="emptydir"),
        Case(m, "junk bytes", "--run folder whose val_log.csv is random bytes", ("--run", f"x={C}/run"),
             names="val_log.csv", setup=(("copy", "run", "run"), ("bytes", "run/val_log.csv"))),
        Case(m, "empty file", "--run folder whose val_log.csv is empty", ("--run", f"x={C}/run"),
             names="val_log.csv", setup=(("copy", "run", "run"), ("empty", "run/val_log.csv"))),
        Case(m, "bad value", "--name with a slash", base + ("--name", "a/b"), names="--name"),
        Case(m, "control", "no fault", base, (0,)),
    ]
    cases += output_faults(m, lambda p: base[:2] + ("--out-dir", p), "curve", "--out-dir", folder=True)
    return cases


def benchmarks_demo() -> list:
    m = "benchmarks.demo"
    base = ("--out-dir", f"{C}/demo", "--teacher-iters", "2", "--student-iters", "2")
    cases = flag_faults(m, base, [("bad value", "--teacher-iters", "0", "--teacher-iters"),
                                  ("bad value", "--student-iters", "-1", "--student-iters"),
                                  ("config key", "--set", "train.nope=1", "train.nope"),
                                  ("config type", "--set", "train.lr=fast", "train.lr")])
    cases += output_faults(m, lambda p: ("--out-dir", p, "--teacher-iters", "2"), "demo", "--out-dir", folder=True)
    cases += signal_cases(m, base, [("while the teacher trains (after 8 s)", ("after", 8.0))], keep=("demo/*",),
                          timeout=240)
    s = "benchmarks.demo.camvid_street"
    sbase = ("--root", "{fx}/emptydir", "--model", "{fx}/s.onnx", "--out-dir", f"{C}/pics")
    cases += flag_faults(s, sbase, [("bad value", "--fps", "0", "--fps")])
    cases += [Case(s, "missing file", "--root does not exist", ("--root", f"{C}/no/camvid", "--out-dir", f"{C}/p"),
                   names="no/camvid"),
              Case(s, "empty file", "--root is an empty folder", sbase, names="emptydir")]
    camvid = str(CAMVID) if CAMVID.is_dir() else "{fx}/emptydir"
    cases += file_faults(s, lambda p: ("--root", camvid, "--model", p, "--out-dir", f"{C}/pics"), ".onnx",
                         "--model", cut=False, names=False, timeout=180)
    c = "benchmarks.demo.model_card"
    cases += file_faults(c, lambda p: (p, f"{C}/out/card.pt"), ".pt", "ckpt", valid="run/model.pt", extra=PT_KINDS)
    cases += [Case(c, "missing argument", "out left out", ("{fx}/run/model.pt",), names="out"),
              Case(c, "bad value", "--target-miou abc", ("{fx}/run/model.pt", f"{C}/out/card.pt", "--target-miou",
                                                         "abc"), names="--target-miou"),
              Case(c, "missing file", "--int8 does not exist", ("{fx}/run/model.pt", f"{C}/out/card.pt", "--int8",
                                                                f"{C}/no/such/q.xml"), names="q.xml", timeout=180)]
    cases += output_faults(c, lambda p: ("{fx}/run/model.pt", p), "card.pt", "out", timeout=180)
    return cases


def benchmarks_speed() -> list:
    m = "benchmarks.speed"
    base = ("--arch", "deeplabv3_resnet10_w8", "--backends", "ort-fp32", "--size", "64x128", "--rounds", "1",
            "--warmup", "1", "--pause", "0", "--work-dir", f"{C}/work", "--out-dir", f"{C}/speed")
    cases = flag_faults(m, base, [("bad value", "--arch", "nonesuch", "nonesuch"),
                                  ("bad value", "--backends", "ov-int4", "ov-int4"),
                                  ("bad value", "--rounds", "0", "--rounds"), ("bad size", "--size", "512x", "--size"),
                                  ("bad value", "--threads", "0", "--threads"),
                                  ("bad value", "--pause", "-1", "--pause")])
    cases += output_faults(m, lambda p: base[:-2] + ("--out-dir", p), "speed", "--out-dir", folder=True, timeout=180)
    cases.append(Case(m, "output inside a file", "--work-dir inside a file", base[:-4] + (
        "--work-dir", f"{C}/afile/work", "--out-dir", f"{C}/speed"), names="afile", setup=(("text", "afile", "x\n"),),
        timeout=180))
    loop = "benchmarks.speed.loop"
    lbase = ("--model", "{fx}/s.xml", "--video", "{fx}/short.avi", "--frames", "10", "--iters", "5",
             "--bench-seconds", "0", "--repeats", "1", "--work-dir", f"{C}/work", "--out-dir", f"{C}/loop")
    cases += flag_faults(loop, lbase, [("bad value", "--frames", "0", "--frames"),
                                       ("bad value", "--preset", "nonesuch", "--preset"),
                                       ("bad value", "--repeats", "0", "--repeats"),
                                       ("bad value", "--bench-seconds", "-1", "--bench-seconds")])
    cases += file_faults(loop, lambda p: ("--model", p) + lbase[2:], ".xml", "--model", valid="s.xml", cut=False,
                         timeout=180)
    cases += [Case(loop, "missing file", "--video does not exist", lbase[:2] + ("--video", f"{C}/no/such/v.mp4")
                   + lbase[4:], names="v.mp4"),
              Case(loop, "source", "--video with no frame", lbase[:2] + ("--video", "{fx}/zero.avi") + lbase[4:],
                   names="zero.avi", timeout=180),
              Case(loop, "output inside a file", "--out-dir inside a file", lbase[:-2] + ("--out-dir",
                                                                                         f"{C}/afile/loop"),
                   names="afile", setup=(("text", "afile", "x\n"),), timeout=180)]
    return cases


def benchmarks_speed_streams() -> list:
    m = "benchmarks.speed.streams"
    base = ("--model", "{fx}/s.xml", "--streams", "1", "--sizes", "32x64", "--seconds", "0.2",
            "--work-dir", f"{C}/work", "--out-dir", f"{C}/streams")
    cases = flag_faults(m, base, [("bad value", "--streams", "0", "--streams"),
                                  ("bad size", "--sizes", "720x", "--sizes"),
                                  ("bad value", "--seconds", "0", "--seconds"),
                                  ("bad value", "--repeats", "0", "--repeats"),
                                  ("bad value", "--backends", "tensorrt", "tensorrt")])
    cases += file_faults(m, lambda p: ("--model", p) + base[2:], ".xml", "--model", valid="s.xml", cut=False,
                         timeout=180)
    cases += [Case(m, "missing file", "--onnx does not exist", base + ("--backends", "onnxruntime", "--onnx",
                                                                       f"{C}/no/such/s.onnx"), names="s.onnx"),
              Case(m, "output inside a file", "--out-dir inside a file",
                   base[:-2] + ("--out-dir", f"{C}/afile/streams"), names="afile",
                   setup=(("text", "afile", "x\n"),), timeout=180)]
    return cases


def benchmarks_speed_bf16() -> list:
    m = "benchmarks.speed.bf16"
    tail = ("--data-root", "{fx}/data", "--repeats", "1", "--iters", "1", "--warmup", "0", "--app-seconds", "0",
            "--work-dir", f"{C}/work", "--out-dir", f"{C}/bf16")
    base = ("--models", "{fx}/run/model.pt") + tail
    cases = flag_faults(m, base, [("bad value", "--models", "nonesuch", "nonesuch"),
                                  ("bad value", "--repeats", "0", "--repeats"),
                                  ("bad value", "--iters", "0", "--iters"),
                                  ("bad size", "--size", "512x", "--size"),
                                  ("bad value", "--app-seconds", "-1", "--app-seconds")])
    cases += file_faults(m, lambda p: ("--models", p) + tail, ".pt", "--models", valid="run/model.pt", cut=False,
                         extra=PT_KINDS, timeout=180)
    cases += [Case(m, "missing file", "--data-root does not exist", ("--models", "{fx}/run/model.pt",
                                                                     "--data-root", f"{C}/no/such/data") + tail[2:],
                   names="no/such/data"),
              Case(m, "missing file", "--camvid-root does not exist (the shipped student)",
                   ("--models", "shipped", "--camvid-root", f"{C}/no/camvid") + tail[2:], names="no/camvid")]
    cases += output_faults(m, lambda p: base[:-2] + ("--out-dir", p), "bf16", "--out-dir", folder=True, timeout=180)
    return cases


def benchmarks_speed_tools() -> list:
    lc = "benchmarks.speed.loss_cost"
    cases = flag_faults(lc, ("--batch", "1", "--size", "32x64", "--repeats", "1"), [
        ("bad value", "--student", "nonesuch", "nonesuch"), ("bad value", "--teacher", "nonesuch", "nonesuch"),
        ("bad value", "--batch", "0", "--batch"), ("bad size", "--size", "128x", "--size"),
        ("bad value", "--classes", "0", "--classes"), ("bad value", "--max-tokens", "0", "--max-tokens")])
    ld = "benchmarks.speed.loader"
    lbase = ("--root", f"{C}/no/cityscapes", "--workers", "0", "--batches", "1")
    cases += flag_faults(ld, lbase, [("bad value", "--step-its", "0", "--step-its"),
                                     ("bad value", "--workers", "-1", "--workers"),
                                     ("bad size", "--size", "x", "--size"),
                                     ("config key", "--set", "data.nope=1", "data.nope")],
                         required_missing=(("--workers", "0"), "--root"))
    cases += [Case(ld, "missing file", "--root does not exist", lbase, names="no/cityscapes"),
              Case(ld, "directory for a file", "--root is a file", ("--root", f"{C}/afile", "--workers", "0"),
                   names="afile", setup=(("text", "afile", "x\n"),)),
              Case(ld, "missing file", "--cfg does not exist", lbase + ("--cfg", f"{C}/no/c.yaml"), names="c.yaml")]
    na = "benchmarks.speed.no_added_cost"
    cheap = ("--variants", "onnx-fp32", "--iters", "1", "--warmup", "0", "--rounds", "1", "--num-calib", "2")
    pair = lambda a, b: ("--pair", "r10", a, b, "--out-dir", f"{C}/nac") + cheap  # noqa: E731
    cases += file_faults(na, lambda p: pair(p, "{fx}/run/model.pt"), ".pt", "--pair PLAIN_PT", valid="run/model.pt",
                         extra=PT_KINDS)
    cases += flag_faults(na, pair("{fx}/run/model.pt", "{fx}/run/model.pt"), [
        ("bad value", "--variants", "onnx-int4", "onnx-int4"), ("bad value", "--rounds", "0", "--rounds"),
        ("bad value", "--threads", "0", "--threads")], required_missing=(("--out-dir", f"{C}/nac"), "--pair"))
    cases += output_faults(na, lambda p: ("--pair", "r10", "{fx}/run/model.pt", "{fx}/run/model.pt", "--out-dir", p)
                           + cheap, "nac", "--out-dir", folder=True, timeout=240)
    ov = "benchmarks.speed.overlay"
    obase = ("--size", "64x128", "--maps", "1", "--rounds", "1", "--out-dir", f"{C}/ov")
    cases += flag_faults(ov, obase, [("bad size", "--size", "720x", "--size"), ("bad value", "--rounds", "0",
                                                                                "--rounds"),
                                     ("bad value", "--maps", "0", "--maps")])
    cases += [Case(ov, "missing file", "--root does not exist", obase + ("--root", f"{C}/no/camvid"),
                   names="no/camvid"),
              Case(ov, "empty file", "--root without label images", obase + ("--root", "{fx}/emptydir"),
                   names="emptydir"),
              Case(ov, "control", "no fault (a drawn class map)", obase, (0,))]
    cases += output_faults(ov, lambda p: obase[:-2] + ("--out-dir", p), "ov", "--out-dir", folder=True)
    return cases


def benchmarks_faults() -> list:
    m = "benchmarks.faults"
    return flag_faults(m, ("--only", "nonesuch-entry-point", "--list"), [
        ("bad value", "--jobs", "0", "--jobs"), ("bad value", "--only", "nonesuch-module", "nonesuch-module")]) + [
        Case(m, "output inside a file", "--out-dir inside a file",
             ("--out-dir", f"{C}/afile/results", "--work-dir", f"{C}/work", "--only", "runtime.bench"),
             names="afile", setup=(("text", "afile", "x\n"),))]
