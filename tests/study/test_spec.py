"""Study files: recipe merge, extends, overrides, selection and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from pvvae.config import ConfigError
from pvvae.study.spec import load_study, select

STUDIES = Path(__file__).resolve().parents[2] / "configs" / "studies"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_recipe_merges_under_the_study_and_overrides_win(tmp_path):
    recipe = write(tmp_path / "recipe.yaml", "root: r1\nmeasure: {size: 32, fvd_clips: 8}\n")
    study = write(tmp_path / "s.yaml", f"name: s\nrecipe: {recipe}\nmeasure: {{size: 48}}\n"
                  "variants: [{name: a}, {name: b, video: [objective.max_drop_ratio=0.5]}]\n")
    spec = load_study(study, ["measure.fvd_clips=4", "seeds=[3, 4]"])
    assert (spec.root, spec.measure.size, spec.measure.fvd_clips) == ("r1", 48, 4)
    assert [v.name for v in spec.variants] == ["a", "b"]  # file order kept
    assert spec.variants[1].video == ["objective.max_drop_ratio=0.5"]
    assert [(v.name, s) for v, s in select(spec, ["b"], [4])] == [("b", 4)]
    assert len(select(spec, None, None)) == 4


def test_extends_takes_the_parent_and_replaces_keys(tmp_path):
    parent = write(tmp_path / "p.yaml", "name: p\nseeds: [0, 1]\nvariants: [{name: a}]\n")
    child = write(tmp_path / "c.yaml", f"extends: {parent}\nname: c\nseeds: [5]\n")
    spec = load_study(child)
    assert (spec.name, spec.seeds, [v.name for v in spec.variants]) == ("c", [5], ["a"])


@pytest.mark.parametrize("text, message", [
    ("name: s\nvariants: []\n", "no variants"),
    ("name: s\nvariants: [{name: a}, {name: a}]\n", "repeat"),
    ("name: s\nvariants: [{name: a, decoder: []}]\n", "stages.decoder"),
    ("name: s\nvariants: [{name: a, colour: red}]\n", "unknown config key"),
    ("name: s\nvariants: [{name: a}, {name: b}]\nreport: {compare: [a, z]}\n",
     r"report.compare=\['a', 'z'\]; name two variants"),
])
def test_bad_study_files_fail_in_one_line(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message) as error:
        load_study(write(tmp_path / "s.yaml", text))
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("compare, pair", [
    ("", ("a", "c")), ("report: {compare: [b, a]}", ("b", "a")), ("report: {compare: []}", None),
])
def test_the_claims_compare_first_and_last_unless_told(tmp_path, compare, pair):
    text = f"name: s\nvariants: [{{name: a}}, {{name: b}}, {{name: c}}]\n{compare}\n"
    assert load_study(write(tmp_path / "s.yaml", text)).compared() == pair


def test_unknown_variant_or_seed_is_named(tmp_path):
    spec = load_study(write(tmp_path / "s.yaml", "name: s\nvariants: [{name: a}]\n"))
    with pytest.raises(ConfigError, match="unknown variant 'z'"):
        select(spec, ["z"], None)
    with pytest.raises(ConfigError, match=r"seed\(s\) \[7\]"):
        select(spec, None, [7])


@pytest.mark.parametrize("name", sorted(p.stem for p in STUDIES.glob("*.yaml")))
def test_every_shipped_study_file_loads(name, monkeypatch):
    monkeypatch.chdir(STUDIES.parents[1])
    spec = load_study(STUDIES / f"{name}.yaml")
    assert select(spec, None, None)
    for stage in ("image", "video", "decoder", ):
        path = getattr(spec.stages, stage)
        assert path is None or Path(path).is_file(), path
    assert Path(spec.latte).is_file()
    assert set(spec.report.paper) <= {v.name for v in spec.variants}


def test_the_guided_table4_shares_every_step_but_generate(monkeypatch):
    from pvvae.study.pipeline import plan_study

    monkeypatch.chdir(STUDIES.parents[1])
    plain, guided = (load_study(STUDIES / f"{n}.yaml") for n in ("table4", "table4_guided"))
    assert guided.measure.guidance > 1 and guided.archive != plain.archive
    for a, b in zip(plan_study(plain, select(plain, None, None)),
                    plan_study(guided, select(guided, None, None)), strict=True):
        steps_a, steps_b = dict(a["steps"]), dict(b["steps"])
        differ = {s.split("-")[0] for s in set(steps_a) ^ set(steps_b)}
        assert differ == {"generate"}
