"""The Latte's learning curve on one fixed VAE: is the generator the ceiling, or its decoder?

Every row of ``configs/studies/latte_curve.yaml`` trains a Latte (rectified flow, paper
section 4.1) on the latents of the same VAE (Table 4's "+ motion-aware objective", seed 0)
and samples 256 clips; only the generator's steps, width, lr or batch change. Each row's gFVD
stands beside the VAE's reconstruction FVD (its ceiling: the decoder's own clips on the same
protocol) and the real-real floor, and its samples' motion beside the real clips'. Targets
(issue "Generation that can see the claim"): foreground within 30% of real, acceleration
within 3x of real, gFVD below 1.5x the VAE's reconstruction FVD.

    OMP_NUM_THREADS=1 pvvae study run configs/studies/latte_curve.yaml   # resumable
    python bench/latte_curve.py                      # the table of the rows measured so far
    python bench/latte_curve.py --run                # run (or resume) the study first
    python bench/latte_curve.py --grids docs/replication/latte_curve   # + real / VAE grids

Any study whose rows share one VAE is such a curve: ``configs/studies/latte_recipe.yaml``
(the Latte's recipe and width) and ``configs/studies/latte_guidance.yaml`` (the classifier-free
guidance weight; its rows differ in ``measure.guidance`` only, so each reruns only its
``generate`` step)::

    python bench/latte_curve.py --study configs/studies/latte_guidance.yaml --seed 3 --run \
        --out bench/results/latte_guidance.json

Prints a Markdown table and writes ``bench/results/latte_curve.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

STUDY = "configs/studies/latte_curve.yaml"


def latte_parameters(root: Path, step_id: str) -> int | None:
    """Parameters of the Latte a study step trained (None when its folder is gone)."""
    from pvvae.gen.checkpoint import load_latte

    folder = root / "store" / step_id
    if not folder.is_dir():
        return None
    model, _ = load_latte(folder, "cpu")
    return sum(p.numel() for p in model.parameters())


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b in (None, 0) else a / b


def row(result: dict, root: Path) -> dict:
    """One curve point from a study pair's ``result.json``."""
    out = {
        "variant": result["variant"], "group": result["group"], "x": result["x"],
        "latte_parameters": latte_parameters(root, result["steps"]["latte"]),
        "latte_seconds": result["seconds"]["latte"],
        "generate_seconds": result["seconds"]["generate"],
        "gfvd": result["gfvd"], "gfvd_floor": result["gfvd_floor"],
        "gfvd_floor_std": result["gfvd_floor_std"], "vae_fvd": result["vae_fvd"],
        "gen_domain_fvd": result.get("gen_domain_fvd"),
        "vae_domain_fvd": result.get("vae_domain_fvd"),
        "domain_floor": result.get("domain_floor"),
        "class_accuracy": result.get("class_accuracy"),
        "samples": result["samples"],
    }
    for key in ("speed", "acceleration", "persistence", "foreground", "objects"):
        for who in ("gen", "vae", "real"):
            out[f"{who}_{key}"] = result.get(f"{who}_{key}")
    out["gfvd_over_vae_fvd"] = ratio(out["gfvd"], out["vae_fvd"])
    out["foreground_over_real"] = ratio(out["gen_foreground"], out["real_foreground"])
    out["acceleration_over_real"] = ratio(out["gen_acceleration"], out["real_acceleration"])
    out["targets_met"] = {
        "foreground within 30% of real": _within(out["foreground_over_real"], 0.7, 1.3),
        "acceleration within 3x of real": _within(out["acceleration_over_real"], 1 / 3, 3.0),
        "gFVD below 1.5x the VAE's reconstruction FVD": _within(out["gfvd_over_vae_fvd"], 0, 1.5),
    }
    return out


def _within(value: float | None, low: float, high: float) -> bool | None:
    return None if value is None else bool(low <= value <= high)


def _f(value, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def markdown(rows: list[dict]) -> str:
    head = ("| Latte | params | train s | gFVD | VAE FVD | gFVD / VAE | domain FVD (VAE) "
            "| accel. (real) | persist. (real) | foreground (real) | class acc. |")
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {_f(r['latte_parameters'] and r['latte_parameters'] / 1e6)}M "
            f"| {_f(r['latte_seconds'], '.0f')} | {_f(r['gfvd'])} | {_f(r['vae_fvd'])} "
            f"| {_f(r['gfvd_over_vae_fvd'], '.2f')} "
            f"| {_f(r['gen_domain_fvd'])} ({_f(r['vae_domain_fvd'])}) "
            f"| {_f(r['gen_acceleration'], '.2f')} ({_f(r['real_acceleration'], '.2f')}) "
            f"| {_f(r['gen_persistence'], '.2f')} ({_f(r['real_persistence'], '.2f')}) "
            f"| {_f(r['gen_foreground'], '.3f')} ({_f(r['real_foreground'], '.3f')}) "
            f"| {_f(r['class_accuracy'], '.2f')} |")
    if rows:
        r = rows[0]
        lines.append(f"\nreal-real gFVD floor {_f(r['gfvd_floor'])} +- "
                     f"{_f(r['gfvd_floor_std'])}; domain floor {_f(r['domain_floor'])}; the VAE's "
                     f"reconstructions: acceleration {_f(r['vae_acceleration'], '.2f')}, "
                     f"persistence {_f(r['vae_persistence'], '.2f')}, foreground "
                     f"{_f(r['vae_foreground'], '.3f')}")
    return "\n".join(lines)


def write_grids(spec, result: dict, out: Path, clips: int = 8) -> list[Path]:
    """``real.png`` (the first ``clips`` real clips of the gFVD set) and ``vae.png`` (their
    reconstructions by the curve's VAE), laid out as the samples' grid, and a copy of each
    row's samples as ``samples_<variant>.png``."""
    import torch

    from pvvae.eval.adapters import load_vae
    from pvvae.gen.evaluate import real_clip_batches
    from pvvae.gen.sample import save_grid

    m = spec.measure
    real = next(iter(real_clip_batches(m.fvd_data, clips, num_frames=m.frames, size=m.size,
                                       seed=m.fvd_real_seed, batch_size=clips)))
    latents = Path(spec.root) / "store" / result["steps"]["latents"] / "done.json"
    vae = load_vae(f"vae=pvvae:{json.loads(latents.read_text())['result']['model']}", "cpu")
    with torch.no_grad():
        recon = vae.reconstruct(real)
    return [save_grid(real, out / "real.png"), save_grid(recon.clamp(-1, 1), out / "vae.png")]


def stack(paths: list[Path], labels: list[str], out: Path, gap: int = 6) -> Path:
    """The grids side by side, each under its label, as one PNG."""
    from PIL import Image, ImageDraw

    images = [Image.open(p).convert("RGB") for p in paths]
    band = 14
    width = sum(im.width for im in images) + gap * (len(images) - 1)
    canvas = Image.new("RGB", (width, max(im.height for im in images) + band), "white")
    x = 0
    for image, label in zip(images, labels):
        ImageDraw.Draw(canvas).text((x + 2, 1), label, fill="black")
        canvas.paste(image, (x, band))
        x += image.width + gap
    canvas.save(out)
    return out


def curve_rows(args) -> tuple[list[dict], list[dict], object]:
    """The study's rows (one per variant) at ``args.seed``, their raw results and the spec."""
    from pvvae.study.pipeline import run_study
    from pvvae.study.spec import load_study, select

    spec = load_study(args.study)
    args.seed = spec.seeds[0] if args.seed is None else args.seed
    if args.run:
        run_study(spec, select(spec, None, [args.seed]))
    results = [r for v in spec.variants if (r := read_pair(spec, v, args.seed)) is not None]
    return [row(r, Path(spec.root)) for r in results], results, spec


def read_pair(spec, variant, seed: int) -> dict | None:
    """A pair's ``result.json`` (None when it has not been measured)."""
    from pvvae.study.pipeline import pair_dir

    path = pair_dir(spec, variant, seed) / "result.json"
    return json.loads(path.read_text()) if path.is_file() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default=STUDY)
    parser.add_argument("--run", action="store_true", help="run (or resume) the pairs read first")
    parser.add_argument("--out", type=Path, default=Path("bench/results/latte_curve.json"))
    parser.add_argument("--grids", type=Path, help="write real / VAE / samples grids here")
    parser.add_argument("--seed", type=int, help="the seed whose pairs to read (default: the "
                        "study's first)")
    args = parser.parse_args()
    rows, results, spec = curve_rows(args)
    print(markdown(rows))
    if args.grids and rows:
        import shutil

        args.grids.mkdir(parents=True, exist_ok=True)
        paths = write_grids(spec, results[0], args.grids)
        labels = ["real clips", f"{results[0]['variant']} VAE"]
        for r in rows:
            name = r["variant"].replace(",", "").replace("+ ", "").replace(" = ", "")
            name = name.replace(" ", "_")
            paths.append(Path(shutil.copy(r["samples"], args.grids / f"samples_{name}.png")))
            labels.append(f"{r['variant']} Latte")
        stacked = stack(paths, labels, args.grids / "grids.png")
        print("grids:", " ".join(str(p) for p in [*paths, stacked]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"study": args.study, "rows": rows}, indent=2))
    print(f"wrote {args.out} ({len(rows)} rows measured)")


if __name__ == "__main__":
    main()
