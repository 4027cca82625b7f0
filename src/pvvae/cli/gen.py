"""``pvvae gen cache|train|sample|eval``: latent diffusion with Latte on PV-VAE latents.

    pvvae gen cache VAE_CKPT DATA OUT [--size 256 --num-frames 17 ...]
    pvvae gen train CONFIG [key=value ...] [--resume]
    pvvae gen sample CKPT --num N [--class C] [--guidance W] [--steps 100] [--vae VAE] --out DIR
    pvvae gen eval CKPT --real DATA --num 2048 [--c3d-weights FILE] [--noise-floor K]
                   [--domain] --out DIR
    pvvae gen eval --fake DIR --real DATA --num N --out DIR

VAE_CKPT / ``--vae``: a VAE model, checkpoint or run folder, or ``preset:NAME`` (random
weights: smoke runs only). DATA: ``synthetic``, a video folder (UCF101 layout) or a CSV
manifest. See :mod:`pvvae.gen.cache`, :mod:`pvvae.gen.train`, :mod:`pvvae.gen.sample` and
:mod:`pvvae.gen.evaluate` for the conventions.
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``gen`` and its sub-verbs on the top-level sub-parsers."""
    gen = sub.add_parser(
        "gen", help="latent video generation with Latte (cache, train, sample, eval)",
        description="Latent video generation with Latte and rectified flow (paper section 4.1).",
    )
    verbs = gen.add_subparsers(dest="gen_command", required=True, metavar="VERB")
    _add_cache(verbs)
    _add_train(verbs)
    _add_sample(verbs)
    _add_eval(verbs)


def _add_cache(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("cache", help="encode a dataset into a latent cache",
                         description="Encode clips with a VAE into normalised latent shards.")
    p.add_argument("vae", help="VAE model/checkpoint/run folder, or preset:NAME (random weights)")
    p.add_argument("data", help="'synthetic', a video folder (class sub-folders) or a CSV manifest")
    p.add_argument("out", help="cache folder (resumable: finished shards are skipped)")
    p.add_argument("--num-frames", type=int, default=17, help="frames per clip (seed: 17)")
    p.add_argument("--size", type=int, default=256, help="square side after centre crop")
    p.add_argument("--frame-stride", type=int, default=1, help="step between source frames")
    p.add_argument("--num-clips", type=int, default=64, help="synthetic data: number of clips")
    p.add_argument("--seed", type=int, default=0, help="synthetic data: scene seed")
    p.add_argument("--shard-size", type=int, default=256, help="clips per shard file")
    p.add_argument("--batch-size", type=int, default=4, help="clips per encoder call")
    p.add_argument("--dtype", choices=["float16", "float32"], default="float16",
                   help="storage dtype of the latents")
    p.add_argument("--mean-only", action="store_true",
                   help="store only the posterior mean (no std: no posterior sampling later)")
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader workers")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--tiling", action="store_true", help="spatial tiling for large frames")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run_cache)


def _add_train(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser(
        "train", help="train Latte on a latent cache (rectified flow)",
        description="Train Latte on cached latents. Overrides use dotted keys, e.g. "
        "train.steps=100 model.preset=S data.cache=runs/cache. Runs under torchrun as is.",
    )
    p.add_argument("config", nargs="?", help="YAML config (configs/gen/*.yaml)")
    p.add_argument("overrides", nargs="*", help="key=value overrides")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
    p.set_defaults(func=run_train)


def _add_sampling_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--vae", help="VAE for decoding (default: the one the cache recorded)")
    p.add_argument("--guidance", type=float, default=1.0,
                   help="classifier-free guidance weight w (1: off)")
    p.add_argument("--steps", type=int, default=100, help="solver steps (seed: 100 Euler)")
    p.add_argument("--sampler", default="euler", choices=["euler", "heun"], help="ODE solver")
    p.add_argument("--batch-size", type=int, default=8, help="samples per solver call")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise and labels")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights, not the EMA")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def _add_sample(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("sample", help="generate videos (mp4s and a PNG grid)")
    p.add_argument("checkpoint", help="Latte checkpoint or run folder")
    p.add_argument("--num", type=int, required=True, help="number of videos")
    p.add_argument("--class", dest="class_index", type=int,
                   help="class of every sample (default: uniformly random classes)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--fps", type=float, default=8.0, help="frame rate of the mp4s")
    _add_sampling_options(p)
    p.set_defaults(func=run_sample)


def _add_eval(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser(
        "eval", help="gFVD / KVD (/ IS) of generated videos, paper Table 1 layout",
        description="FVD and KVD (I3D, StyleGAN-V protocol, 16 frames) of N generated clips "
        "against N real clips; IS with --c3d-weights. Writes gen_metrics.json/.md.",
    )
    p.add_argument("checkpoint", nargs="?", help="Latte checkpoint or run folder to sample from")
    p.add_argument("--fake", help="folder of generated mp4s instead of a checkpoint")
    p.add_argument("--real", required=True, help="'synthetic', a video folder or a CSV manifest")
    p.add_argument("--num", type=int, default=2048, help="generated and real clips (seed: 2048)")
    p.add_argument("--num-frames", type=int, default=16, help="frames per metric clip")
    p.add_argument("--size", type=int, help="real clip side (default: the generated side)")
    p.add_argument("--synthetic-clips", type=int,
                   help="synthetic real data: dataset size to draw from (default --num)")
    p.add_argument("--c3d-weights", help="UCF101 C3D weights for the Inception Score")
    p.add_argument("--name", default="", help="method name of the table row")
    p.add_argument("--dataset-name", default="", help="dataset name of the table columns")
    p.add_argument("--noise-floor", type=int, default=0, metavar="K",
                   help="also the real-real FVD floor over K random splits (draws 2 N real "
                   "clips; 0: none)")
    p.add_argument("--domain", action="store_true",
                   help="also the domain FVD and the class accuracy of the samples "
                   "(proving-ground domain network, built once and cached)")
    p.add_argument("--domain-cache", help="folder of the domain network "
                   "(default ~/.cache/pvvae/domain, or $PVVAE_CACHE/domain)")
    p.add_argument("--out", required=True, help="output folder")
    _add_sampling_options(p)
    p.set_defaults(func=run_eval)


def run_cache(args: argparse.Namespace) -> int:
    from pvvae.gen.cache import CacheSpec, build_video_dataset, cache_latents
    from pvvae.inference.spec import load_vae
    from pvvae.training.distributed import resolve_device

    vae = load_vae(args.vae, resolve_device(args.device))
    if args.tiling:
        vae.enable_tiling()
    spec = CacheSpec(
        vae=args.vae, data=args.data, num_frames=args.num_frames, size=args.size,
        frame_stride=args.frame_stride, num_clips=args.num_clips, seed=args.seed,
        shard_size=args.shard_size, dtype=args.dtype, store_std=not args.mean_only,
    )
    dataset = build_video_dataset(
        args.data, args.num_frames, args.size, args.frame_stride, args.num_clips, args.seed
    )
    out = cache_latents(vae, dataset, args.out, spec, batch_size=args.batch_size,
                        num_workers=args.num_workers, progress=not args.no_progress)
    print(f"latent cache: {out} ({len(dataset)} clips)")
    return 0


def run_train(args: argparse.Namespace) -> int:
    from pvvae.config import load_config
    from pvvae.gen.train import GenExperimentConfig, train

    config, overrides = args.config, list(args.overrides)
    if config is not None and "=" in config:  # only overrides were given
        overrides.insert(0, config)
        config = None
    if args.resume:
        overrides.append("train.resume=true")
    cfg = load_config(GenExperimentConfig, config, overrides)
    print(f"run folder: {train(cfg)}")
    return 0


def _sampling_kwargs(args: argparse.Namespace) -> dict:
    return dict(
        vae_spec=args.vae, guidance_scale=args.guidance, num_steps=args.steps,
        sampler=args.sampler, batch_size=args.batch_size, seed=args.seed, device=args.device,
        use_ema=not args.no_ema, progress=not args.no_progress,
    )


def run_sample(args: argparse.Namespace) -> int:
    from pvvae.gen.sample import run_sampling

    out = run_sampling(args.checkpoint, args.out, num=args.num, class_index=args.class_index,
                       fps=args.fps, **_sampling_kwargs(args))
    print(f"{args.num} samples in {out} (grid.png, samples.json)")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from pvvae.gen.evaluate import motion_markdown, run_evaluation, table1_markdown

    metrics = run_evaluation(
        args.out, real=args.real, checkpoint=args.checkpoint, fake_dir=args.fake, num=args.num,
        num_frames=args.num_frames, size=args.size, synthetic_clips=args.synthetic_clips,
        c3d_weights=args.c3d_weights, method=args.name, dataset=args.dataset_name,
        noise_floor=args.noise_floor, domain=args.domain, domain_cache=args.domain_cache,
        **_sampling_kwargs(args),
    )
    print(table1_markdown([metrics]), end="")
    if metrics.fvd_floor is not None or metrics.domain_fvd is not None:
        print(motion_markdown([metrics]), end="")
    if metrics.notes:
        print(metrics.notes)
    print(f"wrote {args.out}/gen_metrics.json and gen_metrics.md")
    return 0
