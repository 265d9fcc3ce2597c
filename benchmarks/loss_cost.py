"""What BRD costs at training time: loss time as a share of a student step, and relation-loss memory.

    python benchmarks/loss_cost.py                      # demo models, batch 8 x 128x256 (the synthetic configs)
    python benchmarks/loss_cost.py --teacher deeplabv3_resnet101 --student deeplabv3_resnet18 \
        --batch 2 --size 512 1024 --classes 19         # the Cityscapes pair (slow on CPU)

Prints two tables: (1) median wall time of a plain student step, a BRD student step (teacher forward
included), the teacher forward, and each distillation loss's forward + backward on the real feature
tensors, with the losses' share of the BRD step; (2) relation-loss peak memory (forward + backward,
torch profiler memory timeline) on a 512x1024 crop's stride-8 feature map vs. the stated bound and vs.
the unpooled matrix. Inference cost is untouched by construction: the student graph has no BRD parts.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
import sys

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from distill.config import DistillCfg  # noqa: E402
from distill.engine import StudentStep  # noqa: E402
from distill.losses import Distiller, RelationLoss, relation_memory_bound  # noqa: E402
from distill.models import build_model  # noqa: E402


def timed(fn, repeats, warmup=2):
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def brd_cfg(max_tokens):
    cfg = DistillCfg()
    cfg.kd.weight, cfg.boundary.weight, cfg.relation.weight = 1.0, 10.0, 1.0
    cfg.relation.connector, cfg.relation.max_tokens = True, max_tokens
    return cfg


def step_costs(args):
    torch.manual_seed(0)
    teacher = build_model(args.teacher, args.classes).eval().requires_grad_(False)
    student = build_model(args.student, args.classes).train()
    x = torch.randn(args.batch, 3, *args.size)
    y = torch.randint(0, args.classes, (args.batch, *args.size))
    plain = StudentStep(student, Distiller(DistillCfg(), student, student), 0.4)
    brd = StudentStep(student, Distiller(brd_cfg(args.max_tokens), student, teacher), 0.4)
    opt = torch.optim.SGD(brd.parameters(), lr=1e-3, momentum=0.9)

    def step(module, with_teacher):
        t_out = None
        if with_teacher:
            with torch.no_grad():
                t_out = teacher.forward_features(x)
        total, _ = module(x, y, t_out)
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()

    rows = [("plain student step", timed(lambda: step(plain, False), args.repeats)),
            ("BRD student step", timed(lambda: step(brd, True), args.repeats))]
    with torch.no_grad():
        rows.append(("teacher forward (no grad)", timed(lambda: teacher.forward_features(x), args.repeats)))
        t_out = teacher.forward_features(x)
        s_out = student.forward_features(x)
    s_out = {k: ([t.detach().requires_grad_() for t in v] if k == "stages" else
                 (v.detach().requires_grad_() if torch.is_tensor(v) else v)) for k, v in s_out.items()}
    distiller = brd.distiller
    loss_total = 0.0
    for name in distiller.losses:
        single = Distiller(brd_cfg(args.max_tokens), student, teacher)
        single.losses = torch.nn.ModuleDict({name: distiller.losses[name]})
        single.connectors, single.weights = distiller.connectors, distiller.weights

        def run(single=single):
            sum(single(s_out, t_out).values()).backward()
        t = timed(run, args.repeats)
        loss_total += t
        rows.append((f"  {name} loss fwd+bwd", t))
    rows.append(("all BRD losses fwd+bwd", loss_total))
    brd_step = rows[1][1]
    print(f"\nstep cost: teacher {args.teacher} -> student {args.student}, batch {args.batch} x {args.size[0]}x{args.size[1]}, "
          f"{torch.get_num_threads()} threads, median of {args.repeats}")
    print(f"{'what':32s} {'ms':>9s} {'share of BRD step':>18s}")
    for name, t in rows:
        print(f"{name:32s} {t * 1e3:9.1f} {t / brd_step:17.1%}")


def relation_memory(args):
    from torch.profiler import ProfilerActivity, profile
    from torch.profiler._memory_profiler import MemoryProfileTimeline

    h, w = 512 // 8, 1024 // 8
    print(f"\nrelation loss memory: 512x1024 crop at stride 8 = {h}x{w} = {h * w} pixels per image")
    print(f"{'batch':>5s} {'max_tokens':>10s} {'peak MiB':>9s} {'bound MiB':>10s} {'unpooled 1 matrix MiB':>22s}")
    for batch in (1, 2):
        for tokens in (2048, 1024):
            s = torch.randn(batch, 64, h, w, requires_grad=True)
            t = torch.randn(batch, 128, h, w)
            with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as prof:
                RelationLoss(max_tokens=tokens)(s, t).backward()
            _, sizes = MemoryProfileTimeline(prof._memory_profile())._coalesce_timeline(torch.device("cpu"))
            peak = max(sum(r) for r in sizes)
            print(f"{batch:5d} {tokens:10d} {peak / 2**20:9.1f} {relation_memory_bound(batch, tokens) / 2**20:10.0f} "
                  f"{batch * (h * w) ** 2 * 4 / 2**20:22.0f}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", default="deeplabv3_resnet18_w32")
    p.add_argument("--student", default="deeplabv3_resnet10_w16")
    p.add_argument("--classes", type=int, default=11)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, nargs=2, default=[128, 256])
    p.add_argument("--max-tokens", type=int, default=2048)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    step_costs(args)
    relation_memory(args)


if __name__ == "__main__":
    main()
