"""The experiment config of ``pvvae train``: one dataclass per component (YAML + overrides).

Defaults are the paper's where it is specific (section 4.1: AdamW, lr 5e-5, linear warm-up,
cosine decay by 10x; r = 1.0; learnable padding; section 3.2: GAN from step 5,000) and
CPU-sized elsewhere (tiny preset, 64x64 synthetic clips, no LPIPS / GAN / EMA), so that
``pvvae train`` with no file runs anywhere. The three stages of the paper (section 3.2,
"Training") are ``train.stage`` = ``image`` / ``video`` / ``decoder``; ``configs/paper/`` holds
the paper-scale recipe and ``configs/smoke/`` CPU-sized runs of each stage.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Literal

from pvvae.config import ConfigError
from pvvae.objectives.losses import LossWeights


@dataclass
class ModelConfig:
    """Which VAE to build: an architecture, one of its presets, and constructor overrides.

    ``source`` says where the model comes from:

    * ``pvvae`` (default): a PV-VAE of ``arch``, "cnn" (:class:`pvvae.PVVAE`, paper section 3)
      or "transformer" (:class:`pvvae.TransformerPVVAE`, PV-VAE* of paper section 5), from
      ``preset``; ``overrides`` take any argument of that class.
    * ``diffusers:FOLDER``: fine-tune an existing diffusers video VAE (``AutoencoderKLWan``:
      Wan2.1 / Wan2.2) saved in FOLDER (a model folder, or a pipeline folder with ``vae/``),
      wrapped by :class:`pvvae.model.diffusers_vae.DiffusersPVVAE`; its padding token is read
      from ``pad_token.safetensors`` when the folder has one. ``preset`` and ``overrides`` are
      not used (``arch`` neither).
    * ``diffusers:new:AutoencoderKLWan``: a randomly initialised ``AutoencoderKLWan`` of
      ``preset`` (``pvvae.model.diffusers_vae.WAN_PRESETS``: wan2.1, wan2.2, tiny) with
      ``overrides`` taking any ``AutoencoderKLWan`` argument (smoke tests, the proving ground).
    """

    source: str = "pvvae"
    arch: Literal["cnn", "transformer"] = "cnn"
    preset: str = "tiny"
    overrides: dict[str, Any] = field(default_factory=dict)
    # A checkpoint folder, model folder or run folder (its latest checkpoint) whose weights
    # initialise the model: how the stages chain (image -> video -> decoder).
    init_from: str | None = None
    init_from_ema: bool = True  # take init_from's EMA weights when it has them
    # Fold init_from's temporal kernels onto their newest tap (pvvae.model.causal.
    # inflate_temporal_kernels): a video stage started from an image stage then begins as a
    # per-frame model instead of mixing frames at random. Image outputs are unchanged.
    inflate_temporal: bool = False

    @property
    def diffusers_target(self) -> str | None:
        """FOLDER or "new:CLASS" of a ``diffusers:`` source; None for a PV-VAE."""
        if self.source == "pvvae":
            return None
        if not self.source.startswith("diffusers:") or self.source == "diffusers:":
            raise ConfigError(
                f"model.source={self.source!r}; valid: pvvae, diffusers:FOLDER (a saved "
                "diffusers VAE) or diffusers:new:AutoencoderKLWan (random weights)"
            )
        return self.source.removeprefix("diffusers:")

    def build_kwargs(self) -> dict[str, Any]:
        """Constructor arguments; unknown override names raise :class:`ConfigError`."""
        from pvvae.model.registry import model_class, model_presets

        presets = model_presets(self.arch)
        if self.preset not in presets:
            raise ConfigError(
                f"model.preset={self.preset!r}; valid presets of model.arch={self.arch}: "
                f"{sorted(presets)}"
            )
        valid = set(inspect.signature(model_class(self.arch).__init__).parameters) - {"self"}
        unknown = sorted(set(self.overrides) - valid)
        if unknown:
            raise ConfigError(
                f"unknown model.overrides key(s) {unknown}; valid keys: {sorted(valid)}"
            )
        return {**presets[self.preset], **self.overrides}


@dataclass
class LpipsConfig:
    """The LPIPS term of Eq. 1 (used when ``objective.loss.lambda_lpips > 0``).

    The backbone (torchvision's ImageNet AlexNet / VGG16 ``features``) is read from
    ``backbone_path``, else the torch hub cache, else downloaded when ``allow_download`` and
    online; a missing file stops the run at start-up with the file name and where to put it.
    ``pretrained_backbone: false`` keeps a random backbone: for tests and smoke runs only.
    """

    net: Literal["alex", "vgg"] = "vgg"  # VGG is the usual training loss (LDM, WF-VAE)
    backbone_path: str | None = None
    pretrained_backbone: bool = True
    allow_download: bool = True
    # Frames per clip that go through LPIPS, drawn at random each step (None: all frames).
    # LPIPS costs about as much per frame as the VAE's decoder on CPU-sized models; a subset
    # is an unbiased estimate of the per-frame mean at a fraction of the cost.
    frames_per_clip: int | None = None


@dataclass
class GanConfig:
    """The adversarial term of Eq. 1 with a 3D patch discriminator (pvvae.objectives.gan).

    Used when ``objective.loss.lambda_gan > 0``, from ``start_step`` on (paper section 3.2:
    step 5,000) and from step 0 in the ``decoder`` stage.
    """

    start_step: int = 5000
    loss: Literal["hinge", "non_saturating"] = "hinge"
    adaptive_weight: bool = True  # ||grad L_rec|| / ||grad L_gan|| at the decoder's last layer
    max_adaptive_weight: float = 1e4
    lecam_weight: float = 0.0  # LeCam regularisation (Tseng et al. 2021); VidTok uses it
    lecam_decay: float = 0.999  # EMA decay of the LeCam anchors
    channels: int = 64
    num_layers: int = 3
    lr: float | None = None  # None: optim.lr
    betas: tuple[float, float] = (0.5, 0.9)  # the VQGAN / taming-transformers choice
    weight_decay: float = 0.0
    load_from_init: bool = True  # also load the discriminator of model.init_from when present


@dataclass
class ObjectiveConfig:
    """Predictive reconstruction (paper section 3.1) and the loss terms of Eq. 1."""

    max_drop_ratio: float = 1.0  # r; 0 is plain reconstruction (the baseline)
    sample_posterior: bool = True
    loss: LossWeights = field(default_factory=LossWeights)
    lpips: LpipsConfig = field(default_factory=LpipsConfig)
    gan: GanConfig = field(default_factory=GanConfig)


@dataclass
class DataConfig:
    """Training data. ``synthetic`` (default) needs no files.

    Resolutions: ``batch_sizes`` maps a square resolution to the per-rank batch size used
    at it (paper section 3.2: "each process samples a varying number of images or videos
    based on the resolution"); each step draws one resolution from a seeded schedule shared
    by all ranks (``resolution_weights``, uniform when empty). Empty ``batch_sizes`` means
    ``{size: batch_size}``.
    """

    kind: Literal["synthetic", "video_folder", "video_manifest", "image_folder"] = "synthetic"
    root: str | None = None  # folder, or CSV file for video_manifest
    num_frames: int = 17
    size: int = 64
    frame_stride: int = 1
    num_clips: int = 100_000  # synthetic only: clips per epoch
    camera_pan: bool = True  # synthetic only
    # synthetic only: pvvae.data.synthetic.SYNTHETIC_PRESETS ("proving_ground" or "textured")
    synthetic_preset: str = "proving_ground"
    batch_size: int = 2  # per rank: W ranks train on a global batch of W x batch_size
    num_workers: int = 0
    batch_sizes: dict[int, int] = field(default_factory=dict)
    resolution_weights: dict[int, float] = field(default_factory=dict)

    def resolution_batch_sizes(self) -> dict[int, int]:
        """{resolution: per-rank batch size}, checked; ``{size: batch_size}`` when unset."""
        sizes = dict(self.batch_sizes) or {self.size: self.batch_size}
        for res, b in sizes.items():
            if int(res) <= 0 or int(res) % 16 or int(b) <= 0:
                raise ConfigError(
                    f"data.batch_sizes entry {res}: {b}: resolutions must be positive "
                    "multiples of 16 and batch sizes positive"
                )
        unknown = sorted(set(self.resolution_weights) - set(sizes))
        if unknown:
            raise ConfigError(
                f"data.resolution_weights names resolutions {unknown} that data.batch_sizes "
                f"lacks ({sorted(sizes)})"
            )
        return {int(r): int(b) for r, b in sizes.items()}


@dataclass
class OptimConfig:
    """AdamW with linear warm-up and cosine decay to lr * min_lr_ratio (paper section 4.1)."""

    lr: float = 5e-5
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.01
    warmup_steps: int = 1000
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0


@dataclass
class LoopConfig:
    """The loop keys of every trainer's ``train`` section (the VAE's and the Latte's, one
    engine: :mod:`pvvae.training.engine`); each trainer subclasses it with its defaults."""

    steps: int = 1000
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N (under torchrun: cuda:LOCAL_RANK)
    out_dir: str = "runs"
    log_every: int = 10
    ckpt_every: int = 500
    keep_last: int = 2
    progress: bool = True
    resume: bool = False  # continue from the run's latest checkpoint (--resume)
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16: autocast, fp32 fallback per module
    ema: bool = False  # keep an EMA of the weights (saved; used for eval/export)
    ema_decay: float = 0.999
    tensorboard: bool = True
    max_nonfinite: int = 20  # stop after this many consecutive NaN/Inf steps (all skipped)


@dataclass
class TrainConfig(LoopConfig):
    """Stage, loop length, scale-out options, logging and checkpointing."""

    # Paper section 3.2: image pretraining (T = 1), video training with predictive
    # reconstruction, decoder fine-tuning (encoder frozen, no dropping, GAN throughout).
    stage: Literal["image", "video", "decoder"] = "video"
    gradient_checkpointing: bool = False  # recompute residual blocks in the backward pass
    # torch.compile the encoder, decoder and discriminator (in place). Each new input shape
    # (k, resolution) compiles once more: worth it on GPUs for long runs, not on CPUs.
    compile: bool = False
    parallel: Literal["ddp", "fsdp"] = "ddp"  # under torchrun; fsdp: FSDP2 fully_shard
    image_every: int = 0  # TensorBoard reconstruction/prediction strips every N steps; 0: off


@dataclass
class ExperimentConfig:
    """Everything ``pvvae train`` needs; saved as ``runs/NAME/config.yaml``."""

    name: str = "run"
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def validate(cfg: ExperimentConfig) -> None:
    """Cross-field checks that one dataclass cannot make; raises :class:`ConfigError`."""
    data, stage = cfg.data, cfg.train.stage
    data.resolution_batch_sizes()  # raises on bad entries
    from pvvae.data.synthetic import SYNTHETIC_PRESETS

    if data.kind == "synthetic" and data.synthetic_preset not in SYNTHETIC_PRESETS:
        raise ConfigError(
            f"data.synthetic_preset={data.synthetic_preset!r}; valid: {sorted(SYNTHETIC_PRESETS)}"
        )
    if data.kind != "synthetic" and not data.root:
        raise ConfigError(f"data.kind={data.kind} needs data.root (a folder or CSV manifest)")
    frames = 1 if data.kind == "image_folder" else data.num_frames
    if stage == "image" and frames != 1:
        raise ConfigError(
            "train.stage=image trains on single frames (T = 1): use data.kind=image_folder, "
            f"or data.num_frames=1 with synthetic data (got {frames} frames)"
        )
    if stage != "image" and data.kind == "image_folder":
        raise ConfigError(f"train.stage={stage} needs video data, not data.kind=image_folder")
    per_clip = cfg.objective.lpips.frames_per_clip
    if per_clip is not None and per_clip < 1:
        raise ConfigError("objective.lpips.frames_per_clip must be >= 1 or null")
    validate_loop(cfg.train)
    if cfg.train.image_every < 0:
        raise ConfigError(f"train.image_every={cfg.train.image_every}: must be >= 0 (0: off)")
    _validate_source(cfg.model)


def validate_loop(train) -> None:
    """Checks of the loop keys that the ``train`` section of every trainer has (the VAE's
    and the Latte's, :mod:`pvvae.training.engine`); raises :class:`ConfigError`."""
    if train.max_nonfinite < 1 or train.steps < 0:
        raise ConfigError("train.max_nonfinite must be >= 1 and train.steps >= 0")
    for key in ("log_every", "ckpt_every"):
        if getattr(train, key) < 1:
            raise ConfigError(f"train.{key}={getattr(train, key)}: must be >= 1")
    if not 0.0 <= train.ema_decay < 1.0:
        raise ConfigError(f"train.ema_decay must be in [0, 1), got {train.ema_decay}")


def _validate_source(model: ModelConfig) -> None:
    """The ``diffusers:`` sources take no PV-VAE-only options (checked before any work)."""
    target = model.diffusers_target
    if target is None:
        return
    if model.inflate_temporal:
        raise ConfigError(
            "model.inflate_temporal applies to PV-VAE models; a diffusers VAE pads time with "
            "zeros, so its image stage trains only the newest kernel taps: set it to false"
        )
    if target.startswith("new:"):
        from pvvae.model.diffusers_vae import SUPPORTED_CLASSES, WAN_PRESETS

        if target.removeprefix("new:") not in SUPPORTED_CLASSES:
            raise ConfigError(
                f"model.source={model.source!r}: supported classes {SUPPORTED_CLASSES}"
            )
        if model.preset not in WAN_PRESETS:
            raise ConfigError(
                f"model.preset={model.preset!r}; valid presets of {model.source}: "
                f"{sorted(WAN_PRESETS)}"
            )
    elif model.overrides:
        raise ConfigError(
            f"model.overrides apply to new models only; {model.source} is built from the "
            "config.json of its folder"
        )
