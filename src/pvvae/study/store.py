"""Content-addressed, resumable steps of a study.

Every step of a study (a training stage, a measurement, a cache, a Latte run) is a folder
``ROOT/store/<kind>-<key>``, where ``key`` hashes everything the step depends on: its
resolved config and the keys of the steps it reads. So

* a step whose folder holds ``done.json`` is complete and is never run again: an interrupted
  study resumes where it stopped (training steps also resume inside, from their last
  checkpoint);
* two variants that share a step (the image stage of one seed, the video stage under a
  decoder fine-tuning row) share its folder, even across study files with the same root;
* changing anything a step depends on gives it (and everything downstream) a new folder
  instead of silently reusing stale results.

Processes running disjoint (variant, seed) selections can share a root: a step is built
under an exclusive file lock (``<folder>.lock``), so a second process waits for the first and
then finds the step complete.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pvvae.eval.report import write_json

logger = logging.getLogger(__name__)

DONE = "done.json"


def step_key(payload: Any) -> str:
    """12 hex digits of the SHA-1 of ``payload`` as canonical JSON (sorted keys)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Step:
    """A unit of study work: its folder is ``root/store/<kind>-<key>``."""

    kind: str
    key: str
    root: Path

    @property
    def id(self) -> str:
        return f"{self.kind}-{self.key}"

    @property
    def folder(self) -> Path:
        return self.root / "store" / self.id

    @property
    def done(self) -> bool:
        return (self.folder / DONE).is_file()

    def result(self) -> dict:
        """The dict the step's function returned (its ``done.json``)."""
        return json.loads((self.folder / DONE).read_text())["result"]


def make_step(root: str | Path, kind: str, payload: Any) -> Step:
    """The step of ``kind`` whose inputs are ``payload`` (configs, upstream step ids)."""
    return Step(kind, step_key({"kind": kind, "payload": payload}), Path(root))


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_step(step: Step, fn: Callable[[Path], dict], inputs: Any = None) -> dict:
    """Run ``fn(folder)`` unless the step is complete; returns its result dict.

    ``fn`` writes what it likes into ``folder`` (created) and returns a JSON-able dict; the
    step is complete once ``done.json`` (result, inputs, seconds) is written after it. A
    failure leaves no ``done.json``: the next run retries the step (training steps resume
    from their last checkpoint).
    """
    if step.done:
        return step.result()
    lock = step.folder.with_name(step.id + ".lock")
    with _locked(lock):
        if step.done:  # another process finished it while we waited
            return step.result()
        step.folder.mkdir(parents=True, exist_ok=True)
        logger.info("step %s: running", step.id)
        start = time.perf_counter()
        result = fn(step.folder)
        seconds = time.perf_counter() - start
        record = {"kind": step.kind, "inputs": inputs, "seconds": seconds, "result": result}
        write_json(step.folder / DONE, record, allow_nan=True)
        lock.unlink(missing_ok=True)  # waiters hold it open; they find the step complete
        logger.info("step %s: done in %.0f s", step.id, seconds)
    return result


def step_seconds(step: Step) -> float:
    """Wall time the step took when it ran (0 when not complete)."""
    if not step.done:
        return 0.0
    return float(json.loads((step.folder / DONE).read_text())["seconds"])
