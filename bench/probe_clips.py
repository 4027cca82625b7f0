"""Probing heads against their trivial baselines, on training and on held-out clips, for
several training-set sizes (issue 11: does a head on a trained Latte's features beat zero
flow, copy-last and static points?).

For each size N the heads train on N synthetic clips of seed 0 (the ``pvvae probe train``
functions and settings) and are scored on the first 64 of those clips and on held-out clips
of seed 1. A head that beats its baseline on training clips but not on held-out ones has
fitted its clips, not learned to read motion from the features.

    OMP_NUM_THREADS=1 python bench/probe_clips.py runs/studies/store/latte-6d5aa6e9c778 \
        --vae runs/studies/store/latents-9ea3729d3625/model --clips 256 1024 \
        --out bench/results/probe_clips.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from pvvae.probe.run import ProbeConfig, _stored, build_extractor
from pvvae.probe.tasks import FLOW_LOSSES, TASKS, build_task
from pvvae.probe.train import HeadTrainConfig, evaluate_head, train_head


def score_size(cfg: ProbeConfig, extractor, clips: int, eval_data, head_cfg) -> list[dict]:
    """Rows (task, clips, train/held-out probe and baseline) for one training-set size."""
    train, _ = _stored(cfg, extractor, cfg.train_data, clips, cfg.seed)
    seen = {k: v[: len(eval_data["features"])] for k, v in train.items()}
    rows = []
    for name in cfg.tasks:
        task = build_task(name, cfg.residual_next, cfg.flow_loss)
        torch.manual_seed(head_cfg.seed)
        head = task.build_head(extractor.channels, extractor.spatial_factor,
                               extractor.temporal_factor, head_cfg.width)
        start = time.perf_counter()
        train_head(task, head, train, head_cfg)
        fit, held = evaluate_head(task, head, seen), evaluate_head(task, head, eval_data)
        m = task.metric
        rows.append({
            "task": name, "metric": m, "clips": clips,
            "train_probe": fit["probe"][m], "train_baseline": fit["baseline"][m],
            "heldout_probe": held["probe"][m], "heldout_baseline": held["baseline"][m],
            "beats_baseline": (held["probe"][m] < held["baseline"][m]) == task.lower_is_better,
            "seconds": round(time.perf_counter() - start, 1),
        })
        print(_line(rows[-1]), flush=True)
    return rows


def _line(r: dict) -> str:
    return (f"| {r['task']} ({r['metric']}) | {r['clips']} | {r['train_probe']:.5g} | "
            f"{r['train_baseline']:.5g} | {r['heldout_probe']:.5g} | {r['heldout_baseline']:.5g}"
            f" | {'yes' if r['beats_baseline'] else 'no'} |")


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("latte", help="Latte run folder or checkpoint")
    parser.add_argument("--vae", default="", help="VAE override (default: the Latte's)")
    parser.add_argument("--clips", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--eval-clips", type=int, default=64)
    parser.add_argument("--data", default="synthetic",
                        help="synthetic (proving ground, default) or synthetic:textured")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--steps", type=int, default=HeadTrainConfig.steps)
    parser.add_argument("--lr", type=float, default=HeadTrainConfig.lr)
    parser.add_argument("--flow-loss", default="mse", choices=FLOW_LOSSES)
    parser.add_argument("--seed", type=int, default=0,
                        help="training clips' seed (held-out clips: seed + 1), as the study's")
    parser.add_argument("--layer", type=int, default=None,
                        help="Latte block read (default depth // 2; 0: the VAE latents)")
    parser.add_argument("--t", type=float, default=0.05, help="flow time of the noised input")
    parser.add_argument("--draws", type=int, default=1, help="noise draws averaged")
    parser.add_argument("--out", type=Path, default=None, help="write the rows (JSON)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = ProbeConfig(latte=args.latte, vae=args.vae, tasks=tuple(args.tasks),
                      train_data=args.data,
                      features={"layer": args.layer, "t": args.t, "num_draws": args.draws},
                      eval_clips=args.eval_clips, residual_next=True, seed=args.seed,
                      flow_loss=args.flow_loss)
    head_cfg = HeadTrainConfig(steps=args.steps, lr=args.lr, seed=args.seed)
    extractor = build_extractor(cfg)
    eval_data, _ = _stored(cfg, extractor, cfg.train_data, cfg.eval_clips, cfg.seed + 1)
    print("| task | train clips | probe (train) | baseline (train) | probe (held-out) | "
          "baseline (held-out) | beats baseline |\n|---|---|---|---|---|---|---|", flush=True)
    rows = [r for n in args.clips for r in score_size(cfg, extractor, n, eval_data, head_cfg)]
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
