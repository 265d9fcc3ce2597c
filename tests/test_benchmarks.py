"""Benchmark building blocks: the structural-identity check behind "no added inference cost"."""
from __future__ import annotations

import pytest

from benchmarks.model_cost import compare_structure, count_macs, count_params, file_size
from distill import checkpoint
from export.onnx import torch_to_onnx

from .conftest import write_student


@pytest.fixture(scope="module")
def onnx_pair(tmp_path_factory):
    d = tmp_path_factory.mktemp("pair")
    a = torch_to_onnx(write_student(d / "plain.pt", seed=1), d / "plain.onnx")
    b = torch_to_onnx(write_student(d / "brd.pt", seed=2), d / "brd.onnx")
    c = torch_to_onnx(write_student(d / "mbv2.pt", arch="lraspp_mobilenetv2_w035"), d / "mbv2.onnx")
    return a, b, c


def test_students_with_different_weights_have_identical_graphs(onnx_pair):
    plain, brd, other = onnx_pair
    assert plain.read_bytes() != brd.read_bytes()  # the weights really differ
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
