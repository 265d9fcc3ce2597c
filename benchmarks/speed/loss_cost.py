"""What BRD costs at training time: loss time as a share of a student step, and relation-loss memory.

    python -m benchmarks.speed.loss_cost                      # demo models, batch 8 x 128x256 (the synthetic configs)
    python -m benchmarks.speed.loss_cost --teacher deeplabv3_resnet101 --student deeplabv3_resnet18 \
        --batch 2 --size 512x1024 --classes 19         # the Cityscapes pair (slow on CPU)

Prints two tables: (1) median wall time of a plain student step, a BRD student step (teacher forward
included), the teacher forward, and each distillation loss's forward + backward on the real feature
tensors, with the losses' share of the BRD step; (2) relation-loss peak memory (forward + backward,
torch profiler memory timeline) on a 512x1024 crop's stride-8 feature map vs. the stated bound and vs.
the unpooled matrix. Inference cost is untouched by construction: the student graph has no BRD parts.
"""
from __future__ import annotations

import statistics
import sys

from runtime.contract import ArgumentParser, command, ConfigError, non_negative_int, positive_int, size_arg
from runtime.stats import time_calls


def timed(fn, repeats, warmup=2):
    """Median seconds of `repeats` calls after `warmup`."""
    return statistics.median(time_calls(fn, repeats, warmup))


def brd_cfg(max_tokens):
    from distill.config import DistillCfg

    cfg = DistillCfg()
    cfg.kd.weight, cfg.boundary.weight, cfg.relation.weight = 1.0, 10.0, 1.0
    cfg.relation.connector, cfg.relation.max_tokens = True, max_tokens
    return cfg


def step_costs(args):
    import torch

    from distill.config import DistillCfg
    from distill.engine import StudentStep
    from distill.losses import Distiller
    from distill.models import build_model

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
    import torch
    from torch.profiler import ProfilerActivity, profile
    from torch.profiler._memory_profiler import MemoryProfileTimeline

    from distill.losses import RelationLoss, relation_memory_bound

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


@command
def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m benchmarks.speed.loss_cost", description=__doc__, examples=(
        "python -m benchmarks.speed.loss_cost",
        "python -m benchmarks.speed.loss_cost --batch 4 --repeats 3 --threads 2",
        "python -m benchmarks.speed.loss_cost --teacher deeplabv3_resnet101 --student deeplabv3_resnet18 "
        "--classes 19 --batch 2 --size 512x1024"))
    p.add_argument("--teacher", default="deeplabv3_resnet18_w32", help="teacher architecture (default deeplabv3_resnet18_w32)")
    p.add_argument("--student", default="deeplabv3_resnet10_w16", help="student architecture (default deeplabv3_resnet10_w16)")
    p.add_argument("--classes", type=positive_int, default=11, help="number of classes (default 11, the synthetic data's)")
    p.add_argument("--batch", type=positive_int, default=8, help="images per step (default 8)")
    size_arg(p, "--size", default=(128, 256), help="input size HxW (default 128x256)")
    p.add_argument("--max-tokens", type=positive_int, default=2048,
                   help="relation loss: pixels kept per image after pooling (default 2048)")
    p.add_argument("--repeats", type=positive_int, default=5, help="timed repeats, the median is shown (default 5)")
    p.add_argument("--threads", type=non_negative_int, default=0, help="torch CPU threads (0: torch's default)")
    args = p.parse_args(argv)
    from distill.models import list_models

    for flag, name in (("--teacher", args.teacher), ("--student", args.student)):
        if name not in list_models():
            raise ConfigError(f"{flag} {name!r}: unknown architecture; expected one of {', '.join(list_models())}")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    step_costs(args)
    relation_memory(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
