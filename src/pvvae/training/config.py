"""The experiment config of ``pvvae train``: one dataclass per component (YAML + overrides).

Defaults are the seed's where it is specific (section 4.1: AdamW, lr 5e-5, linear warm-up,
cosine decay by 10x; r = 1.0; learnable padding) and CPU-sized elsewhere (tiny preset,
64x64 synthetic clips), so that ``pvvae train`` with no file runs anywhere.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Literal

from pvvae.config import ConfigError
from pvvae.objectives.losses import LossWeights


@dataclass
class ModelConfig:
    """Which VAE to build: a preset plus constructor overrides (any ``PVVAE`` argument)."""

    preset: str = "tiny"
    overrides: dict[str, Any] = field(default_factory=dict)
    init_from: str | None = None  # a checkpoint folder whose weights initialise the model

    def build_kwargs(self) -> dict[str, Any]:
        """Constructor arguments; unknown override names raise :class:`ConfigError`."""
        from pvvae.model.autoencoder import PVVAE
        from pvvae.model.presets import PRESETS, preset_config

        if self.preset not in PRESETS:
            raise ConfigError(f"model.preset={self.preset!r}; valid presets: {sorted(PRESETS)}")
        valid = set(inspect.signature(PVVAE.__init__).parameters) - {"self"}
        unknown = sorted(set(self.overrides) - valid)
        if unknown:
            raise ConfigError(
                f"unknown model.overrides key(s) {unknown}; valid keys: {sorted(valid)}"
            )
        return preset_config(self.preset, **self.overrides)


@dataclass
class ObjectiveConfig:
    """Predictive reconstruction (seed section 3.1) and the loss weights of Eq. 1."""

    max_drop_ratio: float = 1.0  # r; 0 is plain reconstruction (the baseline)
    sample_posterior: bool = True
    loss: LossWeights = field(default_factory=LossWeights)


@dataclass
class DataConfig:
    """Training data. ``synthetic`` (default) needs no files."""

    kind: Literal["synthetic", "video_folder", "video_manifest", "image_folder"] = "synthetic"
    root: str | None = None  # folder, or CSV file for video_manifest
    num_frames: int = 17
    size: int = 64
    frame_stride: int = 1
    num_clips: int = 100_000  # synthetic only: clips per epoch
    camera_pan: bool = True  # synthetic only
    batch_size: int = 2
    num_workers: int = 0


@dataclass
class OptimConfig:
    """AdamW with linear warm-up and cosine decay to lr * min_lr_ratio (seed section 4.1)."""

    lr: float = 5e-5
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.01
    warmup_steps: int = 1000
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0


@dataclass
class TrainConfig:
    """Loop length, logging and checkpointing."""

    steps: int = 1000
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    out_dir: str = "runs"
    log_every: int = 10
    ckpt_every: int = 500
    keep_last: int = 2
    progress: bool = True


@dataclass
class ExperimentConfig:
    """Everything ``pvvae train`` needs; saved as ``runs/NAME/config.yaml``."""

    name: str = "run"
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
