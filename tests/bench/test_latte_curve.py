"""bench/latte_curve.py: the guidance curve's studies share every step but ``generate``."""

import importlib.util
from pathlib import Path

from pvvae.study.pipeline import plan_study

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench" / "latte_curve.py"


def _bench():
    spec = importlib.util.spec_from_file_location("latte_curve", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _steps(spec, variant, seed) -> dict[str, str]:
    (pair,) = plan_study(spec, [(variant, seed)])
    return {step_id.split("-")[0]: step_id for step_id, _ in pair["steps"]}


def test_guidance_pairs_change_only_the_generate_step(monkeypatch):
    monkeypatch.chdir(ROOT)
    curve = _bench()
    (w1, one, v1), (w6, six, v6) = curve.guidance_pairs(
        "configs/studies/table4.yaml", "baseline", 3, [1.0, 6.0])
    assert (w1, w6) == (1.0, 6.0)
    assert (one.name, six.name) == ("table4_w1", "table4_w6")
    assert one.archive is None and six.archive is None  # never touches the study's archive
    assert (one.measure.guidance, six.measure.guidance) == (1.0, 6.0)
    a, b = _steps(one, v1, 3), _steps(six, v6, 3)
    assert a.keys() == b.keys() and "generate" in a
    assert {k for k in a if a[k] != b[k]} == {"generate"}
