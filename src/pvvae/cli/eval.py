"""``pvvae eval recon`` and ``pvvae eval latents``: the evaluation suite on the command line.

VAE specs (see :mod:`pvvae.inference.spec`): ``pvvae:runs/NAME`` (model, checkpoint or run
folder), ``preset:tiny`` (random weights), ``wan:DIR``, ``cogvideox:DIR``, ``hunyuan:DIR``,
``ltx:DIR`` (diffusers model or pipeline folder), or a bare folder; ``LABEL=SPEC`` names the row.
DATA: a video folder (UCF101 / Kinetics layout), a CSV manifest, or ``synthetic``.

Examples::

    pvvae eval recon pvvae:runs/pv wan:/models/Wan2.2-TI2V-5B-Diffusers /data/k400/val \\
        --resolution 256 --frames 17 --num-clips 2048
    pvvae eval recon hunyuan:/models/HunyuanVideo /data/k400/val --out runs/eval/recon-k400
    pvvae eval latents base=pvvae:runs/baseline pvvae:runs/pv /data/k400/val --num-clips 1000
    pvvae eval latents pvvae:runs/pv /data/k400/val --write-config

Both evaluate several VAEs side by side in one call, or one at a time: every VAE evaluated into
the same folder (``--out``, default one folder per data set and clip size under runs/eval/) is a
row of its table / comparison. ``recon`` caches per-clip results, so re-running an interrupted
command resumes where it stopped.
"""

from __future__ import annotations

import argparse

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``eval`` with the sub-verbs ``recon`` and ``latents``."""
    parser = sub.add_parser("eval", help="evaluate VAEs: reconstruction table, latent diagnostics")
    verbs = parser.add_subparsers(dest="eval_command", required=True, metavar="EVAL_COMMAND")
    common = _common_options()

    p = verbs.add_parser(
        "recon",
        parents=[common],
        help="rFVD / PSNR / SSIM / LPIPS / ISpeed / IMem (paper Table 2)",
        description="Reconstruction metrics of one or more VAEs, table in the layout of seed "
        "Table 2. Resumable: per-clip results are cached in the output folder.",
    )
    p.add_argument("vaes", nargs="+", metavar="VAE", help="VAE spec(s), e.g. pvvae:runs/x")
    p.add_argument("data", metavar="DATA", help="video folder, CSV manifest or 'synthetic'")
    p.add_argument("--num-clips", type=int, default=2048, help="clips to evaluate (2048)")
    p.add_argument("--no-fvd", action="store_true", help="skip rFVD (no I3D pass)")
    p.add_argument("--lpips-net", choices=("alex", "vgg"), default="alex",
                   help="LPIPS backbone (alex, as the video-VAE tables)")
    p.add_argument("--lpips-backbone", metavar="FILE",
                   help="torchvision AlexNet/VGG16 checkpoint (default: torch hub cache)")
    p.add_argument("--require-lpips", action="store_true",
                   help="fail when the LPIPS weights are missing (default: report n/a)")
    p.add_argument("--no-speed", action="store_true", help="skip ISpeed / IMem")
    p.add_argument("--speed-batch", type=int, default=4, help="clips per timed iteration (4)")
    p.add_argument("--speed-warmup", type=int,
                   help="warm-up iterations (default 50 on CUDA, 1 on the CPU)")
    p.add_argument("--speed-steps", type=int,
                   help="timed iterations (default 100 on CUDA, 3 on the CPU)")
    p.add_argument("--fresh", action="store_true", help="discard cached results of these VAEs")
    p.set_defaults(func=run_recon_command)

    p = verbs.add_parser(
        "latents",
        parents=[common],
        help="latent stats, LTD, PCA, prediction (paper section 4.3)",
        description="Latent diagnostics of one or more VAEs: per-channel statistics, Latent "
        "Temporal Distance (Fig. 5c/d), PCA (Fig. 4) and prediction (Fig. 6, PV-VAE only), "
        "with a comparison of all VAEs analysed into the output folder.",
    )
    p.add_argument("vaes", nargs="+", metavar="VAE", help="VAE spec(s), e.g. pvvae:runs/x")
    p.add_argument("data", metavar="DATA", help="video folder, CSV manifest or 'synthetic'")
    p.add_argument("--num-clips", type=int, default=1000, help="clips for stats and LTD (1000)")
    p.add_argument("--pca-clips", type=int, default=4, help="clips in the PCA figure (4)")
    p.add_argument("--pred-clips", type=int, default=64, help="clips of the prediction test (64)")
    p.add_argument("--grid-clips", type=int, default=2, help="clips in the prediction grid (2)")
    p.add_argument("--normalized", action="store_true",
                   help="LTD and PCA on latents scaled as the model's pipeline does")
    p.add_argument("--write-config", nargs="?", const=True, default=False, metavar="DIR",
                   help="store latents_mean/std in each PV-VAE's config (in place), or save "
                   "a copy of a single VAE with them to DIR; put it after DATA")
    p.set_defaults(func=run_latents_command)


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", help="output folder (default: under runs/eval/)")
    common.add_argument("--resolution", type=int, default=256, help="clip side in pixels (256)")
    common.add_argument("--frames", type=int, default=17, help="frames per clip (17)")
    common.add_argument("--batch-size", type=int, default=4, help="clips per batch (4)")
    common.add_argument("--seed", type=int, default=0, help="seed of the random video subset")
    common.add_argument("--workers", type=int, default=2, help="video-decoding workers (2)")
    common.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    common.add_argument("--dtype", choices=tuple(DTYPES), default="float32",
                        help="VAE dtype (metrics always in float32/64)")
    common.add_argument("--no-progress", action="store_true", help="no progress bar")
    return common


def _device(name: str) -> torch.device:
    from pvvae.training.trainer import resolve_device

    return resolve_device(name)


def run_recon_command(args: argparse.Namespace) -> int:
    from pvvae.eval.recon import ReconConfig, run_recon

    config = ReconConfig(
        resolution=args.resolution,
        num_frames=args.frames,
        num_clips=args.num_clips,
        batch_size=args.batch_size,
        seed=args.seed,
        fvd=not args.no_fvd,
        lpips_net=args.lpips_net,
        require_lpips=args.require_lpips,
        speed=not args.no_speed,
        speed_batch=args.speed_batch,
        speed_warmup=args.speed_warmup,
        speed_steps=args.speed_steps,
        workers=args.workers,
    )
    out = run_recon(
        args.vaes,
        args.data,
        args.out,
        config,
        _device(args.device),
        DTYPES[args.dtype],
        fresh=args.fresh,
        lpips_backbone=args.lpips_backbone,
        progress=not args.no_progress,
    )
    print((out / "table.md").read_text(), end="")
    print(f"report: {out / 'report.md'}")
    return 0


def run_latents_command(args: argparse.Namespace) -> int:
    from pvvae.eval.latents import LatentsConfig, run_latents

    config = LatentsConfig(
        resolution=args.resolution,
        num_frames=args.frames,
        num_clips=args.num_clips,
        batch_size=args.batch_size,
        seed=args.seed,
        pca_clips=args.pca_clips,
        pred_clips=args.pred_clips,
        grid_clips=args.grid_clips,
        normalized=args.normalized,
        workers=args.workers,
    )
    target = args.write_config if isinstance(args.write_config, str) else None
    out = run_latents(
        args.vaes,
        args.data,
        args.out,
        config,
        _device(args.device),
        DTYPES[args.dtype],
        write_config=bool(args.write_config),
        config_target=target,
        progress=not args.no_progress,
    )
    print(f"report: {out / 'report.md'}")
    return 0
