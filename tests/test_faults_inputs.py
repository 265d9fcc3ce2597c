"""Bad input across the commands: foreign and corrupt files, settings that must never rewrite data, and the
user errors the fault trial found (export failures and settings out of range have files of their own). Each case asserts the exit code, the one-line message and what is left on disk."""
from __future__ import annotations

import json
import os
import re
import time

import cv2
import numpy as np
import pytest
import torch

from .conftest import write_student, write_synthetic_student
from .faults import FRAME_HW, ROOT, cli_exit, error_lines, frame_count, overrides, run, train_args


# ------------------------------------------------------------------------------------------ foreign files
def _last_pt_of(tmp_path, arch_setting):
    from distill.config import load_config
    from distill.engine import train

    out = tmp_path / "run"
    cfg = load_config(ROOT / "configs" / "synthetic_plain.yaml",
                      overrides(tmp_path, out, iters=3) + arch_setting + ["train.ckpt_every=1"])
    train(cfg, stop_at=1)
    return out


@pytest.mark.parametrize("other, message", [
    (["model.arch=lraspp_mobilenetv2_w035"], "a training state of 'lraspp_mobilenetv2_w035', but this config trains "
                                             "'deeplabv3_resnet10_w8'; use another out_dir or remove it"),
    (["model.kwargs={width: 16}"], "cannot resume this config from it (RuntimeError: Error(s) in loading state_dict"),
])
def test_foreign_last_pt_is_one_line_and_left_alone(tmp_path, capsys, other, message):
    from distill.run import main

    out = _last_pt_of(tmp_path, other)
    before = (out / "last.pt").read_bytes()
    code, err = cli_exit(main, [str(a) for a in train_args(tmp_path, out, iters=3)[1:]], capsys)
    assert code == 2 and error_lines(err)[-1].startswith(f"error: {out / 'last.pt'}: {message}")
    assert (out / "last.pt").read_bytes() == before and not (out / "model.pt").exists()


def test_stale_checkpoint_temp_of_a_killed_run_is_removed_at_the_next_start(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    stale = out / f".last.pt.pid{2 ** 22 + 7}.abc.tmp"
    stale.write_bytes(b"x" * 4096)
    r = run(train_args(tmp_path, out, iters=1))
    assert r.returncode == 0, r.stderr[-2000:]
    assert not stale.exists() and (out / "model.pt").is_file()


# ------------------------------------------------------------------------------------------ nothing destructive
def test_evaluation_with_other_settings_never_rewrites_the_dataset(tmp_path, capsys):
    from distill.data import build_dataset
    from distill.evaluate import cli

    root = tmp_path / "d"
    build_dataset("synthetic", root, "val", num_images=2, size=(32, 64))
    files = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    ckpt = write_synthetic_student(tmp_path / "s.pt")
    code, err = cli_exit(cli, ["--model", str(ckpt), "--dataset", "synthetic", "--root", str(root), "--data-kwargs",
                               '{"num_images": 2, "size": [64, 128]}'], capsys)
    assert code == 2 and error_lines(err) == [
        f"error: {root}: the synthetic 'val' split there was generated with other settings: size [32, 64] "
        "(asked: [64, 128]); ask for the same settings, use another data.root, or delete synthetic_val.json "
        "and the val folders under leftImg8bit/ and gtFine/ to regenerate it"]
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == files
    code, err = cli_exit(cli, ["--model", str(ckpt), "--dataset", "synthetic", "--root", str(root), "--split", "test"],
                         capsys)
    assert code == 2 and "evaluation does not generate data" in err and not (root / "leftImg8bit" / "test").exists()


def test_a_tiny_image_first_in_a_folder_is_skipped_not_fatal(model, tmp_path, capsys):
    from runtime.run import main

    src = tmp_path / "src"
    src.mkdir()
    cv2.imwrite(str(src / "a_tiny.png"), np.zeros((1, 1, 3), np.uint8))
    for i in range(3):
        cv2.imwrite(str(src / f"b_{i}.png"), np.full((*FRAME_HW, 3), 60 * i, np.uint8))
    out, stats = tmp_path / "o.mp4", tmp_path / "s.json"
    code, err = cli_exit(main, ["--model", str(model), "--source", str(src), "--sink", str(out), "-o", str(stats),
                                "-q"], capsys)
    assert code == 0, err
    assert frame_count(out) == 3 and json.loads(stats.read_text())["frames"]["skipped"] == 1


def test_no_added_cost_refuses_a_mismatched_pair_before_any_timing(tmp_path, capsys):
    from benchmarks.speed.no_added_cost import main

    five = write_student(tmp_path / "five.pt", input_size=(32, 64))
    eleven = write_synthetic_student(tmp_path / "eleven.pt")
    out = tmp_path / "nac"
    code, err = cli_exit(main, ["--pair", "p", str(five), str(eleven), "--out-dir", str(out)], capsys)
    assert code == 2 and error_lines(err) == [
        "error: pair p: the plain and BRD students differ in classes (num_classes: plain 5, BRD 11), "
        "so their inference cost cannot be compared"]
    code, err = cli_exit(main, ["--pair", "p", str(five), str(tmp_path / "nope.pt"), "--out-dir", str(out)], capsys)
    assert code == 2 and error_lines(err) == [f"error: pair p: the BRD checkpoint {tmp_path / 'nope.pt'} does not exist"]
    assert not out.exists()


def test_no_added_cost_differing_graphs_end_the_run(tmp_path, capsys):
    from benchmarks.speed.no_added_cost import main
    from export.onnx import torch_to_onnx

    plain = write_student(tmp_path / "plain.pt", input_size=(32, 64), seed=1)
    brd = write_student(tmp_path / "brd.pt", input_size=(32, 64), seed=2)
    models = tmp_path / "nac" / "models"
    models.mkdir(parents=True)
    # a checked export (its parity record beside it) newer than the checkpoint but of another graph (labels output)
    torch_to_onnx(brd, models / "p_brd.onnx", argmax=True, simplify=False)
    (models / "p_brd.onnx.parity.json").write_text('{"passed": true}')
    code, err = cli_exit(main, ["--pair", "p", str(plain), str(brd), "--out-dir", str(tmp_path / "nac"),
                                "--models-dir", str(models), "--variants", "onnx-fp32"], capsys)
    [line] = error_lines(err)
    assert code == 1 and line.startswith("error: pair p: the plain and BRD ONNX graphs differ (")
    assert line.endswith("p_plain.unchecked.onnx vs p_brd.onnx), so no timing was done")
    assert not (tmp_path / "nac" / "results.csv").exists()


# ------------------------------------------------------------------------------------------ third-party errors
def test_a_corrupt_model_is_one_line_naming_the_file(tmp_path, images, capsys):
    from runtime.run import main

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model at all")
    code, err = cli_exit(main, ["--model", str(bad), "--source", str(images), "--sink", "none", "-q"], capsys)
    [line] = error_lines(err)
    assert code == 2 and line.startswith(f"error: {bad}: ONNX Runtime cannot load it (")


def test_a_corrupt_checkpoint_to_evaluate_is_one_line(tmp_path, capsys):
    from distill.evaluate import cli

    bad = tmp_path / "s.pt"
    bad.write_bytes(b"PK\x03\x04 truncated")
    code, err = cli_exit(cli, ["--model", str(bad), "--dataset", "synthetic", "--root", str(tmp_path)], capsys)
    [line] = error_lines(err)
    assert code == 2 and line.startswith(f"error: {bad}: not a readable BRD Edge checkpoint (")


# ------------------------------------------------------------------------------------------ one line for every user error
def test_slide_evaluation_without_a_window_slides_the_models_input_size(tmp_path, capsys):
    """One scorer for every model file: a checkpoint without --window slides windows of its input size, as
    its exported file does (it used to be an error for a checkpoint only)."""
    from distill.data import build_dataset
    from distill.evaluate import main
    from export.onnx import torch_to_onnx

    ckpt = write_synthetic_student(tmp_path / "s.pt")  # input 32x64
    build_dataset("synthetic", tmp_path / "d", "val", num_images=2, size=[40, 80], seed=0)
    args = ["--dataset", "synthetic", "--root", str(tmp_path / "d"), "--mode", "slide", "--data-kwargs",
            '{"num_images": 2, "size": [40, 80], "seed": 0}']
    pt = main(["--model", str(ckpt), *args])
    onnx = main(["--model", str(torch_to_onnx(ckpt, tmp_path / "s.onnx", dynamic=True)), *args])
    for r in (pt, onnx):
        assert r["num_images"] == 2 and "sliding 32x64 windows" in r["settings"]["how"]
    assert abs(pt["mIoU"] - onnx["mIoU"]) <= 5e-4


def test_checkpoint_metadata_out_of_range_is_one_line_to_export(tmp_path, capsys):
    from export.onnx import main

    obj = torch.load(write_synthetic_student(tmp_path / "s.pt"), weights_only=True)
    obj["meta"]["input_size"] = [0, -3]
    torch.save(obj, tmp_path / "bad.pt")
    code, err = cli_exit(main, [str(tmp_path / "bad.pt"), "-o", str(tmp_path / "bad.onnx")], capsys)
    assert code == 2 and error_lines(err) == [
        f"error: {tmp_path / 'bad.pt'}: meta input_size must be [H, W] with H, W >= 1, got [0, -3]"]
    assert sorted(f.name for f in tmp_path.iterdir()) == ["bad.pt", "s.pt"]


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_malicious_pickle_is_refused_without_advice_to_unsafe_load_it(tmp_path, capsys):
    from distill.evaluate import cli

    marker = tmp_path / "pwned"
    torch.save({"format": "brd-edge/student", "meta": _Evil(marker)}, tmp_path / "evil.pt")
    code, err = cli_exit(cli, ["--model", str(tmp_path / "evil.pt"), "--dataset", "synthetic", "--root",
                               str(tmp_path)], capsys)
    [line] = error_lines(err)
    assert code == 2 and line == (f"error: {tmp_path / 'evil.pt'}: not a readable BRD Edge checkpoint (it references "
                                  "posix.system; refused, since unpickling it could run code (a BRD Edge checkpoint "
                                  "holds tensors only))")
    assert "weights_only" not in err and not marker.exists()


@pytest.mark.parametrize("damage, cause", [
    ("no_bin", re.escape("Empty weights data in bin file or bin file cannot be found!")),
    ("short_bin", re.escape("Incorrect weights in bin file!")),
    # pugixml's reason depends on where the cut falls (the IR's size changes with its metadata)
    ("truncated_xml", r"(Error parsing element attribute|Start-end tags mismatch|Unexpected end of data) at offset "),
])
def test_a_damaged_openvino_ir_keeps_its_cause(model, images, tmp_path, capsys, damage, cause):
    from export.openvino import onnx_to_openvino
    from runtime.run import main

    xml = onnx_to_openvino(model, tmp_path / "m.xml")
    bin_ = xml.with_suffix(".bin")
    if damage == "no_bin":
        bin_.unlink()
    elif damage == "short_bin":
        bin_.write_bytes(bin_.read_bytes()[:1000])
    else:
        xml.write_text(xml.read_text()[:len(xml.read_text()) // 2])
    code, err = cli_exit(main, ["--model", str(xml), "--source", str(images), "--sink", "none", "-q"], capsys)
    [line] = error_lines(err)
    assert code == 2 and re.match(re.escape(f"error: {xml}: OpenVINO cannot read it (RuntimeError: ") + cause, line), line
    assert "core.cpp" not in line


def test_errors_name_the_flags_the_user_typed(model, images, capsys):
    from runtime.run import main

    code, err = cli_exit(main, ["--model", str(model), "--source", str(images), "--sink", "none", "--size", "64x64",
                                "-q"], capsys)
    assert code == 2 and "drop --size" in error_lines(err)[-1] and "--input-size" not in err
    code, err = cli_exit(main, ["--model", str(model), "--source", str(images), "--sink", "none", "--precision-hint",
                                "fp16", "-q"], capsys)
    assert code == 2 and error_lines(err) == [
        f"error: {model}: the onnxruntime backend takes no --precision-hint (it takes --device, --threads)"]


# ------------------------------------------------------------------------------------------ found by the fault trial
def test_a_failed_command_leaves_no_empty_output_folder_it_made(tmp_path, capsys):
    """Exporters made the -o folder before reading the source: a junk source (or a signal during the export) left
    it behind, empty. Folders that output checks make are removed again, while empty, when the command fails."""
    from export.openvino import main as to_openvino
    from runtime.contract import DataError, check_output, command

    junk = tmp_path / "junk.onnx"
    junk.write_bytes(os.urandom(512))
    code, err = cli_exit(to_openvino, [str(junk), "-o", str(tmp_path / "new" / "deeper" / "s.xml")], capsys)
    assert code == 2 and len(error_lines(err)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.onnx"]

    @command
    def writes_then(argv):
        out = check_output(tmp_path / argv[0] / "sub" / "r.json")
        if argv[1] == "write":
            out.write_text("{}")
        if argv[2] == "fail":
            raise DataError("bad input")
    assert writes_then(["a", "-", "fail"]) == 2 and not (tmp_path / "a").exists()
    assert writes_then(["b", "write", "fail"]) == 2 and (tmp_path / "b" / "sub" / "r.json").is_file()  # kept
    assert writes_then(["c", "-", "ok"]) == 0 and (tmp_path / "c" / "sub").is_dir()  # a success keeps its folders


def test_a_camera_url_that_answers_and_never_sends_a_frame_is_one_line(model, capsys, monkeypatch):
    """FFmpeg waited on such a server with no limit: runtime.run hung, and Ctrl-C could not stop it (the open is
    one C call). Opening and reading a stream now give up after runtime.sources.STREAM_TIMEOUT_S."""
    import socket
    import threading

    from runtime import sources
    from runtime.run import main

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    held = []

    def serve():
        try:
            conn, _ = server.accept()
            conn.recv(4096)
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=f\r\n\r\n")
            held.append(conn)
        except OSError:
            pass
    threading.Thread(target=serve, daemon=True).start()
    monkeypatch.setattr(sources, "STREAM_TIMEOUT_S", 1.5)
    url = f"http://127.0.0.1:{server.getsockname()[1]}/video.mjpg"
    t0 = time.monotonic()
    try:
        code, err = cli_exit(main, ["--model", str(model), "--source", url, "--sink", "none", "-q"], capsys)
    finally:
        server.close()
        for c in held:
            c.close()
    assert code == 2 and error_lines(err)[-1] == f"error: {url}: cannot open this camera/stream"
    assert time.monotonic() - t0 < 60


def test_a_csi_camera_is_named_as_given(model, capsys):
    from runtime.run import main

    code, err = cli_exit(main, ["--model", str(model), "--source", "csi://3", "--sink", "none", "-q"], capsys)
    assert code == 2 and error_lines(err)[-1].startswith("error: csi://3: cannot open this camera/stream")


def test_the_street_demo_with_a_broken_model_is_one_line_and_leaves_no_video(tmp_path, capsys, monkeypatch):
    """benchmarks.demo.camvid_street printed the runtime's error line and its own (two), and left the drive's video
    in runs/camvid_street/ of the current folder."""
    from benchmarks.demo.camvid_street import main

    root = tmp_path / "camvid"
    (root / "val").mkdir(parents=True)
    for i in range(3):
        cv2.imwrite(str(root / "val" / f"0016E5_{i:05d}.png"), np.full((*FRAME_HW, 3), 40 * i, np.uint8))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(os.urandom(512))
    monkeypatch.chdir(tmp_path)
    code, err = cli_exit(main, ["--root", str(root), "--model", str(junk), "--out-dir", str(tmp_path / "pics")],
                         capsys)
    assert code == 2 and len(error_lines(err)) == 1 and str(junk) in error_lines(err)[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["camvid", "junk.onnx"]


@pytest.mark.parametrize("fault", ["junk log", "name with a slash", "out-dir inside a file"])
def test_learning_curves_refuse_bad_input_in_one_line(tmp_path, capsys, fault):
    """benchmarks.gain.curve: a val_log.csv of other bytes was a UnicodeDecodeError traceback; an --out-dir that
    cannot be written a traceback after the work; --name a/b wrote into a folder a/."""
    from benchmarks.gain.curve import main

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    log = run_dir / "val_log.csv"
    log.write_text("step,mIoU,boundary_f1,split_rate\n10,0.1,0.2,0.3\n")
    (tmp_path / "afile").write_text("x")
    args = {"junk log": [], "name with a slash": ["--name", "a/b", "--out-dir", str(tmp_path / "o")],
            "out-dir inside a file": ["--out-dir", str(tmp_path / "afile" / "o")]}[fault]
    if fault == "junk log":
        log.write_bytes(b"\xe1\xff\x00 not csv")
    code, err = cli_exit(main, ["--run", f"x={run_dir}"] + args, capsys)
    [line] = error_lines(err)
    assert code == 2 and "Traceback" not in err
    named = {"junk log": str(log), "name with a slash": "--name 'a/b'", "out-dir inside a file": "afile/o"}
    assert named[fault] in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "run"]


@pytest.mark.parametrize("module", ["benchmarks.gain.boundary_maps", "benchmarks.speed"])
def test_a_benchmark_report_folder_that_cannot_be_written_is_one_line_before_the_work(tmp_path, capsys, module):
    """Both wrote their report at the end: a read-only, full or misnamed --out-dir was a traceback after the work
    (benchmarks.speed had built its models by then)."""
    import importlib

    (tmp_path / "afile").write_text("x")
    args = {"benchmarks.gain.boundary_maps": ["--model", str(tmp_path / "t.pt"), "--cfg", "synthetic_plain.yaml"],
            "benchmarks.speed": ["--arch", "deeplabv3_resnet10_w8", "--backends", "ort-fp32", "--size", "64x128",
                                 "--rounds", "1", "--work-dir", str(tmp_path / "work")]}[module]
    package = importlib.util.find_spec(module).submodule_search_locations is not None
    main = importlib.import_module(module + ".__main__" if package else module).main
    code, err = cli_exit(main, args + ["--out-dir", str(tmp_path / "afile" / "out")], capsys)
    assert code == 2 and error_lines(err) == [f"error: {tmp_path / 'afile' / 'out'}: --out-dir cannot be written "
                                              "(Not a directory)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # no work folder either


def test_the_gain_benchmark_with_an_unreadable_teacher_leaves_no_run_folder(tmp_path, capsys):
    """It made gain/runs/brd_s0/ before the run read the teacher, and left the empty folders behind."""
    from benchmarks.gain.protocol import main

    junk = tmp_path / "junk.pt"
    junk.write_bytes(os.urandom(4096))
    sets = [s for s in overrides(tmp_path, tmp_path / "x", iters=2) if not s.startswith("out_dir=")]
    code, err = cli_exit(main, ["--methods", "brd", "--seeds", "0", "--no-tune", "--teacher", str(junk),
                                "--out-dir", str(tmp_path / "gain"), "--set", *sets], capsys)
    assert code == 2 and len(error_lines(err)) == 1 and str(junk) in error_lines(err)[0], err[-2000:]
    assert not (tmp_path / "gain").exists()
