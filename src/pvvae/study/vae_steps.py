"""The VAE steps of a study pair (:mod:`pvvae.study.pipeline` lists what each computes):
the training stages ``image`` / ``video`` / ``decoder``, and ``latents`` and ``recon``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from pvvae.config import load_config, to_dict
from pvvae.study.runner import (
    Runner,
    heldout_data,
    i3d_model,
    key_view,
    last_log,
    launch,
    measure_device,
    run_overrides,
)
from pvvae.study.spec import StudySpec, Variant
from pvvae.study.store import Step, make_step


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
    step = make_step(runner.root, stage, key_view(to_dict(cfg), upstream))
    cfg = load_config(ExperimentConfig, path, [*extra, *run_overrides(step, seed,
                                                                        spec.measure.device)])

    def fn(folder: Path) -> dict:
        from pvvae.training.trainer import train

        launch(spec, ["train"], cfg, folder, train)
        return {"run": str(folder), "last_log": last_log(folder)}

    runner.run(step, fn, {"config": path, "overrides": extra, "seed": seed})
    return step


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


def measure_latents(runner: Runner, spec: StudySpec, model: Step) -> Step:
    """Latent statistics (stored in a normalised model copy), LTD of the normalised latents
    (each channel in units of its std: VAEs trained without KL differ in scale), prediction."""
    m = spec.measure
    payload = {"model": model.id, "data": heldout_data(m), "frames": m.frames, "size": m.size,
               "ltd_clips": m.ltd_clips, "pred_clips": m.pred_clips}
    step = make_step(runner.root, "latents", payload)

    def fn(folder: Path) -> dict:
        from pvvae.eval.latents import LatentsConfig, run_latents

        common = dict(resolution=m.size, num_frames=m.frames, num_clips=m.ltd_clips,
                      batch_size=m.batch_size, grid_clips=2)
        # pass 1: statistics only, stored in a normalised copy of the model
        run_latents([f"vae=pvvae:{model.folder}"], heldout_data(m), folder / "stats",
                    LatentsConfig(**common, pca_clips=0, pred_clips=0), measure_device(m),
                    write_config=True, config_target=folder / "model", progress=False)
        # pass 2: LTD and PCA on normalised latents (comparable across VAEs), prediction
        config = LatentsConfig(**common, pca_clips=2, pred_clips=m.pred_clips, normalized=True)
        report = run_latents([f"vae=pvvae:{folder / 'model'}"], heldout_data(m), folder / "report",
                             config, measure_device(m), progress=False)
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
    payload = {"model": model.id, "data": heldout_data(m), "frames": m.frames, "size": m.size,
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

        device = measure_device(m)
        config = ReconConfig(resolution=m.size, num_frames=m.frames, num_clips=m.recon_clips,
                             batch_size=m.batch_size, fvd=m.rfvd, speed=False)
        i3d = i3d_model(device) if m.rfvd else None
        metrics = MetricModels(None, "not measured in studies (no LPIPS backbone offline)",
                               i3d, "Kinetics-400 I3D" if i3d is not None else "disabled")
        data = open_eval_data(heldout_data(m), m.frames, m.size, m.recon_clips)
        adapter = load_vae(f"vae=pvvae:{model.folder}", device)
        result = evaluate_reconstruction(adapter, data, folder, config, metrics, False)
        return {k.lower(): v for k, v in result["metrics"].items()
                if k in ("PSNR", "SSIM", "rFVD", "rKVD")}

    runner.run(step, fn, payload)
    return step
