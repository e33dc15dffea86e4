"""Data-parallel training across processes started by torchrun (PyTorch DDP).

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK (and the rendezvous address); without them this is a
single process and every helper is a no-op. gloo on CPU, nccl on CUDA.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Only the main process writes files and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init(device: torch.device) -> World:
    """Join the process group torchrun set up, if any; pins each process to its own GPU on CUDA."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return World()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return World(rank=rank, world_size=world_size, local_rank=local_rank)


def process_device(world: World, device: torch.device) -> torch.device:
    """cuda:LOCAL_RANK for each process on a CUDA machine, the device unchanged otherwise."""
    if world.distributed and device.type == "cuda":
        return torch.device("cuda", world.local_rank)
    return device


def mean(value: torch.Tensor, world: World) -> torch.Tensor:
    """The mean of a tensor over all processes (itself when single)."""
    if not world.distributed:
        return value
    value = value.detach().clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / world.world_size


def any_true(flag: bool, world: World, device: torch.device) -> bool:
    """Whether any process has the flag set (so that all processes stop at the same step)."""
    if not world.distributed:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def shutdown(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()
