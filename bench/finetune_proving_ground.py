"""Proving-ground comparison of predictive fine-tuning: a Wan-layout VAE trained
with r = 1 against the same trained with r = 0, both exported diffusers folders.

Measured with the demo's functions (:func:`pvvae.demo.evaluate`: 16 held-out proving-ground
clips of seed 10,000, 17x64x64, posterior mean; prediction of frames 9..16 from 0..8, seed
Figure 6, against copying the last observed frame), on the folders as a diffusers user gets
them: ``DiffusersPVVAE.from_diffusers`` reads the diffusers files and ``pad_token.safetensors``.

    python bench/finetune_proving_ground.py runs/finetune-pg-r1 runs/finetune-pg-r0 \
        --strip docs/finetune_strip.png --out bench/results/finetune_pg.json

The strip's rows: ground truth, r = 1 reconstruction, r = 1 prediction, r = 0 prediction
(the first 9 frames of the prediction rows are reconstructions of the observed frames).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from PIL import Image

from pvvae.demo import evaluate, figure_rows, strip_image
from pvvae.model.diffusers_vae import DiffusersPVVAE

HELDOUT_SEED = 10_000  # the demo's and bench/learning.py's held-out stream


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("r1", type=Path, help="diffusers folder of the r = 1 model")
    parser.add_argument("r0", type=Path, help="diffusers folder of the r = 0 model")
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--strip", type=Path, default=None, help="write the strip (PNG)")
    parser.add_argument("--out", type=Path, default=None, help="write the metrics (JSON)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    vae = DiffusersPVVAE.from_diffusers(args.r1).eval()
    baseline = DiffusersPVVAE.from_diffusers(args.r0).eval()
    result = evaluate(vae, baseline, args.frames, args.size, seed=HELDOUT_SEED)
    metrics = {"r1": str(args.r1), "r0": str(args.r0), **result["metrics"]}
    print(json.dumps(metrics, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(metrics, indent=2))
    if args.strip:
        args.strip.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(strip_image(figure_rows(result["figures"]))).save(args.strip)
        print(f"wrote {args.strip}")
    return metrics


if __name__ == "__main__":
    main()
