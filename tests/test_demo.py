"""The main job end to end with a micro model and a few steps (report, metrics, figures)."""

import json

from pvvae.config import load_config
from pvvae.demo import run_demo
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
    metrics = run_demo(cfg, tmp_path / "demo")
    out = tmp_path / "demo"
    for name in ("report.md", "metrics.json", "strip.png", "strip.mp4", "real.png"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "metrics.json").read_text())
    for key in ("recon_psnr_synthetic", "recon_psnr_real", "pred_psnr", "copy_last_psnr"):
        assert isinstance(saved[key], float) and saved[key] == metrics[key]
    assert saved["pred_observed_frames"] == 9
    assert "copy-last" in (out / "report.md").read_text()
