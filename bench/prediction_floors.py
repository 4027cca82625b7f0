"""Prediction floors of the proving ground: what a predictor earns without knowing motion.

On held-out proving-ground clips (the study's prediction protocol: 64 clips of stream
10,000, 17x64x64, observe frames 0-8, predict 9-16), the PSNR of copying the last observed
frame forward, and of the same copy blurred by a Gaussian of each sigma in
:data:`pvvae.eval.motion.BLUR_SIGMAS` (a blurry predictor scores about the best of these).
A claim that latents carry motion needs a prediction above the best blurred copy.

    python bench/prediction_floors.py                 # the study's protocol
    python bench/prediction_floors.py --clips 16      # the demo's held-out set

Prints a table and writes ``bench/results/prediction_floors.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from pvvae.data.synthetic import SyntheticVideoDataset
from pvvae.eval.metrics.psnr_ssim import video_psnr
from pvvae.eval.motion import blurred_copy_last_psnr, copy_last


def floors(clips: int, frames: int, size: int, observed: int, seed: int) -> dict:
    """Copy-last and blurred copy-last PSNR (dB) on ``clips`` clips of stream ``seed``."""
    data = SyntheticVideoDataset(clips, frames, size, size, seed=seed, annotations=False)
    x = torch.stack([data[i]["video"] for i in range(clips)])  # (N, 3, T, H, W)
    blurred = blurred_copy_last_psnr(x, observed)
    return {"clips": clips, "seed": seed, "observed": observed,
            "copy_last_psnr": video_psnr(copy_last(x, observed), x[:, :, observed:]).mean().item(),
            "copy_last_blur_psnr": blurred["psnr"], "copy_last_blur_sigma": blurred["sigma"],
            "copy_last_blur_psnr_by_sigma": blurred["psnr_by_sigma"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--seed", type=int, default=10_000)
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--observed", type=int, default=9)
    parser.add_argument("--out", type=Path, default=Path("bench/results/prediction_floors.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    result = floors(args.clips, args.frames, args.size, args.observed, args.seed)
    print(f"{args.clips} clips of stream {args.seed}, frames {args.observed}..{args.frames - 1}"
          f" from 0..{args.observed - 1}")
    print("| predictor | PSNR (dB) |\n|---|---|")
    print(f"| copy-last | {result['copy_last_psnr']:.2f} |")
    for sigma, psnr in result["copy_last_blur_psnr_by_sigma"].items():
        print(f"| copy-last, blur sigma {sigma} px | {psnr:.2f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
