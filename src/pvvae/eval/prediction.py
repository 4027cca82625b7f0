"""The prediction test of ``pvvae eval latents`` (paper section 4.3, "Predictive reconstruction
visualization", Figure 6).

The encoder sees the first ``1 + t_factor * floor((G - 1) / 2)`` frames (the first half of the
latent groups, 9 of 17; :func:`pvvae.eval.motion.observed_frames`), the VAE reconstructs the
whole clip, and PSNR / SSIM of the predicted frames are compared with copy-last (the last
observed ground-truth frame repeated) and its best Gaussian blur (:mod:`pvvae.eval.motion`).
On synthetic clips the shapes' position error, IoU and missed fraction of the prediction and of
copy-last are measured too.
"""

from __future__ import annotations

import torch
from einops import rearrange

from pvvae.eval.motion import (
    best_blur,
    clip_object_errors,
    copy_last,
    copy_last_psnr_by_sigma,
    observed_frames,
    slice_objects,
)
from pvvae.eval.vae_adapter import PredictionNotSupported, VAEAdapter


def prediction_split(
    adapter: VAEAdapter, num_frames: int, num_clips: int
) -> tuple[int | None, str | None]:
    """How many of ``num_frames`` frames the encoder observes, or None and why the test is
    skipped (the VAE cannot predict, single-frame clips, or no clips asked for)."""
    if not adapter.supports_prediction:
        return None, f"prediction skipped: {adapter.label} has no predictive decoder"
    if num_frames <= 1 or num_clips <= 0:
        return None, "prediction skipped: needs clips of more than one frame and --pred-clips > 0"
    n_obs = observed_frames(adapter.valid_num_frames(num_frames), adapter.temporal_compression)
    return min(n_obs, num_frames - 1), None


def prediction_scores(
    adapter: VAEAdapter, x: torch.Tensor, n_obs: int
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Predict frames n_obs.. of x (B, 3, T, H, W) and score them against copy-last-frame.

    Returns:
        per-clip tensors ``psnr, ssim, baseline_psnr, baseline_ssim, observed_psnr`` (B,),
        per-frame ``frame_psnr, baseline_frame_psnr`` (B, T - n_obs), the blurred copy-last
        PSNR per sigma ``blur_by_sigma`` (B, 1 + S; :mod:`pvvae.eval.motion`), and the
        output clip (B, 3, T, H, W).
    """
    from pvvae.eval.metrics.psnr_ssim import psnr_frames, to_unit_range, video_psnr, video_ssim

    future = x.shape[2] - n_obs
    out = adapter.predict(x[:, :, :n_obs], future)  # (B, 3, T, H, W)
    truth = x[:, :, n_obs:]
    pred = out[:, :, n_obs:]
    copy = copy_last(x, n_obs)
    blur = copy_last_psnr_by_sigma(x, n_obs)  # (B, 1 + S)

    def per_frame(a: torch.Tensor) -> torch.Tensor:
        frames = lambda v: rearrange(to_unit_range(v), "b c t h w -> (b t) c h w")  # noqa: E731
        return rearrange(psnr_frames(frames(a), frames(truth)), "(b t) -> b t", t=future)

    scores = {
        "psnr": video_psnr(pred, truth),
        "ssim": video_ssim(pred, truth),
        "baseline_psnr": video_psnr(copy, truth),
        "baseline_ssim": video_ssim(copy, truth),
        "observed_psnr": video_psnr(out[:, :, :n_obs], x[:, :, :n_obs]),
        "frame_psnr": per_frame(pred),
        "baseline_frame_psnr": per_frame(copy),
        "blur_by_sigma": blur,
    }
    return {k: v.cpu() for k, v in scores.items()}, out


def object_scores(
    x: torch.Tensor, out: torch.Tensor, n_obs: int, objects: list[dict]
) -> dict[str, list[torch.Tensor]]:
    """Shape errors of the prediction and of copy-last on frames n_obs.. of synthetic clips.

    Args:
        x, out: (B, 3, T, H, W) ground truth and the VAE's output.
        n_obs: observed frames.
        objects: the B clips' shapes (:func:`pvvae.data.synthetic.clip_objects`).

    Returns:
        ``{pred,copy_last}_object_{position,iou,missed}``: one tensor of per-shape values per
        clip (:func:`pvvae.eval.motion.clip_object_errors`).
    """
    shapes = slice_objects(objects, n_obs)
    errors: dict[str, list[torch.Tensor]] = {}
    for key, frames in (("pred", out[:, :, n_obs:]), ("copy_last", copy_last(x, n_obs))):
        parts = [clip_object_errors(f, o) for f, o in zip(frames, shapes)]
        for name in ("position", "iou", "missed"):
            errors[f"{key}_object_{name}"] = [p[name] for p in parts]
    return errors


def add_prediction(
    adapter: VAEAdapter, x: torch.Tensor, n_obs: int, pred: dict[str, list],
    motion: dict[str, list], shapes: list[dict] | None = None,
) -> torch.Tensor:
    """Predict and score one batch x (B, 3, T, H, W), extending the per-clip lists of ``pred``
    (:func:`prediction_scores`) and, given the clips' ``shapes``, of ``motion``
    (:func:`object_scores`) in place. Returns the output clips (B, 3, T, H, W)."""
    scores, out = prediction_scores(adapter, x, n_obs)
    for key, value in scores.items():
        pred.setdefault(key, []).extend(value)
    if shapes is not None:
        for key, value in object_scores(x, out, n_obs, shapes).items():
            motion.setdefault(key, []).extend(value)
    return out


def prediction_test(
    adapter: VAEAdapter, x: torch.Tensor, objects: list[dict] | None = None, batch: int = 4
) -> tuple[dict, torch.Tensor]:
    """The whole prediction test on clips x (N, 3, T, H, W) held in memory (paper Figure 6).

    ``objects``: the clips' shapes (synthetic data) for the shape errors, or None.
    Returns :func:`prediction_summary` and the output clips (N, 3, T, H, W). Raises
    :class:`~pvvae.eval.vae_adapter.PredictionNotSupported` with the reason when the test
    cannot run.
    """
    n_obs, skipped = prediction_split(adapter, x.shape[2], len(x))
    if n_obs is None:
        raise PredictionNotSupported(skipped)
    pred: dict[str, list] = {}
    motion: dict[str, list] = {}
    outs = [add_prediction(adapter, xb, n_obs, pred, motion,
                           None if objects is None else objects[i:i + batch])
            for i, xb in zip(range(0, len(x), batch), x.split(batch))]
    return prediction_summary(pred, n_obs, x.shape[2], motion), torch.cat(outs)


def prediction_summary(
    pred: dict[str, list], n_obs: int | None, num_frames: int, motion: dict[str, list]
) -> dict | None:
    """The prediction test pooled over clips: means of the per-clip scores, per-frame curves,
    the best blurred copy-last and the mean shape errors (None when the test did not run).

    Args:
        pred: :func:`prediction_scores` keys -> per-clip values.
        n_obs: observed frames (None: skipped).
        num_frames: clip length.
        motion: :func:`object_scores` keys -> per-clip values (empty for real data).
    """
    if n_obs is None or not pred:
        return None
    pred = dict(pred)
    blur = best_blur(torch.stack(pred.pop("blur_by_sigma")))
    mean = {k: float(torch.stack(v).double().mean()) for k, v in pred.items() if "frame" not in k}
    frame = {k: torch.stack(v).mean(dim=0).tolist() for k, v in pred.items() if "frame" in k}
    pairs = {k: torch.cat(v).double() for k, v in motion.items()}
    shapes = {k: float(v.mean()) if len(v) else None for k, v in pairs.items()}
    return {
        "blur_baseline_psnr": blur["psnr"],
        "blur_baseline_sigma": blur["sigma"],
        **shapes,
        "observed_frames": n_obs,
        "predicted_frames": num_frames - n_obs,
        "num_clips": len(pred["psnr"]),
        **mean,
        "frame_index": list(range(n_obs, num_frames)),
        **frame,
        "definition": "PSNR/SSIM of the predicted frames (per frame, mean over frames and "
        "clips); baseline: the last observed ground-truth frame repeated; blur baseline: the "
        "same, Gaussian-blurred, best sigma; *_object_*: shape position error (px), IoU and "
        "missed fraction (synthetic data only, pvvae.eval.motion)",
    }
