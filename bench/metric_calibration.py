"""Calibration of the generation metrics against controlled corruptions of real clips
("metrics that see motion").

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

``--domain`` adds the column ``domain_fvd``: the same Frechet distance on the features of
the proving-ground domain network (:mod:`pvvae.eval.domain`, built into ``--domain-cache``
once, then reused), with its own real-real floor; ``--no-i3d`` leaves the I3D out (its
column then shows ``-``), for a quick look at the domain FVD alone.

    OMP_NUM_THREADS=1 python bench/metric_calibration.py            # N = 48, about 10 minutes
    OMP_NUM_THREADS=1 python bench/metric_calibration.py --clips 128 --out other.json
    OMP_NUM_THREADS=1 python bench/metric_calibration.py --domain --clips 48 --out d.json
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


def score(name: str, videos: torch.Tensor, clean: torch.Tensor, refs: dict, nets: dict) -> dict:
    """One row: FVD against the reference features of each feature net in ``nets`` (``fvd``:
    the I3D, ``domain_fvd``: the domain network), coherence, PSNR against ``clean``; and the
    row's features by column."""
    start = time.perf_counter()
    features = {col: embed(videos) for col, embed in nets.items()}
    row = {"set": name, "fvd": math.nan, **{c: fvd_from_features(refs[c], f)
                                            for c, f in features.items()},
           "psnr": compute_psnr(videos, clean), **video_coherence(videos)}
    row["seconds"] = time.perf_counter() - start
    return row, features


def table(rows: list[dict], floors: dict[str, dict]) -> str:
    """Markdown table of the rows, the floors first (one cell per FVD column)."""
    fvds = ["fvd", *[c for c in ("domain_fvd",) if c in rows[0]]]
    cols = [*fvds, "psnr", *METRICS]
    resamples = next(iter(floors.values()))["resamples"] if floors else 0
    floor_cells = [f"{floors[c]['fvd']:.1f} +- {floors[c]['std']:.1f}" if c in floors else "-"
                   for c in fvds]
    lines = ["| set | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|",
             f"| real vs real floor ({resamples} splits) | " + " | ".join(floor_cells) + " |"
             + " |" * (len(cols) - len(fvds))]
    for r in rows:
        cells = [_cell(r[c], ".1f" if c in (*fvds, "psnr") else ".3g") for c in cols]
        lines.append(f"| {r['set']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value: float, fmt: str) -> str:
    return "inf" if math.isinf(value) else ("-" if math.isnan(value) else format(value, fmt))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", type=int, default=48, help="clips per set (N)")
    p.add_argument("--seed", type=int, default=50_000, help="reference stream (test: seed + 1)")
    p.add_argument("--resamples", type=int, default=20, help="splits for the real-real floor")
    p.add_argument("--domain", action="store_true",
                   help="add the domain FVD column (pvvae.eval.domain)")
    p.add_argument("--domain-cache", default=None, help="domain network folder "
                   "(default: pvvae.eval.domain.DEFAULT_CACHE)")
    p.add_argument("--no-i3d", action="store_true", help="leave the I3D FVD out")
    p.add_argument("--out", default="bench/results/metric_calibration.json")
    args = p.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    nets = {}
    if not args.no_i3d:
        from pvvae.eval.metrics.i3d import load_i3d

        i3d = load_i3d("cpu")
        nets["fvd"] = lambda v: i3d_features(v, i3d)
    domain_info = None
    if args.domain:
        from pvvae.eval.domain import DEFAULT_CACHE, build_domain_network, domain_features

        net = build_domain_network(args.domain_cache or DEFAULT_CACHE, log_every=100)
        domain_info = net.info
        # the FVD protocol's first 16 frames, as for the I3D
        nets["domain_fvd"] = lambda v: domain_features(v[:, :, :NUM_FRAMES], net)
    ref, test = real_clips(args.clips, args.seed), real_clips(args.clips, args.seed + 1)
    refs = {col: embed(ref) for col, embed in nets.items()}
    rows, pools = [], {col: [f] for col, f in refs.items()}
    for name, videos in {"real": test, **corruptions(test, args.seed)}.items():
        row, features = score(name, videos, test, refs, nets)
        rows.append(row)
        for col, f in features.items():
            pools[col] += [f] if name == "real" else []
        print(f"{name}: " + ", ".join(f"{c} {row[c]:.1f}" for c in nets)
              + f", acceleration {row['acceleration']:.3g} ({row['seconds']:.0f} s)", flush=True)
    floors = {col: fvd_noise_floor(torch.cat(pool), args.clips, args.resamples, seed=args.seed)
              for col, pool in pools.items()}
    result = {"clips": args.clips, "frames": FRAMES, "size": SIZE, "fvd_frames": NUM_FRAMES,
              "reference_seed": args.seed, "test_seed": args.seed + 1,
              "reference_coherence": video_coherence(ref), "floor": floors.get("fvd"),
              "floors": floors, "domain_network": domain_info, "rows": rows,
              "seconds": time.perf_counter() - start}
    print(table(rows, floors))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out} ({result['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
