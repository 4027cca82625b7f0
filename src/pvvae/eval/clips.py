"""The clips of an evaluation: which videos, in which order, and where each VAE's report goes.

Shared by ``pvvae eval recon`` (:mod:`pvvae.eval.recon`) and ``pvvae eval latents``
(:mod:`pvvae.eval.latents`): both open their DATA argument with :func:`open_eval_data` (the same
random subset for every VAE), iterate it with :func:`iterate_clips` (unreadable files left out,
never replaced) and write each VAE into its :func:`vae_folder_name` under :func:`report_folder`.
Synthetic clips also give their ground truth: the shapes (:func:`synthetic_objects`) and the
optical flow (:func:`ground_truth_flow`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from pvvae.data import ReadableItems, collate_readable
from pvvae.eval.report import slugify


@dataclass
class EvalData:
    """The clips of an evaluation: a dataset and which of its items to use.

    Attributes:
        dataset: items ``{"video": (3, T, S, S) in [-1, 1], ...}``.
        indices: dataset indices to evaluate, ascending (the clip keys of caches).
        source: the DATA argument, e.g. a folder, a CSV or "synthetic".
        description: one line for reports.
        skipped: dataset index -> path of the unreadable files met so far by
            :func:`iterate_clips` (they are left out, never replaced by another clip).
    """

    dataset: Dataset
    indices: list[int]
    source: str
    description: str
    skipped: dict[int, str] = field(default_factory=dict)


def open_eval_data(
    data: str, num_frames: int, resolution: int, num_clips: int, seed: int = 0
) -> EvalData:
    """Open a video folder (UCF101 / Kinetics layout), a CSV manifest or synthetic clips.

    Folder and manifest clips take the first ``num_frames`` frames and the centre crop
    (``train=False``, paper section 4.1). When the dataset has more than ``num_clips`` videos
    a random subset is drawn with ``seed`` (the paper "randomly samples 2,048 videos"), sorted.

    Args:
        data: folder path, ``*.csv`` manifest, or ``synthetic`` / ``synthetic:SEED`` for the
            built-in bouncing-shapes clips (:class:`pvvae.data.SyntheticVideoDataset`).
        num_frames, resolution: clip size ``num_frames x resolution x resolution``.
        num_clips: how many clips to evaluate.
        seed: seed of the random subset.
    """
    from pvvae.data import SyntheticVideoDataset, VideoFolderDataset, VideoManifestDataset

    if data == "synthetic" or data.startswith("synthetic:"):
        stream = int(data.partition(":")[2] or 0)
        dataset = SyntheticVideoDataset(
            num_clips, num_frames, resolution, resolution, seed=stream, annotations=False
        )
        description = f"synthetic bouncing shapes (stream {stream}), rendered at the clip size"
        return EvalData(dataset, list(range(num_clips)), data, description)
    if Path(data).suffix.lower() == ".csv":
        dataset = VideoManifestDataset(data, num_frames, size=resolution, train=False)
    else:
        dataset = VideoFolderDataset(data, num_frames, size=resolution, train=False)
    total = len(dataset)
    rule = "first frames, short-side resize, centre crop"
    if num_clips < total:
        order = torch.randperm(total, generator=torch.Generator().manual_seed(seed))
        indices = sorted(order[:num_clips].tolist())
        description = f"{data}: {num_clips} of {total} videos (random subset, seed {seed}); {rule}"
    else:
        indices = list(range(total))
        description = f"{data}: all {total} files, unreadable ones skipped; {rule}"
    return EvalData(dataset, indices, data, description)


def iterate_clips(
    data: EvalData, indices: list[int], batch_size: int, workers: int = 0
) -> Iterator[tuple[list[int], torch.Tensor, list[str]]]:
    """Yield ``(indices, videos (B, 3, T, H, W), paths)`` batches of the given dataset indices.

    Unreadable files are left out of the batches, logged by the dataset, and recorded in
    ``data.skipped`` (index -> path); a batch may therefore hold fewer than ``batch_size``.
    """
    loader = DataLoader(
        ReadableItems(data.dataset, indices),
        batch_size=batch_size,
        num_workers=workers,
        shuffle=False,
        collate_fn=collate_readable,
    )
    for index, batch, paths, skipped in loader:
        data.skipped.update(skipped)
        if index:
            # items without a file (synthetic) are named "#index": prefix the source
            yield index, batch["video"], [data.source + p if p[:1] == "#" else p for p in paths]


def readable_indices(data: EvalData, done: Iterable[int]) -> list[int]:
    """The indices of ``data`` with a result in ``done``; raises when there is none.

    Raises:
        ValueError: every file was unreadable (naming how many and where).
    """
    done = set(done)
    kept = [i for i in data.indices if i in done]
    if not kept:
        raise ValueError(
            f"no readable clip in {data.source}: all {len(data.skipped)} file(s) tried were "
            "unreadable (the log names each one and why)"
        )
    return kept


def skip_summary(data: EvalData) -> dict:
    """``{"num_skipped": n, "skipped_files": [paths]}`` of the selected indices."""
    files = [data.skipped[i] for i in data.indices if i in data.skipped]
    return {"num_skipped": len(files), "skipped_files": files}


def synthetic_objects(data: EvalData) -> Callable[[int], dict] | None:
    """clip index -> its shapes for synthetic data (``SyntheticVideoDataset.objects``), or
    None for real data."""
    from pvvae.data.synthetic import SyntheticVideoDataset

    dataset = data.dataset
    return dataset.objects if isinstance(dataset, SyntheticVideoDataset) else None


def ground_truth_flow(data: EvalData, indices: list[int]) -> dict[int, torch.Tensor]:
    """Ground-truth flow (2, T-1, H, W) of synthetic clips ``indices`` (empty for real data)."""
    from pvvae.data.synthetic import SyntheticVideoDataset, synthetic_clip

    dataset = data.dataset
    if not isinstance(dataset, SyntheticVideoDataset) or dataset.config.num_frames < 2:
        return {}
    config = replace(dataset.config, annotations=True)
    return {i: synthetic_clip(dataset.seed, i, config)["flow"] for i in indices}


def vae_folder_name(label: str, source: str) -> str:
    """Sub-folder of one VAE in a report folder: ``<label>-<last path part>-<hash of source>``,
    readable and unique per source (``PV-VAE-step-0001000-1a2b3c``)."""
    digest = hashlib.sha1(source.encode()).hexdigest()[:6]
    last = Path(source.split(":", 1)[-1]).name
    return f"{slugify(f'{label}-{last}')}-{digest}"


def report_folder(command: str, data: str, num_frames: int, resolution: int) -> Path:
    """``runs/eval/<command>-<data>-<frames>x<resolution>``: one folder (and one comparison of
    the VAEs in it) per protocol."""
    name = slugify(Path(data.rstrip("/")).name or data)
    return Path("runs") / "eval" / f"{command}-{name}-{num_frames}x{resolution}"
