"""The headline numbers that docs/*.md quote equal their committed JSON at the printed precision.

Every figure in the docs comes from a JSON result; this test keeps the two from drifting apart.
Each :class:`Quote` is a passage of a page with ``{}`` where a number stands, the JSON file that
measured it and one key path per ``{}``. A number printed with ``d`` decimals must equal the
JSON value formatted with ``d`` decimals (``23.41`` for 23.4074, ``1157`` for 1156.67). When a
doc and its JSON disagree, the JSON is the measurement: fix the doc.

Key paths: ``a/b/0/c`` walks dicts and lists (negative list indices count from the end);
``mean:P`` and ``std:P`` (sample standard deviation, as the study reports) reduce the values
that a ``*`` in ``P`` collects; ``P - Q`` is a difference.
"""

from __future__ import annotations

import json
import re
import statistics
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NUMBER = r"(-?\d+(?:\.\d+)?)"


@dataclass(frozen=True)
class Quote:
    doc: str  # the page, relative to the repository root
    text: str  # the quoted passage, "{}" where each checked number stands
    source: str  # the committed JSON that measured them
    keys: tuple[str, ...]  # one key path per "{}"


def _recipe_row(name: str, label: str) -> Quote:
    """A row of docs/demo.md's recipe table: recon / pred PSNR and image + video seconds of the
    last evaluation of docs/demo/recipe/<name>.json."""
    last = "rows/-1/"
    return Quote("docs/demo.md", label, f"docs/demo/recipe/{name}.json",
                 (last + "recon_psnr", last + "pred_psnr", last + "image_seconds",
                  last + "train_seconds"))


DEMO, METRICS = "docs/demo.md", "docs/demo/metrics.json"
TABLE4 = "docs/replication/table4/summary.json"
TABLE5 = "docs/replication/table5/summary.json"
TABLE6 = "docs/replication/table6/summary.json"
FIG5A = "docs/replication/fig5a/summary.json"
FIG5B = "docs/replication/fig5b/summary.json"
RERUN = "docs/replication/table4_rerun/summary.json"
GUIDED = "docs/replication/table4_guided/summary.json"
CURVE = "docs/replication/latte_curve/curve.json"  # rows in the order the study measured them
GUIDANCE = "docs/replication/latte_guidance/curve.json"  # rows by guidance weight
RECIPE = "docs/replication/latte_recipe/curve.json"  # rows in the study file's order
RECIPE_WIDE = "docs/replication/latte_recipe/curve_retrained_vae.json"  # its last two rows
VAE_MOTION = "docs/replication/vae_motion.json"  # real clips, then each VAE in --vae order
BASE, PR, DEC = "results/baseline/*/", "results/+ predictive reconstruction/*/", (
    "results/+ decoder fine-tuning/*/")


LATTE_ROW = ("latte_seconds", "gfvd", "gfvd_over_vae_fvd", "gen_domain_fvd", "gen_acceleration",
             "gen_persistence", "gen_foreground", "class_accuracy")  # a Latte table's columns


def _table_rows(source: str, keys: tuple[str, ...], rows) -> tuple[Quote, ...]:
    """Rows of a docs/replication.md table: for each ``(i, label)``, the literal label cell(s),
    then one number per key of ``rows/i`` of ``source``."""
    return tuple(Quote("docs/replication.md", f"| {label} | " + "{} | " * len(keys), source,
                       tuple(f"rows/{i}/{k}" for k in keys)) for i, label in rows)


def _rerun_row(variant: str, source: str = RERUN, label: str = "",
               extra: tuple[str, ...] = ()) -> Quote:
    """A row of docs/replication.md's Table 4 rerun tables: mean +- std over the seeds of gFVD,
    VAE FVD and their ratio, then the means of the domain FVDs, the samples' motion and
    ``extra``."""
    row = f"results/{variant}/*/"
    means = ("gen_domain_fvd", "vae_domain_fvd", "gen_acceleration", "gen_persistence", *extra)
    return Quote("docs/replication.md",
                 f"| {label or variant} | " + "{} +- {} | " * 3 + "{} / {} | {} | {} |"
                 + " {} |" * len(extra),
                 source, _per_seed(row, "gfvd", "vae_fvd", "gfvd_over_vae_fvd") + tuple(
                     f"mean:{row}{m}" for m in means))


def _gain(claim: int) -> tuple[str, ...]:
    """A claim's gain and the ends of its 95% interval (``claims/<i>/gain``)."""
    return tuple(f"claims/{claim}/gain/{k}" for k in ("gain", "low", "high"))


def _per_seed(prefix: str, *metrics: str) -> tuple[str, ...]:
    """mean and std over the seeds of each metric, in that order."""
    return tuple(f"{kind}:{prefix}{m}" for m in metrics for kind in ("mean", "std"))


QUOTES = (
    # the Table 4 rerun (docs/replication/table4_rerun/summary.json)
    _rerun_row("baseline"),
    _rerun_row("+ motion-aware objective"),
    *(_rerun_row(v, GUIDED, f"{v}, w = 6", ("gen_foreground", "class_accuracy"))
      for v in ("baseline", "+ motion-aware objective")),
    Quote("docs/replication.md", "the full objective changes it by\n{}% [{}, {}] (paper +{}%)",
          GUIDED, (*_gain(0),
                   "claims/0/paper_gain")),
    Quote("docs/replication.md", "gFVD over the VAE's own FVD: {}% [{}, +{}]", GUIDED,
          _gain(2)),
    Quote("docs/replication.md", "sample acceleration: reproduced, +{}% [+{}, +{}]", GUIDED,
          _gain(5)),
    Quote("docs/replication.md", "the full objective changes gFVD by {}% [{}, {}], where the "
          "paper gains\n+{}%.", RERUN, (*_gain(0), "claims/0/paper_gain")),
    Quote("docs/replication.md", "{} vs {}, a change of\n{}% [{}, +{}].", RERUN,
          ("mean:results/+ motion-aware objective/*/gfvd_over_vae_fvd",
           "mean:results/baseline/*/gfvd_over_vae_fvd", *_gain(2))),
    Quote("docs/replication.md", "(PSNR {} vs {}; reconstruction FVD {} vs {})", RERUN,
          ("mean:results/baseline/*/recon_psnr",
           "mean:results/+ motion-aware objective/*/recon_psnr",
           "mean:results/baseline/*/vae_fvd", "mean:results/+ motion-aware objective/*/vae_fvd")),
    Quote("docs/replication.md", "({} against {}, +{}% [+{}, +{}])", RERUN,
          ("mean:results/+ motion-aware objective/*/gen_acceleration",
           "mean:results/baseline/*/gen_acceleration", *_gain(5))),
    Quote("docs/replication.md", "smoother too ({} vs {})", RERUN,
          ("mean:results/+ motion-aware objective/*/vae_acceleration",
           "mean:results/baseline/*/vae_acceleration")),
    Quote("docs/replication.md", "Pearson r = {}\n  (p = {}, n = {})", RERUN,
          ("correlation/r", "correlation/p", "correlation/n")),
    Quote("docs/replication.md", "(foreground\n{} against real {},", RERUN,
          ("mean:results/baseline/*/gen_foreground", "mean:results/baseline/*/real_foreground")),
    Quote("docs/replication.md", "floor is the rerun's, on the same protocol: {} +- {}.", RERUN,
          ("mean:results/baseline/*/gfvd_floor", "mean:results/baseline/*/gfvd_floor_std")),
    Quote("docs/replication.md", "(real-real floor {} +- {}, domain floor {}.)", RERUN,
          ("mean:results/baseline/*/gfvd_floor", "mean:results/baseline/*/gfvd_floor_std",
           "mean:results/baseline/*/domain_floor")),
    # the demo's results table and its text (docs/demo/metrics.json)
    Quote(DEMO, "| reconstruction PSNR (dB) | **{}** | {} |", METRICS,
          ("recon_psnr_synthetic", "recon_psnr_synthetic_baseline")),
    Quote(DEMO, "| floor: each clip's temporal mean at every frame (dB) | {} |", METRICS,
          ("floor_temporal_mean_psnr",)),
    Quote(DEMO, "| reconstruction: shape IoU (true frames 0.92) | **{}** | {} |", METRICS,
          ("recon_object_iou", "recon_object_iou_baseline")),
    Quote(DEMO, "| reconstruction: shape position error (px) | **{}** |", METRICS,
          ("recon_object_error",)),
    Quote(DEMO, "| prediction PSNR, frames 9-16 from 0-8 (dB) | {} | {} |", METRICS,
          ("pred_psnr", "pred_psnr_baseline")),
    Quote(DEMO, "| copy-last / best blurred copy-last (dB) | {} / {} |", METRICS,
          ("copy_last_psnr", "copy_last_blur_psnr")),
    Quote(DEMO, "| prediction: shape position error (px) | {} | {} |", METRICS,
          ("pred_object_error", "pred_object_error_baseline")),
    Quote(DEMO, "| copy-last: shape position error (px) | {} |", METRICS,
          ("copy_last_object_error",)),
    Quote(DEMO, "follows its track (position error {} px", METRICS, ("recon_object_error",)),
    Quote(DEMO, "**not met**: +{} dB ({}); was", METRICS,
          ("recon_psnr_synthetic - floor_temporal_mean_psnr", "recon_psnr_synthetic")),
    Quote(DEMO, "| prediction >= best blurred copy-last + 0.5 dB | **not met**: +{} dB |",
          METRICS, ("pred_psnr - copy_last_blur_psnr",)),
    Quote(DEMO, "| **not met**: {} px against {} px |", METRICS,
          ("pred_object_error", "copy_last_object_error")),
    Quote(DEMO, "| **met**: {} against {} px (by little) |", METRICS,
          ("pred_object_error", "pred_object_error_baseline")),
    # the demo's recipe search (docs/demo/recipe/*.json)
    Quote(DEMO, "Floors on those clips: each clip's temporal mean at every frame {} dB, "
                "copy-last {} dB, the best blurred copy-last {} dB", "docs/demo/recipe/cnn_eq.json",
          ("floors/floor_temporal_mean_psnr", "floors/copy_last_psnr",
           "floors/blurred_copy_last_psnr")),
    _recipe_row("base", "| `base` (the old demo recipe) | 200 (2e-4) | 700 (2e-4) | {} | {} | "
                        "{} + {} |"),
    _recipe_row("img800", "| `img800` | 800 (2e-4) | 300 (2e-4) | {} | {} | {} + {} |"),
    _recipe_row("img800s", "| `img800s` (first 300 video steps on 9 frames) | 800 (2e-4) | "
                           "600 (2e-4) | {} | {} | {} + {} |"),
    _recipe_row("img1600", "| `img1600` | 1600 (2e-4) | 300 (2e-4) | {} | {} | {} + {} |"),
    _recipe_row("i600lr2e-4", "| `i600lr2e-4` | 600 (2e-4) | 200 (2e-4) | {} | {} | {} + {} |"),
    _recipe_row("i600lr8e-4", "| `i600lr8e-4` | 600 (8e-4) | 200 (2e-4) | **{}** | {} | "
                              "{} + {} |"),
    _recipe_row("i600lr2e-3", "| `i600lr2e-3` | 600 (2e-3) | 200 (2e-4) | {} | {} | {} + {} |"),
    _recipe_row("cnn_eq", "| **`cnn_eq` (the demo's recipe)** | 1000 (8e-4) | 350 (2e-4) | "
                          "**{}** | {} | {} + {} |"),
    _recipe_row("tf1", "| `tf1`: PV-VAE\\* `tiny` preset (0.6M) | 1000 (1e-3) | 4000 (1e-3) | "
                       "{} | {} | {} + {} |"),
    _recipe_row("tf8m", "| `tf8m`: PV-VAE\\* 7.9M (4 heads x 64, 4 + 4 layers) | 1000 (1e-3) | "
                        "3000 (1e-3) | {} | {} | {} + {} |"),
    _recipe_row("tf_eq", "| `tf_eq`: the same | 300 (1e-3) | 3000 (1e-3) | {} | {} | {} + {} |"),
    # the proving ground's floors: the same 16 held-out clips as the recipe search
    Quote("docs/learning.md", "each clip's temporal mean shown at every frame: **{} dB**; the last "
                              "observed frame (8) copied onto frames 9-16: **{} dB**",
          "docs/demo/recipe/base.json", ("floors/floor_temporal_mean_psnr",
                                         "floors/copy_last_psnr")),
    Quote("docs/transformer.md", "floors {} (temporal mean) and {} (copy-last)",
          "docs/demo/recipe/base.json", ("floors/floor_temporal_mean_psnr",
                                         "floors/copy_last_psnr")),
    # the CPU-scale replication summary (docs/replication/*/summary.json)
    Quote("docs/studies.md", "(frames 9-16 from 0-8: {} dB against {} for copy-last", TABLE4,
          (f"mean:{PR}pred_psnr", f"mean:{BASE}copy_last_psnr")),
    Quote("docs/studies.md", "and {} for the baseline)", TABLE4, (f"mean:{BASE}pred_psnr",)),
    Quote("docs/studies.md", "({} -> {} dB), which decoder fine-tuning halves ({})", TABLE4,
          (f"mean:{BASE}recon_psnr", f"mean:{PR}recon_psnr", f"mean:{DEC}recon_psnr")),
    Quote("docs/studies.md", "(gFVD {} +- {} baseline, {} +- {} with PR, {} +- {} full recipe",
          TABLE4, _per_seed(BASE, "gfvd") + _per_seed(PR, "gfvd") + _per_seed(DEC, "gfvd")),
    Quote("docs/studies.md", "(gFVD {} / {} / {} +- {} for r = 50 / 75 / 100 %)", TABLE5,
          ("mean:results/r = 50%/*/gfvd", "mean:results/r = 75%/*/gfvd",
           "mean:results/r = 100%/*/gfvd", "std:results/r = 100%/*/gfvd")),
    Quote("docs/studies.md", "less dropping reconstructs better ({} vs {} dB)", TABLE5,
          ("mean:results/r = 50%/*/recon_psnr", "mean:results/r = 100%/*/recon_psnr")),
    Quote("docs/studies.md", "all 14 VAEs: r = +{} (p = {})", FIG5A,
          ("correlation/r", "correlation/p")),
    Quote("docs/studies.md", "over the 12 VAEs of Table 4 alone, r = +{}, p = {}", TABLE4,
          ("correlation/r", "correlation/p")),
    Quote("docs/studies.md", "with PR gFVD falls with more VAE data ({} -> {} -> {}, {} per "
                             "decade)", FIG5B,
          ("results/r = 1, 24 clips/0/gfvd", "results/r = 1, 160 clips/0/gfvd",
           "results/r = 1, 1400 clips/0/gfvd", "slopes/r = 1/slope_per_decade")),
    Quote("docs/studies.md", "without PR it does not ({} -> {} -> {}, +{} per decade)", FIG5B,
          ("results/r = 0, 24 clips/0/gfvd", "results/r = 0, 160 clips/0/gfvd",
           "results/r = 0, 1400 clips/0/gfvd", "slopes/r = 0/slope_per_decade")),
    Quote("docs/replication.md", "**inconclusive**: Pearson r = +{} (p = {}, 12 VAEs)", TABLE4,
          ("correlation/r", "correlation/p")),
    Quote("docs/replication.md", "**not reproduced**: median {} (PV-VAE) vs {} (baseline)",
          TABLE4, (f"mean:{DEC}ltd_adjacent_median", f"mean:{BASE}ltd_adjacent_median")),
    Quote("docs/replication.md", "| Gaussian | {} +- {} | {} +- {} | {} +- {} | {} +- {} |",
          TABLE6, _per_seed("results/Gaussian/*/", "gfvd", "gkvd", "pred_psnr", "recon_psnr")),
    Quote("docs/replication.md", "| learnable | {} +- {} | {} +- {} | {} +- {} | {} +- {} |",
          TABLE6, _per_seed("results/learnable/*/", "gfvd", "gkvd", "pred_psnr", "recon_psnr")),
    *_table_rows(CURVE, LATTE_ROW, ((3, "1,000 steps"), (0, "2,000 steps (the study's recipe)"),
                                    (1, "4,000 steps"), (2, "lr 1e-3, 2,000 steps"))),
    *_table_rows(GUIDANCE, LATTE_ROW[1:], enumerate(("1 (no guidance)", "2", "4", "6", "8"))),
    *_table_rows(RECIPE, LATTE_ROW, enumerate(("4,000 steps (the rerun's recipe)",
                                               "logit-normal t, 4,000 steps", "8,000 steps"))),
    *_table_rows(RECIPE_WIDE, ("latte_seconds", "gfvd", "vae_fvd", *LATTE_ROW[2:]),
                 enumerate(("hidden 256, 4,000 steps | 9.8M",
                            "4,096 cached clips, 4,000 steps | 2.5M"))),
    *_table_rows(VAE_MOTION, ("acceleration", "objects", "inner_own_colours",
                              "inner_real_colours", "group_end_real_colours", "boundary_ratio"),
                 enumerate(("real clips", "baseline (Table 4 rerun, seed 3)",
                            "+ motion-aware objective (seed 3)", "the demo model"))),
    Quote("docs/replication.md", "the VAE's reconstructions FVD {}, domain FVD\n{};",
          GUIDANCE, ("rows/0/vae_fvd", "rows/0/vae_domain_fvd")),
    Quote("docs/replication.md",
          "| + motion-aware objective (0) | 23.28 | {} | {} | {} | {} | {} |", CURVE,
          tuple(f"rows/0/{k}" for k in ("vae_fvd", "vae_domain_fvd", "vae_acceleration",
                                        "vae_persistence", "vae_foreground"))),
)


@cache
def _load(source: str):
    return json.loads((ROOT / source).read_text())


@cache
def _page(doc: str) -> str:
    """The page with every run of whitespace as one space (quotes may wrap across lines)."""
    return " ".join((ROOT / doc).read_text().split())


def _walk(node, parts: list[str]) -> list:
    """The values at the key path ``parts`` below ``node`` (``*`` collects every child)."""
    if not parts:
        return [node]
    head, rest = parts[0], parts[1:]
    if head == "*":
        children = node.values() if isinstance(node, dict) else node
        return [v for child in children for v in _walk(child, rest)]
    return _walk(node[int(head)] if isinstance(node, list) else node[head], rest)


def value(data, key: str) -> float:
    """The number that key path ``key`` names in ``data`` (the grammar in the module doc)."""
    if " - " in key:
        left, right = key.split(" - ")
        return value(data, left) - value(data, right)
    reduce, _, path = key.rpartition(":")
    values = _walk(data, path.split("/"))
    if reduce:
        return {"mean": statistics.mean, "std": statistics.stdev}[reduce](values)
    (single,) = values
    return float(single)


def test_value_key_grammar():
    data = {"a": [{"x": 1.0}, {"x": 3.0}], "b": {"c": 5}}
    assert value(data, "b/c") == 5.0
    assert value(data, "a/-1/x") == 3.0
    assert value(data, "mean:a/*/x") == 2.0
    assert value(data, "std:a/*/x") == pytest.approx(2**0.5)
    assert value(data, "b/c - a/0/x") == 4.0


def test_enough_headline_numbers_are_checked():
    assert sum(len(q.keys) for q in QUOTES) >= 10
    assert len({q.doc for q in QUOTES}) >= 3


@pytest.mark.parametrize("quote", QUOTES, ids=lambda q: f"{Path(q.doc).name}:{q.text[:40]}")
def test_doc_number_equals_its_json(quote):
    assert quote.text.count("{}") == len(quote.keys), quote
    parts = [re.escape(re.sub(r"\s+", " ", part)) for part in quote.text.split("{}")]
    found = re.findall(NUMBER.join(parts), _page(quote.doc))
    assert found, f"{quote.doc} no longer quotes: {quote.text!r} (update QUOTES)"
    data = _load(quote.source)
    for printed in found:
        printed = (printed,) if isinstance(printed, str) else printed
        for number, key in zip(printed, quote.keys, strict=True):
            decimals = len(number.partition(".")[2])
            measured = f"{value(data, key):.{decimals}f}"
            assert number == measured, (
                f"{quote.doc} prints {number} for {quote.source} {key}, which is {measured}"
            )
