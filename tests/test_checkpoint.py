"""Student checkpoint format: round trip, metadata, atomic writes and the error paths."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from distill import checkpoint
from distill.models import build_model

from .conftest import CLASSES, SMALL_STUDENTS, write_student


@pytest.mark.parametrize("arch", SMALL_STUDENTS)
def test_round_trip_gives_identical_outputs(tmp_path, arch):
    path = write_student(tmp_path / "s.pt", arch=arch)
    model, meta = checkpoint.load(path)
    torch.manual_seed(0)
    reference = build_model(arch, len(CLASSES))
    reference.load_state_dict(torch.load(path, weights_only=True)["state_dict"])
    x = torch.randn(2, 3, 64, 128)
    with torch.no_grad():
        assert torch.equal(model(x), reference.eval()(x))
    assert not model.training
    assert meta["arch"] == arch and meta["classes"] == CLASSES and meta["input_size"] == [64, 128]
    assert meta["version"] and isinstance(meta["palette"][0][0], int)


def test_meta_is_plain_types_and_arch_kwargs_rebuild(tmp_path):
    model = build_model("deeplabv3_resnet10_w16", 5, output_stride=16, aux=False)
    meta = checkpoint.make_meta("deeplabv3_resnet10_w16", model.arch_kwargs, 5, CLASSES,
                                [[i, i, i] for i in range(5)], [0, 0, 0], [1, 1, 1], [32, 32], "synthetic",
                                config={"train": {"lr": 0.01}}, metrics={"mIoU": 0.5})
    checkpoint.save(tmp_path / "s.pt", model, meta)
    loaded, meta2 = checkpoint.load(tmp_path / "s.pt")
    assert meta2 == meta
    assert loaded.aux_head is None and loaded.backbone.strides[-1] == 16
    # only weights and meta: no optimizer, teacher or connector state
    raw = torch.load(tmp_path / "s.pt", weights_only=True)
    assert set(raw) == {"format", "format_version", "meta", "state_dict"}
    assert all(k.startswith(("backbone.", "head.")) for k in raw["state_dict"])


def test_meta_rejects_inconsistent_class_lists():
    with pytest.raises(ValueError, match="5 classes but 2 names"):
        checkpoint.make_meta("x", {}, 5, ["a", "b"], [[0, 0, 0]] * 5, [0] * 3, [1] * 3, [8, 8], "d")


def test_truncated_and_foreign_files_name_the_file(tmp_path, student_ckpt):
    data = Path(student_ckpt).read_bytes()
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(checkpoint.CheckpointError, match="truncated.pt: not a readable BRD Edge checkpoint"):
        checkpoint.load(bad)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(checkpoint.CheckpointError, match="foreign.pt: expected a 'brd-edge/student' checkpoint"):
        checkpoint.load(foreign)
    with pytest.raises(checkpoint.CheckpointError, match="nothing.pt: no such checkpoint file"):
        checkpoint.load(tmp_path / "nothing.pt")


def test_training_checkpoint_is_refused_as_student(tmp_path):
    checkpoint.save_training(tmp_path / "last.pt", {"step": 3, "model": {}})
    with pytest.raises(checkpoint.CheckpointError, match="a training checkpoint: use the run folder's model.pt"):
        checkpoint.load(tmp_path / "last.pt")
    assert checkpoint.load_training(tmp_path / "last.pt")["step"] == 3


def test_class_count_mismatch(student_ckpt):
    with pytest.raises(checkpoint.CheckpointError, match="has 5 classes, expected 19"):
        checkpoint.load(student_ckpt, num_classes=19)


def test_weights_that_do_not_fit_the_arch(tmp_path, student_ckpt):
    raw = torch.load(student_ckpt, weights_only=True)
    raw["meta"]["arch"] = "lraspp_mobilenetv2_w035"
    torch.save(raw, tmp_path / "mislabelled.pt")
    with pytest.raises(checkpoint.CheckpointError, match="mislabelled.pt: weights do not fit 'lraspp_mobilenetv2_w035'"):
        checkpoint.load(tmp_path / "mislabelled.pt")


def test_interrupted_save_keeps_the_previous_file(tmp_path, student_ckpt):
    target = tmp_path / "student.pt"
    target.write_bytes(Path(student_ckpt).read_bytes())
    before = target.read_bytes()

    class Exploding:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        checkpoint.atomic_save({"x": Exploding()}, target)
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["student.pt"]  # no temp file left behind


def test_runtime_imports_without_torch(tmp_path):
    """runtime/ must load on a device that has neither torch nor distill."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'distill', 'torchvision'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import pkgutil, importlib, runtime\n"
        "for m in pkgutil.walk_packages(runtime.__path__, 'runtime.'):\n"
        "    importlib.import_module(m.name)\n"
        "print('ok', 'torch' in sys.modules)\n"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok False"


def test_a_run_folder_of_an_earlier_release_loads_by_the_new_name_and_back(tmp_path):
    """Runs of earlier releases saved the model as student.pt: a reader asking for model.pt (the name every run
    now writes) gets it, and an old config naming student.pt gets a new run's model.pt, with no error."""
    old = write_student(tmp_path / "old_run" / checkpoint.OLD_MODEL_FILE, seed=1)
    new = write_student(tmp_path / "new_run" / checkpoint.MODEL_FILE, seed=2)
    assert checkpoint.run_model(tmp_path / "old_run") == old and checkpoint.run_model(tmp_path / "new_run") == new
    def weights(path):
        return checkpoint.load(path)[0].state_dict()

    for asked, real in ((tmp_path / "old_run" / "model.pt", old), (tmp_path / "new_run" / "student.pt", new)):
        got, want = weights(asked), weights(real)
        assert all(torch.equal(got[k], want[k]) for k in want)
    # the seeds differ, so the two files differ: each fallback read its own folder's file
    assert not all(torch.equal(a, b) for a, b in zip(weights(old).values(), weights(new).values()))
    # only a run folder's model name falls back; a missing file is still one error naming what was asked
    with pytest.raises(checkpoint.CheckpointError, match=r"empty/model\.pt: no such checkpoint file"):
        checkpoint.load(tmp_path / "empty" / "model.pt")
    with pytest.raises(checkpoint.CheckpointError, match=r"best\.pt: no such checkpoint file"):
        checkpoint.load(tmp_path / "old_run" / "best.pt")


def test_a_teacher_run_of_an_earlier_release_is_found_by_the_new_name(tmp_path):
    """The shipped configs name `runs/<x>_teacher/model.pt`; a teacher trained before holds student.pt there."""
    from distill.config import Config
    from distill.build import TeacherMissing, load_teacher

    write_student(tmp_path / "teacher" / checkpoint.OLD_MODEL_FILE, seed=3)
    cfg = Config()
    cfg.distill.kd.weight = 1.0
    cfg.teacher.ckpt = str(tmp_path / "teacher" / checkpoint.MODEL_FILE)
    teacher = load_teacher(cfg, len(CLASSES), "cpu")
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    cfg.teacher.ckpt, cfg.teacher.config = str(tmp_path / "nowhere" / checkpoint.MODEL_FILE), "synthetic_teacher.yaml"
    with pytest.raises(TeacherMissing, match="synthetic_teacher.yaml` \\(its run folder's model.pt\\)"):
        load_teacher(cfg, len(CLASSES), "cpu")
