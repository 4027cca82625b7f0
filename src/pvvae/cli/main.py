"""``pvvae`` command line: one sub-command module per verb.

Each verb module exposes ``add_parser(subparsers)`` (registering its arguments and setting
``func``). ``pvvae train CONFIG [key=value ...]``, ``pvvae reconstruct``, ``pvvae predict``,
``pvvae demo``, ``pvvae eval ...``, ``pvvae gen ...``, ``pvvae probe ...``. Also runnable as
``python -m pvvae``.

Error boundary: every known failure class (bad config, key or value; missing,
damaged or refused file; unreadable data; a run stopped by NaN/Inf; disk full; out of memory)
ends the command with exit code 2 and ONE line on stderr naming the problem, the file or key,
and the fix. ``--debug`` (anywhere on the line) shows the traceback instead. A command line
that argparse refuses is one line too (:class:`OneLineParser`: no usage block above it).

Quiet by default: stderr holds our progress bars, our log lines and errors, nothing else.
The known third-party warnings that a normal run triggers are filtered where they are
emitted (:func:`pvvae._warnings.quiet_third_party`, installed by ``import pvvae``); ``-v`` /
``--verbose`` (anywhere) lets them through.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import sys
from typing import NoReturn

from pvvae._warnings import quiet_third_party

# verb modules under pvvae.cli, in the order of ``pvvae --help``
VERBS = ("train", "export", "video", "eval", "gen", "probe", "study", "demo")
GLOBAL_FLAGS = {"--debug": "debug", "-v": "verbose", "--verbose": "verbose"}  # anywhere


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose refusals are one line and exit code 2.

    argparse prints the usage block above ``prog: error: message``; here the line names the
    problem and points at the help instead: ``pvvae encode: error: the following arguments are
    required: OUT (see pvvae encode -h)``. Sub-parsers inherit the class (``add_subparsers``
    defaults ``parser_class`` to the parent's type), so every verb and sub-verb refuses alike.
    """

    def error(self, message: str) -> NoReturn:
        text = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {text} (see {self.prog} -h)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="pvvae", description="Predictive Video VAE: train, evaluate, generate."
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an error (anywhere)"
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true",
        help="show third-party warnings, hidden by default (anywhere)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for verb in VERBS:
        importlib.import_module(f"pvvae.cli.{verb}").add_parser(sub)
    return parser


def known_errors() -> tuple[type[BaseException], ...]:
    """The exception classes the boundary reports in one line (the rest keep a traceback:
    they are bugs)."""
    import pickle

    import torch
    import yaml

    from pvvae.data.folders import NoReadableFileError
    from pvvae.data.video_io import VideoReadError
    from pvvae.training.guards import NonFiniteLossError

    return (
        ValueError,  # includes ConfigError
        OSError,  # includes FileNotFoundError, disk full, permissions
        KeyError,
        yaml.YAMLError,
        pickle.UnpicklingError,
        VideoReadError,
        NoReadableFileError,
        NonFiniteLossError,
        torch.OutOfMemoryError,
        MemoryError,
    )


def one_line(error: BaseException) -> str:
    """The message of ``error`` on one line, with the fix for the classes that lack one."""
    text = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return (
            f"no space left on device ({text}); free disk space, then rerun with --resume "
            "(checkpoints are written atomically: the last one is intact)"
        )
    if isinstance(error, MemoryError) or "OutOfMemory" in type(error).__name__ or (
        "can't allocate memory" in text
    ):
        return f"out of memory ({text[:200]}); lower the batch size or the clip size"
    if isinstance(error, KeyError):
        return f"missing key {text}"
    return text


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    flags = {GLOBAL_FLAGS[a] for a in argv if a in GLOBAL_FLAGS}
    debug = "debug" in flags
    quiet_third_party(verbose="verbose" in flags)
    front = ["--debug"] * debug + ["--verbose"] * ("verbose" in flags)
    parser = build_parser()
    args, unknown = parser.parse_known_args(front + [a for a in argv if a not in GLOBAL_FLAGS])
    if unknown:  # refused by the (sub-)verb that was given them, which names its own help
        _verb_parser(parser, args).error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return int(args.func(args) or 0)
    except known_errors() as e:
        return _report(args.command, e, debug)
    except RuntimeError as e:  # the CPU allocator reports out-of-memory as a RuntimeError
        if "can't allocate memory" not in str(e):
            raise
        return _report(args.command, e, debug)


def _verb_parser(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """The innermost sub-parser that ``args`` went through (``pvvae eval recon`` for
    ``pvvae eval recon ...``)."""
    while True:
        actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        chosen = getattr(args, actions[0].dest, None) if actions else None
        if chosen is None:
            return parser
        parser = actions[0].choices[chosen]


def _report(command: str, error: BaseException, debug: bool) -> int:
    if debug:
        raise error
    print(f"pvvae {command}: error: {one_line(error)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
