"""Tests of pvvae.gen.evaluate, pvvae.gen.metrics_table and the ``pvvae gen`` CLI: Table 1
layout, IS with a stand-in C3D, and ``gen eval`` end to end with the real I3D on a few tiny
clips."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from pvvae.cli import gen as gen_cli
from pvvae.data.video_io import write_video
from pvvae.gen.evaluate import run_evaluation
from pvvae.gen.metrics_table import (
    GenerationMetrics,
    read_results,
    table1_markdown,
    write_results,
)


def row(method, dataset, fvd, is_mean=None) -> GenerationMetrics:
    return GenerationMetrics(
        method,
        "t4s16c64",
        dataset,
        fvd,
        1.5,
        is_mean,
        None if is_mean is None else 0.5,
        2048,
        2048,
        16,
    )


def test_table_has_the_layout_of_seed_table_1(tmp_path):
    rows = [
        row("PV-VAE", "UCF101", 146.37, 69.72),
        row("PV-VAE", "RealEstate10K", 72.5),
        row("Wan2.1", "UCF101", 167.1, 66.04),
    ]
    lines = table1_markdown(rows).splitlines()
    assert lines[0] == "| Method | Latent config | UCF101 |  |  | RealEstate10K |  |"
    assert lines[2] == "|  |  | FVD ↓ | KVD ↓ | IS ↑ | FVD ↓ | KVD ↓ |"
    assert lines[3] == "| PV-VAE | t4s16c64 | 146.37 | 1.50 | 69.72 ± 0.50 | 72.50 | 1.50 |"
    assert lines[4] == "| Wan2.1 | t4s16c64 | 167.10 | 1.50 | 66.04 ± 0.50 | - | - |"
    json_path, md_path = write_results(rows, tmp_path)
    assert read_results([json_path]) == rows and "| PV-VAE |" in md_path.read_text()


class _Colour(torch.nn.Module):
    """Cheap stand-in feature net: mean colour of a clip -> ``out`` fixed features."""

    def __init__(self, out: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.proj = torch.nn.Linear(3, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x.mean(dim=(2, 3, 4)))


def test_fake_folder_with_stand_in_i3d_and_c3d(tmp_path, monkeypatch):
    g = torch.Generator().manual_seed(0)
    for i in range(4):
        write_video(
            tmp_path / "fake" / f"sample_{i:05d}.mp4",
            torch.rand(3, 17, 32, 32, generator=g) * 2 - 1,
        )
    monkeypatch.setattr("pvvae.eval.metrics.i3d.load_i3d", lambda device: _Colour(16))
    monkeypatch.setattr("pvvae.eval.metrics.inception.load_c3d", lambda p, d: _Colour(101))
    m = run_evaluation(
        tmp_path / "out",
        real="synthetic",
        fake_dir=tmp_path / "fake",
        num=4,
        c3d_weights="c3d.pt",
        device="cpu",
        dataset="Synthetic",
    )
    assert (m.num_fake, m.num_real, m.num_frames) == (4, 4, 16)
    assert m.fvd > 0 and m.is_mean is not None and m.is_mean >= 1.0 and not m.notes
    assert "IS ↑" in (tmp_path / "out" / "gen_metrics.md").read_text()
    with pytest.raises(ValueError, match="only 4 generated"):
        run_evaluation(
            tmp_path / "out",
            real="synthetic",
            fake_dir=tmp_path / "fake",
            num=5,
            device="cpu",
            synthetic_clips=5,
        )


def test_missing_c3d_weights_is_a_clear_error(tmp_path, trained_run):
    with pytest.raises(FileNotFoundError, match="C3D weights not found"):
        run_evaluation(
            tmp_path,
            real="synthetic",
            checkpoint=trained_run,
            num=2,
            c3d_weights=str(tmp_path / "none.pt"),
            device="cpu",
        )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pvvae")
    gen_cli.add_parser(p.add_subparsers(dest="command", required=True))
    return p


def test_cli_registers_the_four_verbs():
    p = parser()
    for argv in (
        ["gen", "cache", "preset:tiny", "synthetic", "out"],
        ["gen", "train", "cfg.yaml", "train.steps=1", "--resume"],
        ["gen", "sample", "run", "--num", "2", "--out", "o", "--class", "3"],
        ["gen", "eval", "run", "--real", "synthetic", "--out", "o"],
    ):
        args = p.parse_args(argv)
        assert callable(args.func) and args.gen_command == argv[1]
    with pytest.raises(SystemExit):
        p.parse_args(["gen", "sample", "run", "--out", "o"])  # --num is required


def test_gen_eval_end_to_end_with_the_i3d(trained_run, micro_vae_dir, tmp_path, capsys):
    """2 generated vs 2 real 16-frame clips through the real Kinetics-400 I3D (CPU)."""
    args = parser().parse_args(
        [
            "gen",
            "eval",
            str(trained_run),
            "--real",
            "synthetic",
            "--num",
            "2",
            "--steps",
            "2",
            "--vae",
            str(micro_vae_dir),
            "--out",
            str(tmp_path),
            "--device",
            "cpu",
            "--name",
            "PV-VAE",
            "--dataset-name",
            "Synthetic",
            "--no-progress",
        ]
    )
    assert args.func(args) == 0
    (result,) = json.loads((tmp_path / "gen_metrics.json").read_text())
    assert result["method"] == "PV-VAE" and result["latent_config"] == "t4s16c8"
    assert result["num_fake"] == result["num_real"] == 2 and result["is_mean"] is None
    assert result["fvd"] > 0 and torch.isfinite(torch.tensor(result["kvd"]))
    assert "--c3d-weights" in result["notes"]
    out = capsys.readouterr().out
    assert "| PV-VAE | t4s16c8 |" in out and "IS not computed" in out


def test_noise_floor_domain_fvd_and_class_accuracy_of_a_fake_folder(tmp_path, monkeypatch):
    """``run_evaluation(noise_floor=K, domain=True)`` on a folder whose samples.json gives
    labels: the gFVD floor, the domain FVD with its floor and the class accuracy are filled
    in (stand-in I3D, untrained domain network: the wiring, not the values)."""
    from pvvae.eval.domain import DomainNet

    g = torch.Generator().manual_seed(0)
    for i in range(4):
        write_video(tmp_path / "fake" / f"sample_{i:05d}.mp4",
                    torch.rand(3, 17, 32, 32, generator=g) * 2 - 1)
    samples = [{"file": f"sample_{i:05d}.mp4", "label": i % 4} for i in range(4)]
    (tmp_path / "fake" / "samples.json").write_text(json.dumps({"samples": samples}))
    monkeypatch.setattr("pvvae.eval.metrics.i3d.load_i3d", lambda device: _Colour(16))
    torch.manual_seed(0)
    net = DomainNet()
    built = []
    monkeypatch.setattr("pvvae.eval.domain.build_domain_network",
                        lambda cache: built.append(cache) or net)
    m = run_evaluation(tmp_path / "out", real="synthetic", fake_dir=tmp_path / "fake", num=4,
                       device="cpu", noise_floor=3, domain=True, domain_cache=tmp_path / "d")
    assert built == [tmp_path / "d"] and m.num_real == 4
    assert m.fvd_floor is not None and m.fvd_floor_std is not None
    assert m.domain_fvd > 0 and m.domain_fvd_floor > 0
    assert m.class_accuracy in (0.0, 0.25, 0.5, 0.75, 1.0)
    assert "| domain FVD | domain floor | class acc. |" in (tmp_path / "out" /
                                                         "gen_metrics.md").read_text()
    (tmp_path / "fake" / "samples.json").unlink()  # no labels: no class accuracy
    m = run_evaluation(tmp_path / "out", real="synthetic", fake_dir=tmp_path / "fake", num=4,
                       device="cpu", domain=True)
    assert m.class_accuracy is None and m.domain_fvd > 0 and m.domain_fvd_floor is None


def test_gen_eval_passes_the_noise_floor_and_domain_flags(monkeypatch, capsys):
    seen = {}

    def fake_run(out, **kwargs):
        seen.update(kwargs)
        return GenerationMetrics("m", "", "d", 1.0, 0.1, None, None, 2, 2, 16,
                                 fvd_floor=0.5, fvd_floor_std=0.1)

    monkeypatch.setattr("pvvae.gen.evaluate.run_evaluation", fake_run)
    args = parser().parse_args(["gen", "eval", "run", "--real", "synthetic", "--out", "o",
                                "--noise-floor", "5", "--domain", "--domain-cache", "c"])
    assert args.func(args) == 0
    assert (seen["noise_floor"], seen["domain"], seen["domain_cache"]) == (5, True, "c")
    assert "real-real floor" in capsys.readouterr().out
    args = parser().parse_args(["gen", "eval", "run", "--real", "synthetic", "--out", "o"])
    assert (args.noise_floor, args.domain) == (0, False)
