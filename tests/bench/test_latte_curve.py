"""The guidance curve (configs/studies/latte_guidance.yaml, read by bench/latte_curve.py): its
rows are the Table 4 rerun's baseline pair (seed 3) with only the ``generate`` step rerun."""

from pathlib import Path

from pvvae.study.pipeline import plan_study
from pvvae.study.spec import load_study

ROOT = Path(__file__).resolve().parents[2]


def _steps(spec, variant, seed) -> dict[str, str]:
    (pair,) = plan_study(spec, [(variant, seed)])
    return {step_id.split("-")[0]: step_id for step_id, _ in pair["steps"]}


def test_guidance_rows_change_only_the_generate_step(monkeypatch):
    monkeypatch.chdir(ROOT)
    curve, table4 = load_study("configs/studies/latte_guidance.yaml"), load_study(
        "configs/studies/table4.yaml")
    base = _steps(table4, table4.variant("baseline"), 3)
    rows = [_steps(curve, v, 3) for v in curve.variants]
    assert [curve.for_variant(v).measure.guidance for v in curve.variants] == [1, 2, 4, 6, 8]
    assert rows[0] == base  # w = 1 is the rerun's own (unguided) pair
    for steps in rows[1:]:
        assert steps.keys() == base.keys()
        assert {k for k in base if base[k] != steps[k]} == {"generate"}
    assert len({steps["generate"] for steps in rows}) == len(rows)
