"""The precision policy of a training run: bf16 autocast with an fp32 fallback per module.

Under ``train.precision=bf16`` the forward passes run under ``torch.autocast`` and every
convolution and matmul runs on the bf16 kernel the backend picks for the hardware: on a CPU,
oneDNN chooses AMX, AVX512-BF16, AVX-512 or AVX2 kernels (``ONEDNN_MAX_CPU_ISA`` caps the
choice), on a GPU cuDNN picks per architecture. A kernel that returns NaN/Inf for one layer's
shapes on one machine (seen: the weight gradient of the demo model's last upsampling conv on
AMX, ``bench/bf16_kernels.py``) would otherwise make every step non-finite, and the run would
skip steps until :mod:`pvvae.training.guards` stops it.

So a bf16 step whose loss is finite but whose gradient is not is **recomputed in fp32** (the
same batch, k and noise). When that is finite, bf16 was at fault: the update uses the fp32
gradients, and the modules owning the parameters whose bf16 gradient was non-finite run in
fp32 from then on (:meth:`PrecisionPolicy.pin`, one log line naming them and the machine's
kernel path); the rest of the model stays in bf16. After ``MAX_FALLBACKS`` such events, or
when the failing parameters cannot be named (a non-finite bf16 loss), the whole run moves to
fp32. When the fp32 step is not finite either, the step is skipped as any non-finite step.
The pinned modules are saved in the checkpoint, so a resumed run keeps them.
"""

from __future__ import annotations

import contextlib
import functools
import logging

import torch
from torch import Tensor, nn

logger = logging.getLogger(__name__)

MAX_FALLBACKS = 4  # bf16 failure events before the whole run moves to fp32
WHOLE_MODEL = ""  # the name of the root module: pinning it means fp32 everywhere


class BF16StepFailed(Exception):
    """A bf16 step had a finite loss and a non-finite gradient (raised before any update).

    ``modules``: names of the modules owning the parameters whose gradient was not finite
    (``[WHOLE_MODEL]`` when none can be named).
    """

    def __init__(self, modules: list[str]) -> None:
        super().__init__(", ".join(modules))
        self.modules = modules


def kernel_path(device: torch.device) -> str:
    """Words for the kernels bf16 runs on: the CPU's oneDNN ISA, or the GPU's name."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import os

    cap = os.environ.get("ONEDNN_MAX_CPU_ISA")
    return f"CPU {torch.backends.cpu.get_cpu_capability()}" + (
        f", ONEDNN_MAX_CPU_ISA={cap}" if cap else ""
    )


def nonfinite_modules(model: nn.Module) -> list[str]:
    """Names of the modules whose own parameters hold a non-finite gradient (sorted)."""
    owners = set()
    for name, p in model.named_parameters():
        if p.grad is not None and not bool(torch.isfinite(p.grad).all()):
            owners.add(name.rpartition(".")[0])
    return sorted(owners)


def _fp32_forward(forward, device_type: str, *args, **kwargs):
    """``forward`` with autocast off and floating tensor arguments cast to float32."""
    def cast(a):
        return a.float() if isinstance(a, Tensor) and a.is_floating_point() else a

    with torch.autocast(device_type, enabled=False):
        return forward(*(cast(a) for a in args), **{k: cast(v) for k, v in kwargs.items()})


class PrecisionPolicy:
    """Autocast contexts of a run and the modules held in fp32 (module docstring).

    Args:
        model: the model whose modules can be pinned (the unwrapped VAE).
        device_type: ``"cpu"`` or ``"cuda"``.
        bf16: the run's ``train.precision == "bf16"``.
    """

    def __init__(self, model: nn.Module, device_type: str, bf16: bool) -> None:
        self.model, self.device_type, self.bf16 = model, device_type, bf16
        self.pinned: list[str] = []
        self.fallbacks = 0
        self._forced_fp32 = False

    @property
    def active(self) -> bool:
        """Whether forward passes run under bf16 autocast now."""
        return self.bf16 and not self._forced_fp32 and WHOLE_MODEL not in self.pinned

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.active)

    @contextlib.contextmanager
    def fp32(self):
        """Every forward inside runs in fp32 (the recomputation of a failed bf16 step)."""
        self._forced_fp32, saved = True, self._forced_fp32
        try:
            yield
        finally:
            self._forced_fp32 = saved

    def pin(self, modules: list[str], step: int, device: torch.device) -> None:
        """Run ``modules`` in fp32 from now on (``[WHOLE_MODEL]`` or too many events: all)."""
        self.fallbacks += 1
        whole = WHOLE_MODEL in modules or self.fallbacks > MAX_FALLBACKS
        names = [WHOLE_MODEL] if whole else [m for m in modules if m not in self.pinned]
        self._apply(names)
        where = "the whole model" if whole else ", ".join(names)
        logger.warning(
            "bf16 step %d had a non-finite gradient (finite loss; the same step in fp32 is "
            "finite): a bf16 kernel of this machine (%s) fails for %s; %s now run%s in fp32, "
            "the step used the fp32 gradients%s",
            step, kernel_path(device), where, where, "s" if len(names) == 1 else "",
            "" if whole else " (the rest of the model stays in bf16)",
        )

    def _apply(self, names: list[str]) -> None:
        modules = dict(self.model.named_modules())
        for name in names:
            if name in self.pinned:
                continue
            self.pinned.append(name)
            if name == WHOLE_MODEL:
                continue
            m = modules[name]
            m.forward = functools.partial(_fp32_forward, m.forward, self.device_type)

    def state_dict(self) -> dict:
        return {"fp32_modules": list(self.pinned), "fallbacks": self.fallbacks}

    def load_state_dict(self, state: dict) -> None:
        """Pin the modules a checkpoint recorded (absent in older checkpoints: none)."""
        self._apply([str(n) for n in state.get("fp32_modules", [])])
        self.fallbacks = int(state.get("fallbacks", 0))
        if self.pinned:
            logger.info("resumed with modules in fp32 (bf16 fallback): %s",
                        ", ".join(n or "the whole model" for n in self.pinned))
