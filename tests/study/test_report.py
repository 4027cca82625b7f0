"""Study report: verdict rule, correlation, tables and figures from result dicts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pvvae.study.pipeline import pair_dir, plan_study
from pvvae.study.report import (
    collect,
    compare,
    correlation,
    gain_text,
    mean_std,
    relative_gain,
    write_report,
)
from pvvae.study.spec import StudySpec, Variant

ROOT = Path(__file__).resolve().parents[2]


def test_mean_std_skips_missing_values():
    assert mean_std([1.0, None, 3.0]) == (2.0, pytest.approx(2**0.5), 2)
    assert mean_std([5.0]) == (5.0, None, 1)
    assert mean_std([None]) == (None, None, 0)


@pytest.mark.parametrize("a, b, verdict", [
    ([10.0, 11.0, 12.0], [5.0, 6.0, 7.0], "reproduced"),  # b clearly lower (better)
    ([5.0, 6.0, 7.0], [10.0, 11.0, 12.0], "not reproduced"),
    ([5.0, 9.0, 7.0], [6.0, 8.0, 7.5], "inconclusive"),
    ([5.0], [1.0], "inconclusive"),  # one seed: no error bar, no verdict
])
def test_compare_lower_is_better(a, b, verdict):
    assert compare(a, b, lower_better=True) == verdict


def test_correlation_sign_and_verdict():
    rows = {"v": [{"pred_psnr": x, "gfvd": 100 - 3 * x + (0.1 if i % 2 else -0.1)}
                  for i, x in enumerate(range(10, 20))]}
    corr = correlation(rows)
    assert corr["r"] < -0.99 and corr["verdict"] == "reproduced"
    assert correlation({"v": rows["v"][:2]}) is None


def fake_result(variant: str, seed: int, gfvd: float, pred: float) -> dict:
    return {"variant": variant, "seed": seed, "gfvd": gfvd, "gkvd": 1.0, "recon_psnr": 20.0,
            "recon_ssim": 0.5, "pred_psnr": pred, "copy_last_psnr": 17.0,
            "ltd_adjacent_median": 1.0 + seed, "ltd_adjacent_per_clip": [1.0, 2.0],
            "ltd_normalized": [1.0, 1.5, 2.0] if variant == "b" else [1.0, 1.2, 1.1],
            "seconds": {"video": 60.0}}


def write_fake(spec: StudySpec, variant: str, seed: int, gfvd: float, pred: float,
               steps: dict | None = None) -> None:
    """A result.json whose steps are those the study plans (or ``steps``)."""
    plan = plan_study(spec, [(spec.variant(variant), seed)])[0]["steps"]
    result = fake_result(variant, seed, gfvd, pred)
    result["steps"] = steps or {sid.split("-")[0]: sid for sid, _ in plan}
    folder = pair_dir(spec, spec.variant(variant), seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "result.json").write_text(json.dumps(result))


def test_report_of_a_partial_study(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    spec = StudySpec(name="t", root=str(tmp_path), seeds=[0, 1, 2],
                     variants=[Variant("a", video=["objective.max_drop_ratio=0.0"]),
                               Variant("b")])
    spec.report.paper = {"a": {"gfvd": 200.0}, "b": {"gfvd": 150.0}}
    for variant, seed, gfvd, pred in [("a", 0, 300, 15), ("a", 1, 310, 15.5), ("b", 0, 250, 17),
                                      ("b", 1, 255, 17.5)]:
        write_fake(spec, variant, seed, gfvd, pred)
    write_fake(spec, "b", 2, 999, 1, steps={"video": "video-0123456789ab"})  # old settings
    text = write_report(spec).read_text()
    assert "Left out, measured with settings the study file no longer has" in text
    assert "b, seed 2" in text and "999" not in text
    assert "| a | 305.0 +- 7.1 |" in text  # mean +- sample std over the 2 seeds measured
    assert "gFVD: b better than a" in text and "**reproduced**" in text
    assert "Figure 5d: normalised LTD rises monotonically for b, not for a | **reproduced**" in text
    assert "correlation.png" in text and (tmp_path / "t" / "correlation.png").is_file()


def test_scaling_report_fits_a_slope_per_group(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    variants = [Variant(f"r{r}-{n}", group=f"r = {r}", x=n,
                        all=[f"data.num_clips={n}"],
                        video=[f"objective.max_drop_ratio={r}.0"])
                for r in (0, 1) for n in (10, 100)]
    spec = StudySpec(name="s", root=str(tmp_path), seeds=[0], variants=variants)
    spec.report.kind, spec.report.x_label = "scaling", "clips"
    for name, gfvd in [("r0-10", 300), ("r0-100", 290), ("r1-10", 300), ("r1-100", 250)]:
        write_fake(spec, name, 0, gfvd, 16.0)
    text = write_report(spec).read_text()
    assert "gFVD slope per decade of clips: r = 0: -10.0 (n = 2); r = 1: -50.0 (n = 2)" in text
    assert (tmp_path / "s" / "scaling.png").is_file()


def test_ceiling_table_puts_gfvd_beside_its_floor_and_its_vae(tmp_path, monkeypatch):
    """Each gFVD beside the real-real floor and its VAE's reconstruction FVD (issue 24); a
    result measured before those steps existed shows blanks, not an error."""
    monkeypatch.chdir(ROOT)
    spec = StudySpec(name="c", root=str(tmp_path), seeds=[0, 1],
                     variants=[Variant("a", video=["objective.max_drop_ratio=0.0"]),
                               Variant("b")])
    write_fake(spec, "a", 0, 300, 15)  # an old result: no floor, no ceiling
    new = {"gfvd_floor": 120.0, "gfvd_floor_std": 9.0, "vae_fvd": 250.0,
           "gen_acceleration": 1.5, "vae_acceleration": 0.5, "real_acceleration": 0.25}
    for seed, gfvd in ((0, 280), (1, 290)):
        write_fake(spec, "b", seed, gfvd, 16)
        path = pair_dir(spec, spec.variant("b"), seed) / "result.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **new}))
    text = write_report(spec).read_text()
    assert "| variant | gFVD | real-real floor | VAE recon FVD | gFVD / VAE | acceleration gen / " \
        "VAE / real" in text
    assert "| a | 300.0 | - | - | - | - / - / - |" in text
    assert "| b | 285.0 +- 7.1 | 120.0 +- 9.0 | 250.0 +- 0.0 | 1.14 +- 0.03 | 1.5 +- 0 / " \
        "0.5 +- 0 / 0.25 +- 0 |" in text


def test_archived_results_are_read_where_the_root_has_none(tmp_path, monkeypatch):
    """A study kept across machines: the report reads each pair's archived copy (same step
    ids) when the root lacks it, and leaves out an archived pair of other settings."""
    from pvvae.study.pipeline import archive_path, archived

    monkeypatch.chdir(ROOT)
    spec = StudySpec(name="t", root=str(tmp_path / "root"), archive=str(tmp_path / "archive"),
                     seeds=[0, 1], variants=[Variant("a"), Variant("b")])
    for variant, seed in [("a", 0), ("b", 0), ("b", 1)]:
        plan = plan_study(spec, [(spec.variant(variant), seed)])[0]["steps"]
        result = fake_result(variant, seed, 300.0 + seed, 15.0)
        result["steps"] = {sid.split("-")[0]: sid for sid, _ in plan}
        if seed == 1:
            result["steps"]["video"] = "video-0123456789ab"  # measured with old settings
        path = archive_path(spec, spec.variant(variant), seed)
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(result))
    planned = {sid for sid, _ in plan_study(spec, [(spec.variant("b"), 1)])[0]["steps"]}
    assert archived(spec, spec.variant("b"), 1, planned) is None
    results, _ = collect(spec)
    assert [r["seed"] for r in results["a"]] == [0] and [r["seed"] for r in results["b"]] == [0]


def test_claims_pass_over_unmeasured_rows_and_add_the_samples_motion(tmp_path, monkeypatch):
    """A rerun of two of three rows compares those two; where the samples' domain FVD and
    persistence were measured, they get a claim in gFVD's order too."""
    monkeypatch.chdir(ROOT)
    spec = StudySpec(name="t", root=str(tmp_path), seeds=[0, 1],
                     variants=[Variant("a", video=["objective.max_drop_ratio=0.0"]),
                               Variant("m", video=["objective.max_drop_ratio=0.5"]),
                               Variant("b")])
    spec.report.paper = {"a": {"gfvd": 200.0}, "m": {"gfvd": 180.0}, "b": {"gfvd": 150.0}}
    for variant, seed, gfvd, persistence in [("a", 0, 300, 0.50), ("a", 1, 310, 0.52),
                                             ("b", 0, 320, 0.60), ("b", 1, 330, 0.62)]:
        write_fake(spec, variant, seed, gfvd, 16.0)
        path = pair_dir(spec, spec.variant(variant), seed) / "result.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "gen_persistence":
                                    persistence, "vae_fvd": 250.0 if variant == "a" else 400.0}))
    text = write_report(spec).read_text()
    # b's decoder is worse, its generator closer to it: the ratio claim sees what gFVD does not
    assert "| gFVD / VAE recon FVD: b better than a (paper gFVD: 150.0 vs 200.0) | " \
        "**reproduced** | 0.81 +- 0.02 vs 1.22 +- 0.03 |" in text
    assert "| gFVD: b better than a (paper gFVD: 150.0 vs 200.0) | **not reproduced** |" in text
    assert "| sample persistence: b better than a (paper gFVD: 150.0 vs 200.0) | " \
        "**reproduced** |" in text
    assert "better than m" not in text and "domain gFVD" not in text
    # gFVD 305 -> 325: a 6.6% loss with its interval, the paper's 25% gain outside it
    assert "| -6.6% [-16.5, +3.4]; paper +25.0% (outside) |" in text


def test_relative_gain_is_welch_interval_over_the_worse_mean():
    """[10, 12] -> [8, 10], lower better: 2 / 11 = 18.2%, Welch's t with 2 degrees of freedom
    (t = 4.303) on a standard error of sqrt(2): 18.2 +- 55.3%."""
    gain = relative_gain([10.0, 12.0], [8.0, 10.0], lower_better=True)
    assert gain["gain"] == pytest.approx(200 / 11)
    assert gain["low"] == pytest.approx((2 - 4.30265 * 2 ** 0.5) * 100 / 11, rel=1e-4)
    assert relative_gain([10.0, 12.0], [8.0, 10.0], lower_better=False)["gain"] == pytest.approx(
        -200 / 11)
    assert relative_gain([10.0], [8.0, 10.0], lower_better=True) is None
    assert gain_text(gain, 14.0) == "+18.2% [-37.1, +73.5]; paper +14.0% (inside)"
    assert gain_text(None) == "-"
