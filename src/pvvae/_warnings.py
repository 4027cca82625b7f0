"""The known third-party warnings that say nothing about a run, filtered where they are emitted.

``import pvvae`` (any ``pvvae.*`` import) calls :func:`quiet_third_party` once, so a Python
user's ``PVVAE.from_pretrained(folder)``, ``pvvae.load_model(folder)`` or ``vae.to(bf16)``
prints nothing on stderr; the CLI's ``-v`` / ``--verbose`` calls ``quiet_third_party(True)``,
which lets them through again (so can a Python user). Only the exact messages of
:data:`KNOWN_NOISE` are dropped, at the logger that emits them: every other warning of those
loggers, and every other logger, is untouched. The loggers are looked up by name, which does
not import diffusers.
"""

from __future__ import annotations

import logging
import re

# (logger, regular expression matched at the start of the message):
# - diffusers' from_pretrained without accelerate: a five-line notice that it falls back to the
#   ordinary loader, which is what these models need;
# - ModelMixin.to(dtype) naming the modules to keep in float32 when the list is empty (ours
#   have none; a non-empty list is real news and stays).
KNOWN_NOISE: tuple[tuple[str, str], ...] = (
    ("diffusers.models.modeling_utils", r"Cannot initialize model with low cpu memory usage"),
    ("diffusers.models.modeling_utils", r"There are modules in \w+ that should be kept in "
                                        r"float32: \[\]"),
)


class _DropMessages(logging.Filter):
    """Drops the records whose message matches one of ``patterns`` at its start."""

    def __init__(self, patterns: tuple[str, ...]) -> None:
        super().__init__()
        self.pattern = re.compile("|".join(f"(?:{p})" for p in patterns))

    def filter(self, record: logging.LogRecord) -> bool:
        return self.pattern.match(str(record.msg)) is None


def quiet_third_party(verbose: bool = False) -> None:
    """Filter the :data:`KNOWN_NOISE` warnings at their loggers (none with ``verbose``).

    Args:
        verbose: True removes the filters (the CLI's ``-v``), False installs them.

    Idempotent: a filter installed by an earlier call in the same process is replaced.
    """
    by_logger: dict[str, list[str]] = {}
    for name, pattern in KNOWN_NOISE:
        by_logger.setdefault(name, []).append(pattern)
    for name, patterns in by_logger.items():
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, _DropMessages)]:
            logger.removeFilter(old)
        if not verbose:
            logger.addFilter(_DropMessages(tuple(patterns)))
