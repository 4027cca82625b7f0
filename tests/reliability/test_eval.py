"""Hostile data in ``pvvae eval recon`` (issue 13): every readable file is evaluated once,
unreadable ones are skipped and reported by name and count, never replaced by a neighbour."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pvvae.cli import main as cli_main
from tests.conftest import make_micro_vae
from tests.hostile_files import hostile_video_tree

RECON = ["--resolution", "32", "--frames", "9", "--no-fvd", "--no-speed", "--no-progress"]


@pytest.fixture
def main(monkeypatch):
    """``pvvae.cli.main.main`` with the ``eval`` verb registered."""
    if "eval" not in cli_main.VERBS:
        monkeypatch.setattr(cli_main, "VERBS", (*cli_main.VERBS, "eval"))
    return cli_main.main


def test_recon_counts_each_readable_clip_once_and_names_the_skipped(main, tmp_path):
    files = hostile_video_tree(tmp_path / "data")
    make_micro_vae().save_pretrained(tmp_path / "model")
    out = tmp_path / "recon"
    args = ["eval", "recon", f"pv=pvvae:{tmp_path / 'model'}", str(tmp_path / "data"), *RECON]
    args += ["--batch-size", "3", "--workers", "0", "--out", str(out)]
    args += ["--lpips-backbone", str(tmp_path / "absent.pth")]
    assert main(args) == 0

    result = json.loads((out / "results.json").read_text())[0]
    (jsonl,) = out.glob("pv-model-*/cache/clips.jsonl")
    evaluated = [Path(json.loads(line)["path"]).name for line in jsonl.read_text().splitlines()]
    assert sorted(evaluated) == files["readable"]  # each readable file once, no stand-in
    assert result["num_clips"] == len(files["readable"])
    assert result["num_skipped"] == len(files["unreadable"])
    assert sorted(Path(p).name for p in result["skipped_files"]) == files["unreadable"]
    report = (out / "report.md").read_text()
    assert "3 unreadable file(s) skipped" in report and "zero_bytes.mp4" in report


def test_recon_with_no_readable_file_is_one_line(main, tmp_path, capsys):
    (tmp_path / "data" / "a").mkdir(parents=True)
    (tmp_path / "data" / "a" / "empty.mp4").write_bytes(b"")
    make_micro_vae().save_pretrained(tmp_path / "model")
    args = ["eval", "recon", f"pv=pvvae:{tmp_path / 'model'}", str(tmp_path / "data"), *RECON]
    args += ["--workers", "0", "--out", str(tmp_path / "recon")]
    args += ["--lpips-backbone", str(tmp_path / "absent.pth")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no readable clip" in err[0]


def test_manifest_with_missing_paths_names_them(main, tmp_path):
    files = hostile_video_tree(tmp_path / "data")
    rows = ["path,label", "data/a/good0.mp4,0", "data/a/clip ünïcödé 動画.mp4,0"]
    rows += ["data/a/gone.mp4,1", "/nowhere/absent.avi,1"]
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    make_micro_vae().save_pretrained(tmp_path / "model")
    out = tmp_path / "recon"
    args = ["eval", "recon", f"pv=pvvae:{tmp_path / 'model'}", str(tmp_path / "list.csv"), *RECON]
    args += ["--workers", "0", "--out", str(out), "--lpips-backbone", str(tmp_path / "x.pth")]
    assert main(args) == 0
    result = json.loads((out / "results.json").read_text())[0]
    assert result["num_clips"] == 2 and "good0.mp4" in files["readable"]
    assert sorted(Path(p).name for p in result["skipped_files"]) == ["absent.avi", "gone.mp4"]
