"""Write docs/config.md, the reference of every training config key, from the dataclasses.

    python docs/gen_config.py            # rewrite docs/config.md
    python docs/gen_config.py --check    # exit 1 when docs/config.md is out of date

Each section is one dataclass nested in :class:`pvvae.training.config.ExperimentConfig`; each
row a key as it is written in YAML or as a ``key=value`` override, its type, its default and
the comment beside the field in the source.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
import typing
from pathlib import Path

OUT = Path(__file__).resolve().parent / "config.md"


def _comments(cls: type) -> dict[str, str]:
    """The comment lines above each field and the ``# comment`` at the end of its line (a
    subclass's own comment wins over its base's)."""
    found, above = {}, []
    bases = [c for c in reversed(cls.__mro__) if dataclasses.is_dataclass(c)]
    for line in "\n".join(inspect.getsource(c) for c in bases).splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            above.append(stripped.lstrip("# "))
            continue
        match = re.match(r"\s+(\w+):[^#]*(?:#\s*(.*))?$", line)
        if match:
            found[match.group(1)] = " ".join([*above, match.group(2) or ""]).strip()
        above = []
    return found


def _default(field: dataclasses.Field) -> str:
    if field.default is not dataclasses.MISSING:
        return repr(field.default)
    if field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
        return "(section)" if dataclasses.is_dataclass(value) else repr(value)
    return "(required)"


def _type_name(tp) -> str:
    text = tp if isinstance(tp, str) else getattr(tp, "__name__", str(tp))
    return str(text).replace("typing.", "")


def _summary(cls: type) -> str:
    doc = inspect.getdoc(cls) or ""
    return " ".join(doc.split("\n\n")[0].split())


def render() -> str:
    from pvvae.training.config import ExperimentConfig

    lines = [
        "# Config reference",
        "",
        "Every key of a training config (`pvvae train CONFIG key=value ...`), generated from the",
        "dataclasses of `pvvae.training.config` by `python docs/gen_config.py`; do not edit by",
        "hand (`tests/test_config_docs.py` fails when this page is out of date). Unknown keys are",
        "errors that list the valid ones.",
        "",
    ]
    queue: list[tuple[str, type]] = [("", ExperimentConfig)]
    while queue:
        prefix, cls = queue.pop(0)
        hints = typing.get_type_hints(cls)
        written = {}  # the annotations as written (strings), bases first
        for base in reversed(cls.__mro__):
            written.update(getattr(base, "__annotations__", {}) if base is not object else {})
        comments = _comments(cls)
        anchor = prefix.rstrip(".") or "top-level"
        lines += [f'<a id="{anchor.replace(".", "-")}"></a>', "",
                  f"## `{anchor}` ({cls.__name__})", ""]
        if _summary(cls):
            lines += [_summary(cls), ""]
        lines += ["| key | type | default | notes |", "|---|---|---|---|"]
        for field in dataclasses.fields(cls):
            tp = hints[field.name]
            if dataclasses.is_dataclass(tp):
                queue.append((f"{prefix}{field.name}.", tp))
            note = comments.get(field.name, "").replace("|", "\\|")
            type_text = str(written.get(field.name, _type_name(tp))).replace("|", "\\|")
            default = _default(field).replace("|", "\\|")
            lines.append(f"| `{prefix}{field.name}` | `{type_text}` | `{default}` | {note} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not OUT.is_file() or OUT.read_text() != text:
            print(f"{OUT} is out of date: run python docs/gen_config.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
