"""The steps of one (variant, seed) of a study, and the study loop.

For each pair, in order (every step content-addressed and resumable, :mod:`pvvae.study.store`;
the VAE steps are built in :mod:`pvvae.study.vae_steps`, the others in
:mod:`pvvae.study.gen_steps`, both on :mod:`pvvae.study.runner`):

1. ``image`` / ``video`` / ``decoder``: the VAE stages of paper section 3.2 (the recipe's stage
   configs with the variant's overrides; the video stage starts from the image weights with
   inflated temporal kernels; the decoder stage from the video weights). The image stage of a
   seed is shared by every variant that does not change it.
2. ``latents``: ``pvvae eval latents`` on held-out clips: latent statistics (written into a
   normalised copy of the model, which the later steps use), LTD (paper Figure 5c/d), PCA,
   and prediction of the latter half against copy-last (paper Figure 6).
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
   and their coherence.
7. ``probe`` (when ``measure.probe`` is set): task heads on the frozen Latte's features, flow
   EPE, next-frame MSE and tracking AUC against their trivial baselines (paper Table 3).

Results of a pair: ``ROOT/<study>/<variant>/seed<k>/result.json``, and, when the study file
sets ``archive``, a copy in ``ARCHIVE/<variant>/seed<k>/`` (a folder
that outlives the root, e.g. committed beside the published report): a later run on another
machine skips a pair whose archived result has the step ids the study file asks for now, and
the report reads it, so a study too long for one machine's session accumulates across several.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from pvvae.eval.report import slugify, write_json
from pvvae.study.gen_steps import (
    build_cache,
    ceiling_result,
    domain_network,
    generate,
    probe,
    real_features,
    real_floor,
    train_latte,
    vae_ceiling,
)
from pvvae.study.runner import LATER_FIELDS, Runner  # noqa: F401 (LATER_FIELDS: docs/studies.md)
from pvvae.study.spec import StudySpec, Variant
from pvvae.study.store import step_seconds
from pvvae.study.vae_steps import measure_latents, measure_recon, train_vae

logger = logging.getLogger(__name__)


def pair_dir(spec: StudySpec, variant: Variant, seed: int) -> Path:
    """The folder of a pair's ``result.json``: ``ROOT/<study>/<variant slug>/seed<k>``."""
    return Path(spec.root) / spec.name / slugify(variant.name) / f"seed{seed}"


def archive_path(spec: StudySpec, variant: Variant, seed: int) -> Path | None:
    """The archived ``result.json`` of a pair (None when the study keeps no archive)."""
    if spec.archive is None:
        return None
    return Path(spec.archive) / slugify(variant.name) / f"seed{seed}" / "result.json"


def portable(result: dict) -> dict:
    """A result without its per-clip lists (kept in the pair's files; summaries stay small)."""
    return {k: v for k, v in result.items() if k not in ("ltd_adjacent_per_clip",
                                                        "pred_frame_psnr")}


def archived(spec: StudySpec, variant: Variant, seed: int, step_ids: set[str]) -> dict | None:
    """The archived result of a pair when it was measured with exactly ``step_ids`` (the
    steps the study file asks for now), else None (none archived, or stale settings)."""
    path = archive_path(spec, variant, seed)
    if path is None or not path.is_file():
        return None
    result = json.loads(path.read_text())
    return result if set(result["steps"].values()) == step_ids else None


def run_pair(runner: Runner, spec: StudySpec, variant: Variant, seed: int) -> dict:
    """All steps of one (variant, seed); writes and returns its ``result.json`` content."""
    spec = spec.for_variant(variant)
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
    write_json(folder / "result.json", result, allow_nan=True)
    if (path := archive_path(spec, variant, seed)) is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, result, allow_nan=True)
    return result


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
        planned = {step_id for step_id, _ in plan_study(spec, [(variant, seed)])[0]["steps"]}
        if not vae_only and (done := archived(spec, variant, seed, planned)) is not None:
            logger.info("study %s: pair %d/%d: %s, seed %d: archived in %s", spec.name, i,
                        len(pairs), variant.name, seed, spec.archive)
            results.append(done)
            continue
        logger.info("study %s: pair %d/%d: %s, seed %d", spec.name, i, len(pairs), variant.name,
                    seed)
        result = run_pair(runner, spec, variant, seed)
        results += [result] if result else []
    return results, runner.ran
