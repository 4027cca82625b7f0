"""Sampling videos from a trained Latte: noise -> ODE solver -> denormalise -> VAE decode.

``pvvae gen sample CKPT --num N [--class C] [--guidance W] [--steps 100] --vae VAE --out DIR``
(paper section 4). The paper samples with 100 Euler steps of the rectified-flow ODE
(section 4.1); any solver of :data:`pvvae.gen.SAMPLERS` can be named. Latents are drawn as
``N(0, I)`` of the checkpoint's latent shape, integrated from ``t = 1`` to ``t = 0``, mapped back
with ``vae.denormalize`` (the inverse of the normalisation the cache applied) and decoded.

Reproducibility: the initial noise and the labels come from a CPU generator seeded with
``seed``, drawn batch by batch in sample order, so a sample does not depend on the device and
changes with the batch size only through floating-point round-off.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from pvvae.gen.checkpoint import LatteMeta
from pvvae.gen.flow import SAMPLERS
from pvvae.gen.latte import Latte
from pvvae.training.distributed import resolve_device  # noqa: F401 (the one; re-exported)


def choose_labels(
    num: int, num_classes: int, class_index: int | None, generator: torch.Generator
) -> Tensor | None:
    """Labels of ``num`` samples: ``None`` (unconditional), all ``class_index``, or uniform.

    Args:
        num: number of samples.
        num_classes: classes of the model (0: unconditional).
        class_index: one class for every sample, or ``None`` for uniformly random classes
            (Latte's evaluation protocol on UCF101).
        generator: CPU generator of the random classes.

    Returns:
        (num,) int64 labels, or ``None``.
    """
    if not num_classes:
        if class_index is not None:
            raise ValueError("--class given, but the model is unconditional (num_classes 0)")
        return None
    if class_index is not None:
        if not 0 <= class_index < num_classes:
            raise ValueError(f"--class {class_index} out of range [0, {num_classes})")
        return torch.full((num,), class_index, dtype=torch.int64)
    return torch.randint(0, num_classes, (num,), generator=generator)


@torch.no_grad()
def sample_latents(
    model: Latte,
    latent_shape: Sequence[int],
    labels: Tensor | None,
    num: int,
    *,
    generator: torch.Generator,
    sampler: str = "euler",
    num_steps: int = 100,
    guidance_scale: float = 1.0,
    batch_size: int = 8,
    progress: bool = False,
) -> Iterator[tuple[Tensor, Tensor | None]]:
    """Yield batches of generated normalised latents and their labels.

    Args:
        model: a Latte in eval mode (its device is used).
        latent_shape: (C, t, h, w).
        labels: (num,) labels or ``None``.
        num: number of samples.
        generator: CPU generator of the initial noise ``x_1 ~ N(0, I)``.
        sampler: a name of :data:`pvvae.gen.SAMPLERS`.
        num_steps, guidance_scale: solver steps and CFG weight ``w``.
        batch_size: samples per solver call.
        progress: tqdm bar per batch.

    Yields:
        ``(z, y)``: (B, C, t, h, w) latents at ``t = 0`` and (B,) labels or ``None``.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; available: {sorted(SAMPLERS)}")
    solve = SAMPLERS[sampler]
    device = next(model.parameters()).device
    for start in range(0, num, batch_size):
        b = min(batch_size, num - start)
        noise = torch.randn((b, *latent_shape), generator=generator)  # (B, C, t, h, w)
        y = None if labels is None else labels[start : start + b].to(device)  # (B,)
        z = solve(
            model, noise.to(device), num_steps=num_steps, guidance_scale=guidance_scale, y=y,
            progress=progress,
        )  # (B, C, t, h, w)
        yield z, y


@torch.no_grad()
def decode_latents(vae, z: Tensor) -> Tensor:
    """Pixels of normalised latents: ``vae.decode(vae.denormalize(z))`` clamped to [-1, 1].

    Args:
        vae: the VAE whose normalisation the latents use (any VAE of :mod:`pvvae.inference.spec`).
        z: (B, C, t, h, w) normalised latents.

    Returns:
        (B, 3, 1 + ct (t - 1), cs h, cs w) float videos on ``z``'s device.
    """
    device = next(vae.parameters()).device
    x = vae.decode(vae.denormalize(z.to(device).float())).sample  # (B, 3, T, H, W)
    return x.clamp(-1.0, 1.0)


def generate_videos(
    model: Latte,
    vae,
    latent_shape: Sequence[int],
    labels: Tensor | None,
    num: int,
    *,
    generator: torch.Generator,
    **sampler_kwargs,
) -> Iterator[tuple[Tensor, Tensor | None]]:
    """Yield ``(videos (B, 3, T, H, W) in [-1, 1] on the CPU, labels (B,) or None)`` batches;
    arguments as in :func:`sample_latents` (its keyword options pass through)."""
    for z, y in sample_latents(model, latent_shape, labels, num, generator=generator,
                               **sampler_kwargs):
        yield decode_latents(vae, z).cpu(), None if y is None else y.cpu()


@dataclass
class Generation:
    """One generation run set up by :func:`generate`: the models, the labels and the batches.

    Attributes:
        model: the Latte (eval mode); meta: its :class:`LatteMeta`.
        vae: the VAE that decodes the samples; vae_spec: how it was named.
        labels: (num,) labels of the samples, or ``None`` (unconditional).
        batches: ``(videos (B, 3, T, H, W) in [-1, 1] on the CPU, labels (B,) or None)``,
            generated lazily batch by batch (:func:`generate_videos`).
    """

    model: Latte
    meta: LatteMeta
    vae: Any
    vae_spec: str
    labels: Tensor | None
    batches: Iterator[tuple[Tensor, Tensor | None]]

    @property
    def side(self) -> int:
        """Frame side of the generated videos in pixels."""
        return self.meta.latent_shape[-1] * self.vae.spatial_compression


def generate(
    checkpoint: str | Path,
    num: int,
    *,
    vae_spec: str | None = None,
    class_index: int | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    use_ema: bool = True,
    **sampler_kwargs,
) -> Generation:
    """Load a Latte and its VAE, draw the labels and set up the generation of ``num`` videos:
    what ``pvvae gen sample``, ``gen eval`` and the study all do.

    Args:
        checkpoint: Latte model / checkpoint / run folder (:func:`pvvae.gen.checkpoint.load_latte`).
        num: number of videos.
        vae_spec: any VAE spec (:mod:`pvvae.inference.spec`); ``None`` uses the one the
            checkpoint records (the cache's).
        class_index: the class of every sample, or ``None`` (uniformly random classes; see
            :func:`choose_labels`).
        seed: seed of the CPU generator of the labels and the noise.
        device: ``auto`` | ``cpu`` | ``cuda[:N]`` or a ``torch.device``.
        use_ema: the EMA weights when the checkpoint has them.
        sampler_kwargs: ``sampler``, ``num_steps``, ``guidance_scale``, ``batch_size``,
            ``progress`` of :func:`sample_latents`.
    """
    from pvvae.gen.checkpoint import load_latte
    from pvvae.inference.spec import load_vae

    dev = resolve_device(device)
    model, meta = load_latte(checkpoint, dev, use_ema)
    if not meta.latent_shape:
        raise ValueError(f"{checkpoint} records no latent_shape: train it with `pvvae gen train`")
    vae_spec = str(vae_spec or meta.vae)
    if not vae_spec:
        raise ValueError("the checkpoint records no VAE: pass --vae")
    vae = load_vae(vae_spec, dev)
    if vae.latent_channels != meta.latent_shape[0]:
        raise ValueError(
            f"the VAE has {vae.latent_channels} latent channels, the Latte "
            f"{meta.latent_shape[0]}: pass the VAE the latent cache was made with"
        )
    generator = torch.Generator().manual_seed(seed)
    labels = choose_labels(num, meta.config.num_classes or 0, class_index, generator)
    batches = generate_videos(
        model, vae, meta.latent_shape, labels, num, generator=generator, **sampler_kwargs
    )
    return Generation(model, meta, vae, vae_spec, labels, batches)


def frame_grid(videos: Tensor, pad: int = 2) -> np.ndarray:
    """A PNG-ready grid: one row per video with its first, middle and last frame.

    Args:
        videos: (N, 3, T, H, W) float videos in [-1, 1].
        pad: white pixels between tiles.

    Returns:
        (N * (H + pad) - pad, 3 * (W + pad) - pad, 3) uint8 RGB array.
    """
    n, _, t, h, w = videos.shape
    picks = sorted({0, (t - 1) // 2, t - 1})
    grid = np.full((n * (h + pad) - pad, len(picks) * (w + pad) - pad, 3), 255, dtype=np.uint8)
    pixels = ((videos.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    pixels = pixels.permute(0, 2, 3, 4, 1).numpy()  # (N, T, H, W, 3)
    for i in range(n):
        for j, f in enumerate(picks):
            grid[i * (h + pad) : i * (h + pad) + h, j * (w + pad) : j * (w + pad) + w] = (
                pixels[i, f]
            )
    return grid


def save_samples(
    videos: Tensor, out: str | Path, *, fps: float = 8.0, start_index: int = 0
) -> list[Path]:
    """Write ``out/sample_NNNNN.mp4`` per video (numbered from ``start_index``).

    Args:
        videos: (B, 3, T, H, W) in [-1, 1].
        out: output folder (created).
        fps: frame rate.
        start_index: number of the first video.

    Returns:
        The paths written.
    """
    from pvvae.data.video_io import write_video

    out = Path(out)
    return [
        write_video(out / f"sample_{start_index + i:05d}.mp4", video, fps=fps)
        for i, video in enumerate(videos)
    ]


def write_index(
    out: Path, paths: Sequence[Path], labels: Tensor | None, classes: Sequence[str], info: dict
) -> Path:
    """``out/samples.json``: the sampling settings and, per sample, its file and label."""
    items = []
    for i, path in enumerate(paths):
        item: dict = {"file": path.name}
        if labels is not None:
            label = int(labels[i])
            item["label"] = label
            if label < len(classes):
                item["class"] = classes[label]
        items.append(item)
    index = out / "samples.json"
    index.write_text(json.dumps({**info, "samples": items}, indent=2))
    return index


def save_grid(videos: Tensor, path: str | Path) -> Path:
    """Write :func:`frame_grid` of ``videos`` (N, 3, T, H, W) as a PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(frame_grid(videos)).save(path)
    return path


def run_sampling(
    checkpoint: str | Path,
    out: str | Path,
    *,
    num: int,
    vae_spec: str | None = None,
    class_index: int | None = None,
    guidance_scale: float = 1.0,
    num_steps: int = 100,
    sampler: str = "euler",
    batch_size: int = 8,
    seed: int = 0,
    device: str = "auto",
    use_ema: bool = True,
    fps: float = 8.0,
    max_grid_rows: int = 16,
    progress: bool = True,
) -> Path:
    """``pvvae gen sample``: generate ``num`` videos, write mp4s, ``grid.png``, ``samples.json``.

    Args:
        checkpoint: Latte model / checkpoint / run folder (see :func:`generate`).
        out: output folder.
        num: number of videos.
        vae_spec: VAE path or ``preset:NAME``; ``None`` uses the one recorded in the checkpoint.
        class_index, guidance_scale, num_steps, sampler, batch_size, seed: see
            :func:`generate` and :func:`sample_latents`.
        device: ``auto`` | ``cpu`` | ``cuda[:N]``.
        use_ema: sample with the EMA weights when the checkpoint has them.
        fps: frame rate of the mp4s.
        max_grid_rows: at most this many samples in ``grid.png``.
        progress: progress bars.

    Returns:
        ``out``.
    """
    gen = generate(
        checkpoint, num, vae_spec=vae_spec, class_index=class_index, seed=seed, device=device,
        use_ema=use_ema, sampler=sampler, num_steps=num_steps, guidance_scale=guidance_scale,
        batch_size=batch_size, progress=progress,
    )
    out = Path(out)
    paths: list[Path] = []
    grid: list[Tensor] = []
    for videos, _ in gen.batches:
        paths += save_samples(videos, out, fps=fps, start_index=len(paths))
        grid.append(videos[: max(0, max_grid_rows - sum(len(g) for g in grid))])
    save_grid(torch.cat(grid), out / "grid.png")
    info = dict(checkpoint=str(checkpoint), vae=gen.vae_spec, sampler=sampler,
                num_steps=num_steps, guidance_scale=guidance_scale, seed=seed, use_ema=use_ema)
    write_index(out, paths, gen.labels, gen.meta.classes, info)
    return out
