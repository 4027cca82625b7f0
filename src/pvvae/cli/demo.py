"""``pvvae demo``: the main job of ``make demo`` (train tiny, evaluate, write a report)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pvvae.config import load_config
from pvvae.training.config import ExperimentConfig

# Measured with bench/learning.py (docs/demo.md): single frames train stably at a higher lr
# than clips, and the video stage starts better from them.
IMAGE_LR = 8e-4
IMAGE_WARMUP = 30


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="train the tiny preset on proving-ground clips (r = 1 and r = 0), write report.md",
        description="Image pretraining, then video training with and without predictive "
        "reconstruction side by side; evaluate and report (see src/pvvae/demo.py). About "
        "10 minutes on 2 CPU cores.",
    )
    p.add_argument("--config", default="configs/demo.yaml", help="YAML config of the run")
    p.add_argument("--out", default="runs/demo", help="run and report folder")
    p.add_argument("--image-steps", type=int, default=1000,
                   help="image pretraining steps before the video runs (0: none)")
    p.add_argument("--image-batch", type=int, default=8, help="frames per image step")
    p.add_argument("--image-lr", type=float, default=IMAGE_LR,
                   help="peak lr of the image stage (the video stage uses the config's)")
    p.add_argument("--image-warmup", type=int, default=IMAGE_WARMUP,
                   help="linear warm-up steps of the image stage")
    p.add_argument("--image-preset", default=None,
                   help="synthetic preset of the image stage (default: the config's)")
    p.add_argument("overrides", nargs="*", help="key=value config overrides")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pvvae.demo import ImageStage, run_demo

    out = Path(args.out)
    overrides = [f"name={out.name}", f"train.out_dir={out.parent}", *args.overrides]
    cfg = load_config(ExperimentConfig, args.config, overrides)
    image = ImageStage(args.image_steps, args.image_batch, args.image_lr, args.image_warmup,
                       args.image_preset)
    metrics = run_demo(cfg, out, image)
    print(json.dumps(metrics, indent=2))
    print(f"report: {out / 'report.md'}")
    return 0
