"""Where does a VAE's motion jitter come from? The object acceleration of its reconstructions,
frame by frame, beside the real clips'.

The study's VAEs reconstruct proving-ground clips with object accelerations 5-6x the real
clips' (docs/replication.md). This bench tells three causes apart, on ``--clips`` held-out
clips (17x64x64, stream ``--seed``):

* colour drift that splits one shape into two colour objects: the acceleration with the
  reconstruction's own colours against the one tracked with the real clip's object colours
  (:func:`pvvae.eval.coherence.acceleration_profile` with ``reference``);
* jumps between latent groups (frame 0 alone, then 1-4, 5-8, ...: paper section 3.1), the
  "flashing at chunk boundaries" that video-VAE users report: the median at the frames that
  end a group (4, 8, 12) against the other frames (``boundary_ratio``);
* jitter within the groups: the median at the other frames against the real clips'.

    OMP_NUM_THREADS=1 python bench/vae_motion.py --vae demo=pvvae:runs/demo   # after make demo
    OMP_NUM_THREADS=1 python bench/vae_motion.py --vae a=pvvae:RUN_A b=pvvae:RUN_B --clips 128

Prints a Markdown table and writes ``bench/results/vae_motion.json`` (the profiles too).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from pvvae.eval.coherence import acceleration_profile, boundary_ratio, video_coherence
from pvvae.gen.evaluate import real_clip_batches


def _medians(profile: torch.Tensor) -> tuple[float, float]:
    """(median at the frames inside the latent groups, median at the frames that end one)."""
    t = torch.arange(len(profile))
    inner = (t > 0) & (t < len(profile) - 1)
    ends = inner & (t % 4 == 0)
    return profile[inner & ~ends].nanmedian().item(), profile[ends].nanmedian().item()


def row(name: str, videos: torch.Tensor, real: torch.Tensor) -> dict:
    """One set: the study's acceleration and object count, and the acceleration profile
    tracked with its own colours and with the real clips' (its medians inside the latent
    groups and at their ends, and their ratio)."""
    own = video_coherence(videos)
    mine, theirs = acceleration_profile(videos), acceleration_profile(videos, real)
    return {
        "set": name, "acceleration": own["acceleration"], "objects": own["objects"],
        "inner_own_colours": _medians(mine)[0],
        "inner_real_colours": _medians(theirs)[0], "group_end_real_colours": _medians(theirs)[1],
        "boundary_ratio": boundary_ratio(theirs),
        "profile_real_colours": [None if math.isnan(v) else v for v in theirs.tolist()],
    }


def table(rows: list[dict]) -> str:
    cols = ("acceleration", "objects", "inner_own_colours", "inner_real_colours",
            "group_end_real_colours", "boundary_ratio")
    lines = ["| set | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    lines += ["| " + r["set"] + " | " + " | ".join(f"{r[c]:.2f}" for c in cols) + " |"
              for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vae", nargs="+", required=True, metavar="SPEC",
                        help="VAE specs, LABEL=KIND:PATH (docs/inference.md)")
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--seed", type=int, default=30_000, help="proving-ground stream "
                        "(default: the study's gFVD real set)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/vae_motion.json"))
    args = parser.parse_args()
    from pvvae.eval.adapters import load_vae

    real = torch.cat(list(real_clip_batches("synthetic", args.clips, num_frames=17, size=64,
                                            seed=args.seed, batch_size=16)))
    rows = [row("real clips", real, real)]
    for spec in args.vae:
        vae = load_vae(spec, "cpu")
        with torch.no_grad():
            recon = torch.cat([vae.reconstruct(b).clamp(-1, 1) for b in real.split(16)])
        rows.append(row(spec.partition("=")[0] if "=" in spec else spec, recon, real))
    print(table(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"clips": args.clips, "seed": args.seed, "vaes": args.vae,
                                    "rows": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
