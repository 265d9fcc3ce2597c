"""Settings out of range, on the command line or in a config file: one line naming the flag or the file's key
and what was expected, before any work, and no run folder left behind."""
from __future__ import annotations

import pytest
import torch

from .faults import ROOT, cli_exit, error_lines, train_args


# ------------------------------------------------------------------------------------------ range errors
@pytest.mark.parametrize("module, args, message", [
    ("runtime.run", ["--max-frames", "0"], "argument --max-frames: 0 is out of range: expected >= 1"),
    ("runtime.run", ["--alpha", "1.5"], "argument --alpha: 1.5 is out of range: expected [0, 1]"),
    ("runtime.run", ["--stats-every", "0"], "argument --stats-every: 0 is out of range: expected > 0"),
    ("runtime.bench", ["--iters", "0"], "argument --iters: 0 is out of range: expected >= 1"),
    ("export.onnx", ["--size", "0x64"], "argument --size: expected HxW with H, W >= 1, e.g. 512x1024, got '0x64'"),
    ("export.quantize", ["--min-agreement", "7"], "argument --min-agreement: 7 is out of range: expected [0, 1]"),
    ("export.quantize", ["--num-calib", "0"], "argument --num-calib: 0 is out of range: expected >= 1"),
])
def test_cli_ranges_are_checked_when_the_arguments_are_read(model, tmp_path, capsys, module, args, message):
    import importlib

    main = importlib.import_module(module).main
    argv = (["--model", str(model)] if module.startswith("runtime") else [str(model)]) + args
    code, err = cli_exit(main, argv, capsys)
    assert code == 2 and error_lines(err)[-1].endswith(f"error: {message}")


@pytest.mark.parametrize("setting, message", [
    ("train.lr=-0.5", "train.lr: must be > 0, got -0.5"),
    ("train.ckpt_every=0", "train.ckpt_every: must be >= 1, got 0"),
    ("data.scale_range=[0,0]", "data.scale_range: expected [min, max] with 0 < min <= max, got [0.0, 0.0]"),
    ("data.crop_size=[512,1024]", "data.crop_size: 512x1024 is larger than the largest scaled image 48x96 "
                                  "(data.kwargs.size [32, 64] x data.scale_range max 1.5): every crop would be mostly padding"),
    ("model.arch=resnet_huge", "model.arch: unknown architecture 'resnet_huge'"),
    ("data.dataset=kitti", "data.dataset: unknown dataset 'kitti'"),
    ("train.device=gpu", "train.device: expected auto, cpu, cuda or cuda:N, got 'gpu'"),
    ("train.device=cuda", "train.device: cuda asked for, but this machine has no CUDA"),
])
def test_config_ranges_are_one_line_before_any_work(tmp_path, capsys, setting, message):
    from distill.run import main

    if setting == "train.device=cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "run"
    code, err = cli_exit(main, [str(a) for a in train_args(tmp_path, out, iters=1, extra=[setting])[1:]], capsys)
    [line] = error_lines(err)
    assert code == 2 and line.startswith(f"error: --set {setting}: {message}")  # where the value came from
    assert not out.exists() and not (tmp_path / "data").exists()  # nothing was done


def test_a_range_error_in_the_file_names_the_file(tmp_path, capsys):
    from distill.run import main

    cfg = tmp_path / "c.yaml"
    text = (ROOT / "configs" / "synthetic_plain.yaml").read_text()
    assert "\n  lr: 0.02\n" in text
    cfg.write_text(text.replace("\n  lr: 0.02\n", "\n  lr: -0.5\n"))
    code, err = cli_exit(main, ["--cfg", str(cfg), "--set", f"out_dir={tmp_path / 'run'}"], capsys)
    assert code == 2 and error_lines(err) == [f"error: {cfg}: train.lr: must be > 0, got -0.5"]


@pytest.mark.parametrize("setting, message", [
    ("model.kwargs.bogus=1", "model.kwargs.bogus: deeplabv3_resnet10_w8 takes no argument 'bogus'"),
    ("model.kwargs.stem=9x9", "model.kwargs.stem: deeplabv3_resnet10_w8 does not accept '9x9' (ValueError: stem must "
                              "be one of v1c, v1s, 7x7, got '9x9')"),
    ("model.kwargs.width=0", "model.kwargs.width: deeplabv3_resnet10_w8 does not accept 0 (IndexError: "),
])
def test_model_kwargs_are_checked_against_the_architecture_before_any_work(tmp_path, capsys, setting, message):
    from distill.run import main

    out = tmp_path / "run"
    code, err = cli_exit(main, [str(a) for a in train_args(tmp_path, out, iters=1, extra=[setting])[1:]], capsys)
    [line] = error_lines(err)
    assert code == 2 and line.startswith(f"error: --set {setting}: {message}")
    assert not out.exists() and not (tmp_path / "data").exists()


def test_a_run_that_fails_early_leaves_no_empty_run_folder(tmp_path, capsys):
    from distill.run import main

    out = tmp_path / "runs" / "x"
    code, err = cli_exit(main, ["--cfg", str(ROOT / "configs" / "synthetic_plain.yaml"), "--set", f"out_dir={out}",
                                "data.dataset=cityscapes", f"data.root={tmp_path / 'nowhere'}", "data.kwargs={}",
                                "data.val_kwargs={}"], capsys)
    [line] = error_lines(err)
    assert code == 2 and str(tmp_path / "nowhere") in line
    assert not out.exists()


@pytest.mark.parametrize("override", ["=3", "train.=3", "train..lr=0.1"])
def test_an_override_with_no_key_names_what_was_typed(tmp_path, capsys, override):
    """The fault trial: `--set =3` said "unknown key ''", naming neither what was typed nor the grammar."""
    from distill.run import main

    code, err = cli_exit(main, ["--cfg", "synthetic_plain.yaml", "--set", f"out_dir={tmp_path / 'run'}", override],
                         capsys)
    [line] = error_lines(err)
    assert code == 2 and repr(override) in line and "expected dotted.key=value" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("text", ["", "# only a comment\n", "{}\n", "[1, 2]\n"])
def test_empty_or_non_mapping_config_is_an_error(tmp_path, capsys, text):
    from distill.run import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    code, err = cli_exit(main, ["--cfg", str(cfg)], capsys)
    [line] = error_lines(err)
    assert code == 2 and line.startswith(f"error: {cfg}: ")
    assert ("the config is empty" in line) if text != "[1, 2]\n" else ("expected a mapping at the top level" in line)
    assert not (tmp_path / "runs").exists()
