"""``pvvae train CONFIG [key=value ...] [--resume]``: train a VAE, alone or under torchrun.

    pvvae train configs/smoke/video.yaml train.steps=20
    torchrun --nproc_per_node=8 -m pvvae train configs/paper/video.yaml --resume

The resolved config is saved as ``runs/NAME/config.yaml``; ``--resume`` continues from the
run's latest checkpoint (or starts fresh when it has none, so a preempted job can always be
relaunched with the same command).
"""

from __future__ import annotations

import argparse

from pvvae.config import load_config
from pvvae.training.config import ExperimentConfig


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a PV-VAE from a YAML config (also under torchrun)",
        description=(
            "Train a PV-VAE. Overrides use dotted keys: train.steps=100 data.size=128. "
            "Stages: configs/{paper,smoke}/{image,video,decoder}.yaml. Scale out with "
            "torchrun --nproc_per_node=N -m pvvae train CONFIG."
        ),
    )
    p.add_argument("config", nargs="?", help="YAML config (defaults when omitted)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.steps=100")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from the run's latest checkpoint (same as train.resume=true)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pvvae.training.trainer import train

    config = args.config
    overrides = list(args.overrides)
    if config is not None and "=" in config:  # only overrides were given
        overrides.insert(0, config)
        config = None
    if args.resume:
        overrides.append("train.resume=true")
    cfg = load_config(ExperimentConfig, config, overrides)
    run_dir = train(cfg)
    print(f"run folder: {run_dir}")
    return 0
