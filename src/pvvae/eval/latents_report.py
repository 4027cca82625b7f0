"""The report text of ``pvvae eval latents``: one VAE's ``report.md`` and the comparison of
every VAE analysed into one folder (paper section 4.3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pvvae.eval.latents_figures import ltd_figures
from pvvae.eval.report import fmt, image_link, markdown_table, read_json, write_json


def report_text(out_dir: Path, summary: dict, figures: dict) -> str:
    """``report.md`` of one VAE: its summary (:func:`pvvae.eval.latents.analyze_latents`) with
    the figures (name -> path) embedded."""
    vae, stats, ltd = summary["vae"], summary["stats"], summary["ltd"]
    lines = [
        f"# Latent diagnostics: {vae['label']}",
        "",
        f"- VAE: `{vae['source']}` ({vae['name']}, {vae['latent_layout']}, "
        f"{vae['parameters'] / 1e6:.1f}M parameters, {vae['dtype']} on {vae['device']})",
        f"- data: {summary['data']}; {summary['num_clips']} clips of "
        f"{summary['config']['num_frames']}×{summary['config']['resolution']}"
        f"×{summary['config']['resolution']}",
        f"- latents: posterior mean; LTD and PCA on {summary['latent_space']} latents",
        *[f"- note: {note}" for note in summary["notes"]],
        "",
        "## Latent statistics (raw latents)",
        "",
        _stats_table(stats),
        "",
        "Full per-channel values: `latent_stats.json` (`latents_mean`, `latents_std`).",
        "",
        "## Latent Temporal Distance (paper section 4.3, Fig. 5c/5d)",
        "",
        f"Definition: {ltd.get('definition', ltd.get('note'))}.",
        "",
    ]
    if ltd["intervals"]:
        rows = [
            [d, fmt(m, ".4g"), fmt(md, ".4g"), fmt(s, ".4g"), fmt(n, ".3f") if n else "n/a"]
            for d, m, md, s, n in zip(
                ltd["intervals"], ltd["mean"], ltd["median"], ltd["std"],
                ltd["normalized_mean"] or [None] * len(ltd["mean"]),
            )
        ]
        lines += [markdown_table(["d", "mean", "median", "std", "mean / mean(d=1)"], rows), ""]
    lines += [_image(figures, key, out_dir) + "\n" for key in ("ltd_hist", "ltd_curve")
              if key in figures]
    lines += ["", "## PCA of latent channels (paper Fig. 4)", ""]
    ratios = summary["pca"]["explained_variance_ratio"]
    if ratios:
        share = np.mean([sum(r) for r in ratios])
        lines += [f"Top-3 components explain {100 * share:.1f}% of the latent variance "
                  "(mean over the clips shown).", "", _image(figures, "pca", out_dir)]
    lines += ["", "## Prediction (paper Fig. 6)", "", *_prediction_lines(summary, figures, out_dir)]
    return "\n".join(lines) + "\n"


def _stats_table(stats: dict) -> str:
    mean, std = np.asarray(stats["latents_mean"]), np.asarray(stats["latents_std"])
    rows = [
        [name, fmt(v.min(), ".4g"), fmt(float(np.median(v)), ".4g"), fmt(v.max(), ".4g")]
        for name, v in (("mean", mean), ("std", std))
    ]
    return markdown_table(["over channels", "min", "median", "max"], rows)


def _prediction_lines(summary: dict, figures: dict, out_dir: Path) -> list[str]:
    pred = summary["prediction"]
    if pred is None:
        return ["Skipped: " + "; ".join(summary["notes"]) if summary["notes"] else "Skipped."]
    rows = [
        ["prediction", fmt(pred["psnr"]), fmt(pred["ssim"], ".3f")],
        ["copy last observed frame", fmt(pred["baseline_psnr"]), fmt(pred["baseline_ssim"], ".3f")],
        [f"the same, Gaussian-blurred (best sigma {pred['blur_baseline_sigma']:g} px)",
         fmt(pred["blur_baseline_psnr"]), ""],
    ]
    if pred.get("pred_object_position") is not None:
        rows[0].append(fmt(pred["pred_object_position"]))
        rows[1].append(fmt(pred["copy_last_object_position"]))
        rows[2].append("")
    return [
        f"Observe {pred['observed_frames']} frames, predict {pred['predicted_frames']} "
        f"({pred['num_clips']} clips); reconstruction PSNR of the observed part "
        f"{pred['observed_psnr']:.2f} dB.",
        "",
        markdown_table(["predicted frames", "PSNR↑", "SSIM↑",
                        *(["shape position error (px)↓"] if len(rows[0]) > 3 else [])], rows),
        "",
        _image(figures, "prediction_grid", out_dir),
        "",
        _image(figures, "prediction_psnr", out_dir),
    ]


def _image(figures: dict, key: str, out_dir: Path) -> str:
    return image_link(figures[key], out_dir, key) if key in figures else ""


def write_latents_report(out_dir: str | Path) -> Path:
    """Compare every VAE analysed into ``out_dir/*/`` (paper Fig. 5c/5d overlay several models).

    Writes ``comparison.json``, overlaid ``ltd_hist.png`` / ``ltd_curve.png`` and ``report.md``
    with one row per VAE and its PCA and prediction figures.

    Returns:
        The path of report.md.
    """
    out_dir = Path(out_dir)
    runs = [(p.parent, read_json(p)) for p in sorted(out_dir.glob("*/summary.json"))]
    if not runs:
        raise FileNotFoundError(f"no */summary.json under {out_dir}")
    rows = [_comparison_row(folder, summary) for folder, summary in runs]
    write_json(out_dir / "comparison.json", rows)
    figures = ltd_figures(out_dir, {s["vae"]["label"]: s["ltd"] for _, s in runs})
    (out_dir / "report.md").write_text(_comparison_text(out_dir, runs, rows, figures))
    return out_dir / "report.md"


def _comparison_row(folder: Path, summary: dict) -> dict:
    """The numbers of one VAE that the comparison table shows."""
    ltd, pred, pca = summary["ltd"], summary["prediction"], summary["pca"]
    ratios = pca["explained_variance_ratio"]
    return {
        "label": summary["vae"]["label"],
        "folder": folder.name,
        "latent_layout": summary["vae"]["latent_layout"],
        "latent_space": summary["latent_space"],
        "num_clips": summary["num_clips"],
        "ltd1_median": ltd.get("adjacent_median"),
        "ltd_last_over_ltd1": (ltd["normalized_mean"] or [None])[-1] if ltd["intervals"] else None,
        "pca_top3_share": float(np.mean([sum(r) for r in ratios])) if ratios else None,
        "pred_psnr": pred["psnr"] if pred else None,
        "copy_last_psnr": pred["baseline_psnr"] if pred else None,
    }


def _comparison_text(out_dir: Path, runs: list, rows: list[dict], figures: dict) -> str:
    cfg = runs[0][1]["config"]
    table = markdown_table(
        ["Method", "Latent", "latents", "clips", "LTD₁ median", "LTD_max / LTD₁",
         "PCA top-3", "pred PSNR", "copy-last PSNR"],
        [[r["label"], r["latent_layout"], r["latent_space"], r["num_clips"],
          fmt(r["ltd1_median"], ".4g"), fmt(r["ltd_last_over_ltd1"], ".3f"),
          fmt(r["pca_top3_share"], ".1%"), fmt(r["pred_psnr"]), fmt(r["copy_last_psnr"])]
         for r in rows],
    )
    lines = [
        "# Latent diagnostics (paper section 4.3)",
        "",
        f"Clips: {cfg['num_frames']}×{cfg['resolution']}×{cfg['resolution']} of "
        f"{runs[0][1]['data']}. Posterior-mean latents. LTD_d: mean over frame pairs (i, i + d) "
        "and positions of the channel L2 norm of z[:, i + d] - z[:, i]; absolute LTD depends on "
        "each VAE's latent scale and channels (compare the normalised curve across layouts).",
        "",
        table,
        "",
        *[_image(figures, key, out_dir) + "\n" for key in ("ltd_hist", "ltd_curve")
          if key in figures],
    ]
    for folder, summary in runs:
        lines += [f"## {summary['vae']['label']}", "",
                  f"Details: [{folder.name}/report.md]({folder.name}/report.md)", ""]
        lines += [image_link(folder / name, out_dir, name) + "\n"
                  for name in ("pca.png", "prediction_grid.png") if (folder / name).is_file()]
    return "\n".join(lines) + "\n"
