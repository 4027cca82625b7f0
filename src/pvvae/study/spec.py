"""Study files: variants of one recipe, seeds, and the measurements to take.

A study file (``configs/studies/*.yaml``) names a *recipe* (the stage configs of paper section
3.2, the Latte config and the measurement settings, usually shared by several studies) and
the variants to compare. Keys of the study file override the recipe's; ``key=value``
overrides on the command line override both (``measure.fvd_clips=64``, ``seeds=[0]``)::

    name: table4
    title: "Table 4: incremental ablation"
    recipe: configs/studies/cpu/recipe.yaml
    seeds: [0, 1, 2]
    variants:
      - name: baseline
        video: [objective.max_drop_ratio=0.0, objective.loss.motion_loss=false]
      - name: +decoder fine-tuning
        decoder: []                # run stage 3 (the recipe's decoder config)
    report: {kind: table4}

A study file may ``extends: OTHER.yaml`` (e.g. the GPU-scale files take the variants of the
CPU ones and name another recipe). Each variant lists config overrides per stage (``all``
applies to every VAE stage); ``decoder: null`` (the default) stops after the video stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pvvae.config import ConfigError, _parse_yaml, apply_overrides, from_dict, to_dict

REPORT_KINDS = ("table4", "generation", "correlation", "scaling")


@dataclass
class Variant:
    """One row of a study: overrides of the recipe's stage configs.

    Attributes:
        name: row label (unique in the study).
        all: ``key=value`` overrides applied to every VAE stage (e.g. ``data.num_clips=64``).
        image, video, decoder: overrides of one stage; ``decoder: None`` skips stage 3.
        latte: overrides of the recipe's Latte config (a generator curve on one VAE).
        measure: overrides of the study's :class:`Measure` for this row's steps (e.g.
            ``cache_clips=4096``: the Latte trains on more clips; ``guidance=4``); the steps
            they do not touch stay shared with the other rows.
        x: the value of this variant on the x axis of a scaling figure (Figure 5b).
        group: the curve of a scaling figure this variant belongs to (e.g. ``r = 1``).
    """

    name: str
    all: list[str] = field(default_factory=list)
    image: list[str] = field(default_factory=list)
    video: list[str] = field(default_factory=list)
    decoder: list[str] | None = None
    latte: list[str] = field(default_factory=list)
    measure: list[str] = field(default_factory=list)
    x: float | None = None
    group: str = ""


@dataclass
class Stages:
    """Config files (``ExperimentConfig`` YAML) of the VAE stages; ``image: null`` starts the
    video stage from random weights. ``overrides`` apply to one stage of every variant (a
    recipe's data folders: ``{image: [data.root=/data/imagenet], video: [...]}``)."""

    image: str | None = None
    video: str = "configs/demo.yaml"
    decoder: str | None = None
    overrides: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.overrides) - {"image", "video", "decoder"})
        if unknown:
            raise ConfigError(f"stages.overrides: unknown stage(s) {unknown}; valid: image, "
                              "video, decoder")


@dataclass
class ProbeSpec:
    """The probing measurement (paper Table 3, :mod:`pvvae.probe`) of each pair's Latte.

    Attributes:
        tasks: ``flow``, ``next``, ``track``; data: a probe data spec (``synthetic``: every
            task, with ground truth, on the proving-ground clips the VAEs and Lattes train
            on; ``synthetic:textured``: harder clips); train_clips, eval_clips: clip counts.
        steps, width, batch_size, lr: head training (:class:`pvvae.probe.HeadTrainConfig`).
        residual_next: the next-frame head predicts the change from the last frame.
        flow_loss: training loss of the flow head, ``mse`` (squared EPE) or ``epe``.
        layer, t, draws: Latte block read (None: depth // 2), flow time of the noised input
            and noise draws averaged (:class:`pvvae.probe.FeatureConfig`).
    """

    tasks: list[str] = field(default_factory=lambda: ["flow", "next", "track"])
    data: str = "synthetic"
    train_clips: int = 1024
    eval_clips: int = 64
    steps: int = 600
    width: int = 32
    batch_size: int = 8
    lr: float = 1e-3
    residual_next: bool = True
    flow_loss: Literal["mse", "epe"] = "mse"
    layer: int | None = None
    t: float = 0.05
    draws: int = 1


@dataclass
class Measure:
    """What the measurement steps use (paper sections 4.1 and 4.3, at the study's scale).

    Attributes:
        frames, size: clip layout of every measurement (17 x size x size).
        data: ``synthetic`` (the proving ground; streams below are scene seeds) or a video
            folder / CSV manifest (streams unused).
        heldout_seed: stream of the held-out clips (reconstruction, prediction, LTD).
        recon_clips, ltd_clips, pred_clips: clip counts of those measurements.
        rfvd: also compute rFVD (I3D) on the reconstruction clips.
        cache_data, cache_clips, cache_seed: the clips the Latte trains on (their latents;
            the count and seed apply to ``synthetic``, a folder is cached whole).
        fvd_data, fvd_clips, fvd_real_seed: the real clips gFVD/KVD compare against, and how
            many clips are generated and compared.
        sample_steps, sampler, guidance: the Latte sampler (paper: 100 Euler steps).
        batch_size: clips per measurement batch; device: ``auto`` | ``cpu`` | ``cuda[:N]``.
        probe: the probing step (paper Table 3) of each pair's Latte, or None.
        floor_resamples: random splits of the real-real gFVD floor (the ``floor`` step draws
            ``fvd_clips`` more real clips of the same stream).
        domain: also the domain FVD (:mod:`pvvae.eval.domain`, a ``domain`` step builds the
            network once per root) of the samples and of the reconstructions, and the class
            accuracy of class-conditional samples (off: the step keys stay as they were).
        domain_steps: training steps of that network (its other settings are the defaults
            of :class:`pvvae.eval.domain.DomainSettings`).
    """

    frames: int = 17
    size: int = 64
    data: str = "synthetic"
    heldout_seed: int = 10_000
    recon_clips: int = 64
    ltd_clips: int = 256
    pred_clips: int = 64
    rfvd: bool = False
    cache_data: str = "synthetic"
    cache_clips: int = 1024
    cache_seed: int = 20_000
    fvd_data: str = "synthetic"
    fvd_clips: int = 256
    fvd_real_seed: int = 30_000
    sample_steps: int = 50
    sampler: Literal["euler", "heun"] = "euler"
    guidance: float = 1.0
    batch_size: int = 8
    device: str = "auto"
    probe: ProbeSpec | None = None  # None: no probing step
    floor_resamples: int = 10
    domain: bool = False
    domain_steps: int = 900


@dataclass
class ReportSpec:
    """How :mod:`pvvae.study.report` lays the study out: ``table4`` (generation and
    reconstruction columns, paper Table 4), ``generation`` (gFVD / KVD, Tables 5-6),
    ``correlation`` (Figure 5a: prediction PSNR against gFVD), ``scaling`` (Figure 5b: gFVD
    against ``x`` per ``group``). Every report also has the LTD figures (5c / 5d)."""

    kind: Literal["table4", "generation", "correlation", "scaling"] = "table4"
    x_label: str = ""
    # variant -> the paper's numbers, e.g. {gfvd: 174.81, psnr: 33.44}: the claims to check
    paper: dict[str, dict[str, float]] = field(default_factory=dict)
    # the [without PR, with PR] variants of the LTD (Figure 5c/5d) and probing (Table 3)
    # claims; None: the first and last variants; []: the study has no such pair (no claims)
    compare: list[str] | None = None


@dataclass
class StudySpec:
    """A whole study file, recipe merged (see the module docstring)."""

    name: str
    variants: list[Variant]
    title: str = ""
    recipe: str | None = None
    root: str = "runs/studies"
    # a folder that keeps a copy of each pair's result.json where the root does not
    # survive, e.g. committed under docs/: a pair archived with the same step ids is complete
    # (pvvae.study.pipeline.archived); None: results live in the root only
    archive: str | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    stages: Stages = field(default_factory=Stages)
    latte: str = "configs/studies/cpu/latte.yaml"
    # command prefix that runs the training steps in a subprocess, e.g. [torchrun,
    # --nproc_per_node=8, -m, pvvae] (empty: in this process, one device)
    launcher: list[str] = field(default_factory=list)
    measure: Measure = field(default_factory=Measure)
    report: ReportSpec = field(default_factory=ReportSpec)

    def __post_init__(self) -> None:
        names = [v.name for v in self.variants]
        if not names:
            raise ConfigError(f"study {self.name}: no variants; list at least one under variants")
        duplicate = {n for n in names if names.count(n) > 1}
        if duplicate:
            raise ConfigError(f"study {self.name}: variant names repeat: {sorted(duplicate)}")
        pair = self.report.compare
        if pair is not None and (len(pair) not in (0, 2) or set(pair) - set(names)):
            raise ConfigError(
                f"study {self.name}: report.compare={pair}; name two variants [without, with] "
                f"of {names}, or [] for none"
            )
        if any(v.decoder is not None for v in self.variants) and not self.stages.decoder:
            raise ConfigError(
                f"study {self.name}: a variant asks for the decoder stage but stages.decoder "
                "is not set; name its config file in the recipe or the study file"
            )

    def compared(self) -> tuple[str, str] | None:
        """The (without, with) variant names the LTD and probing claims compare, or None."""
        pair = self.report.compare
        if pair is None:
            first, last = self.variants[0].name, self.variants[-1].name
            return None if first == last else (first, last)
        return (pair[0], pair[1]) if pair else None

    def for_variant(self, variant: Variant) -> StudySpec:
        """This study as ``variant``'s steps see it: its ``measure`` overrides applied."""
        if not variant.measure:
            return self
        data = apply_overrides(to_dict(self.measure), variant.measure)
        return replace(self, measure=from_dict(Measure, data, f"variant {variant.name!r} measure"))

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise ConfigError(f"unknown variant {name!r}; variants: {[v.name for v in self.variants]}")


def _read_yaml(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist")
    data = _parse_yaml(path.read_text(), f"{what} {path}") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path}: the top level must be a mapping")
    return data


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge: ``top`` wins, sections merge key by key."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_study_file(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    """A study file merged over the file it ``extends`` (recursively)."""
    if path.resolve() in seen:
        raise ConfigError(f"study file {path}: 'extends' loops back to itself")
    data = _read_yaml(path, "study file")
    parent = data.pop("extends", None)
    if parent:
        data = _merge(_read_study_file(Path(parent), (*seen, path.resolve())), data)
    return data


def load_study(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> StudySpec:
    """Read a study file, merge its recipe under it and apply ``key=value`` overrides.

    Raises:
        ConfigError: a missing file, an unknown key or a malformed value (one line).
    """
    data = _read_study_file(Path(path), ())
    recipe = apply_overrides(data, overrides).get("recipe", data.get("recipe"))
    if recipe:
        data = _merge(_read_yaml(Path(recipe), "recipe file"), data)
    return from_dict(StudySpec, apply_overrides(data, overrides))


def select(spec: StudySpec, variants: list[str] | None, seeds: list[int] | None):
    """The (variant, seed) pairs to run, in file order; ``None`` takes all of them.

    Raises:
        ConfigError: a variant or seed the study does not have.
    """
    chosen = [spec.variant(n) for n in variants] if variants else list(spec.variants)
    unknown = sorted(set(seeds or []) - set(spec.seeds))
    if unknown:
        raise ConfigError(f"seed(s) {unknown} not in the study's seeds {spec.seeds}")
    return [(v, s) for v in chosen for s in (seeds or spec.seeds)]
