"""Calibration of the generation metrics against controlled corruptions of real clips
(issue 24, "metrics that see motion").

Two disjoint sets of N real proving-ground clips (17x64x64): the reference (stream
``--seed``) and the test set (stream ``--seed + 1``; neither stream is used by any training
or study step, which use 0, 10000, 20000 and 30000). Each row is the test set, as it is or
corrupted (:func:`pvvae.eval.corrupt.corruptions`), scored against the reference by

* FVD as the study and ``pvvae gen eval`` take it: Kinetics-400 I3D logits of the first 16
  frames (resized to 224x224), StyleGAN-V variant;
* the object-motion coherence of :mod:`pvvae.eval.coherence` (all 17 frames);
* PSNR against the uncorrupted test clips (how much the pixels changed).

The floor row is the FVD of real against real at N clips a side, over ``--resamples``
random splits of the 2N real clips (:func:`pvvae.eval.metrics.fvd.fvd_noise_floor`).
I3D costs about 1.3 s a clip on one CPU thread and the run embeds 9N clips.

    OMP_NUM_THREADS=1 python bench/metric_calibration.py            # N = 48, about 10 minutes
    OMP_NUM_THREADS=1 python bench/metric_calibration.py --clips 128 --out other.json
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from pvvae.eval.coherence import METRICS, video_coherence
from pvvae.eval.corrupt import corruptions
from pvvae.eval.metrics.fvd import fvd_from_features, fvd_noise_floor
from pvvae.eval.metrics.psnr_ssim import compute_psnr
from pvvae.gen.evaluate import NUM_FRAMES, real_clip_batches, video_features

FRAMES, SIZE = 17, 64


def real_clips(num: int, seed: int) -> torch.Tensor:
    """``num`` proving-ground clips of stream ``seed``: (num, 3, 17, 64, 64) in [-1, 1]."""
    return torch.cat(list(real_clip_batches("synthetic", num, num_frames=FRAMES, size=SIZE,
                                            seed=seed, batch_size=num)))


def i3d_features(videos: torch.Tensor, i3d, batch_size: int = 8) -> torch.Tensor:
    """I3D logits (N, 400) of the first 16 frames, in batches (the study's convention)."""
    return video_features(videos.split(batch_size), i3d, None, NUM_FRAMES)[0]


def score(name: str, videos: torch.Tensor, clean: torch.Tensor, ref_features, i3d) -> dict:
    """One row: FVD against the reference features, coherence, PSNR against ``clean``."""
    start = time.perf_counter()
    features = i3d_features(videos, i3d)
    row = {"set": name, "fvd": fvd_from_features(ref_features, features),
           "psnr": compute_psnr(videos, clean), **video_coherence(videos)}
    row["seconds"] = time.perf_counter() - start
    return row, features


def table(rows: list[dict], floor: dict) -> str:
    """Markdown table of the rows, the floor first."""
    cols = ["fvd", "psnr", *METRICS]
    lines = ["| set | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|",
             f"| real vs real floor ({floor['resamples']} splits) | "
             f"{floor['fvd']:.1f} +- {floor['std']:.1f} |" + " |" * (len(cols) - 1)]
    for r in rows:
        cells = [_cell(r[c], ".1f" if c in ("fvd", "psnr") else ".3g") for c in cols]
        lines.append(f"| {r['set']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value: float, fmt: str) -> str:
    return "inf" if math.isinf(value) else ("-" if math.isnan(value) else format(value, fmt))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", type=int, default=48, help="clips per set (N)")
    p.add_argument("--seed", type=int, default=50_000, help="reference stream (test: seed + 1)")
    p.add_argument("--resamples", type=int, default=20, help="splits for the real-real floor")
    p.add_argument("--out", default="bench/results/metric_calibration.json")
    args = p.parse_args()
    torch.set_num_threads(1)
    from pvvae.eval.metrics.i3d import load_i3d

    i3d = load_i3d("cpu")
    start = time.perf_counter()
    ref, test = real_clips(args.clips, args.seed), real_clips(args.clips, args.seed + 1)
    ref_features = i3d_features(ref, i3d)
    rows, pool = [], [ref_features]
    for name, videos in {"real": test, **corruptions(test, args.seed)}.items():
        row, features = score(name, videos, test, ref_features, i3d)
        rows.append(row)
        pool += [features] if name == "real" else []
        print(f"{name}: FVD {row['fvd']:.1f}, acceleration {row['acceleration']:.3g} "
              f"({row['seconds']:.0f} s)", flush=True)
    floor = fvd_noise_floor(torch.cat(pool), args.clips, args.resamples, seed=args.seed)
    result = {"clips": args.clips, "frames": FRAMES, "size": SIZE, "fvd_frames": NUM_FRAMES,
              "reference_seed": args.seed, "test_seed": args.seed + 1,
              "reference_coherence": video_coherence(ref), "floor": floor, "rows": rows,
              "seconds": time.perf_counter() - start}
    print(table(rows, floor))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out} ({result['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
