"""ISpeed and IMem of paper Table 2: how fast a VAE encodes and decodes, and its peak memory.

ISpeed: encode + decode iterations per second on a batch of random clips, after warm-up
iterations, averaged over timed ones (50 and 100 on CUDA, paper section 4.1; 1 and 3 on the
CPU); clips/s = it/s x batch. IMem: the peak CUDA memory PyTorch allocates for the VAE during
the timed iterations (weights, input batch, activations; other models already on the GPU are
not counted), in GiB; not measured on the CPU.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from pvvae.eval.report import read_json, write_json
from pvvae.eval.vae_adapter import VAEAdapter

GPU_SPEED_PROTOCOL = (50, 100)  # warm-up, timed iterations (paper section 4.1)
CPU_SPEED_PROTOCOL = (1, 3)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _other_cuda_bytes(adapter: VAEAdapter) -> int:
    """CUDA memory allocated now that is not the VAE's weights (0 off CUDA)."""
    if adapter.device.type != "cuda":
        return 0
    tensors = [*adapter.model.parameters(), *adapter.model.buffers()]
    own = sum(t.numel() * t.element_size() for t in tensors if t.device.type == "cuda")
    return torch.cuda.memory_allocated(adapter.device) - own


def measure_speed(
    adapter: VAEAdapter,
    num_frames: int,
    resolution: int,
    batch_size: int = 4,
    warmup: int | None = None,
    steps: int | None = None,
) -> dict:
    """ISpeed and IMem of paper Table 2: timed encode + decode of a batch of random clips.

    Args:
        adapter: the VAE.
        num_frames, resolution: clip size (17 x 256 x 256 in the paper).
        batch_size: clips per iteration (4 in the paper).
        warmup, steps: warm-up and timed iterations; None = 50 / 100 on CUDA (paper section
            4.1), 1 / 3 on the CPU.

    Returns:
        ``{"it_per_s", "clips_per_s", "seconds_per_it", "peak_memory_gib", "warmup", "steps",
        "batch_size", "num_frames", "resolution", "device"}``. ``peak_memory_gib`` (CUDA only,
        else None) is the peak allocated during the timed iterations minus what other models
        held before: the VAE's weights, the input batch and the activations.
    """
    device = adapter.device
    default = GPU_SPEED_PROTOCOL if device.type == "cuda" else CPU_SPEED_PROTOCOL
    warmup = default[0] if warmup is None else warmup
    steps = default[1] if steps is None else steps
    if steps < 1:
        raise ValueError(f"need at least one timed step, got {steps}")
    other = _other_cuda_bytes(adapter)  # e.g. I3D / LPIPS already on the GPU: not counted
    generator = torch.Generator().manual_seed(0)
    shape = (batch_size, 3, num_frames, resolution, resolution)
    x = (torch.rand(shape, generator=generator) * 2 - 1).to(device)
    for _ in range(warmup):
        adapter.reconstruct(x)
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(steps):
        adapter.reconstruct(x)
    _sync(device)
    elapsed = time.perf_counter() - start
    peak = None
    if device.type == "cuda":
        peak = (torch.cuda.max_memory_allocated(device) - other) / 2**30
    return {
        "it_per_s": steps / elapsed,
        "clips_per_s": steps * batch_size / elapsed,
        "seconds_per_it": elapsed / steps,
        "peak_memory_gib": peak,
        "warmup": warmup,
        "steps": steps,
        "batch_size": batch_size,
        "num_frames": num_frames,
        "resolution": resolution,
        "device": str(device),
    }


def cached_speed(
    adapter: VAEAdapter,
    path: str | Path,
    num_frames: int,
    resolution: int,
    batch_size: int = 4,
    warmup: int | None = None,
    steps: int | None = None,
) -> dict:
    """:func:`measure_speed` once per cache file ``path``: re-used on resume while the request
    (batch size, device, warm-up, steps) is the same, measured again otherwise."""
    path = Path(path)
    request = {"batch_size": batch_size, "device": str(adapter.device), "warmup": warmup,
               "steps": steps}
    if path.is_file():
        stored = read_json(path)
        if stored.get("request") == request:
            return stored["speed"]
    speed = measure_speed(adapter, num_frames, resolution, batch_size, warmup, steps)
    write_json(path, {"request": request, "speed": speed})
    return speed
