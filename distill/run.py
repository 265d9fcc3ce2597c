"""`python -m distill.run --cfg synthetic.yaml [--set key=value ...]`: train a teacher, a plain student,
or distil a student, as the config says. Rerunning the same command resumes from the run folder's last.pt.

--cfg takes a YAML file, or the name of a config shipped inside the package (cityscapes.yaml,
cityscapes_teacher.yaml, voc.yaml, synthetic.yaml, ...; `configs/NAME.yaml` too), from any folder and
from a pip install. A file that exists at the given path always wins over a shipped config.

Several processes: `torchrun --nproc_per_node=N -m distill.run --cfg ...` (DDP on the student only; the
global batch train.batch_size is split over the processes). Several machines: run on each
`torchrun --nnodes=M --nproc_per_node=N --rdzv-backend=c10d --rdzv-endpoint=HOST:29500 --rdzv-id=JOB -m distill.run ...`."""
from __future__ import annotations

import gc
import sys

from runtime.contract import ArgumentParser, add_overrides, command

from .config import load_config
from .signals import Interrupted


def build_parser():
    p = ArgumentParser(prog="python -m distill.run", description=__doc__, examples=(
        "python -m distill.run --cfg synthetic_teacher.yaml",
        "python -m distill.run --cfg synthetic.yaml --set train.iters=100 --set train.seed=1",
        "torchrun --standalone --nproc_per_node=4 -m distill.run --cfg cityscapes.yaml"))
    p.add_argument("--cfg", required=True,
                   help="YAML config file, or a shipped config's name (e.g. cityscapes.yaml); an existing path wins")
    add_overrides(p)
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved config (bases merged, overrides applied) and exit")
    return p


@command(interrupted="before a resumable state was saved (an earlier last.pt, if any, is intact)")
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    cfg = load_config(args.cfg, args.overrides)  # a bad config is one line before any import of the loop
    if args.print_config:
        import yaml

        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
        return 0
    from .engine import train

    try:
        train(cfg)
    except Interrupted as e:  # SIGTERM/Ctrl-C in the loop: the step finished and last.pt was saved
        # printed after the except block's traceback is dropped: it holds the progress bar, whose
        # last redraw must come before the message
        message, code = str(e), e.exit_code
    else:
        return 0
    gc.collect()
    sys.stderr.flush()
    print(message, file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
