"""Scale-out wrappers: activation checkpointing, DDP, FSDP2, torch.compile, state dicts.

Generic helpers (no VAE knowledge), applied in this order by a trainer:
1. :func:`checkpoint_blocks` - recompute chosen blocks in the backward pass (activation /
   gradient checkpointing, ``torch.utils.checkpoint`` without re-entrancy). The wrappers'
   state-dict hooks keep parameter names unchanged, so checkpoints do not notice.
2. :func:`shard` (FSDP2 ``fully_shard`` on chosen blocks, then on the root) or
   :func:`replicate` (DDP).
3. ``module.compile()`` (in place, names unchanged) for ``torch.compile``.

State dicts: :func:`model_state_for_save` / :func:`load_model_state` and
:func:`optimizer_state_for_save` / :func:`load_optimizer_state` give full (unsharded) CPU
state on every layout, so a checkpoint written by an FSDP run loads in a single process and
vice versa.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from pvvae.training.distributed import DistInfo, full_state_dict, load_full_tensor


def checkpoint_blocks(root: nn.Module, block_types: tuple[type[nn.Module], ...]) -> None:
    """Wrap every submodule of ``block_types`` for activation checkpointing, in place."""
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import (
        CheckpointImpl,
        apply_activation_checkpointing,
        checkpoint_wrapper,
    )

    def wrapper(m: nn.Module) -> nn.Module:
        return checkpoint_wrapper(m, checkpoint_impl=CheckpointImpl.NO_REENTRANT)

    apply_activation_checkpointing(
        root, checkpoint_wrapper_fn=wrapper, check_fn=lambda m: isinstance(m, block_types)
    )


def replicate(module: nn.Module, info: DistInfo, find_unused_parameters: bool = False) -> nn.Module:
    """DDP-wrap ``module`` when the job has several ranks (else return it unchanged)."""
    if not info.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [info.device.index] if info.device.type == "cuda" else None
    return DistributedDataParallel(
        module, device_ids=ids, find_unused_parameters=find_unused_parameters
    )


def shard(root: nn.Module, is_unit: Callable[[nn.Module], bool], info: DistInfo) -> nn.Module:
    """FSDP2: ``fully_shard`` every submodule with ``is_unit(m)`` (innermost first), then root.

    The root keeps its parameters unsharded between forward and backward
    (``reshard_after_forward=False``), so e.g. a last layer owned by the root can be
    differentiated with ``torch.autograd.grad`` after the forward pass.
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(info.device.type, (info.world_size,))
    units = [m for m in root.modules() if m is not root and is_unit(m)]
    for m in reversed(units):  # children before parents
        fully_shard(m, mesh=mesh)
    fully_shard(root, mesh=mesh, reshard_after_forward=False)
    return root


def to_float(t: Tensor) -> float:
    """A scalar tensor (possibly a replicated DTensor) as a Python float."""
    from torch.distributed.tensor import DTensor

    return float(t.full_tensor() if isinstance(t, DTensor) else t)


def model_state_for_save(module: nn.Module, info: DistInfo, sharded: bool) -> dict[str, Tensor]:
    """Full CPU state dict of ``module`` on rank 0 ({} elsewhere); collective when sharded."""
    if not sharded and not info.is_main:
        return {}
    state = full_state_dict(module.state_dict())
    return state if info.is_main else {}


@torch.no_grad()
def load_model_state(module: nn.Module, state: Mapping[str, Tensor]) -> None:
    """Load a full state dict into ``module``, whose entries may be FSDP2 shards."""
    own = module.state_dict()
    missing, extra = set(own) - set(state), set(state) - set(own)
    if missing or extra:
        raise KeyError(f"state dict mismatch: missing {sorted(missing)}, extra {sorted(extra)}")
    for name, dst in own.items():
        load_full_tensor(dst, state[name])


def optimizer_state_for_save(
    model: nn.Module, optimizer: torch.optim.Optimizer, info: DistInfo, sharded: bool
) -> dict[str, Any]:
    """The optimizer's state for a checkpoint (full tensors on rank 0; collective if sharded)."""
    if not sharded:
        return optimizer.state_dict() if info.is_main else {}
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_optimizer_state_dict,
    )

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_optimizer_state_dict(model, optimizer, options=options)


def load_optimizer_state(
    model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any], sharded: bool
) -> None:
    """Inverse of :func:`optimizer_state_for_save` (every rank passes the saved state)."""
    if not sharded:
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_optimizer_state_dict,
    )

    options = StateDictOptions(full_state_dict=True)
    set_optimizer_state_dict(model, optimizer, optim_state_dict=state, options=options)
