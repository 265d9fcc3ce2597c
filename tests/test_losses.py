"""Distillation losses: scalar and finite, ~0 at the teacher, larger when further away, gradients reach
the student only, connectors stay out of the student, and the relation loss stays in its memory bound. Each
term (KD, CWD, pairwise, relation, boundary) also equals a value worked by hand on a tiny case, so a wrong
factor, normaliser, direction or sign fails."""
from __future__ import annotations

import pytest
import torch

from distill.config import DistillCfg
from distill.losses import (CWD, BoundaryLoss, Distiller, LogitKD, PairwiseLoss, RelationLoss, boundary_map,
                            relation_memory_bound)
from distill.models import build_model


def _feats(seed, shapes):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g) for s in shapes]


STAGES = [(2, 16, 32, 64), (2, 32, 16, 32), (2, 64, 16, 32), (2, 128, 16, 32)]
# name -> (loss, student shape(s), teacher shape(s)); teacher widths differ where the loss allows it
CASES = {
    "boundary": (lambda: BoundaryLoss(), STAGES, [(n, c * 2, h, w) for n, c, h, w in STAGES]),
    "relation": (lambda: RelationLoss(temperature=0.1, max_tokens=128), [(2, 32, 16, 32)], [(2, 64, 16, 32)]),
    "kd": (lambda: LogitKD(temperature=2.0), [(2, 5, 16, 32)], [(2, 5, 16, 32)]),
    "cwd": (lambda: CWD(temperature=4.0), [(2, 5, 16, 32)], [(2, 5, 16, 32)]),
    "skd": (lambda: PairwiseLoss(max_tokens=128), [(2, 32, 16, 32)], [(2, 64, 16, 32)]),
}


def _call(loss, s, t):
    return loss(s, t) if isinstance(loss, BoundaryLoss) else loss(s[0], t[0])


@pytest.mark.parametrize("name", list(CASES))
def test_loss_scalar_zero_at_teacher_and_grows_with_distance(name):
    make, s_shapes, t_shapes = CASES[name]
    loss = make()
    teacher = _feats(0, t_shapes)
    far = _feats(1, s_shapes)
    value = _call(loss, far, teacher)
    assert value.dim() == 0 and torch.isfinite(value) and value > 0
    # the teacher's own features (same widths) give ~0
    assert _call(loss, [t.clone() for t in teacher], teacher).abs() < 1e-5
    # closer to the teacher => smaller loss (interpolate between a random point and the teacher)
    same = _feats(1, t_shapes)
    near = [0.9 * t + 0.1 * s for t, s in zip(teacher, same)]
    mid = [0.5 * t + 0.5 * s for t, s in zip(teacher, same)]
    assert _call(loss, near, teacher) < _call(loss, mid, teacher) < _call(loss, same, teacher)


@pytest.mark.parametrize("name", list(CASES))
def test_gradients_reach_student_never_teacher(name):
    make, s_shapes, t_shapes = CASES[name]
    student = [t.requires_grad_() for t in _feats(1, s_shapes)]
    teacher = [t.requires_grad_() for t in _feats(0, t_shapes)]
    _call(make(), student, teacher).backward()
    for s in student:
        assert s.grad is not None and torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0
    assert all(t.grad is None for t in teacher)


def test_boundary_map_sees_edges_not_flat_regions():
    feat = torch.zeros(1, 8, 32, 32)
    feat[:, :, :, 16:] = 3.0  # one vertical edge
    b = boundary_map(feat)[0, 0]
    assert b.max() == pytest.approx(1.0, abs=1e-4) and b.min() >= 0
    assert b[:, 15:17].min() > 0.5 and b[:, :13].max() < 1e-6 and b[:, 20:].max() < 1e-6


def test_relation_memory_stays_within_bound_on_a_512x1024_crop():
    """A 512x1024 crop at output stride 8 is a 64x128 feature map: 8192 pixels, an 8192^2 float32
    matrix is 256 MiB per copy. Pooled to <= 2048 tokens, forward + backward must stay in the bound."""
    from torch.profiler import ProfilerActivity, profile
    from torch.profiler._memory_profiler import MemoryProfileTimeline  # the profiler's memory timeline

    max_tokens = 2048
    student = torch.randn(1, 64, 64, 128, requires_grad=True)
    teacher = torch.randn(1, 128, 64, 128)
    loss = RelationLoss(max_tokens=max_tokens)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as prof:
        loss(student, teacher).backward()
    _, sizes = MemoryProfileTimeline(prof._memory_profile())._coalesce_timeline(torch.device("cpu"))
    peak = max(sum(row) for row in sizes)
    bound = relation_memory_bound(1, max_tokens)
    assert bound == 8 * 2048 * 2048 * 4 < 8192 * 8192 * 4  # the bound is below ONE unpooled matrix
    assert max_tokens * max_tokens * 4 < peak <= bound, f"peak {peak / 2**20:.1f} MiB, bound {bound / 2**20:.0f} MiB"
    assert student.grad is not None


def test_distiller_builds_weighted_terms_and_connectors_that_stay_out_of_the_student():
    cfg = DistillCfg()
    cfg.boundary.weight, cfg.relation.weight, cfg.kd.weight = 2.0, 1.0, 0.5
    cfg.relation.connector, cfg.relation.max_tokens = True, 64
    cfg.cwd.weight, cfg.cwd.tap = 1.0, "feat"  # CWD on features needs a connector: widths differ
    teacher = build_model("deeplabv3_resnet18_w32", 3).eval()
    student = build_model("deeplabv3_resnet10_w16", 3).train()
    distiller = Distiller(cfg, student, teacher)
    assert set(distiller.losses) == {"kd", "cwd", "relation", "boundary"}
    assert set(distiller.connectors) == {"cwd", "relation"}
    assert distiller.connectors["relation"][0].in_channels == student.feat_channels == 64
    assert distiller.connectors["relation"][0].out_channels == teacher.feat_channels == 128
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        t_out = teacher.forward_features(x)
    terms = distiller(student.forward_features(x), t_out)
    assert set(terms) == set(distiller.losses) and all(torch.isfinite(v) and v > 0 for v in terms.values())
    sum(distiller.weights[k] * v for k, v in terms.items()).backward()
    assert all(p.grad is not None for p in distiller.connectors.parameters() if p.dim() > 1)
    assert all(p.grad is None for p in teacher.parameters())
    assert not any(k.startswith(("connectors", "losses")) for k in student.state_dict())


def _boundary_grad_norm(variation: float) -> float:
    g = torch.Generator().manual_seed(0)
    teacher = [torch.randn(1, 8, 16, 32, generator=g)]
    student = (1.0 + variation * torch.randn(1, 8, 16, 32, generator=g)).requires_grad_()
    BoundaryLoss()([student], teacher).backward()
    return float(student.grad.norm())


def test_boundary_gradient_stays_bounded_when_the_student_features_are_nearly_flat():
    # Normalised by its own maximum, the map's gradient grew ~1e6-fold as the feature variation fell 1 -> 1e-6.
    # With a detached quantile scale floored at 1% of the mean feature magnitude it stays bounded.
    norms = [_boundary_grad_norm(v) for v in (1.0, 1e-2, 1e-4, 1e-6)]
    assert all(torch.isfinite(torch.tensor(norms)))
    # past the floor (variation ~1e-2 here) the scale stops shrinking and so does the gradient's growth
    assert norms[-1] == pytest.approx(norms[-2], rel=0.05), norms
    assert max(norms) < 5 * norms[1], norms


def test_boundary_map_scale_is_not_one_pixels_maximum():
    x = torch.zeros(1, 4, 32, 32)
    x[..., 16:] = 1.0                     # one vertical edge
    spike = x.clone()
    spike[..., 5, 5] = 100.0              # plus one extreme pixel
    edge_cells = boundary_map(x)[0, 0, :, 15:17]
    assert edge_cells.mean() > 0.5
    # the single spike does not crush the edge to ~0 (with max-normalisation it fell ~100-fold)
    assert boundary_map(spike)[0, 0, 20:, 15:17].mean() > 0.5 * edge_cells[20:].mean()


@pytest.mark.parametrize("name", ["boundary", "relation", "skd"])
def test_feature_terms_ignore_padding_and_ignored_pixels(name):
    # whatever the features hold over padded/ignored pixels (a black border, say), the loss is unchanged
    make, s_shapes, t_shapes = CASES[name]
    loss = make()
    s, t = _feats(1, s_shapes), _feats(0, t_shapes)
    valid = torch.ones(2, 128, 256, dtype=torch.bool)
    valid[:, 96:, :] = False              # bottom quarter padded
    valid[:, :, 200:] = False             # right strip padded
    s2 = [f.clone() for f in s]
    t2 = [f.clone() for f in t]
    for f in s2 + t2:                     # a feature map at stride k covers valid[::k, ::k]
        k = 128 // f.shape[-2]
        f[..., 96 // k:, :] = 50.0
        f[..., :, 200 // k:] = -7.0
    call = (lambda a, b: loss(a, b, valid)) if name == "boundary" else (lambda a, b: loss(a[0], b[0], valid))
    assert float(call(s2, t2)) == pytest.approx(float(call(s, t)), rel=1e-5)
    assert float(call(s2, t2)) != pytest.approx(float(_call(loss, s2, t2)), rel=1e-3)  # unmasked it differs


def test_relation_and_pairwise_similarities_stay_float32_under_autocast():
    s, t = _feats(1, [(2, 32, 16, 32)]), _feats(0, [(2, 64, 16, 32)])
    for loss in (RelationLoss(temperature=0.1, max_tokens=128), PairwiseLoss(max_tokens=128)):
        exact = float(loss(s[0], t[0]))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            value = loss(s[0].bfloat16(), t[0].bfloat16())
        assert value.dtype == torch.float32
        # inputs rounded to bf16 move it a little; a bf16 bmm/softmax would move it far more
        assert float(value) == pytest.approx(exact, rel=2e-2)


def test_the_realtime_student_distills_through_every_tap():
    """configs/cityscapes_realtime.yaml: BRD's boundary terms reach all 4 MobileNetV3 stages and the relation
    term the LR-ASPP feature, so the real-time student is distilled like the others."""
    from distill.config import load_config

    cfg = load_config("cityscapes_realtime.yaml")
    teacher = build_model("deeplabv3_resnet18_w32", 5).eval()
    student = build_model(cfg.model.arch, 5).train()
    distiller = Distiller(cfg.distill, student, teacher)
    assert set(distiller.losses) == {"kd", "boundary", "relation"}
    x = torch.randn(2, 3, 64, 128)
    with torch.no_grad():
        t_out = teacher.forward_features(x)
    for name, term in distiller(student.forward_features(x), t_out).items():
        assert torch.isfinite(term) and term > 0, name
        student.zero_grad()
        term.backward(retain_graph=True)
        for layer in (0, 16):  # the stem and the last 1x1 conv (stage 4, LR-ASPP's input): every term reaches both
            grad = student.backbone.features[layer][0].weight.grad
            assert grad is not None and grad.abs().sum() > 0, (name, layer)


def test_kd_by_hand_and_masked_to_labelled_cells():
    """Two cells, two classes, student uniform. Cell A: teacher logits (ln 3, 0) -> p_T = (3/4, 1/4),
    KL_A = 3/4 ln(3/2) + 1/4 ln(1/2) = 0.130812; cell B: teacher uniform, KL_B = 0.
    Unmasked: mean 0.065406. Only A labelled: 0.130812. Only B: 0. None: 0, not NaN.
    T = 2: p_T(A) = (sqrt3, 1)/(sqrt3 + 1) = (0.633975, 0.366025), KL = 0.036341, times T^2 over 2 cells = 0.072682."""
    import math

    s = torch.zeros(1, 2, 1, 2)
    t = torch.tensor([[[[math.log(3), 0.0]], [[0.0, 0.0]]]])
    kd = LogitKD(1.0)
    assert kd(s, t).item() == pytest.approx(0.065406, abs=1e-6)
    assert kd(s, t, torch.tensor([[[True, False]]])).item() == pytest.approx(0.130812, abs=1e-6)
    assert kd(s, t, torch.tensor([[[False, True]]])).item() == pytest.approx(0.0, abs=1e-7)
    assert kd(s, t, torch.tensor([[[False, False]]])).item() == 0.0
    assert LogitKD(2.0)(s, t).item() == pytest.approx(0.072682, abs=1e-6)


def test_cwd_by_hand_and_masked_to_labelled_cells():
    """One channel over three cells. Teacher (ln 2, 0, 0) -> (1/2, 1/4, 1/4), student uniform (1/3 each):
    KL = 1/2 ln(3/2) + 2 * 1/4 ln(3/4) = 0.058892 (T = 1, N * C = 1).
    Third cell unlabelled: both renormalise over two cells, teacher (2/3, 1/3), student (1/2, 1/2):
    KL = 2/3 ln(4/3) + 1/3 ln(2/3) = 0.056633. With T = 4 the result is T^2 times the KL of the softened
    maps; no labelled cell at all gives 0."""
    import math

    s = torch.zeros(1, 1, 1, 3)
    t = torch.tensor([[[[math.log(2), 0.0, 0.0]]]])
    cwd = CWD(1.0)
    assert cwd(s, t).item() == pytest.approx(0.058892, abs=1e-6)
    assert cwd(s, t, torch.tensor([[[True, True, False]]])).item() == pytest.approx(0.056633, abs=1e-6)
    assert cwd(s, t, torch.zeros(1, 1, 3, dtype=torch.bool)).item() == 0.0
    # a second image with no labelled cell does not count in N
    s2, t2 = torch.cat([s, s]), torch.cat([t, t])
    valid = torch.tensor([[[True, True, False]], [[False, False, False]]])
    assert cwd(s2, t2, valid).item() == pytest.approx(0.056633, abs=1e-6)


# The 2x2 feature maps of the hand-worked cases below, tokens in row-major order (cell (0,0), (0,1), (1,0), (1,1)).
# Teacher: tokens (1,0), (1,0), (0,1), (0,1): two groups of two pixels.
TEACHER_2X2 = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]], [[0.0, 0.0], [1.0, 1.0]]]])
ONLY_LAST_CELL_IGNORED = torch.tensor([[[True, True], [True, False]]])


def test_pairwise_by_hand_on_a_2x2_map():
    """SKD's pair-wise term, mean over all M^2 pairs of (cos_S - cos_T)^2 (Liu et al. 2019; CIRKD's skd.py).
    Teacher cosines A_T = [[1,1,0,0], [1,1,0,0], [0,0,1,1], [0,0,1,1]].
    Student tokens (1,0), (3,0), (1,1), (0,-2) (lengths differ: only directions count); with r = 1/sqrt2
    A_S = [[1,1,r,0], [1,1,r,0], [r,r,1,-r], [0,0,-r,1]].
    Squared differences by row: r^2 = 1/2; 1/2; 1/2 + 1/2 + (1+r)^2; (1+r)^2, with (1+r)^2 = 3/2 + sqrt2.
    Sum 5 + 2 sqrt2 = 7.828427 over 16 pairs: 0.489277.
    Last cell ignored: the 9 pairs of the first three tokens, 1/2 + 1/2 + (1/2 + 1/2) = 2, over 9: 0.222222."""
    student = torch.tensor([[[[1.0, 3.0], [1.0, 0.0]], [[0.0, 0.0], [1.0, -2.0]]]])
    skd = PairwiseLoss(max_tokens=512)
    assert skd(student, TEACHER_2X2).item() == pytest.approx(0.489277, abs=1e-6)
    assert skd(student, TEACHER_2X2, ONLY_LAST_CELL_IGNORED).item() == pytest.approx(0.222222, abs=1e-6)


def test_relation_by_hand_on_a_2x2_map():
    """Student tokens all (1,0): every similarity is 1/tau, each row softmax is uniform (1/4).
    Teacher row 1 (and by symmetry every row): logits (1, 1, 0, 0)/tau, so p_T = (a/2, a/2, (1-a)/2, (1-a)/2)
    with a = e^(1/tau) / (e^(1/tau) + 1), and KL(p_T || 1/4) = sum p ln(4p) = ln 2 - H(a), H the binary entropy.
    tau = 1: a = 0.731059, H = 0.582203, KL = 0.110944 (the other direction, KL(1/4 || p_T), would be 0.120115).
    tau = 0.5: a = 0.880797, KL = 0.327813 (a tau^2 factor would make it 0.081953).
    Mean over images and rows: a second image whose teacher is its student adds 4 rows of KL 0: 0.055472.
    Last cell ignored (tau = 1), rows and columns over tokens 1-3, student uniform 1/3:
    rows 1, 2: p_T = (e, e, 1)/(2e+1), KL = ln 3 + sum p ln p = 0.081255; row 3: p_T = (1, 1, e)/(e+2), KL = 0.123284;
    mean of the three rows 0.095265."""
    student = torch.zeros(1, 2, 2, 2)
    student[:, 0] = 1.0
    teacher = torch.cat([TEACHER_2X2, torch.zeros(1, 1, 2, 2)], 1)  # a third, empty channel: widths need not match
    assert RelationLoss(temperature=1.0)(student, teacher).item() == pytest.approx(0.110944, abs=1e-6)
    assert RelationLoss(temperature=0.5)(student, teacher).item() == pytest.approx(0.327813, abs=1e-6)
    pair_s = torch.cat([student, student])
    pair_t = torch.cat([teacher, torch.cat([student, torch.zeros(1, 1, 2, 2)], 1)])
    assert RelationLoss(temperature=1.0)(pair_s, pair_t).item() == pytest.approx(0.055472, abs=1e-6)
    masked = RelationLoss(temperature=1.0)(student, teacher, ONLY_LAST_CELL_IGNORED)
    assert masked.item() == pytest.approx(0.095265, abs=1e-6)


def test_boundary_by_hand_on_a_2x2_map():
    """On a 2x2 map the 3x3 local average (padding not counted) of every cell is the mean of all four.
    Teacher [[1,0],[0,0]]: mean 1/4, E_T = |F - 1/4| = (3/4, 1/4, 1/4, 1/4). Its 99th percentile (linear, position
    0.99 * 3 = 2.97 in the sorted values) is 1/4 + 0.97 * 1/2 = 0.735, so B_T = (50/49, 50/147, 50/147, 50/147).
    Student [[0,0],[2,2]]: mean 1, E_S = (1, 1, 1, 1), percentile 1, B_S = (1, 1, 1, 1) (its scale does not count).
    B_S - B_T = (-1/49, 97/147, 97/147, 97/147). Weights from the teacher's map, w = 1 + 4 B_T =
    (249/49, 347/147, 347/147, 347/147), sum 1788/147 = 12.163265.
    L = (249/49 (1/49)^2 + 3 * 347/147 (97/147)^2) / (1788/147) = 3.085595 / 12.163265 = 0.253682
    (weights from the student's map instead would give 0.326669, unweighted: see below).
    Without the edge weight (alpha = 0) it is the plain mean: ((1/49)^2 + 3 (97/147)^2) / 4 = 0.326669.
    A second stage on which the maps agree (the teacher's two channels [[1,0],[0,0]] and [[2,0],[0,0]] give the
    student's one-channel map [[1,0],[0,0]]: the channel mean and the scale cancel) adds 0; the stages are
    averaged: 0.126841."""
    teacher = [torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])]
    student = [torch.tensor([[[[0.0, 0.0], [2.0, 2.0]]]])]
    assert BoundaryLoss(kernel=3, edge_weight=4.0)(student, teacher).item() == pytest.approx(0.253682, abs=1e-6)
    assert BoundaryLoss(kernel=3, edge_weight=0.0)(student, teacher).item() == pytest.approx(0.326669, abs=1e-6)
    teacher.append(torch.tensor([[[[1.0, 0.0], [0.0, 0.0]], [[2.0, 0.0], [0.0, 0.0]]]]))
    student.append(torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]]))
    assert BoundaryLoss(kernel=3, edge_weight=4.0)(student, teacher).item() == pytest.approx(0.126841, abs=1e-6)
