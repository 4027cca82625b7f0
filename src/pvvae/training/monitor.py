"""Run logging on rank 0: JSON lines, TensorBoard and a console progress bar.

``runs/NAME/log.jsonl`` gets one JSON object per logged step; ``runs/NAME/tb/`` the same
scalars for TensorBoard (``tensorboard --logdir runs``; names with a slash are grouped, e.g.
``loss/mse``) plus images. On other ranks every method is a no-op, so callers need no
rank checks. Nothing here knows about VAEs.
"""

from __future__ import annotations

import json
import resource
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm


class RunLogger:
    """JSON lines + TensorBoard + progress bar for one run (active only when ``enabled``).

    Args:
        run_dir: the run folder.
        enabled: True on rank 0.
        total_steps, start_step: progress bar range (a resumed run starts at its step).
        tensorboard: write TensorBoard events under ``run_dir/tb``.
        progress: show the progress bar.
        desc: progress bar label.
    """

    def __init__(
        self,
        run_dir: str | Path,
        enabled: bool,
        total_steps: int,
        start_step: int = 0,
        tensorboard: bool = True,
        progress: bool = True,
        desc: str = "",
    ) -> None:
        self.enabled = enabled
        self.run_dir = Path(run_dir)
        self._jsonl = self._tb = self._bar = None
        if not enabled:
            return
        truncate_log(self.run_dir / "log.jsonl", start_step)
        self._jsonl = open(self.run_dir / "log.jsonl", "a")  # noqa: SIM115 (closed in close())
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step drops events a killed run wrote after its last checkpoint
            purge = start_step + 1 if start_step > 0 else None
            self._tb = SummaryWriter(str(self.run_dir / "tb"), purge_step=purge)
        self._bar = tqdm(
            total=total_steps, initial=start_step, desc=desc, disable=not progress, file=sys.stderr
        )

    def scalars(self, step: int, metrics: Mapping[str, float]) -> None:
        """Append ``{"step": step, **metrics}`` to log.jsonl and write TensorBoard scalars."""
        if not self.enabled:
            return
        self._jsonl.write(json.dumps({"step": step, **metrics}) + "\n")
        self._jsonl.flush()
        if self._tb is not None:
            for name, value in metrics.items():
                self._tb.add_scalar(name, value, step)

    def image(self, step: int, tag: str, image: Tensor) -> None:
        """A (3, H, W) image in [0, 1] to TensorBoard."""
        if self.enabled and self._tb is not None:
            self._tb.add_image(tag, image.clamp(0, 1).cpu(), step)
            self._tb.flush()

    def progress(self, n: int = 1, **postfix: float | int | str) -> None:
        """Advance the progress bar and show ``postfix``."""
        if self._bar is not None:
            self._bar.update(n)
            if postfix:
                self._bar.set_postfix(postfix, refresh=False)

    def close(self) -> None:
        """Flush and close everything (safe to call twice)."""
        for handle in (self._bar, self._tb, self._jsonl):
            if handle is not None:
                handle.close()
        self._jsonl = self._tb = self._bar = None


def truncate_log(path: Path, step: int) -> None:
    """Drop JSON lines of steps after ``step`` (logged by a run killed after its checkpoint)."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text().splitlines() if _step_of(line) <= step]
    path.write_text("".join(line + "\n" for line in kept))


def _step_of(line: str) -> int:
    try:
        return int(json.loads(line).get("step", 0))
    except (ValueError, AttributeError):  # a line cut by a kill mid-write
        return sys.maxsize


def frame_strip(rows: Sequence[Tensor], max_frames: int = 17) -> Tensor:
    """Tile clips into one image: one row per clip, frames left to right.

    Args:
        rows: clips (3, T, H, W) in [-1, 1] with equal shapes.
        max_frames: at most this many (evenly spaced) frames per row.
    Returns:
        (3, rows * H, n * W) in [0, 1].
    """
    t = rows[0].shape[1]
    idx = torch.linspace(0, t - 1, min(t, max_frames)).round().long()
    tiles = [r.detach().float().cpu()[:, idx] for r in rows]  # each (3, n, H, W)
    strip = torch.stack(tiles)  # (R, 3, n, H, W)
    r, c, n, h, w = strip.shape
    strip = strip.permute(1, 0, 3, 2, 4).reshape(c, r * h, n * w)  # (3, R*H, n*W)
    return (strip + 1) / 2


def peak_memory_gib(device: torch.device) -> float:
    """Peak memory of this process: CUDA allocator peak on GPUs, peak RSS on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
