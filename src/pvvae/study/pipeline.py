"""The steps of one (variant, seed) of a study, and the study loop (issue 10).

For each pair, in order (every step content-addressed and resumable, :mod:`pvvae.study.store`):

1. ``image`` / ``video`` / ``decoder``: the VAE stages of seed section 3.2 (the recipe's stage
   configs with the variant's overrides; the video stage starts from the image weights with
   inflated temporal kernels; the decoder stage from the video weights). The image stage of a
   seed is shared by every variant that does not change it.
2. ``latents``: ``pvvae eval latents`` on held-out clips: latent statistics (written into a
   normalised copy of the model, which the later steps use), LTD (Figure 5c/d), PCA, and
   prediction of the latter half against copy-last (Figure 6).
3. ``recon``: reconstruction PSNR / SSIM (and rFVD when ``measure.rfvd``) on held-out clips.
4. ``cache``: the latents of ``measure.cache_clips`` training-distribution clips.
5. ``latte``: a Latte trained with rectified flow on that cache (the recipe's Latte config).
6. ``generate``: ``measure.fvd_clips`` clips sampled (``measure.sample_steps`` Euler steps),
   decoded, and gFVD / KVD against as many real held-out clips (``real``: their I3D
   features, shared by the whole root), and the object-motion coherence of the samples
   (:mod:`pvvae.eval.coherence`). Shared by the root: ``floor``, the next ``fvd_clips`` real
   clips of the same draw (disjoint from ``real``'s), their I3D features, the real-real gFVD
   floor over ``measure.floor_resamples`` splits of both sets, and their coherence; with
   ``measure.domain``, ``domain``: the proving-ground domain network
   (:mod:`pvvae.eval.domain`) and its features of both real sets, whose domain FVD and
   class accuracy the ``generate`` and ``ceiling`` steps then add.
   ``ceiling``: the VAE's ceiling under its generator, on the same protocol as its gFVD: the
   ``floor`` step's clips reconstructed by the VAE, their FVD against the ``real`` features
   (issue 24: "each VAE's ceiling beside its generator") and their coherence.
7. ``probe`` (when ``measure.probe`` is set): task heads on the frozen Latte's features, flow
   EPE, next-frame MSE and tracking AUC against their trivial baselines (seed Table 3).

Results of a pair: ``ROOT/<study>/<variant>/seed<k>/result.json``.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from pvvae.config import load_config, to_dict
from pvvae.eval.report import slugify
from pvvae.study.spec import Measure, StudySpec, Variant
from pvvae.study.store import Step, make_step, run_step, step_seconds, write_json_atomic

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


def _key_view(cfg_dict: dict, upstream: dict[str, str]) -> dict:
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


def _run_overrides(step: Step, seed: int, device: str) -> list[str]:
    return [f"name={step.id}", f"train.out_dir={step.root / 'store'}", f"train.seed={seed}",
            "train.resume=true", "train.progress=false", f"train.device={device}"]


# ------------------------------------------------------------------------------ VAE stages
def vae_stage(runner: Runner, spec: StudySpec, stage: str, variant: Variant, seed: int,
              init: Step | None) -> Step:
    """Train one VAE stage (``image`` / ``video`` / ``decoder``) of a pair; returns its step."""
    from pvvae.training.config import ExperimentConfig

    path = getattr(spec.stages, stage)
    extra = [*spec.stages.overrides.get(stage, []), *variant.all, *(getattr(variant, stage) or [])]
    upstream = {}
    if init is not None:
        extra += [f"model.init_from={init.folder}"]
        extra += ["model.inflate_temporal=true"] if stage == "video" else []
        upstream["model.init_from"] = init.id
    cfg = load_config(ExperimentConfig, path, [*extra, f"train.seed={seed}"])
    step = make_step(runner.root, stage, _key_view(to_dict(cfg), upstream))
    cfg = load_config(ExperimentConfig, path, [*extra, *_run_overrides(step, seed,
                                                                        spec.measure.device)])

    def fn(folder: Path) -> dict:
        from pvvae.training.trainer import train

        launch(spec, ["train"], cfg, folder, train)
        return {"run": str(folder), "last_log": _last_log(folder)}

    runner.run(step, fn, {"config": path, "overrides": extra, "seed": seed})
    return step


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


def _last_log(run_dir: Path) -> dict:
    """The last record of a run's ``log.jsonl`` ({} when absent)."""
    path = run_dir / "log.jsonl"
    lines = path.read_text().splitlines() if path.is_file() else []
    return json.loads(lines[-1]) if lines else {}


def train_vae(runner: Runner, spec: StudySpec, variant: Variant, seed: int) -> dict[str, Step]:
    """The VAE stages a variant asks for; returns ``{stage: step}`` (last = the final model)."""
    steps: dict[str, Step] = {}
    init = None
    for stage in ("image", "video", "decoder"):
        if stage == "image" and not spec.stages.image:
            continue
        if stage == "decoder" and variant.decoder is None:
            continue
        init = steps[stage] = vae_stage(runner, spec, stage, variant, seed, init)
    return steps


# ------------------------------------------------------------------------------ measurements
def _device(measure: Measure) -> torch.device:
    from pvvae.training.trainer import resolve_device

    return resolve_device(measure.device)


def _heldout(measure: Measure) -> str:
    """The DATA argument of the held-out clips."""
    return f"synthetic:{measure.heldout_seed}" if measure.data == "synthetic" else measure.data


def measure_latents(runner: Runner, spec: StudySpec, model: Step) -> Step:
    """Latent statistics (stored in a normalised model copy), LTD of the normalised latents
    (each channel in units of its std: VAEs trained without KL differ in scale), prediction."""
    m = spec.measure
    payload = {"model": model.id, "data": _heldout(m), "frames": m.frames, "size": m.size,
               "ltd_clips": m.ltd_clips, "pred_clips": m.pred_clips}
    step = make_step(runner.root, "latents", payload)

    def fn(folder: Path) -> dict:
        from pvvae.eval.latents import LatentsConfig, run_latents

        common = dict(resolution=m.size, num_frames=m.frames, num_clips=m.ltd_clips,
                      batch_size=m.batch_size, grid_clips=2)
        # pass 1: statistics only, stored in a normalised copy of the model
        run_latents([f"vae=pvvae:{model.folder}"], _heldout(m), folder / "stats",
                    LatentsConfig(**common, pca_clips=0, pred_clips=0), _device(m),
                    write_config=True, config_target=folder / "model", progress=False)
        # pass 2: LTD and PCA on normalised latents (comparable across VAEs), prediction
        config = LatentsConfig(**common, pca_clips=2, pred_clips=m.pred_clips, normalized=True)
        report = run_latents([f"vae=pvvae:{folder / 'model'}"], _heldout(m), folder / "report",
                             config, _device(m), progress=False)
        summary = json.loads(next(report.glob("*/summary.json")).read_text())
        return latents_result(summary) | {"model": str(folder / "model"),
                                          "report": str(next(report.glob("*/report.md")))}

    runner.run(step, fn, payload)
    return step


def latents_result(summary: dict) -> dict:
    """The study's view of a :func:`pvvae.eval.latents.analyze_latents` summary."""
    pred, ltd, stats = summary["prediction"] or {}, summary["ltd"], summary["stats"]
    std = torch.tensor(stats["latents_std"])
    return {
        "pred_psnr": pred.get("psnr"),
        "pred_ssim": pred.get("ssim"),
        "copy_last_psnr": pred.get("baseline_psnr"),
        "copy_last_blur_psnr": pred.get("blur_baseline_psnr"),
        "pred_object_error": pred.get("pred_object_position"),
        "copy_last_object_error": pred.get("copy_last_object_position"),
        "observed_psnr": pred.get("observed_psnr"),
        "pred_frame_psnr": pred.get("frame_psnr"),
        "ltd_mean": ltd.get("mean"),
        "ltd_normalized": ltd.get("normalized_mean"),
        "ltd_adjacent_median": ltd.get("adjacent_median"),
        "ltd_adjacent_per_clip": ltd.get("adjacent_per_clip"),
        "latent_std_mean": float(std.mean()),
        "latent_dead_channels": int((std < 1e-3).sum()),
    }


def measure_recon(runner: Runner, spec: StudySpec, model: Step) -> Step:
    """Reconstruction PSNR / SSIM (rFVD when ``measure.rfvd``) on held-out clips."""
    m = spec.measure
    payload = {"model": model.id, "data": _heldout(m), "frames": m.frames, "size": m.size,
               "clips": m.recon_clips, "rfvd": m.rfvd}
    step = make_step(runner.root, "recon", payload)

    def fn(folder: Path) -> dict:
        from pvvae.eval.adapters import load_vae
        from pvvae.eval.recon import (
            MetricModels,
            ReconConfig,
            evaluate_reconstruction,
            open_eval_data,
        )

        device = _device(m)
        config = ReconConfig(resolution=m.size, num_frames=m.frames, num_clips=m.recon_clips,
                             batch_size=m.batch_size, fvd=m.rfvd, speed=False)
        i3d = _i3d(device) if m.rfvd else None
        metrics = MetricModels(None, "not measured in studies (no LPIPS backbone offline)",
                               i3d, "Kinetics-400 I3D" if i3d is not None else "disabled")
        data = open_eval_data(_heldout(m), m.frames, m.size, m.recon_clips)
        adapter = load_vae(f"vae=pvvae:{model.folder}", device)
        result = evaluate_reconstruction(adapter, data, folder, config, metrics, False)
        return {k.lower(): v for k, v in result["metrics"].items()
                if k in ("PSNR", "SSIM", "rFVD", "rKVD")}

    runner.run(step, fn, payload)
    return step


@functools.lru_cache(maxsize=1)
def _i3d(device: torch.device):
    """The frozen Kinetics-400 I3D, loaded once per process (every pair's steps share it)."""
    from pvvae.eval.metrics.i3d import load_i3d

    return load_i3d(device)


# ------------------------------------------------------------------------------ generation
def build_cache(runner: Runner, spec: StudySpec, latents: Step) -> Step:
    """Latents of the Latte's training clips, normalised with the model's statistics."""
    m = spec.measure
    payload = {"latents": latents.id, "data": m.cache_data, "clips": m.cache_clips,
               "seed": m.cache_seed, "frames": m.frames, "size": m.size}
    step = make_step(runner.root, "cache", payload)

    def fn(folder: Path) -> dict:
        from pvvae.gen.cache import CacheSpec, build_video_dataset, cache_latents, load_vae

        model = latents.result()["model"]
        vae = load_vae(model, _device(m))
        dataset = build_video_dataset(m.cache_data, m.frames, m.size, num_clips=m.cache_clips,
                                      seed=m.cache_seed)
        cache_spec = CacheSpec(vae=model, data=m.cache_data, num_frames=m.frames, size=m.size,
                               num_clips=m.cache_clips, seed=m.cache_seed)
        cache_latents(vae, dataset, folder / "cache", cache_spec, batch_size=m.batch_size,
                      progress=False)
        return {"cache": str(folder / "cache")}

    runner.run(step, fn, payload)
    return step


def train_latte(runner: Runner, spec: StudySpec, cache: Step, seed: int,
                extra: list[str] = ()) -> Step:
    """The recipe's Latte (with the variant's ``extra`` overrides), trained with rectified
    flow on ``cache``."""
    from pvvae.gen.train import GenExperimentConfig

    extra = list(extra)
    cfg = load_config(GenExperimentConfig, spec.latte, [*extra, f"train.seed={seed}"])
    step = make_step(runner.root, "latte", _key_view(to_dict(cfg), {"data.cache": cache.id}))

    def fn(folder: Path) -> dict:
        from pvvae.gen.train import train

        overrides = [*extra, f"data.cache={cache.result()['cache']}",
                     *_run_overrides(step, seed, spec.measure.device)]
        cfg = load_config(GenExperimentConfig, spec.latte, overrides)
        launch(spec, ["gen", "train"], cfg, folder, train)
        return {"run": str(folder), "last_log": _last_log(folder)}

    runner.run(step, fn, {"config": spec.latte, "overrides": extra, "seed": seed})
    return step


def real_features(runner: Runner, spec: StudySpec) -> Step:
    """I3D logits of ``measure.fvd_clips`` real held-out clips (shared by every pair)."""
    m = spec.measure
    payload = {"data": m.fvd_data, "clips": m.fvd_clips, "seed": m.fvd_real_seed,
               "frames": FVD_FRAMES, "size": m.size}
    step = make_step(runner.root, "real", payload)

    def fn(folder: Path) -> dict:
        from pvvae.gen.evaluate import real_clip_batches, video_features

        batches = real_clip_batches(m.fvd_data, m.fvd_clips, num_frames=FVD_FRAMES, size=m.size,
                                    seed=m.fvd_real_seed, batch_size=m.batch_size)
        logits, _ = video_features(batches, _i3d(_device(m)), None, FVD_FRAMES)
        torch.save(logits, folder / "i3d_logits.pt")
        return {"features": str(folder / "i3d_logits.pt"), "num_clips": len(logits)}

    runner.run(step, fn, payload)
    return step


def second_real_set(m: Measure):
    """17-frame batches of the ``floor`` step's real clips: clips ``fvd_clips .. 2 fvd_clips
    - 1`` of a draw of ``2 fvd_clips`` from the gFVD stream, whose first ``fvd_clips`` are
    the ``real`` step's (the same clips, :func:`pvvae.gen.evaluate.real_clip_batches`)."""
    from pvvae.gen.evaluate import real_clip_batches

    skip = m.fvd_clips
    for batch in real_clip_batches(m.fvd_data, 2 * m.fvd_clips, num_frames=m.frames,
                                   size=m.size, seed=m.fvd_real_seed, batch_size=m.batch_size):
        keep, skip = batch[skip:], max(0, skip - len(batch))
        if len(keep):
            yield keep


def real_floor(runner: Runner, spec: StudySpec, real: Step) -> Step:
    """The second real set: its I3D features, the real-real gFVD floor, its coherence."""
    m = spec.measure
    payload = {"real": real.id, "data": m.fvd_data, "clips": m.fvd_clips,
               "seed": m.fvd_real_seed, "frames": m.frames, "size": m.size,
               "resamples": m.floor_resamples}
    step = make_step(runner.root, "floor", payload)

    def fn(folder: Path) -> dict:
        from pvvae.eval.coherence import summarise
        from pvvae.eval.metrics.fvd import fvd_noise_floor
        from pvvae.gen.evaluate import tap_metrics, video_features

        motion: list = []
        batches = tap_metrics(second_real_set(m), FVD_FRAMES, motion)
        logits, _ = video_features(batches, _i3d(_device(m)), None, FVD_FRAMES)
        torch.save(logits, folder / "i3d_logits.pt")
        pool = torch.cat([torch.load(real.result()["features"]), logits])
        floor = fvd_noise_floor(pool, m.fvd_clips, m.floor_resamples, seed=m.fvd_real_seed)
        return {"features": str(folder / "i3d_logits.pt"), "gfvd_floor": floor["fvd"],
                "gfvd_floor_std": floor["std"], "real_coherence": summarise(motion)}

    runner.run(step, fn, payload)
    return step


def domain_network(runner: Runner, spec: StudySpec) -> Step | None:
    """With ``measure.domain``: the domain network (built in the step's folder) and its
    features of both real sets (the ``real`` step's clips first) with their floor."""
    m = spec.measure
    if not m.domain:
        return None
    from pvvae.eval.domain import DomainSettings

    settings = asdict(DomainSettings(steps=m.domain_steps))
    payload = {"settings": settings, "data": m.fvd_data, "clips": m.fvd_clips,
               "seed": m.fvd_real_seed, "frames": FVD_FRAMES, "size": m.size,
               "resamples": m.floor_resamples}
    step = make_step(runner.root, "domain", payload)

    def fn(folder: Path) -> dict:
        from pvvae.eval.domain import build_domain_network, domain_features
        from pvvae.eval.metrics.fvd import fvd_noise_floor
        from pvvae.gen.evaluate import real_clip_batches

        net = build_domain_network(folder, steps=m.domain_steps)
        batches = real_clip_batches(m.fvd_data, 2 * m.fvd_clips, num_frames=FVD_FRAMES,
                                    size=m.size, seed=m.fvd_real_seed, batch_size=m.batch_size)
        features = domain_features(batches, net)
        torch.save(features, folder / "real_features.pt")
        floor = fvd_noise_floor(features, m.fvd_clips, m.floor_resamples, seed=m.fvd_real_seed)
        return {"cache": str(folder), "features": str(folder / "real_features.pt"),
                "domain_floor": floor["fvd"], "domain_floor_std": floor["std"],
                "heldout_accuracy": net.info["heldout_accuracy"]}

    runner.run(step, fn, payload)
    return step


def _load_domain(domain: Step, m: Measure):
    """(the domain network, the domain features of the ``real`` step's clips)."""
    from pvvae.eval.domain import build_domain_network

    net = build_domain_network(domain.result()["cache"], steps=m.domain_steps)
    return net.to(_device(m)), torch.load(domain.result()["features"])[: m.fvd_clips]


def _with_domain(payload: dict, domain: Step | None) -> dict:
    """A step's payload, with the domain step's id when there is one (so that a study
    without ``measure.domain`` keeps its keys)."""
    return payload if domain is None else {**payload, "domain": domain.id}


def vae_ceiling(runner: Runner, spec: StudySpec, latents: Step, real: Step, floor: Step,
                domain: Step | None) -> Step:
    """The VAE's reconstructions of the ``floor`` step's clips: FVD against the ``real``
    features (the gFVD protocol), coherence, and the domain FVD with ``measure.domain``."""
    m = spec.measure
    payload = _with_domain({"latents": latents.id, "real": real.id, "floor": floor.id},
                           domain)
    step = make_step(runner.root, "ceiling", payload)

    def fn(folder: Path) -> dict:
        from pvvae.eval.adapters import load_vae
        from pvvae.eval.coherence import summarise
        from pvvae.eval.metrics.fvd import fvd_from_features
        from pvvae.gen.evaluate import tap_metrics, video_features

        device = _device(m)
        adapter = load_vae(f"vae=pvvae:{latents.result()['model']}", device)
        net, real_domain = _load_domain(domain, m) if domain is not None else (None, None)
        recon = (adapter.reconstruct(b.to(device)).cpu() for b in second_real_set(m))
        motion, outputs = [], []
        logits, _ = video_features(tap_metrics(recon, FVD_FRAMES, motion, net, outputs),
                                   _i3d(device), None, FVD_FRAMES)
        out = {"vae_fvd": fvd_from_features(torch.load(real.result()["features"]), logits),
               "vae_coherence": summarise(motion), "num_clips": len(logits)}
        if net is not None:
            fake = torch.cat([o["features"] for o in outputs])
            out["vae_domain_fvd"] = fvd_from_features(real_domain, fake)
        return out

    runner.run(step, fn, payload)
    return step


def generate(runner: Runner, spec: StudySpec, latte: Step, latents: Step, real: Step,
             seed: int, domain: Step | None = None) -> Step:
    """Sample, decode, and gFVD / KVD against the real features, the samples' coherence;
    with a ``domain`` step the domain FVD and the class accuracy."""
    m = spec.measure
    payload = _with_domain({"latte": latte.id, "latents": latents.id, "real": real.id,
                            "seed": seed, "clips": m.fvd_clips, "steps": m.sample_steps,
                            "sampler": m.sampler, "guidance": m.guidance}, domain)
    step = make_step(runner.root, "generate", payload)

    def fn(folder: Path) -> dict:
        return _generate(folder, m, latte, latents, real, seed, domain)

    runner.run(step, fn, payload)
    return step


def _generate(folder: Path, m: Measure, latte: Step, latents: Step, real: Step,
              seed: int, domain: Step | None = None) -> dict:
    from pvvae.eval.coherence import summarise
    from pvvae.eval.metrics.fvd import fvd_from_features, kvd_from_features
    from pvvae.gen.evaluate import tap_metrics, video_features
    from pvvae.gen.sample import generate as generate_samples
    from pvvae.gen.sample import save_grid

    device = _device(m)
    gen = generate_samples(
        latte.folder, m.fvd_clips, vae_spec=latents.result()["model"], seed=seed,
        device=device, batch_size=m.batch_size, num_steps=m.sample_steps, sampler=m.sampler,
        guidance_scale=m.guidance,
    )
    first: list[torch.Tensor] = []

    def keep_first(batches):
        for batch, _ in batches:
            if not first:
                first.append(batch[:8])
            yield batch

    net, real_domain = _load_domain(domain, m) if domain is not None else (None, None)
    motion, outputs = [], []
    fake, _ = video_features(tap_metrics(keep_first(gen.batches), FVD_FRAMES, motion, net,
                                         outputs), _i3d(device), None, FVD_FRAMES)
    save_grid(first[0], folder / "samples.png")
    real_logits = torch.load(real.result()["features"])
    out = {"gfvd": fvd_from_features(real_logits, fake),
           "gkvd": kvd_from_features(real_logits, fake), "num_fake": len(fake),
           "num_real": len(real_logits), "frames": FVD_FRAMES, "size": m.size,
           "samples": str(folder / "samples.png"), "coherence": summarise(motion)}
    if net is not None:
        from pvvae.eval.domain import accuracy_from_logits

        out["gen_domain_fvd"] = fvd_from_features(
            real_domain, torch.cat([o["features"] for o in outputs]))
        if gen.labels is not None:
            logits = torch.cat([o["logits"] for o in outputs])
            out["class_accuracy"] = accuracy_from_logits(logits, gen.labels[: len(logits)])
    return out


def probe(runner: Runner, spec: StudySpec, latte: Step, latents: Step, seed: int) -> Step:
    """Task heads on the frozen Latte's features (seed Table 3) against trivial baselines."""
    from pvvae.probe.run import canonical_data_spec

    p, m = spec.measure.probe, spec.measure
    payload = {"latte": latte.id, "latents": latents.id, "seed": seed, "frames": m.frames,
               "size": m.size, "probe": {**asdict(p), "data": canonical_data_spec(p.data)}}
    step = make_step(runner.root, "probe", payload)

    def fn(folder: Path) -> dict:
        from pvvae.probe.run import ProbeConfig, train_probes
        from pvvae.probe.tasks import build_task

        cfg = ProbeConfig(
            latte=str(latte.folder), vae=latents.result()["model"], tasks=tuple(p.tasks),
            train_data=p.data, num_frames=m.frames, size=m.size, train_clips=p.train_clips,
            eval_clips=p.eval_clips, seed=seed, residual_next=p.residual_next,
            flow_loss=p.flow_loss, device=str(_device(m)),
            features={"layer": p.layer, "t": p.t, "num_draws": p.draws},
            head={"steps": p.steps, "width": p.width, "batch_size": p.batch_size, "lr": p.lr,
                  "seed": seed},
        )
        tasks = train_probes(cfg, folder)["tasks"]
        out = {}
        for name, res in tasks.items():
            metric = build_task(name).metric
            out[f"probe_{name}_{metric}"] = res["probe"][metric]
            out[f"probe_{name}_{metric}_baseline"] = res["baseline"][metric]
        return out

    runner.run(step, fn, payload)
    return step


# ------------------------------------------------------------------------------ the loop
def pair_dir(spec: StudySpec, variant: Variant, seed: int) -> Path:
    return Path(spec.root) / spec.name / slugify(variant.name) / f"seed{seed}"


def run_pair(runner: Runner, spec: StudySpec, variant: Variant, seed: int) -> dict:
    """All steps of one (variant, seed); writes and returns its ``result.json`` content."""
    stages = train_vae(runner, spec, variant, seed)
    model = list(stages.values())[-1]
    latents = measure_latents(runner, spec, model)
    recon = measure_recon(runner, spec, model)
    real = real_features(runner, spec)
    floor = real_floor(runner, spec, real)
    domain = domain_network(runner, spec)
    ceiling = vae_ceiling(runner, spec, latents, real, floor, domain)
    if runner.vae_only:
        return {}
    cache = build_cache(runner, spec, latents)
    latte = train_latte(runner, spec, cache, seed, variant.latte)
    gen = generate(runner, spec, latte, latents, real, seed, domain)
    steps = {**stages, "latents": latents, "recon": recon, "cache": cache, "latte": latte,
             "real": real, "floor": floor, "ceiling": ceiling, "generate": gen,
             **({"domain": domain} if domain is not None else {})}
    if spec.measure.probe is not None:
        steps["probe"] = probe(runner, spec, latte, latents, seed)
    if runner.dry:
        return {}
    result = {
        "study": spec.name, "variant": variant.name, "seed": seed, "x": variant.x,
        "group": variant.group,
        "steps": {k: s.id for k, s in steps.items()},
        "seconds": {k: step_seconds(s) for k, s in steps.items()},
        **{f"recon_{k}": v for k, v in recon.result().items()},
        **latents.result(),
        **{k: v for k, v in gen.result().items() if k in ("gfvd", "gkvd", "samples")},
        "gen_protocol": {k: gen.result()[k] for k in ("num_fake", "num_real", "frames", "size")},
        **ceiling_result(floor.result(), ceiling.result(), gen.result(),
                         domain.result() if domain is not None else None),
        **(steps["probe"].result() if "probe" in steps else {}),
    }
    folder = pair_dir(spec, variant, seed)
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / "result.json", result)
    return result


def _prefixed(prefix: str, coherence: dict | None) -> dict:
    from pvvae.eval.coherence import METRICS

    return {f"{prefix}_{k}": coherence.get(k) for k in METRICS} if coherence else {}


def ceiling_result(floor: dict, ceiling: dict, gen: dict, domain: dict | None) -> dict:
    """The result fields of the floor, ceiling and domain steps and of the samples' motion:
    ``gfvd_floor(_std)``, ``vae_fvd``, coherence as ``gen_*``, ``vae_*``, ``real_*``, and
    with the domain ``gen_domain_fvd``, ``vae_domain_fvd``, ``domain_floor(_std)``,
    ``class_accuracy`` (fields a step did not measure are left out)."""
    out = {"gfvd_floor": floor["gfvd_floor"], "gfvd_floor_std": floor["gfvd_floor_std"],
           "vae_fvd": ceiling["vae_fvd"], **_prefixed("real", floor["real_coherence"]),
           **_prefixed("vae", ceiling["vae_coherence"]), **_prefixed("gen", gen.get("coherence"))}
    for key in ("gen_domain_fvd", "class_accuracy"):
        if key in gen:
            out[key] = gen[key]
    if domain is not None:
        out |= {"vae_domain_fvd": ceiling.get("vae_domain_fvd"),
                "domain_floor": domain["domain_floor"],
                "domain_floor_std": domain["domain_floor_std"]}
    return out


def plan_study(spec: StudySpec, pairs: list[tuple[Variant, int]]) -> list[dict]:
    """The steps of each pair and whether they are complete, running nothing."""
    rows = []
    for variant, seed in pairs:
        runner = Runner(Path(spec.root), dry=True)
        run_pair(runner, spec, variant, seed)
        rows.append({"variant": variant.name, "seed": seed, "steps": runner.plan})
    return rows


def run_study(spec: StudySpec, pairs: list[tuple[Variant, int]],
              vae_only: bool = False) -> tuple[list[dict], list[str]]:
    """Run (or resume) the given pairs; returns their results and the step ids actually run.
    ``vae_only``: only the VAE stages and their measurements (the generators come later)."""
    runner = Runner(Path(spec.root), vae_only=vae_only)
    results = []
    for i, (variant, seed) in enumerate(pairs, 1):
        logger.info("study %s: pair %d/%d: %s, seed %d", spec.name, i, len(pairs), variant.name,
                    seed)
        result = run_pair(runner, spec, variant, seed)
        results += [result] if result else []
    return results, runner.ran
