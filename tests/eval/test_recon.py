"""Reconstruction harness: metrics, Table-2 report, resumable per-clip cache, speed protocol."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pvvae.eval.adapters import PVVAEAdapter
from pvvae.eval.clip_cache import ClipCache
from pvvae.eval.clips import open_eval_data
from pvvae.eval.metrics.fvd import fvd_from_features
from pvvae.eval.metrics.psnr_ssim import video_psnr, video_ssim
from pvvae.eval.recon import (
    MetricModels,
    ReconConfig,
    evaluate_reconstruction,
    load_metric_models,
)
from pvvae.eval.recon_report import write_recon_report
from pvvae.eval.speed import measure_speed
from pvvae.objectives.lpips import LPIPS
from tests.conftest import make_micro_vae

CONFIG = ReconConfig(
    resolution=32,
    num_frames=9,
    num_clips=3,
    batch_size=2,
    fvd=False,
    speed_warmup=0,
    speed_steps=1,
    speed_batch=1,
)
NO_METRIC_MODELS = MetricModels(None, "unavailable: test", None, "disabled (test)")


class CountingAdapter(PVVAEAdapter):
    """Micro PV-VAE that counts the clips it reconstructs (speed runs excluded)."""

    def __init__(self, seed: int = 0, label: str | None = None) -> None:
        super().__init__(make_micro_vae(seed), source=f"micro-{seed}", label=label)
        self.clips = 0

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        self.clips += x.shape[0]
        return super().reconstruct(x)


def _clips(n: int) -> torch.Tensor:
    data = open_eval_data("synthetic", 9, 32, n)
    return torch.stack([data.dataset[i]["video"] for i in range(n)])


def test_metrics_table_and_report(tmp_path):
    """Numbers equal a direct computation; JSON, Markdown table and plots are written."""
    adapter = CountingAdapter()
    data = open_eval_data("synthetic", 9, 32, 3)
    result = evaluate_reconstruction(adapter, data, tmp_path, CONFIG, NO_METRIC_MODELS, False)
    x = _clips(3)
    x_hat = PVVAEAdapter(make_micro_vae(0), source="ref").reconstruct(x)
    m = result["metrics"]
    assert m["PSNR"] == pytest.approx(video_psnr(x_hat, x).mean().item(), rel=1e-6)
    assert m["SSIM"] == pytest.approx(video_ssim(x_hat, x).mean().item(), rel=1e-6)
    assert m["LPIPS"] is None and m["rFVD"] is None
    assert m["ISpeed_it_per_s"] > 0 and m["IMem_GiB"] is None  # CPU: no IMem
    assert result["speed"]["warmup"] == 0 and result["speed"]["steps"] == 1
    report = write_recon_report(tmp_path)
    text = report.read_text()
    header = "| Method | Latent | rFVD↓ | PSNR↑ | SSIM↑ | LPIPS↓ | ISpeed (it/s) | IMem (GiB) |"
    assert header in text
    assert f"| PV-VAE | t4s16c8 | n/a | {m['PSNR']:.2f} |" in text
    assert "LPIPS: unavailable: test" in text
    for name in ("results.json", "table.md", "psnr_per_clip.png"):
        assert (tmp_path / name).is_file()
    assert len(list(tmp_path.glob("PV-VAE-micro-0-*/sample.png"))) == 1
    assert json.loads((tmp_path / "results.json").read_text())[0]["num_clips"] == 3


def test_resume_computes_nothing_new(tmp_path):
    """A second run reads every clip from the cache; more clips only computes the new ones."""
    data = open_eval_data("synthetic", 9, 32, 3)
    config = ReconConfig(**{**CONFIG.__dict__, "speed": False})
    first = CountingAdapter()
    r1 = evaluate_reconstruction(first, data, tmp_path, config, NO_METRIC_MODELS, False)
    assert first.clips == 3
    second = CountingAdapter()
    r2 = evaluate_reconstruction(second, data, tmp_path, config, NO_METRIC_MODELS, False)
    assert second.clips == 0 and r2["metrics"]["PSNR"] == r1["metrics"]["PSNR"]
    third = CountingAdapter()
    more = open_eval_data("synthetic", 9, 32, 4)
    config = ReconConfig(**{**config.__dict__, "num_clips": 4})
    r3 = evaluate_reconstruction(third, more, tmp_path, config, NO_METRIC_MODELS, False)
    assert third.clips == 1 and r3["num_clips"] == 4


def test_interrupted_cache_is_repaired(tmp_path):
    """A torn last JSONL line (killed run) is ignored and that clip recomputed."""
    data = open_eval_data("synthetic", 9, 32, 3)
    config = ReconConfig(**{**CONFIG.__dict__, "speed": False})
    evaluate_reconstruction(CountingAdapter(), data, tmp_path, config, NO_METRIC_MODELS, False)
    (jsonl,) = tmp_path.glob("PV-VAE-micro-0-*/cache/clips.jsonl")
    lines = jsonl.read_text().splitlines()
    jsonl.write_text("\n".join(lines[:2]) + "\n" + lines[2][:10])
    again = CountingAdapter()
    evaluate_reconstruction(again, data, tmp_path, config, NO_METRIC_MODELS, False)
    assert again.clips == 1


def test_cache_of_another_protocol_is_refused(tmp_path):
    ClipCache(tmp_path, {"resolution": 32})
    with pytest.raises(ValueError, match="another protocol"):
        ClipCache(tmp_path, {"resolution": 64})


def test_lpips_is_computed_when_available_and_fills_old_records(tmp_path):
    """Records cached without LPIPS are recomputed once LPIPS becomes available."""
    data = open_eval_data("synthetic", 9, 32, 2)
    config = ReconConfig(**{**CONFIG.__dict__, "num_clips": 2, "speed": False})
    evaluate_reconstruction(CountingAdapter(), data, tmp_path, config, NO_METRIC_MODELS, False)
    torch.manual_seed(0)
    lpips = LPIPS(pretrained_backbone=False)  # random trunk: the plumbing, not LPIPS values
    models = MetricModels(lpips, "test LPIPS", None, "disabled")
    adapter = CountingAdapter()
    result = evaluate_reconstruction(adapter, data, tmp_path, config, models, False)
    assert adapter.clips == 2
    assert result["metrics"]["LPIPS"] > 0


def test_missing_lpips_weights_are_reported_or_required(tmp_path, monkeypatch):
    """Without the AlexNet weights LPIPS is "unavailable: <reason>" unless required."""
    missing = tmp_path / "none.pth"
    config = ReconConfig(**{**CONFIG.__dict__, "fvd": False})
    models = load_metric_models(config, "cpu", lpips_backbone=missing, allow_download=False)
    assert models.lpips is None and "alexnet-owt-7be5be79.pth" in models.lpips_note
    with pytest.raises(FileNotFoundError, match="alexnet"):
        load_metric_models(ReconConfig(require_lpips=True, fvd=False), "cpu", missing, False)


def test_fvd_needs_nine_frames(tmp_path):
    config = ReconConfig(num_frames=5, require_lpips=False)
    models = load_metric_models(config, "cpu", lpips_backbone=tmp_path / "x", allow_download=False)
    assert models.i3d is None and ">= 9 frames" in models.fvd_note


def test_rfvd_with_the_real_i3d_on_two_clips(tmp_path):
    """rFVD from cached I3D logits equals the Frechet distance of those logits; resume reuses
    the logits (no new I3D pass needed)."""
    config = ReconConfig(**{**CONFIG.__dict__, "num_clips": 2, "fvd": True, "speed": False})
    models = load_metric_models(config, "cpu", lpips_backbone=tmp_path / "x", allow_download=False)
    assert models.i3d is not None, models.fvd_note
    data = open_eval_data("synthetic", 9, 32, 2)
    result = evaluate_reconstruction(CountingAdapter(), data, tmp_path, config, models, False)
    (shard_file,) = tmp_path.glob("PV-VAE-micro-0-*/cache/features/shard-*.npz")
    with np.load(shard_file) as shard:
        assert shard["real"].shape == (2, 400)
        expected = fvd_from_features(shard["real"], shard["fake"])
    assert result["metrics"]["rFVD"] == pytest.approx(expected)
    assert result["metrics"]["rFVD"] > 0
    again = CountingAdapter()
    models.i3d = torch.nn.Module()  # a stand-in that would fail if called: the cache suffices
    r2 = evaluate_reconstruction(again, data, tmp_path, config, models, False)
    assert again.clips == 0 and r2["metrics"]["rFVD"] == pytest.approx(expected)


def test_speed_protocol_defaults_on_cpu():
    speed = measure_speed(PVVAEAdapter(make_micro_vae(), source="m"), 1, 16, batch_size=2)
    assert (speed["warmup"], speed["steps"], speed["batch_size"]) == (1, 3, 2)
    assert speed["clips_per_s"] == pytest.approx(2 * speed["it_per_s"])
    assert speed["peak_memory_gib"] is None


def test_two_vaes_share_one_table(tmp_path):
    """VAEs evaluated one at a time into one folder are rows of one table."""
    data = open_eval_data("synthetic", 9, 32, 2)
    config = ReconConfig(**{**CONFIG.__dict__, "num_clips": 2, "speed": False})
    for seed, label in ((0, "A"), (1, "B")):
        adapter = CountingAdapter(seed, label=label)
        evaluate_reconstruction(adapter, data, tmp_path, config, NO_METRIC_MODELS, False)
    table = write_recon_report(tmp_path).with_name("table.md").read_text()
    assert "| A | t4s16c8 |" in table and "| B | t4s16c8 |" in table
