"""Hostile data in ``pvvae gen cache`` (issue 13): each readable file is cached once under
its own source index; unreadable ones are left out and named in the manifest."""

from __future__ import annotations

import json
from pathlib import Path

from pvvae.cli.main import main
from pvvae.gen.cache import LatentDataset
from tests.conftest import make_micro_vae
from tests.hostile_files import hostile_video_tree


def test_cache_keeps_each_readable_file_once_and_names_the_skipped(tmp_path):
    files = hostile_video_tree(tmp_path / "data")
    make_micro_vae().save_pretrained(tmp_path / "model")
    args = ["gen", "cache", str(tmp_path / "model"), str(tmp_path / "data"), str(tmp_path / "c")]
    args += ["--num-frames", "5", "--size", "32", "--shard-size", "4", "--no-progress"]
    assert main(args) == 0

    cache = LatentDataset(tmp_path / "c")
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    indices = [cache[i]["index"] for i in range(len(cache))]  # crosses shards of 2-4 rows
    assert len(cache) == len(files["readable"]) and len(set(indices)) == len(indices)
    assert manifest["num_source_items"] == len(files["readable"]) + len(files["unreadable"])
    assert sorted(Path(p).name for p in manifest["skipped_files"]) == files["unreadable"]
    assert main(args) == 0  # a rerun resumes the complete cache: nothing changes
    assert len(LatentDataset(tmp_path / "c")) == len(files["readable"])
