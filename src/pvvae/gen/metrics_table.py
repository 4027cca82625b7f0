"""The rows of paper Table 1 (:class:`GenerationMetrics`), their Markdown tables and files.

``pvvae gen eval`` writes ``gen_metrics.json`` (a list of rows) and ``gen_metrics.md``
(:func:`write_results`); :func:`read_results` reads several runs back to combine them into one
table (:func:`table1_markdown`, and :func:`motion_markdown` for the motion columns).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from pvvae.eval.report import markdown_table


@dataclass
class GenerationMetrics:
    """One row of paper Table 1.

    Attributes:
        method: name of the row (e.g. the VAE: "PV-VAE").
        latent_config: ``tTsScC`` of the VAE (e.g. ``t4s16c64``).
        dataset: dataset name of the column group (e.g. "UCF101", "RealEstate10K").
        fvd, kvd: gFVD and KVD.
        is_mean, is_std: Inception Score (None without C3D weights).
        num_fake, num_real, num_frames: protocol sizes.
        notes: free text (e.g. why IS is missing).
        fvd_floor, fvd_floor_std: FVD of real against real at ``num_fake`` clips a side, mean
            and std over random splits (:func:`pvvae.eval.metrics.fvd.fvd_noise_floor`;
            None when not measured).
        coherence, real_coherence: object-motion coherence (:mod:`pvvae.eval.coherence`) of
            the generated and of the real clips (meaningful on proving-ground clips).
        domain_fvd, domain_fvd_floor, domain_fvd_floor_std: the Frechet distance on the
            proving-ground domain network's features (:mod:`pvvae.eval.domain`) and its
            real-real floor (None when not measured).
        class_accuracy: fraction of the class-conditional samples that the domain network
            assigns to the class they were sampled for (None: unconditional or unknown).
    """

    method: str
    latent_config: str
    dataset: str
    fvd: float
    kvd: float
    is_mean: float | None
    is_std: float | None
    num_fake: int
    num_real: int
    num_frames: int
    notes: str = ""
    fvd_floor: float | None = None
    fvd_floor_std: float | None = None
    coherence: dict | None = None
    real_coherence: dict | None = None
    domain_fvd: float | None = None
    domain_fvd_floor: float | None = None
    domain_fvd_floor_std: float | None = None
    class_accuracy: float | None = None


def _fmt(value: float | None, std: float | None = None) -> str:
    """Two decimals (``value ± std`` with a std); ``-`` where not measured."""
    if value is None:
        return "-"
    return f"{value:.2f}" if std is None else f"{value:.2f} ± {std:.2f}"


def table1_markdown(rows: Sequence[GenerationMetrics]) -> str:
    """Markdown table in the layout of paper Table 1 (one column group per dataset).

    Columns: Method, Latent config, then per dataset in first-seen order FVD, KVD and, for
    datasets where some row has IS, IS. Missing cells are ``-``.
    """
    datasets: list[str] = []
    for r in rows:
        if r.dataset not in datasets:
            datasets.append(r.dataset)
    has_is = {d: any(r.is_mean is not None for r in rows if r.dataset == d) for d in datasets}
    metrics = {d: ["FVD ↓", "KVD ↓"] + (["IS ↑"] if has_is[d] else []) for d in datasets}
    top = ["Method", "Latent config"]
    sub = ["", ""]
    for d in datasets:
        top += [d or "-"] + [""] * (len(metrics[d]) - 1)
        sub += metrics[d]
    table = [sub]  # the metric names: a second header line, written as the first row
    methods: list[tuple[str, str]] = []
    for r in rows:
        if (r.method, r.latent_config) not in methods:
            methods.append((r.method, r.latent_config))
    for method, latent in methods:
        cells = [method, latent]
        for d in datasets:
            row = next((r for r in rows if (r.method, r.latent_config, r.dataset) ==
                        (method, latent, d)), None)
            cells += [_fmt(row and row.fvd), _fmt(row and row.kvd)]
            if has_is[d]:
                cells.append(_fmt(row and row.is_mean, row and row.is_std))
        table.append(cells)
    return markdown_table(top, table) + "\n"


def motion_markdown(rows: Sequence[GenerationMetrics]) -> str:
    """gFVD beside its real-real floor and the object-motion coherence of the generated
    clips, with the real clips' value in brackets (``-`` where not measured)."""
    keys = ("acceleration", "persistence", "foreground", "objects", "bounce")
    domain = any(r.domain_fvd is not None for r in rows)
    extra = ["domain FVD", "domain floor", "class acc."] if domain else []
    table = []
    for r in rows:
        floor = _fmt(r.fvd_floor, r.fvd_floor_std)
        cells = [_motion_cell(r.coherence, r.real_coherence, k) for k in keys]
        if domain:
            cells = [_fmt(r.domain_fvd), _fmt(r.domain_fvd_floor, r.domain_fvd_floor_std),
                     _fmt(r.class_accuracy), *cells]
        table.append([r.method, r.dataset or "-", _fmt(r.fvd), floor, *cells])
    headers = ["Method", "Dataset", "FVD", "real-real floor", *extra, *keys]
    return markdown_table(headers, table) + "\n"


def _motion_cell(fake: dict | None, real: dict | None, key: str) -> str:
    if fake is None:
        return "-"
    return f"{fake[key]:.3g}" + (f" ({real[key]:.3g})" if real is not None else "")


def write_results(rows: Sequence[GenerationMetrics], out: str | Path) -> tuple[Path, Path]:
    """Write ``out/gen_metrics.json`` (list of rows) and ``out/gen_metrics.md``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "gen_metrics.json", out / "gen_metrics.md"
    json_path.write_text(json.dumps([asdict(r) for r in rows], indent=2))
    notes = sorted({r.notes for r in rows if r.notes})
    caption = (
        f"Generation metrics ({rows[0].num_fake} generated vs {rows[0].num_real} real clips of "
        f"{rows[0].num_frames} frames; FVD: StyleGAN-V variant on I3D logits; KVD unscaled)."
    )
    motion = ("\nMotion (generated clips; real clips in brackets; pvvae.eval.coherence):\n\n"
              + motion_markdown(rows)) if any(r.coherence for r in rows) else ""
    md_path.write_text(caption + "\n\n" + table1_markdown(rows) + motion
                       + "".join(f"\n{n}\n" for n in notes))
    return json_path, md_path


def read_results(paths: Iterable[str | Path]) -> list[GenerationMetrics]:
    """Rows of one or more ``gen_metrics.json`` files (to combine runs into one table)."""
    rows = []
    for p in paths:
        rows += [GenerationMetrics(**r) for r in json.loads(Path(p).read_text())]
    return rows
