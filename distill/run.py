"""`python -m distill.run --cfg synthetic.yaml [key=value ...]`: train a teacher, a plain student,
or distil a student, as the config says. Rerunning the same command resumes from the run folder's last.pt.

--cfg takes a YAML file, or the name of a config shipped inside the package (cityscapes.yaml,
cityscapes_teacher.yaml, voc.yaml, synthetic.yaml, ...; `configs/NAME.yaml` too), from any folder and
from a pip install. A file that exists at the given path always wins over a shipped config.

Several processes: `torchrun --nproc_per_node=N -m distill.run --cfg ...` (DDP on the student only; the
global batch train.batch_size is split over the processes). Several machines: run on each
`torchrun --nnodes=M --nproc_per_node=N --rdzv-backend=c10d --rdzv-endpoint=HOST:29500 --rdzv-id=JOB -m distill.run ...`."""
from __future__ import annotations

import argparse
import gc
import signal
import sys

from .checkpoint import CheckpointError
from .config import ConfigError, load_config
from .signals import Interrupted


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m distill.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cfg", required=True, help="YAML config file, or a shipped config's name (e.g. cityscapes.yaml); an existing path wins")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="override config keys, dotted, values as YAML: train.iters=100 data.crop_size=[128,256]")
    args = p.parse_args(argv)
    from .data import DatasetError
    from .engine import train
    from .models import PretrainedError
    # the message is printed after the except block: the traceback it drops holds the progress bar,
    # whose last redraw must come before the message
    message, code = None, 0
    try:
        cfg = load_config(args.cfg, args.overrides)
        train(cfg)
    # a missing teacher / pretrained file, a bad dataset tree, a bad config, an unwritable run folder
    # or a full disk (OSError: the file and the reason): one line, no traceback
    except (ConfigError, CheckpointError, DatasetError, PretrainedError, OSError) as e:
        message, code = f"error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", 2
    except Interrupted as e:  # SIGTERM/Ctrl-C in the loop: the step finished and last.pt was saved
        message, code = str(e), e.exit_code
    except KeyboardInterrupt as e:  # before the loop (setup, data generation) or a second signal
        signum = getattr(e, "signum", signal.SIGINT)
        message = (f"interrupted by {signal.Signals(signum).name} before a resumable state was saved "
                   f"(an earlier last.pt, if any, is intact)")
        code = 128 + signum
    if message:
        gc.collect()  # frames kept by exception cycles hold the bar too
        sys.stderr.flush()
        print(message, file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
