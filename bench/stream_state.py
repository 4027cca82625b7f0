"""Memory of the streaming state at 1080p: why RSS is flat in frames, and its fixed size.

Streaming encode / decode (``pvvae reconstruct``) keeps, between temporal chunks, the tail of
every causal conv (``CausalState``: ``kernel - stride`` = 2 input frames per layer), one
state per tile position when tiling is on. That state does not depend on the number of
frames, but it is a fixed cost proportional to the frame area (times the tiles' overlap).

This script encodes and decodes two chunks of a 64x64 clip, sums the bytes of the state
tensors and scales them by area (every state tensor is (B, C, n, H / k, W / k)): to the
1920x1072 frame that ``pvvae reconstruct`` makes of a 1080p clip, untiled and in the 60 tiles
of 256 px (stride 192) that ``--tiling auto`` uses. Random weights, float32.

    python bench/stream_state.py
"""

import torch

from pvvae import PVVAE


def main() -> None:
    """Print the state size of the tiny and paper presets (see the module docstring)."""
    torch.manual_seed(0)
    for name in ["tiny", "paper"]:
        vae = PVVAE.from_preset(name).eval()
        H = 64
        with torch.no_grad():
            x = torch.randn(1, 3, 5, H, H).clamp(-1, 1)
            p, s = vae.encode_chunk(x)
            p, s = vae.encode_chunk(torch.randn(1, 3, 4, H, H).clamp(-1, 1), s)
            enc = sum(t.numel() * t.element_size() for t in s.tails.values())
            y, sd = vae.decode_chunk(torch.randn(1, 64, 2, H // 16, H // 16))
            y, sd = vae.decode_chunk(torch.randn(1, 64, 1, H // 16, H // 16), sd)
            dec = sum(t.numel() * t.element_size() for t in sd.tails.values())
        # 1080p tiled: 60 tiles of 256^2 (6 rows x 10 cols)
        scale = 60 * 256 * 256 / H**2
        print(name, f"enc state {enc/2**20:.2f} MiB dec {dec/2**20:.2f} MiB at {H}px;"
              f" 1080p tiled (60 tiles of 256): {(enc+dec)*scale/2**30:.2f} GiB,"
              f" untiled 1920x1072 {(enc+dec)*1920*1072/H**2/2**30:.2f} GiB", flush=True)


if __name__ == "__main__":
    main()
