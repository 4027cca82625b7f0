"""The resumable per-clip cache of ``pvvae eval recon``: one VAE under one protocol.

Layout::

    <vae-folder>/cache/
        meta.json                  protocol of the cache (a mismatch is an error)
        clips.jsonl                one line per clip: index, path, psnr, ssim, lpips
        features/shard-NNNNNN.npz  indices + I3D logits of inputs and reconstructions
        speed.json                 ISpeed / IMem and the request they answer (pvvae.eval.speed)

A clip counts as done when its JSONL line has every metric being computed and, with FVD, its
logits are in a shard (shards are written first, atomically). Re-running the same command
continues where an interrupted run stopped; asking for more clips reuses the clips already done
(the random subset of N clips is a prefix of the subset of N + 1).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from pvvae.eval.report import read_json, write_json


class ClipCache:
    """Resumable per-clip results of one VAE under one protocol (layout in the module doc).

    Args:
        folder: the cache folder (created).
        protocol: what the cached numbers depend on; must equal the stored ``meta.json``.

    Raises:
        ValueError: the folder holds a cache of another protocol.
    """

    def __init__(self, folder: str | Path, protocol: dict) -> None:
        self.folder = Path(folder)
        self.features = self.folder / "features"
        self.features.mkdir(parents=True, exist_ok=True)
        meta = self.folder / "meta.json"
        if meta.is_file() and read_json(meta) != protocol:
            raise ValueError(
                f"{self.folder} caches another protocol ({read_json(meta)}, now {protocol}); "
                "use another --out or --fresh to discard it"
            )
        write_json(meta, protocol)
        self.records = self._read_records()
        self.real, self.fake = self._read_features()

    def _read_records(self) -> dict[int, dict]:
        """clips.jsonl as index -> record; a torn last line (killed run) is ignored."""
        records: dict[int, dict] = {}
        path = self.folder / "clips.jsonl"
        if path.is_file():
            for line in path.read_text().splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                records[int(record["index"])] = record
        return records

    def _read_features(self) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
        """index -> I3D logits (400,) of inputs and of reconstructions; later shards win."""
        real: dict[int, np.ndarray] = {}
        fake: dict[int, np.ndarray] = {}
        for shard in sorted(self.features.glob("shard-*.npz")):
            with np.load(shard) as f:
                for index, r, g in zip(f["indices"].tolist(), f["real"], f["fake"]):
                    real[index], fake[index] = r, g
        return real, fake

    def is_done(self, index: int, need_lpips: bool, need_features: bool) -> bool:
        """Whether clip ``index`` has every result being computed."""
        record = self.records.get(index)
        if record is None or (need_lpips and record.get("lpips") is None):
            return False
        return not need_features or index in self.real

    def add(
        self, records: list[dict], real: np.ndarray | None = None, fake: np.ndarray | None = None
    ) -> None:
        """Store a batch: logits shard first (atomic), then the JSONL lines (fsynced)."""
        if real is not None:
            indices = np.asarray([r["index"] for r in records], dtype=np.int64)
            shard = self.features / f"shard-{len(list(self.features.glob('shard-*.npz'))):06d}"
            tmp = shard.with_name(shard.name + ".tmp.npz")
            np.savez(tmp, indices=indices, real=real, fake=fake)
            os.replace(tmp, shard.with_suffix(".npz"))
            for index, r, g in zip(indices.tolist(), real, fake):
                self.real[index], self.fake[index] = r, g
        with open(self.folder / "clips.jsonl", "a") as handle:
            handle.writelines(json.dumps(record) + "\n" for record in records)
            handle.flush()
            os.fsync(handle.fileno())
        self.records.update({r["index"]: r for r in records})
