"""Learning benchmark: does a small t4s16c64 VAE learn the proving ground, and predict?

Issue 9. The ``tiny`` PV-VAE preset against a diffusers ``AutoencoderKLWan`` reference with a
Wan2.2-style t4s16 layout (2x2 patchify + three stride-2 stages, residual AvgDown3D /
DupUp3D, 64 latent channels) of a similar parameter count, trained side by side:

* the same clips in the same order (``SyntheticVideoDataset``, preset ``proving_ground``,
  17x64x64, training stream seed 0), the same k sequence (paper section 3.1: k ~ U{0, ...,
  floor((G - 1) r)}), the same optimiser (AdamW, betas (0.9, 0.99), lr 2e-4 after a linear
  warm-up, cosine decay to lr / 10, grad-norm clip 1, bf16 autocast on the CPU), the same
  loss (paper Eq. 1 with lambda_rec = 1: MSE + the motion-aware L_Diff; no LPIPS, GAN or KL
  at this scale) on the posterior mean, from random weights (no image stage: the reference
  has no inflation path);
* the reference gets the same predictive-reconstruction treatment: its encoder sees the
  observed prefix, a learnable 64-d padding token fills the dropped latent frames.

At each ``--eval-at`` step it measures, on held-out clips of another stream (seed 10,000):
reconstruction PSNR (posterior mean), prediction PSNR on frames 9..16 when observing 0..8
(paper Figure 6), and two floors: each clip's temporal mean shown at every frame
(``floor_temporal_mean_psnr``) and the last observed frame copied forward (``copy_last_psnr``).
It also records whether the model left the mean image: ``latent_spread``, the std of the
latents across clips over their RMS (0 when every clip maps to the same latent), and
``decoder_gain``, how much the decoded clip moves when z moves (relative output change over
relative latent change between two held-out clips).

    python bench/learning.py                                  # tiny vs wan, r = 0 and 1
    python bench/learning.py --models tiny --r 1 --steps 900 --eval-at 300 600 900
    python bench/learning.py --models tiny:resample_shortcut=false   # an ablation
    python bench/learning.py --image-steps 200     # both models first trained on single frames
    python bench/learning.py --models tiny --r 1 --image-steps 800 --steps 300 \
        --eval-at 0 150 300 --threads 1 --strip bench/results/recipe/img800   # a demo recipe

Per-stage knobs: ``--image-steps/--image-batch/--image-lr/--image-warmup`` (the image stage
decays by cosine to lr / 10 over its steps, as the trainer does in ``pvvae demo``),
``--short-steps N --short-frames 9`` (the first N video steps on the first 9 frames of each
clip). Bench-only init experiments as spec keys: ``tiny:zero_res=true`` (each ResBlock's last
conv starts at zero), ``tiny:res_scale=0.5``. The floors include the last observed frame
copied forward and Gaussian-blurred (best sigma of :data:`pvvae.eval.motion.BLUR_SIGMAS`):
a prediction that only blurs scores about that. Shape metrics (:mod:`pvvae.eval.motion`):
reconstruction IoU of each shape's colour mask, and the prediction's shape position error
(px) beside copy-last's. ``--strip PATH`` writes ground truth / reconstruction /
prediction rows of the first held-out clips per run. ``train_seconds`` excludes evaluation.

Prints a table and writes ``bench/results/learning.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
from torch import Tensor, nn

from pvvae.data.synthetic import SyntheticVideoDataset
from pvvae.eval.metrics.psnr_ssim import video_psnr
from pvvae.eval.motion import (
    blurred_copy_last_psnr,
    copy_last,
    object_errors,
    observed_frames,
    slice_objects,
)
from pvvae.objectives.losses import motion_loss, mse_loss
from pvvae.objectives.predictive import num_groups, sample_num_dropped

HELDOUT_SEED = 10_000


class Learner(nn.Module):
    """A VAE behind two calls, encode (posterior mean) and decode_padded, on the training path
    of the library (``forward_encoder`` / ``forward_decoder`` / ``pad_latents``): a PV-VAE, or
    the Wan reference, :class:`pvvae.model.diffusers_vae.DiffusersPVVAE` (a diffusers
    ``AutoencoderKLWan`` with a learnable 64-d padding token; its decoder output is not
    clamped, as in ``pvvae train``)."""

    def __init__(self, vae: nn.Module) -> None:
        super().__init__()
        self.vae = vae

    def encode(self, x: Tensor) -> Tensor:
        from pvvae.model.distributions import DiagonalGaussian

        return DiagonalGaussian(self.vae.forward_encoder(x)).mode()  # (B, Cz, t, h, w)

    def decode_padded(self, z: Tensor, k: int) -> Tensor:
        return self.vae.forward_decoder(self.vae.pad_latents(z, k))


def _pvvae(transformer: bool = False, **overrides) -> nn.Module:
    """``PVVAE`` (or, with ``transformer``, ``TransformerPVVAE``: PV-VAE*) of the tiny preset."""
    from pvvae import PVVAE, TransformerPVVAE

    if transformer:
        return TransformerPVVAE.from_preset("tiny", **overrides)
    return PVVAE.from_preset("tiny", **{"patch_shortcut": False, **overrides})


def build(spec: str) -> nn.Module:
    """``tiny`` / ``transformer`` / ``wan`` / ``tiny:key=value,...`` (constructor overrides)
    -> a learner. ``transformer`` is the ``tiny`` preset of PV-VAE* (paper section 5)."""
    name, _, rest = spec.partition(":")
    overrides = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        overrides[key] = {"true": True, "false": False}.get(value.lower(), value)
        if isinstance(overrides[key], str):
            overrides[key] = json.loads(value)
    tweaks = {key: overrides.pop(key) for key in INIT_TWEAKS if key in overrides}
    if tweaks:
        learner = build(spec.split(":")[0] + ":" + ",".join(
            f"{k}={json.dumps(v)}" for k, v in overrides.items()))
        return apply_init_tweaks(learner, **tweaks)
    if name == "wan":
        from pvvae.model.diffusers_vae import DiffusersPVVAE

        base_dim = overrides.pop("base_dim", 28)
        return Learner(DiffusersPVVAE.new("tiny", base_dim=base_dim, decoder_base_dim=base_dim,
                                          **overrides))
    if name in ("tiny", "transformer"):
        return Learner(_pvvae(transformer=name == "transformer", **overrides))
    raise SystemExit(f"unknown model {spec!r}: use tiny, transformer, wan or tiny:key=value")


INIT_TWEAKS = ("zero_res", "res_scale")


def apply_init_tweaks(model: nn.Module, zero_res: bool = False, res_scale: float = 1.0):
    """Bench-side initialisation experiments on a built PV-VAE learner (spec keys, popped
    before construction): ``zero_res`` zeroes the last conv of every ResBlock (each block
    starts as its skip path), ``res_scale`` multiplies those weights instead."""
    from pvvae.model.blocks import ResBlock

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, ResBlock):
                module.conv2.conv.weight.mul_(0.0 if zero_res else res_scale)
                module.conv2.conv.bias.zero_()
    return model


def forward(model: nn.Module, x: Tensor, k: int) -> Tensor:
    """Predictive reconstruction (paper section 3.1): encode the prefix, pad k, decode all."""
    n_obs = x.shape[2] - 4 * k
    return model.decode_padded(model.encode(x[:, :, :n_obs]), k)


@torch.no_grad()
def evaluate(
    model: nn.Module, clips: Tensor, observed: int, objects: list[dict]
) -> dict[str, float]:
    """Held-out reconstruction / prediction PSNR, shape metrics (:mod:`pvvae.eval.motion`:
    reconstruction IoU, prediction position error in px) and the latent-spread diagnostics.
    ``objects``: one :meth:`SyntheticVideoDataset.objects` dict per clip."""
    model.eval()
    groups = num_groups(clips.shape[2])
    k_pred = groups - 1 - (observed - 1) // 4
    recon, pred, latents = [], [], []
    for xb in clips.split(4):
        z = model.encode(xb)
        latents.append(z)
        recon.append(model.decode_padded(z, 0))
        pred.append(forward(model, xb, k_pred))
    recon, pred, z = torch.cat(recon), torch.cat(pred), torch.cat(latents)
    z1, z2 = z[:1], z[1:2]
    dz = (z1 - z2).norm() / z1.norm().clamp_min(1e-12)
    dx = (recon[:1] - recon[1:2]).norm() / recon[:1].norm().clamp_min(1e-12)
    model.train()
    return {
        "recon_psnr": video_psnr(recon, clips).mean().item(),
        "pred_psnr": video_psnr(pred[:, :, observed:], clips[:, :, observed:]).mean().item(),
        "recon_object_iou": object_errors(recon, objects)["iou"],
        "pred_object_error": object_errors(pred[:, :, observed:],
                                           slice_objects(objects, observed))["position"],
        "latent_spread": (z.std(dim=0).pow(2).mean().sqrt() / z.pow(2).mean().sqrt()).item(),
        "decoder_gain": (dx / dz.clamp_min(1e-12)).item(),
    }


@torch.no_grad()
def stream_stats(vae, x: Tensor) -> list[dict]:
    """RMS and content fraction of the residual stream after each stage of a ``PVVAE``.

    ``content`` is the share of the stream's energy that is not a per-channel constant (the
    same for every clip and position): near 0, the RMS norms downstream see no content.
    x: (B, 3, T, H, W) held-out clips. Returns one row per stage, encoder then decoder.
    """
    enc, dec = vae.encoder, vae.decoder
    named = (
        [("enc.conv_in", enc.conv_in)]
        + [(f"enc.stage{i}", s[-1]) for i, s in enumerate(enc.stages) if len(s)]
        + [(f"enc.down{i}", d) for i, d in enumerate(enc.downs)]
        + [("enc.mid", enc.mid), ("dec.conv_in", dec.conv_in), ("dec.mid", dec.mid)]
        + [(f"dec.stage{i}", s[-1]) for i, s in enumerate(dec.stages) if len(s)]
        + [(f"dec.up{i}", u) for i, u in enumerate(dec.ups)]
    )
    rows: list[dict] = []

    def record(name):
        def hook(_module, _inputs, out):
            h = out.float()
            total = h.pow(2).mean()
            constant = h.mean(dim=(0, 2, 3, 4)).pow(2).mean()  # per-channel constant energy
            rows.append({"stage": name, "rms": total.sqrt().item(),
                         "content": (1 - constant / total.clamp_min(1e-30)).item()})
        return hook

    handles = [module.register_forward_hook(record(name)) for name, module in named]
    try:
        vae.decoder(vae.encoder(x)[:, : vae.config.latent_channels])
    finally:
        for handle in handles:
            handle.remove()
    return rows


def floors(clips: Tensor, objects: list[dict], observed: int) -> dict[str, float]:
    """The baselines a learning model must beat, on (N, 3, T, H, W) clips: the temporal mean,
    the last observed frame copied forward (with its shape position error: shapes standing
    still), and that copy Gaussian-blurred (:func:`pvvae.eval.motion.blurred_copy_last_psnr`:
    a prediction that only blurs the last frame scores about this)."""
    temporal_mean = clips.mean(dim=2, keepdim=True).expand_as(clips)
    still = copy_last(clips, observed)
    blurred = blurred_copy_last_psnr(clips, observed)
    return {
        "floor_temporal_mean_psnr": video_psnr(temporal_mean, clips).mean().item(),
        "copy_last_psnr": video_psnr(still, clips[:, :, observed:]).mean().item(),
        "copy_last_object_error": object_errors(still, slice_objects(objects, observed))[
            "position"],
        "blurred_copy_last_psnr": blurred["psnr"],
        "blurred_copy_last_sigma": blurred["sigma"],
        "blurred_copy_last_by_sigma": blurred["psnr_by_sigma"],
    }


@torch.no_grad()
def save_strip(model: nn.Module, clips: Tensor, observed: int, path: Path) -> None:
    """PNG of each given held-out clip: ground truth, reconstruction, and prediction of the
    frames after ``observed`` from the first ``observed`` (observed frames shown as decoded),
    one row each, every frame side by side, 3x nearest upscaling."""
    from PIL import Image

    model.eval()
    k_pred = num_groups(clips.shape[2]) - 1 - (observed - 1) // 4
    rows = []
    for clip in clips.split(1):
        recon = model.decode_padded(model.encode(clip), 0)
        pred = forward(model, clip, k_pred)
        rows += [clip[0], recon[0].float(), pred[0].float()]
    model.train()
    tiles = [torch.cat(list(row.clamp(-1, 1).permute(1, 2, 3, 0)), dim=1) for row in rows]
    image = ((torch.cat(tiles, dim=0) + 1) * 127.5).round().to(torch.uint8).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(image)
    img.resize((img.width * 3, img.height * 3), Image.NEAREST).save(path)


def plot(result: dict, path: Path) -> None:
    """Held-out reconstruction and prediction PSNR against step, one line per (model, r),
    with the two floors: the curves that show whether a run falls back to the mean image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharex=True)
    runs: dict[tuple, list] = {}
    for row in result["rows"]:
        runs.setdefault((row["model"], row["r"], row["seed"]), []).append(row)
    for (model, r, seed), rows in sorted(runs.items()):
        steps = [row["step"] for row in rows]
        label = f"{model}, r = {r:g}" + (f", seed {seed}" if seed else "")
        style = "-" if r > 0 else "--"
        for ax, key in zip(axes, ("recon_psnr", "pred_psnr")):
            ax.plot(steps, [row[key] for row in rows], style, marker="o", label=label)
    floors = result["floors"]
    axes[0].axhline(floors["floor_temporal_mean_psnr"], color="grey", lw=1, label="temporal mean")
    axes[1].axhline(floors["copy_last_psnr"], color="grey", lw=1, label="copy last frame")
    axes[0].set(title="reconstruction (held out)", xlabel="step", ylabel="PSNR (dB)")
    axes[1].set(title="prediction of frames 9-16 from 0-8", xlabel="step")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def lr_at(step: int, lr: float, warmup: int, steps: int) -> float:
    """Linear warm-up, then cosine decay to lr / 10 at ``steps`` (the trainer's schedule)."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(steps - warmup, 1)
    return lr * (0.1 + 0.45 * (1.0 + math.cos(math.pi * progress)))


def pretrain_on_images(model: nn.Module, args, seed: int) -> None:
    """Seed stage 1 at bench scale: ``args.image_steps`` MSE steps of ``args.image_batch``
    single frames (another stream than the video clips), at ``args.image_lr`` with
    ``args.image_warmup`` warm-up steps and cosine decay to lr / 10 over the stage (the
    trainer's schedule, as in ``pvvae demo``), then, for PV-VAE, the temporal kernels are
    inflated (``model.inflate_temporal`` of the trainer). The Wan reference pads time with
    zeros, so images train only the newest tap of its kernels and it needs no inflation."""
    from pvvae.model.causal import inflate_temporal_kernels

    batch, lr = args.image_batch, args.image_lr
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.0)
    frames = SyntheticVideoDataset(args.image_steps * batch, 1, args.size, args.size,
                                   seed=seed + 1, annotations=False)
    for step in range(args.image_steps):
        x = torch.stack([frames[step * batch + i]["video"] for i in range(batch)])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            x_hat = forward(model, x, 0)
        loss = mse_loss(x_hat.float(), x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, lr, args.image_warmup, args.image_steps)
        opt.step()
    if not hasattr(model.vae, "save_diffusers"):  # a PV-VAE
        inflate_temporal_kernels(model.vae)  # no temporal convs in PV-VAE*: a no-op


def train_run(
    spec: str, r: float, args, heldout: Tensor, objects: list[dict], seed: int
) -> list[dict]:
    """Train one model with max drop ratio r; return one row per evaluation step."""
    torch.manual_seed(seed)
    model = build(spec)
    params = sum(p.numel() for p in model.parameters())
    image_seconds = time.perf_counter()
    if args.image_steps:
        pretrain_on_images(model, args, seed)
    image_seconds = time.perf_counter() - image_seconds
    if args.image_steps and 0 in args.eval_at:
        print(f"after {args.image_steps} image steps ({image_seconds:.0f}s): " + "  ".join(
            f"{k} {v:.3f}" for k, v in evaluate(model, heldout, args.observed, objects).items()),
            flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.99), weight_decay=0.0)
    data = SyntheticVideoDataset(
        args.steps * args.batch, args.frames, args.size, args.size, seed=seed, annotations=False
    )
    k_gen = torch.Generator().manual_seed(seed)
    groups = num_groups(args.frames)
    short_groups = num_groups(args.short_frames) if args.short_steps else groups
    rows, start, losses, eval_seconds = [], time.perf_counter(), [], 0.0
    for step in range(args.steps):
        x = torch.stack([data[step * args.batch + i]["video"] for i in range(args.batch)])
        if step < args.short_steps:  # early steps on the first short_frames frames
            x = x[:, :, : args.short_frames]
        k = sample_num_dropped(short_groups if step < args.short_steps else groups, r, k_gen)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            x_hat = forward(model, x, k)
        x_hat = x_hat.float()
        loss = mse_loss(x_hat, x) + motion_loss(x_hat, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args.lr, args.warmup, args.steps)
        opt.step()
        losses.append(loss.item())
        if step + 1 in args.eval_at:
            name = f"{spec} (+{args.image_steps} image steps)" if args.image_steps else spec
            seconds = time.perf_counter() - start
            row = {"model": name, "r": r, "seed": seed, "step": step + 1, "params": params,
                   "train_loss": sum(losses[-20:]) / len(losses[-20:]),
                   "seconds": seconds, "train_seconds": seconds - eval_seconds,
                   "image_seconds": image_seconds,
                   **evaluate(model, heldout, args.observed, objects)}
            eval_seconds += time.perf_counter() - start - seconds
            rows.append(row)
            print(format_row(row), flush=True)
    if args.strip and rows:
        tag = f"{spec}_r{r:g}_s{seed}".replace(":", "_").replace(",", "_").replace("=", "-")
        path = args.strip.parent / f"{args.strip.stem}_{tag}.png"
        save_strip(model, heldout[: args.strip_clips], args.observed, path)
        rows[-1]["strip"] = str(path)
        print(f"wrote {path}")
    if args.diagnose and hasattr(getattr(model.vae, "encoder", None), "stages"):
        stats = stream_stats(model.vae.eval(), heldout[:4])
        rows[-1]["stream"] = stats
        print("  stream rms/content: " + "  ".join(
            f"{s['stage']} {s['rms']:.3g}/{s['content']:.2f}" for s in stats))
    return rows


def format_row(row: dict) -> str:
    return (f"{row['model']:<30} r={row['r']:<4} seed={row['seed']} step={row['step']:>5} "
            f"recon {row['recon_psnr']:6.2f} dB  pred {row['pred_psnr']:6.2f} dB  "
            f"IoU {row.get('recon_object_iou', float('nan')):.2f}  "
            f"pos.err {row.get('pred_object_error', float('nan')):5.2f}px  "
            f"spread {row['latent_spread']:.3f}  gain {row['decoder_gain']:.3f}  "
            f"loss {row['train_loss']:.4f}  {row.get('train_seconds', row['seconds']):.0f}s")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", default=["tiny", "wan"],
                        help="tiny, wan, or tiny:key=value,... (PVVAE constructor overrides)")
    parser.add_argument("--r", nargs="+", type=float, default=[0.0, 1.0],
                        help="maximum drop ratios to train with (0: plain reconstruction)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--eval-at", nargs="+", type=int, default=None)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--image-steps", type=int, default=0,
                        help="image pretraining steps before the video steps")
    parser.add_argument("--image-batch", type=int, default=8, help="frames per image step")
    parser.add_argument("--image-lr", type=float, default=None, help="image lr (default: --lr)")
    parser.add_argument("--image-warmup", type=int, default=None,
                        help="image warm-up steps (default: --warmup)")
    parser.add_argument("--short-frames", type=int, default=9,
                        help="clip length of the first --short-steps video steps")
    parser.add_argument("--short-steps", type=int, default=0,
                        help="video steps on the first --short-frames frames of each clip")
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True,
                        help="bf16 autocast of the forward pass (fp32 weights and loss)")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--heldout", type=int, default=16, help="held-out clips")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--diagnose", action="store_true",
                        help="print the residual stream's RMS and content per stage at the end")
    parser.add_argument("--strip", type=Path, default=None,
                        help="write a ground truth / reconstruction / prediction PNG per run "
                        "(PATH_<run>.png) of the first --strip-clips held-out clips")
    parser.add_argument("--strip-clips", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/learning.json"))
    parser.add_argument("--plot", type=Path, default=None, help="also write the curves (PNG)")
    parser.add_argument("--merge", type=Path, nargs="*", default=[],
                        help="earlier result files whose rows join this one's (table, plot)")
    args = parser.parse_args(argv)
    args.image_lr = args.lr if args.image_lr is None else args.image_lr
    args.image_warmup = args.warmup if args.image_warmup is None else args.image_warmup
    torch.set_num_threads(args.threads)
    args.eval_at = set(args.eval_at or [args.steps // 3, 2 * args.steps // 3, args.steps])
    args.observed = observed_frames(args.frames, 4)  # observe the first half of the groups
    held = SyntheticVideoDataset(args.heldout, args.frames, args.size, args.size,
                                 seed=HELDOUT_SEED, annotations=False)
    heldout = torch.stack([held[i]["video"] for i in range(len(held))])
    objects = [held.objects(i) for i in range(len(held))]
    base = floors(heldout, objects, args.observed)
    print(f"floors on {args.heldout} held-out clips: temporal mean "
          f"{base['floor_temporal_mean_psnr']:.2f} dB, copy-last "
          f"{base['copy_last_psnr']:.2f} dB, blurred copy-last "
          f"{base['blurred_copy_last_psnr']:.2f} dB (sigma {base['blurred_copy_last_sigma']:g}) "
          f"(frames {args.observed}..{args.frames - 1})")
    rows = [row for seed in args.seeds for spec in args.models for r in args.r
            for row in train_run(spec, r, args, heldout, objects, seed)]
    for path in args.merge:
        rows += json.loads(path.read_text())["rows"]
    result = {"settings": {k: sorted(v) if isinstance(v, set) else v
                           for k, v in vars(args).items()},
              "floors": base, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str))  # paths as text
    print(f"wrote {args.out}")
    print_table(result)
    if args.plot:
        plot(result, args.plot)
        print(f"wrote {args.plot}")
    return result


def print_table(result: dict) -> None:
    """Markdown table: one row per (model, r, seed, step), with the floors in the header."""
    f = result["floors"]
    print("\n| model | r | seed | step | recon PSNR | recon shape IoU | pred PSNR | "
          "pred shape error (px) | latent spread | decoder gain |"
          "\n|---|---|---|---|---|---|---|---|---|---|")
    for row in sorted(result["rows"], key=lambda r: (r["model"], r["r"], r["seed"], r["step"])):
        print(f"| {row['model']} | {row['r']:g} | {row['seed']} | {row['step']} | "
              f"{row['recon_psnr']:.2f} | {row.get('recon_object_iou', float('nan')):.3f} | "
              f"{row['pred_psnr']:.2f} | {row.get('pred_object_error', float('nan')):.2f} | "
              f"{row['latent_spread']:.2f} | "
              f"{row['decoder_gain']:.2f} |")
    print(f"\nfloors: temporal mean {f['floor_temporal_mean_psnr']:.2f} dB, copy-last "
          f"{f['copy_last_psnr']:.2f} dB, blurred copy-last "
          f"{f.get('blurred_copy_last_psnr', float('nan')):.2f} dB; copy-last shape error "
          f"{f.get('copy_last_object_error', float('nan')):.2f} px")


if __name__ == "__main__":
    main()
