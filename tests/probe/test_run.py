"""`pvvae probe train|eval` end to end on a saved micro VAE + tiny Latte (seconds)."""

from __future__ import annotations

import json

import pytest

from pvvae.cli.main import main
from pvvae.probe.report import table3_markdown
from pvvae.probe.run import open_probe_data

SMALL = ["--num-frames", "5", "--size", "32", "--train-clips", "2", "--eval-clips", "2",
         "--steps", "2", "--width", "16", "--batch-size", "2"]


def test_probe_train_then_eval_side_by_side(latte_dir, tmp_path):
    out = tmp_path / "probe"
    assert main(["probe", "train", str(latte_dir), "--out", str(out), *SMALL]) == 0
    report = json.loads((out / "probe.json").read_text())
    assert set(report["tasks"]) == {"flow", "next", "track"}
    assert report["config"]["layer"] == 2
    for name in ("flow", "next", "track"):
        assert (out / "heads" / f"{name}.safetensors").is_file()
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000
    assert "| Method | EPE ↓ | MSE ↓ | AUC(%) ↑ |" in (out / "probe.md").read_text()

    cmp_dir = tmp_path / "cmp"
    names = ["--names", "w/o PR", "w/ PR"]
    assert main(["probe", "eval", str(out), str(out), *names, "--out", str(cmp_dir)]) == 0
    table = (cmp_dir / "probe_compare.md").read_text()
    assert "| w/o PR |" in table and "| w/ PR |" in table and "trivial baseline" in table
    scores = json.loads((cmp_dir / "probe_compare.json").read_text())
    # the same probe scored twice on the same clips gives the same numbers as at training time
    assert scores["w/ PR"]["flow"]["probe"]["epe"] == pytest.approx(
        report["tasks"]["flow"]["probe"]["epe"], rel=1e-5)


def test_bad_inputs_get_one_line(latte_dir, tmp_path, capsys):
    assert main(["probe", "eval", str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    assert "probe_config.json" in capsys.readouterr().err
    with pytest.raises(ValueError, match="davis:PKL"):
        open_probe_data("kinetics", 5, 32, 1, 0)


def test_table3_gains_are_relative_to_the_first_row():
    rows = {"w/o PR": {"epe": 5.9223, "mse": 0.0314, "auc": 70.95},
            "w/ PR": {"epe": 5.1805, "mse": 0.0289, "auc": 76.99}}
    table = table3_markdown(rows)
    # the paper's Table 3 reports +12.5%, +8.0%, +8.5%
    assert "5.1805 (+12.5%)" in table and "0.0289 (+8.0%)" in table and "76.99 (+8.5%)" in table
    assert "| w/o PR | 5.9223 | 0.0314 | 70.95 |" in table
