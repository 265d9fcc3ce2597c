"""Several processes (torchrun): which device and process group this one uses, the step module wrapped in
DDP, and the end-of-run check that every process holds the same weights."""
from __future__ import annotations

import hashlib
import os

import torch
import torch.distributed as dist
import torch.nn as nn

from .config import Config


def setup_distributed(cfg: Config):
    """(rank, world, device). Process groups only under torchrun with WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    want = cfg.train.device
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    if world > 1:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if want.startswith("cuda"):
            torch.cuda.set_device(local)
            device = torch.device("cuda", local)
        else:
            device = torch.device("cpu")
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return dist.get_rank(), world, device
    return 0, 1, torch.device(want)


def wrap(stepper: nn.Module, cfg: Config, device, rank: int, world: int) -> nn.Module:
    """The step module, under DDP when there are several processes."""
    if world == 1:
        return stepper
    # torch's SyncBatchNorm runs on GPUs only: on CPU (gloo) each process normalises with its own batch
    # statistics, and DDP broadcasts rank 0's running statistics to every rank at each step
    sync_bn = cfg.train.sync_bn and device.type == "cuda"
    model = nn.SyncBatchNorm.convert_sync_batchnorm(stepper) if sync_bn else stepper
    model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if rank == 0:
        why = ("" if sync_bn else " (train.sync_bn=false)" if not cfg.train.sync_bn else
               " (train.sync_bn=true, but torch's SyncBatchNorm needs CUDA; running statistics come from rank 0)")
        print(f"[{cfg.name}] {world} processes on {device.type}; BatchNorm: "
              f"{'SyncBatchNorm' if sync_bn else 'per process'}{why}", flush=True)
    return model


def check_same_weights(cfg: Config, student: nn.Module, rank: int, world: int) -> None:
    """Under DDP every process must end with the same weights (else the run is a bug, not a result)."""
    digests = [None] * world
    dist.all_gather_object(digests, weights_digest(student))
    if rank == 0:
        if len(set(digests)) > 1:
            raise RuntimeError(f"the {world} processes ended with different weights: {digests}")
        print(f"[{cfg.name}] all {world} processes hold the same weights (sha256 {digests[0]})", flush=True)
    dist.barrier()
    dist.destroy_process_group()


def weights_digest(model: nn.Module) -> str:
    """sha256 over the trained parameters, in order: equal on every rank when DDP kept them in step."""
    h = hashlib.sha256()
    for name, p in model.named_parameters():
        h.update(name.encode())
        h.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]
