"""The machinery of a study's steps: the runner, step keys of configs, launching a training.

Every step is content-addressed (:mod:`pvvae.study.store`); this module holds what the step
builders of :mod:`pvvae.study.vae_steps` and :mod:`pvvae.study.gen_steps` share: the
:class:`Runner` that runs or only lists them, :func:`key_view` (what of a training config
goes into its step key), :func:`launch` (in process or under ``spec.launcher``), and the
measurement settings every step reads (device, held-out data, the I3D, the FVD clip length).
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pvvae.study.spec import Measure, StudySpec
from pvvae.study.store import Step, run_step

logger = logging.getLogger(__name__)

# fields that do not change what a run computes (left out of step keys)
RUN_ONLY = {
    "name", "out_dir", "resume", "progress", "tensorboard", "log_every", "ckpt_every",
    "keep_last", "image_every", "device",
}
# Config fields added after step keys were first computed, with their defaults: left out of
# the keys while at the default, so that a new field does not invalidate every result (a
# field that changes nothing at its default must be listed here when it is added;
# tests/study/test_pipeline.py checks a known key)
LATER_FIELDS = {("model", "source"): "pvvae"}
FVD_FRAMES = 16  # the FVD protocol's clip length (StyleGAN-V / Latte): the first 16 frames


@dataclass
class Runner:
    """Runs steps under one root and counts those it actually ran."""

    root: Path
    dry: bool = False  # only list the steps (``plan``), run nothing
    vae_only: bool = False  # the VAE stages and their measurements, no generator
    ran: list[str] = field(default_factory=list)
    plan: list[tuple[str, bool]] = field(default_factory=list)  # (step id, complete)

    def run(self, step: Step, fn, inputs: Any = None) -> dict | None:
        self.plan.append((step.id, step.done))
        if self.dry:
            return None
        if not step.done:
            self.ran.append(step.id)
        return run_step(step, fn, inputs)


def key_view(cfg_dict: dict, upstream: dict[str, str]) -> dict:
    """``cfg_dict`` without run-only fields, upstream paths replaced by their step ids."""
    view = {
        section: ({k: v for k, v in values.items() if k not in RUN_ONLY}
                  if isinstance(values, dict) else values)
        for section, values in cfg_dict.items() if section not in RUN_ONLY
    }
    for (section, key), default in LATER_FIELDS.items():
        if isinstance(view.get(section), dict) and view[section].get(key, default) == default:
            view[section] = {k: v for k, v in view[section].items() if k != key}
    for (section, key), step_id in ((tuple(k.split(".")), v) for k, v in upstream.items()):
        view[section] = {**view[section], key: f"step:{step_id}"}
    return view


def run_overrides(step: Step, seed: int, device: str) -> list[str]:
    return [f"name={step.id}", f"train.out_dir={step.root / 'store'}", f"train.seed={seed}",
            "train.resume=true", "train.progress=false", f"train.device={device}"]


def launch(spec: StudySpec, verb: list[str], cfg, folder: Path, train) -> None:
    """Train ``cfg`` in this process (``train(cfg)``) or, with ``spec.launcher``, as
    ``<launcher> <verb> <folder>/study_config.yaml`` in a subprocess (e.g. under torchrun)."""
    if not spec.launcher:
        train(cfg)
        return
    import subprocess

    from pvvae.config import save_config

    path = folder / "study_config.yaml"
    save_config(cfg, path)
    command = [*spec.launcher, *verb, str(path)]
    logger.info("launching %s", " ".join(command))
    subprocess.run(command, check=True)


def last_log(run_dir: Path) -> dict:
    """The last record of a run's ``log.jsonl`` ({} when absent)."""
    path = run_dir / "log.jsonl"
    lines = path.read_text().splitlines() if path.is_file() else []
    return json.loads(lines[-1]) if lines else {}


def measure_device(measure: Measure) -> torch.device:
    from pvvae.training.distributed import resolve_device

    return resolve_device(measure.device)


def heldout_data(measure: Measure) -> str:
    """The DATA argument of the held-out clips."""
    return f"synthetic:{measure.heldout_seed}" if measure.data == "synthetic" else measure.data


@functools.lru_cache(maxsize=1)
def i3d_model(device: torch.device):
    """The frozen Kinetics-400 I3D, loaded once per process (every pair's steps share it)."""
    from pvvae.eval.metrics.i3d import load_i3d

    return load_i3d(device)
