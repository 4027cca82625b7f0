"""``pvvae export CHECKPOINT OUT``: a fine-tuned diffusers VAE as a plain diffusers folder.

    pvvae export runs/wan22-pr OUT          # the run's latest checkpoint, EMA weights preferred
    pvvae export runs/wan22-pr/checkpoints/step-0010000 OUT --no-ema

OUT holds ``config.json`` and ``diffusion_pytorch_model.safetensors``, which
``AutoencoderKLWan.from_pretrained(OUT)`` and the Wan pipelines load unchanged, and
``pad_token.safetensors``, the padding token of predictive reconstruction that
``pvvae eval latents wan:OUT`` and ``DiffusersPVVAE.from_diffusers(OUT)`` use to predict.
``pvvae train`` writes the same for the final checkpoint as ``runs/NAME/diffusers``.
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write a fine-tuned diffusers VAE checkpoint as a diffusers folder",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("checkpoint", help="run folder (latest checkpoint) or checkpoint folder")
    p.add_argument("out", help="folder to write (diffusers layout + pad_token.safetensors)")
    p.add_argument(
        "--no-ema", dest="use_ema", action="store_false", help="export the raw, not EMA, weights"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pvvae.training.checkpoint import export_diffusers

    print(f"wrote {export_diffusers(args.checkpoint, args.out, args.use_ema)}")
    return 0
