"""``pvvae`` command line: one sub-command module per verb.

Each verb module exposes ``add_parser(subparsers)`` (registering its arguments and setting
``func``). ``pvvae train CONFIG [key=value ...]``, ``pvvae reconstruct``, ``pvvae predict``,
``pvvae demo``, ``pvvae eval ...``, ``pvvae gen ...``, ``pvvae probe ...``. Also runnable as
``python -m pvvae``.

Error boundary (issue 13): every known failure class (bad config, key or value; missing,
damaged or refused file; unreadable data; a run stopped by NaN/Inf; disk full; out of memory)
ends the command with exit code 2 and ONE line on stderr naming the problem, the file or key,
and the fix. ``--debug`` (anywhere on the line) shows the traceback instead.

Quiet by default: stderr holds our progress bars, our log lines and errors, nothing else.
The known third-party warnings that a normal run triggers are filtered where they are
emitted (:func:`quiet_third_party`); ``-v`` / ``--verbose`` (anywhere) lets them through.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import sys

# verb modules under pvvae.cli, in the order of ``pvvae --help``
VERBS = ("train", "export", "video", "eval", "gen", "probe", "study", "demo")
GLOBAL_FLAGS = {"--debug": "debug", "-v": "verbose", "--verbose": "verbose"}  # anywhere

# (logger, start of the message) of third-party warnings that say nothing about a run:
# diffusers' from_pretrained without accelerate (it falls back to the ordinary loader, which
# is what these models need), and ModelMixin.to(dtype) naming fp32 modules when it has none.
KNOWN_NOISE = (
    ("diffusers.models.modeling_utils", "Cannot initialize model with low cpu memory usage"),
    ("diffusers.models.modeling_utils", "There are modules in "),
)


class _DropMessages(logging.Filter):
    """Drops the records whose message starts with one of ``prefixes``."""

    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


def quiet_third_party(verbose: bool) -> None:
    """Filter the :data:`KNOWN_NOISE` warnings at their loggers (none with ``verbose``).

    Idempotent: a filter installed by an earlier call in the same process is replaced.
    """
    by_logger: dict[str, list[str]] = {}
    for name, prefix in KNOWN_NOISE:
        by_logger.setdefault(name, []).append(prefix)
    for name, prefixes in by_logger.items():
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, _DropMessages)]:
            logger.removeFilter(old)
        if not verbose:
            logger.addFilter(_DropMessages(tuple(prefixes)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    args = build_parser().parse_args(front + [a for a in argv if a not in GLOBAL_FLAGS])
    try:
        return int(args.func(args) or 0)
    except known_errors() as e:
        return _report(args.command, e, debug)
    except RuntimeError as e:  # the CPU allocator reports out-of-memory as a RuntimeError
        if "can't allocate memory" not in str(e):
            raise
        return _report(args.command, e, debug)


def _report(command: str, error: BaseException, debug: bool) -> int:
    if debug:
        raise error
    print(f"pvvae {command}: error: {one_line(error)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
