"""The report of ``pvvae eval recon``: the Table 2 of every VAE evaluated into one folder.

:func:`write_recon_report` reads each ``<vae-folder>/result.json`` (this run's and earlier
ones', so VAEs can be evaluated one at a time into a shared table) and writes ``results.json``,
``table.md`` (paper Table 2 layout), ``psnr_per_clip.png`` and ``report.md``.
"""

from __future__ import annotations

from pathlib import Path

from pvvae.eval.clips import vae_folder_name
from pvvae.eval.plots import histogram_figure, save_figure
from pvvae.eval.report import fmt, image_link, markdown_table, read_json, write_json


def collect_results(out_dir: str | Path) -> list[dict]:
    """The ``result.json`` of every VAE evaluated into ``out_dir``, sorted by label."""
    results = [read_json(p) for p in sorted(Path(out_dir).glob("*/result.json"))]
    return sorted(results, key=lambda r: r["vae"]["label"])


def _table(results: list[dict]) -> str:
    """Markdown table in the layout of paper Table 2 (one resolution group)."""
    labels = [r["vae"]["label"] for r in results]
    rows = []
    for r in results:
        m, vae = r["metrics"], r["vae"]
        label = vae["label"]
        if labels.count(label) > 1:  # e.g. two PV-VAE checkpoints: say which is which
            label = f"{label} ({vae['source']})"
        rows.append([
            label,
            vae["latent_layout"],
            fmt(m["rFVD"]),
            fmt(m["PSNR"]),
            fmt(m["SSIM"], ".3f"),
            fmt(m["LPIPS"], ".3f"),
            fmt(m["ISpeed_it_per_s"]),
            fmt(m["IMem_GiB"]),
        ])
    headers = ["Method", "Latent", "rFVD↓", "PSNR↑", "SSIM↑", "LPIPS↓", "ISpeed (it/s)",
               "IMem (GiB)"]
    return markdown_table(headers, rows)


def write_recon_report(out_dir: str | Path) -> Path:
    """Write ``results.json``, ``table.md``, ``psnr_per_clip.png`` and ``report.md``.

    Rows are all VAEs evaluated into ``out_dir`` (this run's and earlier ones'), so VAEs can be
    evaluated one at a time into a shared table.

    Returns:
        The path of report.md.
    """
    out_dir = Path(out_dir)
    results = collect_results(out_dir)
    if not results:
        raise FileNotFoundError(f"no */result.json under {out_dir}")
    write_json(out_dir / "results.json", [{k: v for k, v in r.items() if k != "per_clip"}
                                          for r in results])
    table = _table(results)
    (out_dir / "table.md").write_text(table + "\n")
    plot = save_figure(
        histogram_figure(
            {r["vae"]["label"]: r["per_clip"]["psnr"] for r in results},
            "PSNR of a clip (dB)",
            "Per-clip reconstruction PSNR",
        ),
        out_dir / "psnr_per_clip.png",
    )
    (out_dir / "report.md").write_text(_report_text(out_dir, results, table, plot))
    return out_dir / "report.md"


def _report_text(out_dir: Path, results: list[dict], table: str, plot: Path) -> str:
    first = results[0]
    p = first["protocol"]
    size = f"{p['num_frames']}×{p['resolution']}×{p['resolution']}"
    lines = [
        "# Reconstruction evaluation (paper Table 2 layout)",
        "",
        f"Clips: {size}, {first['num_clips']} clips of {first['data']}"
        f"{_skipped_note(first)}. "
        "Reconstruction from the posterior mean, clamped to [-1, 1].",
        "",
        f"## {size}",
        "",
        table,
        "",
        "- PSNR / SSIM: per frame in [0, 1], mean over frames and clips (SSIM: Gaussian 11×11, "
        "σ 1.5, valid region). LPIPS: v0.1, mean over frames and clips.",
        "- rFVD: FVD between I3D logits of inputs and reconstructions (StyleGAN-V variant, biased "
        "covariance); rKVD in results.json. Few clips make FVD noisy (the paper uses 2048).",
        "- ISpeed: encode + decode iterations per second of a batch (it/s); IMem: peak CUDA "
        "memory of the VAE (weights, input batch, activations; not measured on the CPU).",
        "",
        image_link(plot, out_dir, "per-clip PSNR"),
        "",
    ]
    shared = {
        key: first["notes"][key]
        for key in first["notes"]
        if all(r["notes"][key] == first["notes"][key] for r in results)
    }
    lines += [f"- {key.upper()}: {note}" for key, note in shared.items()] + [""]
    for r in results:
        lines += _vae_section(out_dir, r, shared)
    return "\n".join(lines) + "\n"


def _skipped_note(result: dict) -> str:
    n = result.get("num_skipped", 0)
    return f" ({n} unreadable file(s) skipped, listed below)" if n else ""


def _vae_section(out_dir: Path, result: dict, shared_notes: dict) -> list[str]:
    vae, m, notes, speed = result["vae"], result["metrics"], result["notes"], result["speed"]
    if speed:
        speed_line = (
            f"{speed['it_per_s']:.3f} it/s = {speed['clips_per_s']:.3f} clips/s on "
            f"{speed['device']}, batch {speed['batch_size']}, {speed['warmup']} warm-up + "
            f"{speed['steps']} timed iterations"
        )
    else:
        speed_line = "not measured"
    lines = [
        f"## {vae['label']}",
        "",
        f"- source: `{vae['source']}`; {vae['name']}, {vae['latent_layout']}, "
        f"{vae['parameters'] / 1e6:.1f}M parameters, {vae['dtype']} on {vae['device']}",
        *[f"- {key.upper()}: {note}" for key, note in notes.items() if key not in shared_notes],
        f"- rKVD: {fmt(m['rKVD'], '.3f')}",
        f"- speed: {speed_line}",
    ]
    if result.get("num_skipped"):
        names = ", ".join(f"`{f}`" for f in result["skipped_files"])
        lines.append(f"- skipped (unreadable, not counted): {result['num_skipped']}: {names}")
    sample = out_dir / vae_folder_name(vae['label'], vae['source']) / "sample.png"
    if sample.is_file():
        lines += ["", image_link(sample, out_dir, f"{vae['label']} sample")]
    return lines + [""]
