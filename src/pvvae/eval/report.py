"""Report helpers of ``pvvae eval``: JSON files, Markdown tables and value formatting.

Every ``pvvae eval`` command writes a folder with machine-readable JSON and a ``report.md``
that embeds the PNG plots of :mod:`pvvae.eval.plots`. JSON is written
atomically (temporary file + rename), so an interrupted run never leaves a torn file.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

NOT_AVAILABLE = "n/a"


def write_json(path: str | Path, data: Any, allow_nan: bool = False) -> Path:
    """Write ``data`` as indented JSON through a temporary file and ``os.replace``: never half
    written. NaN is refused unless ``allow_nan`` (a study record keeps a NaN metric as NaN).
    Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    text = json.dumps(data, indent=2, allow_nan=allow_nan, default=_json_default)
    tmp.write_text(text + "\n")
    os.replace(tmp, path)
    return path


def _json_default(value: Any) -> Any:
    """Numpy / torch scalars and arrays, paths: to plain Python values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def read_json(path: str | Path) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text())


def fmt(value: float | int | None, spec: str = ".2f") -> str:
    """Format a number for a table; None or NaN become "n/a"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NOT_AVAILABLE
    return format(value, spec)


def mean_std(values: list[float | None]) -> tuple[float | None, float | None, int]:
    """Mean, sample std (None for one value) and count of the non-missing values."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not xs:
        return None, None, 0
    return float(np.mean(xs)), (float(np.std(xs, ddof=1)) if len(xs) > 1 else None), len(xs)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table (cells converted with ``str``)."""
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def slugify(text: str) -> str:
    """A file-name-safe version of ``text``: ``wan:/m/Wan2.1`` -> ``wan-m-Wan2.1``."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return slug or "vae"


def image_link(path: str | Path, root: str | Path, alt: str) -> str:
    """Markdown image with a path relative to the report folder ``root``."""
    return f"![{alt}]({Path(path).relative_to(root).as_posix()})"
