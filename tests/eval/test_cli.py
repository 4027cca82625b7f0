"""``pvvae eval recon`` / ``pvvae eval latents`` through the real command-line entry point."""

from __future__ import annotations

import json

import pytest

from pvvae.cli import main as cli_main
from pvvae.data.samples import sample_video_path
from tests.conftest import make_micro_vae


@pytest.fixture
def main(monkeypatch):
    """``pvvae.cli.main.main`` with the ``eval`` verb registered."""
    if "eval" not in cli_main.VERBS:
        monkeypatch.setattr(cli_main, "VERBS", (*cli_main.VERBS, "eval"))
    return cli_main.main


@pytest.fixture
def model_dir(tmp_path):
    make_micro_vae().save_pretrained(tmp_path / "model")
    return tmp_path / "model"


@pytest.fixture
def video_folder(tmp_path):
    """A UCF101-layout folder with two real clips (class sub-folders)."""
    for name in ("bikes", "carphone_pristine"):
        folder = tmp_path / "videos" / name
        folder.mkdir(parents=True)
        (folder / f"{name}.mp4").symlink_to(sample_video_path(name))
    return tmp_path / "videos"


def test_recon_on_a_video_folder(main, model_dir, video_folder, tmp_path, capsys):
    out = tmp_path / "recon"
    code = main(
        [
            "eval",
            "recon",
            f"pv=pvvae:{model_dir}",
            str(video_folder),
            "--resolution",
            "32",
            "--frames",
            "9",
            "--num-clips",
            "2",
            "--no-fvd",
            "--speed-warmup",
            "0",
            "--speed-steps",
            "1",
            "--workers",
            "0",
            "--no-progress",
            "--lpips-backbone",
            str(tmp_path / "missing-alexnet.pth"),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "| pv | t4s16c8 | n/a |" in printed and "report.md" in printed
    result = json.loads((out / "results.json").read_text())[0]
    assert result["num_clips"] == 2 and result["metrics"]["PSNR"] > 0
    assert "missing-alexnet.pth" in result["notes"]["lpips"]
    (jsonl,) = out.glob("pv-model-*/cache/clips.jsonl")
    paths = [json.loads(line)["path"] for line in jsonl.read_text().splitlines()]
    assert any(p.endswith("bikes.mp4") for p in paths)


def test_latents_with_write_config(main, model_dir, tmp_path):
    out = tmp_path / "latents"
    code = main(
        [
            "eval",
            "latents",
            f"pvvae:{model_dir}",
            "synthetic",
            "--resolution",
            "32",
            "--frames",
            "9",
            "--num-clips",
            "2",
            "--pca-clips",
            "1",
            "--pred-clips",
            "1",
            "--workers",
            "0",
            "--no-progress",
            "--out",
            str(out),
            "--write-config",
        ]
    )
    assert code == 0
    (folder,) = out.glob("PV-VAE-model-*")
    stats = json.loads((folder / "latent_stats.json").read_text())
    config = json.loads((model_dir / "config.json").read_text())
    assert config["latents_mean"] == pytest.approx(stats["latents_mean"])
    assert config["latents_std"] == pytest.approx(stats["latents_std"])
    assert (folder / "report.md").is_file() and (folder / "prediction_grid.png").is_file()
    assert (out / "report.md").is_file() and (out / "ltd_curve.png").is_file()


def test_latents_compares_two_vaes(main, model_dir, tmp_path):
    """Two VAEs side by side: one comparison table and overlaid LTD plots."""
    out = tmp_path / "latents"
    code = main(
        [
            "eval",
            "latents",
            f"a=pvvae:{model_dir}",
            "b=pvvae-preset:tiny",
            "synthetic",
            "--resolution",
            "32",
            "--frames",
            "9",
            "--num-clips",
            "2",
            "--pca-clips",
            "1",
            "--pred-clips",
            "1",
            "--workers",
            "0",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    rows = json.loads((out / "comparison.json").read_text())
    assert [r["label"] for r in rows] == ["a", "b"]
    assert [r["latent_layout"] for r in rows] == ["t4s16c8", "t4s16c64"]
    report = (out / "report.md").read_text()
    assert "| a | t4s16c8 | raw | 2 |" in report and "![ltd_hist](ltd_hist.png)" in report


def test_write_config_of_a_preset_needs_a_folder(main, capsys):
    args = ["eval", "latents", "pvvae-preset:tiny", "synthetic", "--write-config"]
    assert main(args) == 2
    assert "give --write-config DIR" in capsys.readouterr().err


def test_user_errors_are_one_line(main, capsys):
    assert main(["eval", "latents", "sdxl:/nowhere", "synthetic"]) == 2
    assert "unknown VAE kind 'sdxl'" in capsys.readouterr().err
