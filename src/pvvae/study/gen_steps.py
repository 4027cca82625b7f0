"""The generation steps of a study pair and the real-data steps they are measured against
(:mod:`pvvae.study.pipeline` lists what each computes): ``cache``, ``latte``, ``real``,
``floor``, ``domain``, ``ceiling``, ``generate`` and ``probe``.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from pvvae.config import load_config, to_dict
from pvvae.study.runner import (
    FVD_FRAMES,
    Runner,
    i3d_model,
    key_view,
    last_log,
    launch,
    measure_device,
    run_overrides,
)
from pvvae.study.spec import Measure, StudySpec
from pvvae.study.store import Step, make_step


def build_cache(runner: Runner, spec: StudySpec, latents: Step) -> Step:
    """Latents of the Latte's training clips, normalised with the model's statistics."""
    m = spec.measure
    payload = {"latents": latents.id, "data": m.cache_data, "clips": m.cache_clips,
               "seed": m.cache_seed, "frames": m.frames, "size": m.size}
    step = make_step(runner.root, "cache", payload)

    def fn(folder: Path) -> dict:
        from pvvae.gen.cache import CacheSpec, build_video_dataset, cache_latents
        from pvvae.inference.spec import load_vae

        model = latents.result()["model"]
        vae = load_vae(model, measure_device(m))
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
    step = make_step(runner.root, "latte", key_view(to_dict(cfg), {"data.cache": cache.id}))

    def fn(folder: Path) -> dict:
        from pvvae.gen.train import train

        overrides = [*extra, f"data.cache={cache.result()['cache']}",
                     *run_overrides(step, seed, spec.measure.device)]
        cfg = load_config(GenExperimentConfig, spec.latte, overrides)
        launch(spec, ["gen", "train"], cfg, folder, train)
        return {"run": str(folder), "last_log": last_log(folder)}

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
        logits, _ = video_features(batches, i3d_model(measure_device(m)), None, FVD_FRAMES)
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
        logits, _ = video_features(batches, i3d_model(measure_device(m)), None, FVD_FRAMES)
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
    return net.to(measure_device(m)), torch.load(domain.result()["features"])[: m.fvd_clips]


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
        from pvvae.eval.metrics.fvd import fvd_from_features

        device = measure_device(m)
        adapter = load_vae(f"vae=pvvae:{latents.result()['model']}", device)
        recon = (adapter.reconstruct(b.to(device)).cpu() for b in second_real_set(m))
        logits, coherence, _, domain_fvd = _measure_clips(recon, m, domain)
        out = {"vae_fvd": fvd_from_features(torch.load(real.result()["features"]), logits),
               "vae_coherence": coherence, "num_clips": len(logits)}
        if domain_fvd is not None:
            out["vae_domain_fvd"] = domain_fvd
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
    from pvvae.eval.metrics.fvd import fvd_from_features, kvd_from_features
    from pvvae.gen.sample import generate as generate_samples
    from pvvae.gen.sample import save_grid

    gen = generate_samples(
        latte.folder, m.fvd_clips, vae_spec=latents.result()["model"], seed=seed,
        device=measure_device(m), batch_size=m.batch_size, num_steps=m.sample_steps,
        sampler=m.sampler, guidance_scale=m.guidance,
    )
    first: list[torch.Tensor] = []

    def keep_first(batches):
        for batch, _ in batches:
            if not first:
                first.append(batch[:8])
            yield batch

    fake, coherence, outputs, domain_fvd = _measure_clips(keep_first(gen.batches), m, domain)
    save_grid(first[0], folder / "samples.png")
    real_logits = torch.load(real.result()["features"])
    out = {"gfvd": fvd_from_features(real_logits, fake),
           "gkvd": kvd_from_features(real_logits, fake), "num_fake": len(fake),
           "num_real": len(real_logits), "frames": FVD_FRAMES, "size": m.size,
           "samples": str(folder / "samples.png"), "coherence": coherence}
    if domain_fvd is not None:
        from pvvae.eval.domain import accuracy_from_logits

        out["gen_domain_fvd"] = domain_fvd
        if gen.labels is not None:
            logits = torch.cat([o["logits"] for o in outputs])
            out["class_accuracy"] = accuracy_from_logits(logits, gen.labels[: len(logits)])
    return out


def _measure_clips(batches, m: Measure, domain: Step | None):
    """Pixel batches (B, 3, T, H, W) on the gFVD protocol (their first ``FVD_FRAMES``).

    Returns (I3D logits (N, 400), the coherence summary, the domain network's outputs per
    batch (``features``, ``logits``; empty without ``domain``), the domain FVD against the
    ``real`` step's clips or None without ``domain``).
    """
    from pvvae.eval.coherence import summarise
    from pvvae.eval.metrics.fvd import fvd_from_features
    from pvvae.gen.evaluate import tap_metrics, video_features

    net, real_domain = _load_domain(domain, m) if domain is not None else (None, None)
    motion, outputs = [], []
    logits, _ = video_features(tap_metrics(batches, FVD_FRAMES, motion, net, outputs),
                               i3d_model(measure_device(m)), None, FVD_FRAMES)
    domain_fvd = None
    if net is not None:
        domain_fvd = fvd_from_features(real_domain, torch.cat([o["features"] for o in outputs]))
    return logits, summarise(motion), outputs, domain_fvd


def probe(runner: Runner, spec: StudySpec, latte: Step, latents: Step, seed: int) -> Step:
    """Task heads on the frozen Latte's features (paper Table 3) against trivial baselines."""
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
            flow_loss=p.flow_loss, device=str(measure_device(m)),
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
