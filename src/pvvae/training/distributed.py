"""Process-group setup and collectives for single-process, DDP and FSDP training.

The only module of the package that reads environment variables: ``torchrun`` sets
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; when ``RANK``
is unset the run is a single process and every collective below is the identity. So the
same command runs alone or under torchrun::

    pvvae train configs/paper/video.yaml                                  # one process
    torchrun --nproc_per_node=8 -m pvvae train configs/paper/video.yaml   # 8 GPUs, DDP
    torchrun --nnodes=2 --nproc_per_node=8 --rdzv_backend=c10d \\
        --rdzv_endpoint=HOST:29500 -m pvvae train configs/paper/video.yaml  # 2 nodes

(multi-node is torchrun's flags only: run the same command on every node). NCCL is used on
CUDA devices, gloo on the CPU. Nothing here knows about VAEs, so any trainer can use it.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job.

    Attributes:
        rank, world_size, local_rank: as set by torchrun (0, 1, 0 for a single process).
        device: this process's device (``cuda:LOCAL_RANK`` under torchrun on GPUs).
        owns_group: whether :func:`setup` created the process group (and
            :func:`teardown` should destroy it).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs and writes checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` picks ``cuda:local_rank`` when CUDA is available, else the CPU."""
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"device {name!r} is not a device name: use auto, cpu or cuda[:N]") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r}: CUDA is not available here; use cpu or auto")
    if device.type == "cuda" and device.index is None:
        device = torch.device(f"cuda:{local_rank}")
    return device


def setup(device: str = "auto", timeout_s: float = 1800.0) -> DistInfo:
    """Join the torchrun job when there is one (else a single process) and pick the device.

    A process group that is already initialised (e.g. by a test harness) is reused and
    left alone by :func:`teardown`.
    """
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        local = int(os.environ.get("LOCAL_RANK", rank))
        return DistInfo(rank, world, local, _set_device(resolve_device(device, local)))
    if "RANK" not in os.environ:
        return DistInfo(device=_set_device(resolve_device(device)))
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", 0))
    dev = _set_device(resolve_device(device, local))
    backend = "nccl" if dev.type == "cuda" else "gloo"
    timeout = datetime.timedelta(seconds=timeout_s)
    dist.init_process_group(backend, rank=rank, world_size=world, timeout=timeout)
    return DistInfo(rank, world, local, dev, owns_group=True)


def _set_device(device: torch.device) -> torch.device:
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def teardown(info: DistInfo) -> None:
    """Destroy the process group if :func:`setup` created it."""
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    """Wait for all ranks (no-op for a single process)."""
    if info.distributed:
        dist.barrier()


def all_reduce(t: Tensor, info: DistInfo, op: str = "sum") -> Tensor:
    """Reduce ``t`` over ranks in place and return it; ``op`` in sum / mean / min / max."""
    if not info.distributed:
        return t
    ops = {
        "sum": dist.ReduceOp.SUM,
        "mean": dist.ReduceOp.SUM,
        "min": dist.ReduceOp.MIN,
        "max": dist.ReduceOp.MAX,
    }
    dist.all_reduce(t, op=ops[op])
    if op == "mean":
        t /= info.world_size
    return t


def all_true(flag: bool, info: DistInfo) -> bool:
    """True when ``flag`` holds on every rank (used to skip a step on all ranks at once)."""
    t = torch.tensor([1.0 if flag else 0.0], device=info.device)
    return bool(all_reduce(t, info, "min").item() > 0)


def all_gather_object(obj: Any, info: DistInfo) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` (picklable objects)."""
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, info: DistInfo, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank."""
    if not info.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def full_tensor(t: Tensor) -> Tensor:
    """A full CPU copy of ``t``; gathers FSDP2 shards (DTensor), so all ranks must call it."""
    from torch.distributed.tensor import DTensor

    if isinstance(t, DTensor):
        t = t.full_tensor()
    return t.detach().to("cpu", copy=True).contiguous()


def full_state_dict(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """:func:`full_tensor` of every entry (collective under FSDP: call on all ranks)."""
    return {k: full_tensor(v) for k, v in state.items()}


@torch.no_grad()
def load_full_tensor(dst: Tensor, src: Tensor) -> None:
    """Copy a full tensor into ``dst``, which may be an FSDP2 shard (DTensor)."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    if isinstance(dst, DTensor):
        src = distribute_tensor(src.to(dst.device, dst.dtype), dst.device_mesh, dst.placements)
    dst.copy_(src)


def cuda_rng_states() -> list[Tensor]:
    """RNG states of all visible CUDA devices ([] without CUDA)."""
    return torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []


def rng_state() -> dict[str, Any]:
    """This process's global RNG states (CPU and every CUDA device)."""
    return {"torch": torch.get_rng_state(), "cuda": cuda_rng_states()}


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` returned (CUDA states only when CUDA is present)."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
