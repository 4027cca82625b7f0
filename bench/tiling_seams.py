"""Seam error of spatial tiling: PV-VAE's linear blending against diffusers' Wan tiling.

Issue 14, "Tiling quality". One clip is reconstructed untiled and tiled; the figure is the
relative mean absolute difference ``mean|tiled - untiled| / mean|untiled|`` of the
reconstruction (encode + decode, posterior mean), for several tile overlaps. Both models
have random weights unless ``--weights`` names a trained PV-VAE folder and ``--wan-weights``
a trained diffusers ``AutoencoderKLWan`` folder; a random network's receptive field is as
wide as its architecture allows, so random weights give worst cases.

Tiles are given in pixels, so both models see the same pixel tiles whatever their spatial
compression (PV-VAE 16x; Wan2.1 8x, Wan2.2 16x). The random Wan model is diffusers'
``AutoencoderKLWan`` (Wan2.1 layout) at ``--wan-base-dim``.

    python bench/tiling_seams.py                  # 128x128, 9 frames, tiles of 64 px
    python bench/tiling_seams.py --frames 5 --weights runs/demo --wan-weights WAN_FOLDER
"""

from __future__ import annotations

import argparse

import torch


def relative_error(a: torch.Tensor, ref: torch.Tensor) -> float:
    return float((a - ref).abs().mean() / ref.abs().mean())


def pvvae_errors(vae, x: torch.Tensor, tile: int, strides: list[int]) -> dict[int, float]:
    ref = vae(x).sample
    out = {}
    for stride in strides:
        vae.enable_tiling(tile_size=tile, tile_stride=stride)
        out[stride] = relative_error(vae(x).sample, ref)
    vae.disable_tiling()
    return out


def wan_errors(wan, x: torch.Tensor, tile: int, strides: list[int]) -> dict[int, float]:
    ref = wan(x).sample
    out = {}
    for stride in strides:
        wan.enable_tiling(tile, tile, stride, stride)
        out[stride] = relative_error(wan(x).sample, ref)
    wan.disable_tiling()
    return out


def load_wan(weights: str | None, base_dim: int):
    """A trained ``AutoencoderKLWan`` from ``weights`` (a model folder, or a pipeline folder
    with ``vae/``) in float32, or a random Wan2.1-layout one at ``base_dim``."""
    from diffusers import AutoencoderKLWan

    if weights:
        from pvvae.eval.diffusers_adapters import load_diffusers_vae

        return load_diffusers_vae("wan", weights).model
    return AutoencoderKLWan(base_dim=base_dim).eval()  # drawn from the global RNG


def main(argv: list[str] | None = None) -> dict[str, dict[int, float]]:
    """Run the comparison, print a markdown table; returns {row name: {stride: error}}."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--frames", type=int, default=9)
    p.add_argument("--tile", type=int, default=64, help="tile side in pixels")
    p.add_argument("--strides", type=int, nargs="*", default=[48, 32], help="pixels")
    p.add_argument("--preset", default="tiny", help="PV-VAE preset (random weights)")
    p.add_argument("--weights", help="a trained PV-VAE model/checkpoint/run folder instead")
    p.add_argument("--wan-base-dim", type=int, default=32, help="random Wan model's width")
    p.add_argument("--wan-weights", help="a trained diffusers AutoencoderKLWan folder instead")
    args = p.parse_args(argv)
    from pvvae import PVVAE
    from pvvae.data.synthetic import synthetic_clip

    torch.manual_seed(0)
    x = synthetic_clip(0, 0, num_frames=args.frames, height=args.size, width=args.size,
                       annotations=False)["video"][None]  # (1, 3, T, H, W) in [-1, 1]
    if args.weights:
        from pvvae.training.checkpoint import load_model

        vae = load_model(args.weights)
    else:
        vae = PVVAE.from_preset(args.preset).eval()
    wan = load_wan(args.wan_weights, args.wan_base_dim)
    wan_name = f"Wan {args.wan_weights}" if args.wan_weights else (
        f"Wan2.1 base_dim {args.wan_base_dim} (random)")
    with torch.no_grad():
        rows = {
            f"PV-VAE {args.weights or args.preset}": pvvae_errors(vae, x, args.tile, args.strides),
            wan_name: wan_errors(wan, x, args.tile, args.strides),
        }
    print(f"\nrelative mean |tiled - untiled|, {args.frames}x{args.size}x{args.size}, "
          f"tile {args.tile} px")
    print("| model | " + " | ".join(f"stride {s} (overlap {args.tile - s})" for s in args.strides)
          + " |")
    print("|---|" + "---|" * len(args.strides))
    for name, errs in rows.items():
        print(f"| {name} | " + " | ".join(f"{100 * errs[s]:.1f}%" for s in args.strides) + " |")
    return rows


if __name__ == "__main__":
    main()
