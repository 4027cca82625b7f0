"""``pvvae reconstruct`` and ``pvvae predict``: run a trained VAE on a video file.

Spatial rule: with ``--size S`` the short side is resized to S and a centred S x S square is
cropped (the evaluation rule of :func:`pvvae.data.resize_and_crop`); without it, each side is
centre-cropped to the largest multiple of 16 (:func:`pvvae.data.fit_to_multiple`, no
resampling). Any frame count works: the model pads to 1 + 4k and trims back.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from pvvae.data.video_io import (
    fit_to_multiple,
    read_video,
    resize_and_crop,
    to_model_range,
    video_info,
    write_video,
)


def load_clip(
    path: str | Path, num_frames: int | None = None, size: int | None = None, start: int = 0
) -> torch.Tensor:
    """Read a video file as a model input (1, 3, T, H, W) in [-1, 1] (rule in module doc)."""
    frames = read_video(path, start=start, num_frames=num_frames)  # (T, H, W, 3) uint8
    if len(frames) == 0:
        raise ValueError(f"{path}: no frame at or after frame {start}")
    if size:
        frames = resize_and_crop(frames, size)  # (T, S, S, 3)
    return fit_to_multiple(to_model_range(frames)).unsqueeze(0)  # (1, 3, T, H, W)


def add_parser(sub: argparse._SubParsersAction) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("checkpoint", help="model folder, checkpoint folder or run folder")
    common.add_argument("input", help="input video file")
    common.add_argument("output", help="output mp4")
    common.add_argument("--size", type=int, help="short-side resize + centre crop to SIZE")
    common.add_argument("--max-frames", type=int, help="read at most this many frames")
    common.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    common.add_argument("--tiling", action="store_true", help="spatial tiling for large frames")

    p = sub.add_parser("reconstruct", parents=[common], help="encode and decode a video")
    p.set_defaults(func=run_reconstruct)
    p = sub.add_parser("predict", parents=[common], help="observe N frames, predict the rest")
    p.add_argument("--observe", type=int, required=True, help="frames the encoder sees")
    p.add_argument(
        "--future", type=int, help="frames to predict (default: the rest of the read clip)"
    )
    p.set_defaults(func=run_predict)


def _prepare(args: argparse.Namespace):
    from pvvae.eval.metrics.psnr_ssim import compute_psnr
    from pvvae.training.checkpoint import load_model
    from pvvae.training.trainer import resolve_device

    device = resolve_device(args.device)
    vae = load_model(args.checkpoint, device)
    if args.tiling:
        vae.enable_tiling()
    return vae, device, compute_psnr


def run_reconstruct(args: argparse.Namespace) -> int:
    vae, device, compute_psnr = _prepare(args)
    x = load_clip(args.input, args.max_frames, args.size).to(device)
    with torch.no_grad():
        x_hat = vae(x).sample
    fps = video_info(args.input).fps or 8
    write_video(args.output, x_hat[0].cpu(), fps=fps)
    print(
        f"{args.output}: {tuple(x.shape[2:])} frames x H x W, PSNR {compute_psnr(x_hat, x):.2f} dB"
    )
    return 0


def run_predict(args: argparse.Namespace) -> int:
    vae, device, compute_psnr = _prepare(args)
    x = load_clip(args.input, args.max_frames, args.size).to(device)
    n = args.observe
    if not 1 <= n <= x.shape[2]:
        raise ValueError(f"--observe {n} must be between 1 and the {x.shape[2]} frames read")
    future = args.future if args.future is not None else x.shape[2] - n
    out = vae.predict(x[:, :, :n], future)  # (1, 3, n + future, H, W)
    fps = video_info(args.input).fps or 8
    write_video(args.output, out[0].cpu(), fps=fps)
    known = min(out.shape[2], x.shape[2])
    msg = f"{args.output}: observed {n} frames, predicted {future}"
    if known > n:  # ground truth exists for part of the prediction
        copy_last = x[:, :, n - 1 : n].expand(-1, -1, known - n, -1, -1)
        msg += (
            f"; PSNR on predicted frames {compute_psnr(out[:, :, n:known], x[:, :, n:known]):.2f}"
            f" dB (copy-last-frame baseline {compute_psnr(copy_last, x[:, :, n:known]):.2f} dB)"
        )
    print(msg)
    return 0
