"""The main job end to end with a micro model and a few steps (report, metrics, figures)."""

import json
import os

from pvvae.config import load_config
from pvvae.demo import ImageStage, run_demo
from pvvae.training.config import ExperimentConfig
from tests.conftest import MICRO


def test_demo_writes_report_metrics_and_figures(tmp_path):
    micro = (
        "{"
        + ", ".join(f"{k}: {list(v) if isinstance(v, tuple) else v}" for k, v in MICRO.items())
        + "}"
    )
    cfg = load_config(
        ExperimentConfig,
        "configs/demo.yaml",
        [
            "name=demo",
            f"train.out_dir={tmp_path}",
            "train.steps=2",
            "train.progress=false",
            f"model.overrides={micro}",
            "data.size=32",
            "data.num_workers=0",
        ],
    )
    metrics = run_demo(cfg, tmp_path / "demo", ImageStage(steps=2, batch=2, lr=1e-3))
    out = tmp_path / "demo"
    for name in ("report.md", "metrics.json", "strip.png", "strip.mp4", "real.png", "curves.png"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "metrics.json").read_text())
    for key in ("recon_psnr_synthetic", "recon_psnr_real", "pred_psnr", "copy_last_psnr",
                "floor_temporal_mean_psnr", "pred_psnr_baseline", "copy_last_blur_psnr",
                "pred_object_error", "copy_last_object_error", "pred_object_error_baseline",
                "recon_object_iou", "recon_object_error"):
        assert isinstance(saved[key], float) and saved[key] == metrics[key]
    assert saved["copy_last_blur_psnr"] >= saved["copy_last_psnr"]
    assert saved["pred_observed_frames"] == 9
    report = (out / "report.md").read_text()
    assert "copy-last" in report and "baseline (r = 0)" in report
    assert "blurred copy-last" in report and "| target | met |" in report
    # three runs: image pretraining, then r = 1 and r = 0 video runs from its weights
    for run in ("demo-image", "demo", "demo-r0"):
        assert (tmp_path / run / "log.jsonl").is_file(), run
    video = load_config(ExperimentConfig, tmp_path / "demo" / "config.yaml")
    base = load_config(ExperimentConfig, tmp_path / "demo-r0" / "config.yaml")
    assert video.objective.max_drop_ratio == 1.0 and base.objective.max_drop_ratio == 0.0
    assert video.model.inflate_temporal and video.model.init_from == str(tmp_path / "demo-image")
    image = load_config(ExperimentConfig, tmp_path / "demo-image" / "config.yaml")
    assert image.optim.lr == 1e-3 and video.optim.lr == cfg.optim.lr != 1e-3


def test_image_stage_leaves_busy_cores_alone(caplog):
    from pvvae.demo import free_threads, idle_cores

    with caplog.at_level("INFO", logger="pvvae.demo"):
        assert free_threads(2, idle=0.8) == 1
    assert "keep" in caplog.text and "cores busy" in caplog.text
    assert free_threads(2, idle=1.9) == 2
    assert free_threads(2, idle=0.0) == 1
    assert free_threads(4, idle=2.6) == 3
    idle = idle_cores(0.05)
    assert idle is None or 0.0 <= idle <= os.cpu_count() + 0.01
