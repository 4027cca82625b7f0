"""``pvvae probe train|eval``: the probing study end to end (paper section 4.3, Table 3).

``train`` loads a Latte checkpoint and the VAE it records, extracts frozen features of the
training and evaluation clips, trains one head per task, scores it beside the task's trivial
baseline and writes ``OUT/``::

    probe.json          settings, per-task metrics of the head and of the baseline, loss curve
    probe.md            paper Table 3 layout (one row for this Latte, one for the baselines)
    heads/TASK.safetensors, probe_config.json   the trained heads and what rebuilds them
    figures/TASK.png    predicted vs true flow / next frame, tracks drawn on frames

``eval`` reloads one or more such folders (e.g. the probes of the Latte trained on the
baseline VAE and of the one trained on PV-VAE), scores them on the same clips and writes the
side-by-side table (``w/o PR`` vs ``w/ PR``).

Data specs (:func:`open_probe_data`): ``synthetic`` (every task; the ``proving_ground``
clips the library trains on) or ``synthetic:PRESET`` (e.g. ``synthetic:textured``),
``sintel:ROOT`` or ``sintel-final:ROOT`` (flow), ``davis:PKL`` (tracking), ``videos:DIR``
(next frame).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import Dataset

from pvvae.probe.data import NextFrameClips, SintelClips, SyntheticProbeClips, TapVidDavisClips
from pvvae.probe.features import FeatureConfig, FeatureExtractor
from pvvae.probe.report import table3_markdown, write_task_figure
from pvvae.probe.tasks import TASKS, build_task
from pvvae.probe.train import (
    HeadTrainConfig,
    evaluate_head,
    extract_features,
    predict_all,
    train_head,
)

logger = logging.getLogger(__name__)

CONFIG_FILE = "probe_config.json"


@dataclass
class ProbeConfig:
    """Everything a probing run needs (saved as ``probe_config.json``).

    Attributes:
        latte: Latte checkpoint or run folder (its ``config.json`` names the VAE).
        tasks: tasks to probe (``flow``, ``next``, ``track``).
        train_data, eval_data: data specs (module docstring); ``eval_data`` empty = synthetic
            clips of another seed when ``train_data`` is synthetic, else ``train_data``.
        num_frames: frames ``T`` per clip (``1 + k * temporal compression``).
        size: square frame side (multiple of the feature stride).
        train_clips, eval_clips: synthetic dataset sizes (other data: all clips).
        seed: seed of the synthetic training clips (evaluation uses ``seed + 1``).
        vae: VAE override (default: the one the Latte checkpoint records).
        residual_next: next-frame head predicts the change from the last frame.
        flow_loss: training loss of the flow head, ``mse`` (squared EPE) or ``epe``
            (:class:`pvvae.probe.tasks.FlowTask`).
        features, head: :class:`FeatureConfig` and :class:`HeadTrainConfig` fields.
    """

    latte: str = ""
    tasks: tuple[str, ...] = TASKS
    train_data: str = "synthetic"
    eval_data: str = ""
    num_frames: int = 17
    size: int = 64
    train_clips: int = 1024
    eval_clips: int = 64
    seed: int = 0
    vae: str = ""
    residual_next: bool = False
    flow_loss: str = "mse"
    device: str = "cpu"
    features: dict[str, Any] = field(default_factory=dict)
    head: dict[str, Any] = field(default_factory=dict)


def canonical_data_spec(spec: str) -> str:
    """``spec`` with its defaults spelled out (``synthetic`` -> ``synthetic:proving_ground``),
    so that a store key names the clips, not a default that may change."""
    return "synthetic:proving_ground" if spec == "synthetic" else spec


def open_probe_data(spec: str, num_frames: int, size: int, num_clips: int, seed: int) -> Dataset:
    """The dataset named by ``spec`` (module docstring), clips of ``num_frames`` at ``size``."""
    kind, _, path = canonical_data_spec(spec).partition(":")
    if kind == "synthetic":
        return SyntheticProbeClips(num_clips, num_frames, size, seed, preset=path)
    if kind in ("sintel", "sintel-final"):
        pass_name = "final" if kind == "sintel-final" else "clean"
        return SintelClips(path, pass_name, num_frames, (size, size))
    if kind == "davis":
        return TapVidDavisClips(path, num_frames, (size, size))
    if kind == "videos":
        return NextFrameClips(path, num_frames, size)
    raise ValueError(f"data {spec!r}: use synthetic[:PRESET], sintel:ROOT, sintel-final:ROOT, "
                     "davis:PKL or videos:DIR")


def build_extractor(cfg: ProbeConfig) -> FeatureExtractor:
    """Load the frozen Latte and its VAE on ``cfg.device``."""
    from pvvae.gen.checkpoint import load_latte
    from pvvae.inference.spec import load_vae

    latte, meta = load_latte(cfg.latte, cfg.device)
    vae = load_vae(cfg.vae or meta.vae, cfg.device)
    return FeatureExtractor(vae, latte, FeatureConfig(**cfg.features))


def _eval_spec(cfg: ProbeConfig) -> tuple[str, int]:
    """Evaluation data spec and seed (held-out synthetic clips by default)."""
    if cfg.eval_data:
        return cfg.eval_data, cfg.seed + 1
    return cfg.train_data, cfg.seed + 1


def _stored(cfg: ProbeConfig, extractor: FeatureExtractor, spec: str, clips: int, seed: int):
    data = open_probe_data(spec, cfg.num_frames, cfg.size, clips, seed)
    return extract_features(extractor, data), data


def _evaluate_and_draw(task, head, data, dataset, out: Path) -> dict[str, Any]:
    """Scores of the head and the baseline, and the task's figure under ``out/figures``."""
    scores = evaluate_head(task, head, data)
    pred = predict_all(task, head, data)
    video = dataset[0]["video"] if task.name == "track" else None
    write_task_figure(task.name, pred, data, out / "figures" / f"{task.name}.png", video)
    return scores


def train_probes(cfg: ProbeConfig, out: str | Path) -> dict[str, Any]:
    """Train and score one head per task; write the report folder (module docstring).

    Returns:
        The content of ``probe.json``.
    """
    out = Path(out)
    tasks = [build_task(name, cfg.residual_next, cfg.flow_loss) for name in cfg.tasks]
    head_cfg = HeadTrainConfig(**cfg.head)
    extractor = build_extractor(cfg)
    train_data, _ = _stored(cfg, extractor, cfg.train_data, cfg.train_clips, cfg.seed)
    eval_spec, eval_seed = _eval_spec(cfg)
    eval_data, eval_set = _stored(cfg, extractor, eval_spec, cfg.eval_clips, eval_seed)
    results: dict[str, Any] = {}
    (out / "heads").mkdir(parents=True, exist_ok=True)
    for name, task in zip(cfg.tasks, tasks):
        torch.manual_seed(head_cfg.seed)
        head = task.build_head(extractor.channels, extractor.spatial_factor,
                               extractor.temporal_factor, head_cfg.width).to(cfg.device)
        losses = train_head(task, head, train_data, head_cfg)
        save_file(head.state_dict(), out / "heads" / f"{name}.safetensors")
        results[name] = {**_evaluate_and_draw(task, head, eval_data, eval_set, out),
                         "final_loss": sum(losses[-10:]) / len(losses[-10:])}
    saved = {**asdict(cfg), "layer": extractor.layer, "channels": extractor.channels}
    (out / CONFIG_FILE).write_text(json.dumps(saved, indent=2))
    report = {"config": saved, "tasks": results}
    _write_reports(out, "probe", {Path(cfg.latte).name or "latte": results})
    (out / "probe.json").write_text(json.dumps(report, indent=2))
    return report


def _rows(named: dict[str, dict[str, Any]]) -> tuple[dict[str, dict], dict[str, float]]:
    """Table rows (model -> metric -> value) and the baselines of the first model."""
    metric = {t: build_task(t).metric for t in TASKS}
    rows = {name: {metric[t]: res[t]["probe"][metric[t]] for t in res}
            for name, res in named.items()}
    first = next(iter(named.values()))
    base = {metric[t]: first[t]["baseline"][metric[t]] for t in first}
    return rows, base


def _write_reports(out: Path, stem: str, named: dict[str, dict[str, Any]]) -> None:
    rows, base = _rows(named)
    (out / f"{stem}.md").write_text("# Probing (paper Table 3 layout)\n\n"
                                    + table3_markdown(rows, base))


def load_probe(folder: str | Path, device: str = "cpu"):
    """A probe folder's config, feature extractor and heads (``{task: head}``, eval mode)."""
    folder = Path(folder)
    if not (folder / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"{folder}: no {CONFIG_FILE}; give a `pvvae probe train` folder")
    saved = json.loads((folder / CONFIG_FILE).read_text())
    saved.pop("layer"), saved.pop("channels")
    cfg = ProbeConfig(**{**saved, "tasks": tuple(saved["tasks"]), "device": device})
    extractor = build_extractor(cfg)
    head_cfg = HeadTrainConfig(**cfg.head)
    heads = {}
    for name in cfg.tasks:
        task = build_task(name, cfg.residual_next, cfg.flow_loss)
        head = task.build_head(extractor.channels, extractor.spatial_factor,
                               extractor.temporal_factor, head_cfg.width)
        head.load_state_dict(load_file(folder / "heads" / f"{name}.safetensors"))
        heads[name] = head.to(device).eval()
    return cfg, extractor, heads


def evaluate_probes(
    folders: list[str], out: str | Path, eval_data: str = "", names: list[str] | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Score trained probes on the same clips; write ``probe_compare.json`` / ``.md``.

    Args:
        folders: ``pvvae probe train`` output folders, e.g. ``[w/o PR, w/ PR]``.
        out: report folder.
        eval_data: data spec; empty = each probe's own evaluation data (synthetic: identical).
        names: row names (default: the folder names).
        device: where to run.
    """
    out = Path(out)
    names = names or [Path(f).name for f in folders]
    if len(names) != len(folders):
        raise ValueError(f"{len(names)} names for {len(folders)} probe folders")
    named: dict[str, dict[str, Any]] = {}
    for name, folder in zip(names, folders):
        cfg, extractor, heads = load_probe(folder, device)
        spec, seed = (eval_data, cfg.seed + 1) if eval_data else _eval_spec(cfg)
        data, dataset = _stored(cfg, extractor, spec, cfg.eval_clips, seed)
        named[name] = {}
        for task_name, head in heads.items():
            task = build_task(task_name, cfg.residual_next, cfg.flow_loss)
            if any(k not in data for k in task.targets):
                logger.warning("%s: the data has no %s targets; task skipped", name, task_name)
                continue
            named[name][task_name] = _evaluate_and_draw(task, head, data, dataset, out / name)
    out.mkdir(parents=True, exist_ok=True)
    _write_reports(out, "probe_compare", named)
    (out / "probe_compare.json").write_text(json.dumps(named, indent=2))
    return named
