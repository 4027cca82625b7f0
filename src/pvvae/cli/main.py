"""``pvvae`` command line: one sub-command module per verb.

Each verb module exposes ``add_parser(subparsers)`` (registering its arguments and setting
``func``). ``pvvae train CONFIG [key=value ...]``, ``pvvae reconstruct``, ``pvvae predict``,
``pvvae demo``, ``pvvae eval ...``, ``pvvae gen ...``, ``pvvae probe ...``. Also runnable as
``python -m pvvae``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# verb modules under pvvae.cli, in the order of ``pvvae --help``
VERBS = ("train", "video", "eval", "gen", "probe", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pvvae", description="Predictive Video VAE: train, evaluate, generate."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for verb in VERBS:
        importlib.import_module(f"pvvae.cli.{verb}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    from pvvae.data.video_io import VideoReadError

    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, KeyError, VideoReadError) as e:
        # Expected user errors (bad config key, missing file, wrong input): one clear line.
        print(f"pvvae {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
