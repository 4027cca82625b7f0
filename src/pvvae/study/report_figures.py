"""The study report's figures (paper Figure 5): the LTD histogram and curve (5c, 5d), gFVD
against prediction PSNR (5a) and gFVD against a scaling axis (5b), written as PNGs beside
``report.md`` by :func:`pvvae.study.report.write_report`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pvvae.eval.report import mean_std
from pvvae.study.spec import StudySpec


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def ltd_figures(spec: StudySpec, results: dict[str, list[dict]], out: Path) -> list[str]:
    """Figure 5c and 5d; returns the file names written."""
    plt = _plt()
    measured = [v.name for v in spec.variants if results[v.name]]
    if not measured:
        return []
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for i, name in enumerate(measured):
        values = [x for r in results[name] for x in r["ltd_adjacent_per_clip"] or []]
        color = f"C{i}"
        ax.hist(values, bins=30, alpha=0.5, color=color, label=name)
        ax.axvline(float(np.median(values)), color=color, linestyle="--")
    ax.set(xlabel="adjacent LTD (normalised latents)", ylabel="clips")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "ltd_hist.png", dpi=90)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for name in measured:
        curves = [r["ltd_normalized"] for r in results[name] if r.get("ltd_normalized")]
        if curves:
            ax.plot(range(1, len(curves[0]) + 1), np.mean(curves, axis=0), marker="o",
                    label=name)
    ax.set(xlabel="latent frame interval d", ylabel="LTD_d / LTD_1")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "ltd_curve.png", dpi=90)
    plt.close(fig)
    return ["ltd_hist.png", "ltd_curve.png"]


def correlation_figure(corr: dict, results: dict[str, list[dict]], out: Path) -> str:
    """Figure 5a: one marker per (variant, seed), the least-squares line."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for i, (name, rs) in enumerate(results.items()):
        pts = [(r["pred_psnr"], r["gfvd"]) for r in rs if r.get("gfvd") is not None]
        if pts:
            ax.scatter(*zip(*pts), color=f"C{i}", label=name)
    xs = np.linspace(min(p[0] for p in corr["points"]), max(p[0] for p in corr["points"]), 10)
    ax.plot(xs, corr["slope"] * xs + corr["intercept"], "k--",
            label=f"fit, r = {corr['r']:.2f} (p = {corr['p']:.2g})")
    ax.set(xlabel="prediction PSNR (dB)", ylabel="gFVD")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "correlation.png", dpi=90)
    plt.close(fig)
    return "correlation.png"


def scaling_figure(spec: StudySpec, results: dict[str, list[dict]], out: Path) -> str:
    """Figure 5b: gFVD (mean +- std over seeds) against ``x`` per group, log x axis."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for group in dict.fromkeys(v.group for v in spec.variants):
        pts = [(v.x, *mean_std([r.get("gfvd") for r in results[v.name]])[:2])
               for v in spec.variants if v.group == group and results[v.name]]
        pts = [p for p in pts if p[1] is not None]
        if pts:
            x, m, s = zip(*pts)
            ax.errorbar(x, m, yerr=[v or 0.0 for v in s], marker="o", capsize=3, label=group)
    ax.set(xscale="log", xlabel=spec.report.x_label or "x", ylabel="gFVD")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "scaling.png", dpi=90)
    plt.close(fig)
    return "scaling.png"
