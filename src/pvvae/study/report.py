"""The report of a study: tables in the paper's layout, figures, and a verdict per claim.

Reads every ``result.json`` the study has so far (a partial study gives a partial report)
and writes ``ROOT/<study>/report.md``, ``summary.json`` and the figures:

* the table of the report kind (mean +- std over seeds; ``n`` = seeds measured);
* ``ltd_hist.png`` (Figure 5c: per-clip adjacent LTD, pooled over seeds, median marked) and
  ``ltd_curve.png`` (Figure 5d: LTD_d / LTD_1 against the interval d, mean over seeds);
* ``correlation.png`` (Figure 5a: prediction PSNR against gFVD, every pair, least-squares
  line, Pearson r) and, for ``scaling`` studies, ``scaling.png`` (Figure 5b).

Claims. A study file's ``report.paper`` gives the paper's numbers per variant; for each pair
of measured variants next in the paper's order (by gFVD, and by PSNR where given; the
samples' domain FVD, persistence, acceleration and class accuracy follow gFVD's order where
measured) the report says whether the order is **reproduced** (the means differ in the
paper's direction by more than the sum of their standard errors), **not reproduced** (the
opposite direction by more than that) or **inconclusive** (otherwise, or a single seed).
Correlation: reproduced when Pearson r < 0 with p < 0.05 (higher prediction PSNR, lower
gFVD), not reproduced when r > 0 with p < 0.05.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from pvvae.eval.report import fmt, markdown_table, mean_std
from pvvae.study.pipeline import archived, pair_dir, portable
from pvvae.study.report_figures import correlation_figure, ltd_figures, scaling_figure
from pvvae.study.spec import StudySpec, select

METRICS = {  # key -> (column title, lower is better)
    "gfvd": ("gFVD", True),
    "gkvd": ("KVD", True),
    "recon_psnr": ("PSNR", False),
    "recon_ssim": ("SSIM", False),
    "pred_psnr": ("pred. PSNR", False),
    "copy_last_psnr": ("copy-last PSNR", False),
    "ltd_adjacent_median": ("LTD_1 median", True),
    # what the samples' motion says about the same order (eval.coherence, the domain network)
    "gen_domain_fvd": ("domain gFVD", True),
    # the generator's distance beyond its own decoder's (derived: :func:`with_ratios`)
    "gfvd_over_vae_fvd": ("gFVD / VAE recon FVD", True),
    "gen_persistence": ("sample persistence", False),
    "gen_acceleration": ("sample acceleration", True),  # every VAE's samples are above real
    "class_accuracy": ("sample class accuracy", False),
}
# result key -> the paper's number that orders the variants for it; the generation keys past
# gFVD are optional (a study measured before them has no such claims)
OPTIONAL = ("gfvd_over_vae_fvd", "gen_domain_fvd", "gen_persistence", "gen_acceleration",
            "class_accuracy")
ORDERED_BY = {"gfvd": "gfvd", "recon_psnr": "psnr", **{key: "gfvd" for key in OPTIONAL}}
PROBES = {  # result key -> (column title, lower is better, paper Table 3 w/o PR -> w/ PR)
    "probe_flow_epe": ("flow EPE", True, "5.92 -> 5.18"),
    "probe_next_mse": ("next-frame MSE", True, "0.0314 -> 0.0289"),
    "probe_track_auc": ("tracking AUC", False, "70.95 -> 76.99"),
}
COLUMNS = {
    "table4": ["gfvd", "gkvd", "recon_psnr", "recon_ssim", "pred_psnr", "copy_last_psnr"],
    "generation": ["gfvd", "gkvd", "pred_psnr", "recon_psnr"],
    "correlation": ["pred_psnr", "gfvd", "gkvd", "recon_psnr"],
    "scaling": ["gfvd", "gkvd", "pred_psnr", "recon_psnr"],
}


def collect(spec: StudySpec) -> tuple[dict[str, list[dict]], list[str]]:
    """Variant name -> the results of its seeds measured so far (file order), and the pairs
    left out as stale: their result was measured with other steps than the study file now
    asks for (a changed setting; ``pvvae study run`` brings them up to date)."""
    from pvvae.study.pipeline import plan_study

    out: dict[str, list[dict]] = {v.name: [] for v in spec.variants}
    stale = []
    for row, (variant, seed) in zip(plan_study(spec, select(spec, None, None)),
                                    select(spec, None, None)):
        path = pair_dir(spec, variant, seed) / "result.json"
        planned = {step_id for step_id, _ in row["steps"]}
        if not path.is_file():
            if (result := archived(spec, variant, seed, planned)) is not None:
                out[variant.name].append(result)
            continue
        result = json.loads(path.read_text())
        if not set(result["steps"].values()) <= planned:
            stale.append(f"{variant.name}, seed {seed}")
            continue
        out[variant.name].append(result)
    return {name: [with_ratios(r) for r in rs] for name, rs in out.items()}, stale


def with_ratios(result: dict) -> dict:
    """``result`` with ``gfvd_over_vae_fvd`` (gFVD over its VAE's reconstruction FVD on the
    same protocol) where both were measured: how far the generator sits beyond the ceiling
    its decoder sets, so that a better decoder alone does not win the gFVD claim."""
    gfvd, vae = result.get("gfvd"), result.get("vae_fvd")
    if gfvd is None or not vae:
        return result
    return {**result, "gfvd_over_vae_fvd": float(gfvd) / float(vae)}


def cell(results: list[dict], key: str, spec: str = ".2f") -> str:
    mean, std, n = mean_std([r.get(key) for r in results])
    if mean is None:
        return "-"
    return fmt(mean, spec) + (f" +- {fmt(std, spec)}" if std is not None else "")


def table(spec: StudySpec, results: dict[str, list[dict]]) -> str:
    """The study's table: one row per variant, mean +- std over seeds, the paper's gFVD."""
    keys = COLUMNS[spec.report.kind]
    headers = ["variant", *[METRICS[k][0] for k in keys], "n", "paper gFVD"]
    rows = []
    for variant in spec.variants:
        rs = results[variant.name]
        paper = spec.report.paper.get(variant.name, {}).get("gfvd")
        precision = {"recon_ssim": ".3f", "gkvd": ".1f", "gfvd": ".1f"}
        rows.append([variant.name, *[cell(rs, k, precision.get(k, ".2f")) for k in keys],
                     len(rs), fmt(paper) if paper is not None else "-"])
    return markdown_table(headers, rows)


CEILING = ("acceleration", "persistence", "foreground")  # coherence columns of the table


def ceiling_table(spec: StudySpec, results: dict[str, list[dict]]) -> str:
    """gFVD beside its real-real floor and its VAE's reconstruction FVD on the same
    protocol (the ``floor`` and ``ceiling`` steps), and the coherence of the samples, the
    reconstructions and the real clips; the domain columns where measured. Fields a result
    does not have (a study measured before these steps) show as ``-``."""
    measured = [r for rs in results.values() for r in rs]
    domain = any("gen_domain_fvd" in r or "vae_domain_fvd" in r for r in measured)
    headers = ["variant", "gFVD", "real-real floor", "VAE recon FVD", "gFVD / VAE"]
    headers += ["domain FVD gen / VAE", "domain floor", "class acc."] if domain else []
    headers += [f"{k} gen / VAE / real" for k in CEILING] + ["n"]
    rows = []
    for variant in spec.variants:
        rs = results[variant.name]
        row = [variant.name, cell(rs, "gfvd", ".1f"), _floor_cell(rs, "gfvd_floor"),
               cell(rs, "vae_fvd", ".1f"), cell(rs, "gfvd_over_vae_fvd", ".2f")]
        if domain:
            row += [f"{cell(rs, 'gen_domain_fvd', '.1f')} / {cell(rs, 'vae_domain_fvd', '.1f')}",
                    _floor_cell(rs, "domain_floor"), cell(rs, "class_accuracy", ".2f")]
        row += [" / ".join(cell(rs, f"{who}_{k}", ".3g") for who in ("gen", "vae", "real"))
                for k in CEILING]
        rows.append([*row, len(rs)])
    return markdown_table(headers, rows)


def _floor_cell(results: list[dict], key: str) -> str:
    """A floor's mean over seeds with the split std of the first result (floors are shared
    by the root, so every seed has the same one)."""
    mean = mean_std([r.get(key) for r in results])[0]
    std = next((r.get(key + "_std") for r in results if r.get(key + "_std") is not None), None)
    if mean is None:
        return "-"
    return fmt(mean, ".1f") + (f" +- {fmt(std, '.1f')}" if std is not None else "")


def probe_table(spec: StudySpec, results: dict[str, list[dict]]) -> str | None:
    """Paper Table 3 layout: probe metric (mean +- std) and its trivial baseline per variant."""
    keys = [k for k in PROBES if any(k in r for rs in results.values() for r in rs)]
    if not keys:
        return None
    headers = ["variant"] + [f"{PROBES[k][0]} (baseline)" for k in keys] + ["n"]
    pair = lambda rs, k: f"{cell(rs, k, '.4f')} ({cell(rs, k + '_baseline', '.4f')})"  # noqa: E731
    rows = [[v.name, *[pair(results[v.name], k) for k in keys], len(results[v.name])]
            for v in spec.variants if results[v.name]]
    return markdown_table(headers, rows)


def probe_claims(spec: StudySpec, results: dict[str, list[dict]]) -> list[dict]:
    """Paper Table 3: the variant with PR probes better than the one without
    (``report.compare``, default the last and first)."""
    if spec.compared() is None:
        return []
    first, last = spec.compared()
    claims = []
    for key, (title, lower, paper) in PROBES.items():
        a = [r.get(key) for r in results[first]]
        b = [r.get(key) for r in results[last]]
        if mean_std(a)[0] is None or mean_std(b)[0] is None:
            continue
        claims.append({"claim": f"Table 3: {title} better for {last} than {first} (paper: "
                                f"{paper})", "verdict": compare(a, b, lower),
                       "measured": f"{cell(results[last], key, '.4f')} vs "
                                   f"{cell(results[first], key, '.4f')}"})
    return claims


# ------------------------------------------------------------------------------ claims
def compare(a: list[float], b: list[float], lower_better: bool) -> str:
    """Verdict on "b is better than a" (see the module docstring)."""
    ma, sa, na = mean_std(a)
    mb, sb, nb = mean_std(b)
    if ma is None or mb is None or sa is None or sb is None:
        return "inconclusive"
    margin = sa / math.sqrt(na) + sb / math.sqrt(nb)
    gain = (ma - mb) if lower_better else (mb - ma)
    if gain > margin:
        return "reproduced"
    if gain < -margin:
        return "not reproduced"
    return "inconclusive"


def relative_gain(worse: list, better: list, lower_better: bool) -> dict | None:
    """How much ``better`` improves on ``worse``, in percent of ``worse``'s mean, with a 95%
    interval (Welch's t on the difference of means, over ``worse``'s mean taken as exact);
    None with fewer than 2 values on a side. Positive: the paper's direction."""
    from scipy import stats

    (ma, sa, na), (mb, sb, nb) = mean_std(worse), mean_std(better)
    if sa is None or sb is None or not ma:
        return None
    va, vb = sa * sa / na, sb * sb / nb
    se = math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va * va / (na - 1) + vb * vb / (nb - 1)) if se else na + nb - 2
    half = float(stats.t.ppf(0.975, dof)) * se
    diff = (ma - mb) if lower_better else (mb - ma)
    scale = 100.0 / abs(ma)
    return {"gain": diff * scale, "low": (diff - half) * scale, "high": (diff + half) * scale}


def gain_text(gain: dict | None, paper: float | None = None) -> str:
    """``-7.9% [-11.6, -4.2]`` and, beside the paper's gain, whether the interval excludes it."""
    if gain is None:
        return "-"
    text = f"{gain['gain']:+.1f}% [{gain['low']:+.1f}, {gain['high']:+.1f}]"
    if paper is None:
        return text
    inside = gain["low"] <= paper <= gain["high"]
    return f"{text}; paper {paper:+.1f}% ({'inside' if inside else 'outside'})"


def order_claims(spec: StudySpec, results: dict[str, list[dict]]) -> list[dict]:
    """Each pair of measured variants next in the paper's order, for gFVD and PSNR, and for
    the samples' domain FVD, persistence, acceleration and class accuracy in gFVD's order
    (where measured). A variant with no result yet is passed over, so a partial study
    compares the rows it has."""
    claims = []
    for key, paper_key in ORDERED_BY.items():
        ranked = [v.name for v in spec.variants
                  if paper_key in spec.report.paper.get(v.name, {}) and results[v.name]]
        lower = METRICS[key][1]
        precision = ".3g" if key in ("gen_persistence", "gen_acceleration") else ".2f"
        precision = ".1f" if key in ("gfvd", "gen_domain_fvd") else precision
        for a, b in zip(ranked, ranked[1:]):
            pa, pb = spec.report.paper[a][paper_key], spec.report.paper[b][paper_key]
            if pa == pb:
                continue
            worse, better = (a, b) if (pb < pa) == (paper_key == "gfvd") else (b, a)
            va = [r.get(key) for r in results[worse]]
            vb = [r.get(key) for r in results[better]]
            if key in OPTIONAL and (mean_std(va)[0] is None or mean_std(vb)[0] is None):
                continue
            paper = None
            if key == "gfvd" or (key == "recon_psnr" and paper_key == "psnr"):
                pw, pb_ = spec.report.paper[worse][paper_key], spec.report.paper[better][paper_key]
                paper = 100.0 * ((pw - pb_) if lower else (pb_ - pw)) / abs(pw)
            gain = relative_gain(va, vb, lower)
            claims.append({
                "gain": gain, "paper_gain": paper, "gain_text": gain_text(gain, paper),
                "claim": f"{METRICS[key][0]}: {better} better than {worse} (paper "
                         f"{'gFVD' if paper_key == 'gfvd' else 'PSNR'}: "
                         f"{spec.report.paper[better][paper_key]} vs "
                         f"{spec.report.paper[worse][paper_key]})",
                "verdict": compare(va, vb, lower),
                "measured": f"{cell(results[better], key, precision)} vs "
                            f"{cell(results[worse], key, precision)}",
            })
    return claims


def correlation(results: dict[str, list[dict]]) -> dict | None:
    """Pearson r (and p) of prediction PSNR against gFVD over every measured pair (None with
    fewer than 3 pairs, or where either is constant)."""
    from scipy import stats

    points = [(r["pred_psnr"], r["gfvd"]) for rs in results.values() for r in rs
              if r.get("pred_psnr") is not None and r.get("gfvd") is not None]
    x, y = np.array(points).T if points else (np.zeros(0), np.zeros(0))
    if len(points) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:  # r undefined
        return None
    r, p = stats.pearsonr(x, y)
    slope, intercept = np.polyfit(x, y, 1)
    verdict = "reproduced" if r < 0 and p < 0.05 else (
        "not reproduced" if r > 0 and p < 0.05 else "inconclusive")
    return {"n": len(points), "r": float(r), "p": float(p), "slope": float(slope),
            "intercept": float(intercept), "verdict": verdict,
            "points": [list(map(float, pt)) for pt in points]}


def scaling_slopes(spec: StudySpec, results: dict[str, list[dict]]) -> dict[str, dict]:
    """Per group: least-squares slope of gFVD against log10(x) over every measured pair."""
    out = {}
    for group in dict.fromkeys(v.group for v in spec.variants):
        pts = [(math.log10(v.x), r["gfvd"]) for v in spec.variants if v.group == group
               for r in results[v.name] if v.x and r.get("gfvd") is not None]
        if len({p[0] for p in pts}) >= 2:
            x, y = np.array(pts).T
            out[group] = {"slope_per_decade": float(np.polyfit(x, y, 1)[0]), "n": len(pts)}
    return out


def ltd_claims(spec: StudySpec, results: dict[str, list[dict]]) -> list[dict]:
    """Figure 5c/5d for the variants without and with PR (``report.compare``, default the
    first and last: the baseline and the full model)."""
    if spec.compared() is None:
        return []
    first, last = spec.compared()
    if not results[first] or not results[last]:
        return []
    curve = lambda name: np.nanmean(  # noqa: E731
        [r["ltd_normalized"] for r in results[name] if r.get("ltd_normalized")], axis=0)
    monotonic = lambda c: bool(np.all(np.diff(c) > 0))  # noqa: E731
    return [
        {"claim": f"Figure 5c: adjacent LTD median lower for {last} than {first}",
         "verdict": compare([r["ltd_adjacent_median"] for r in results[first]],
                            [r["ltd_adjacent_median"] for r in results[last]], True),
         "measured": f"{cell(results[last], 'ltd_adjacent_median', '.3f')} vs "
                     f"{cell(results[first], 'ltd_adjacent_median', '.3f')}"},
        {"claim": f"Figure 5d: normalised LTD rises monotonically for {last}, not for {first}",
         "verdict": "reproduced" if monotonic(curve(last)) and not monotonic(curve(first))
         else "not reproduced" if not monotonic(curve(last)) else "inconclusive",
         "measured": f"{last}: {np.round(curve(last), 3).tolist()}; "
                     f"{first}: {np.round(curve(first), 3).tolist()}"},
    ]


# ------------------------------------------------------------------------------ the report
def protocol_line(spec: StudySpec, results: dict[str, list[dict]]) -> str:
    m = spec.measure
    seconds = sum(sum(r["seconds"].values()) for rs in results.values() for r in rs)
    return (
        f"Protocol: {m.frames}x{m.size}x{m.size} clips of `{m.data}`; reconstruction on "
        f"{m.recon_clips} and prediction on {m.pred_clips} held-out clips (stream "
        f"{m.heldout_seed}), LTD on {m.ltd_clips}; Latte trained on the latents of "
        f"{m.cache_clips} clips; gFVD / KVD: {m.fvd_clips} generated against {m.fvd_clips} "
        f"real held-out clips (stream {m.fvd_real_seed}), first 16 frames of {m.size}x{m.size} "
        f"clips resized to 224x224 for the Kinetics-400 I3D, {m.sample_steps} {m.sampler} "
        f"steps. Compare gFVD only at these settings. Step time of the pairs shown: "
        f"{seconds / 3600:.2f} h (a step shared by several pairs is counted in each)."
    )


def write_report(spec: StudySpec, out: str | Path | None = None) -> Path:
    """Write the report of the study (whatever is measured so far) into ``out`` (default
    ``ROOT/<study>``, e.g. ``docs/replication/table4`` to publish it); returns report.md."""
    out = Path(out) if out is not None else Path(spec.root) / spec.name
    out.mkdir(parents=True, exist_ok=True)
    results, stale = collect(spec)
    claims = order_claims(spec, results) + ltd_claims(spec, results) + probe_claims(spec, results)
    figures = ltd_figures(spec, results, out)
    corr = correlation(results)
    if corr is not None:
        figures.append(correlation_figure(corr, results, out))
        claims.append({"claim": "Figure 5a: higher prediction PSNR, lower gFVD",
                       "verdict": corr["verdict"],
                       "measured": f"Pearson r = {corr['r']:.2f}, p = {corr['p']:.2g}, "
                                   f"n = {corr['n']}"})
    slopes = scaling_slopes(spec, results) if spec.report.kind == "scaling" else {}
    if slopes:
        figures.append(scaling_figure(spec, results, out))
    lines = [f"# {spec.title or spec.name}", "", protocol_line(spec, results), ""]
    if stale:
        lines += [f"Left out, measured with settings the study file no longer has (rerun "
                  f"`pvvae study run` to update them): {'; '.join(stale)}.", ""]
    lines += [table(spec, results), ""]
    lines += ["Each gFVD beside its ceilings: the FVD of two disjoint real sets of "
              "as many clips (the floor, mean +- std over splits) and the FVD of its VAE's "
              "reconstructions of real clips on the same protocol; object-motion coherence "
              "(pvvae.eval.coherence) of the samples, the reconstructions and the real clips "
              "(`-`: not measured):", "", ceiling_table(spec, results), ""]
    probes = probe_table(spec, results)
    if probes:
        lines += ["Probing (paper Table 3 layout; in brackets the task's trivial baseline: zero "
                  "flow, copy last frame, static points):", "", probes, ""]
    if slopes:
        lines += ["gFVD slope per decade of " + (spec.report.x_label or "x") + ": "
                  + "; ".join(f"{g}: {s['slope_per_decade']:+.1f} (n = {s['n']})"
                              for g, s in slopes.items()), ""]
    lines += ["Gain: how much the row the paper ranks better improves on the other, in percent "
              "of the other's mean, with a 95% interval over seeds (Welch's t); beside it the "
              "paper's gain and whether the interval excludes it.", ""]
    lines += ["| claim | verdict | measured | gain [95% interval] |", "|---|---|---|---|"]
    lines += [f"| {c['claim']} | **{c['verdict']}** | {c['measured']} | "
              f"{c.get('gain_text', '-')} |" for c in claims]
    lines += ["", *[f"![{f}]({f})" for f in figures], ""]
    (out / "report.md").write_text("\n".join(lines))
    summary = {"study": spec.name, "claims": claims, "correlation": corr, "slopes": slopes,
               "results": {name: [portable(r) for r in rs] for name, rs in results.items()}}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return out / "report.md"

