"""Latte training speed and memory on t4s16c64 vs t4s8c16 latents of the same clips.

Issue 5, section 7; paper Table 1 reports TSpeed / TMem of the generation model (Latte-XL,
patch 1, batch 4 of 17x256x256 clips, 50 warm-up and 100 timed steps on one GPU): PV-VAE
(t4s16c64) 4.40 it/s and 33.34 GiB against Wan2.1 (t4s8c16) 1.88 it/s and 86.44 GiB.
Target: t4s16c64 >= 2.3x faster in both measurements below.

Two measurements per latent layout, on the same pixel clips:

* ``transformer``: one rectified-flow training step of Latte (patch size 1 for both layouts,
  as the issue asks: t4s8 latents then have 4x the tokens) on latents of the clips' shape:
  forward, :func:`pvvae.gen.flow.flow_matching_loss`, backward, AdamW step;
* ``with_vae``: the same step preceded by encoding the pixel batch with the VAE (posterior
  mean, no gradient), i.e. training without a latent cache.

VAEs have random weights (speed and memory do not depend on the values): ``PVVAE`` preset
``paper`` for t4s16c64; for t4s8c16 diffusers' ``AutoencoderKLWan`` default config (Wan2.1,
``--t4s8-vae wan2.1``, default) or the ``t4s8c16`` PV-VAE preset (``--t4s8-vae t4s8c16``).
Models are built by ``bench/vae_speed.py``'s ``build`` and memory is measured with its
``PeakMemory`` (imported, not copied): on CUDA the allocator peak, on the CPU the peak
resident set size (VmHWM reset through ``/proc/self/clear_refs``), in both cases minus the
memory in use before the step, i.e. the extra memory one training step needs on top of the
loaded models and optimizer state (activations, gradients, temporaries). On the CPU freed
heap memory is first returned to the OS (``malloc_trim``), else a step after warm-up reuses
resident memory and shows no growth. On the CPU the peak of live tensor bytes
(``tensor_peak_gib``, from ``torch.profiler`` memory events, as in ``bench/vae_speed.py``) is
reported too. On CUDA the total allocator peak (``total_gib``,
comparable to TMem) is reported as well.

    python bench/gen_speed.py                      # CPU: Latte-S, batch 1 of 17x128x128
    python bench/gen_speed.py --device cuda --latte XL --size 256 --batch 4 \\
        --warmup 50 --repeats 100 --dtype bfloat16
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vae_speed import GIB, PeakMemory, build, tensor_peak_bytes  # noqa: E402  (sibling's helpers)

from pvvae.gen.flow import flow_matching_loss  # noqa: E402
from pvvae.gen.latte import Latte  # noqa: E402

LAYOUTS = {"t4s16c64": "paper"}  # latent layout -> VAE name of build(); t4s8c16 set by args


def encode(vae: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Posterior mean (B, C, t, h, w) of pixels x (B, 3, T, H, W), no gradient."""
    with torch.no_grad():
        return vae.encode(x).latent_dist.mode()


class Step:
    """One Latte training step (and optionally the VAE encoding before it)."""

    def __init__(self, latte: Latte, dtype: torch.dtype, seed: int = 0) -> None:
        self.latte = latte
        self.optimizer = torch.optim.AdamW(latte.parameters(), lr=1e-4)
        self.dtype = dtype
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, z: torch.Tensor, y: torch.Tensor) -> float:
        device = z.device
        with torch.autocast(device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
            loss, _ = flow_matching_loss(self.latte, z.float(), y, generator=self.generator)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def release_free_heap() -> None:
    """Return freed heap memory to the OS (glibc ``malloc_trim``), so that the CPU peak-RSS
    measurement sees the step's own allocations instead of reusing memory that earlier steps
    freed but the allocator kept resident. No-op elsewhere."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def measure(run, device: torch.device, warmup: int, repeats: int) -> dict:
    """Steps/s of ``run()`` and the peak extra memory of one call (after warm-up)."""
    for _ in range(max(warmup, 1)):  # the first step allocates the AdamW state
        run()
    gc.collect()
    if device.type == "cpu":
        release_free_heap()
    with PeakMemory(device) as mem:
        run()
    # PeakMemory reset the CUDA peak on entry: this is the step's total peak, models included
    total = torch.cuda.max_memory_allocated(device) / GIB if device.type == "cuda" else None
    # on the CPU also the peak of live tensor bytes (vae_speed.tensor_peak_bytes), the
    # counterpart of the CUDA allocator peak, independent of the heap allocator's caching
    tensors = tensor_peak_bytes(run) / GIB if device.type == "cpu" else None
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        run()
    _sync(device)
    seconds = (time.perf_counter() - start) / repeats
    return {"steps_per_s": 1.0 / seconds, "seconds_per_step": seconds,
            "peak_extra_gib": mem.peak / GIB, "tensor_peak_gib": tensors, "total_gib": total}


def bench_layout(layout: str, vae_name: str, x: torch.Tensor, args, dtype) -> dict:
    """Both measurements for one latent layout."""
    device = x.device
    vae = build(vae_name).to(device).eval()
    z = encode(vae, x)  # (B, C, t, h, w)
    torch.manual_seed(0)
    latte = Latte.from_preset(args.latte, in_channels=z.shape[1], patch_size=1,
                              num_classes=args.num_classes).to(device).train()
    y = torch.zeros(x.shape[0], dtype=torch.long, device=device) if args.num_classes else None
    step = Step(latte, dtype)
    out = {
        "vae": vae_name,
        "latent_shape": list(z.shape[1:]),
        "tokens_per_clip": int(z.shape[2] * z.shape[3] * z.shape[4]),
        "latte_params_m": sum(p.numel() for p in latte.parameters()) / 1e6,
        "vae_params_m": sum(p.numel() for p in vae.parameters()) / 1e6,
    }
    out["transformer"] = measure(lambda: step(z, y), device, args.warmup, args.repeats)
    print(f"{layout} transformer: {out['transformer']}", flush=True)
    out["with_vae"] = measure(lambda: step(encode(vae, x), y), device, args.warmup, args.repeats)
    print(f"{layout} with VAE:    {out['with_vae']}", flush=True)
    return out


def print_table(results: dict) -> None:
    cfg, rows = results["config"], results["layouts"]
    print(f"\nLatte-{cfg['latte']} (patch 1) training step, batch {cfg['batch']} x "
          f"{cfg['frames']}x{cfg['size']}x{cfg['size']} clips, {cfg['device']}, {cfg['dtype']}")
    print("| latents | VAE | tokens/clip | measurement | steps/s | s/step | peak extra (GiB) "
          "| tensor peak (GiB) |")
    print("|---|---|---|---|---|---|---|---|")
    for layout, r in rows.items():
        for kind in ("transformer", "with_vae"):
            m = r[kind]
            tensors = "-" if m["tensor_peak_gib"] is None else f"{m['tensor_peak_gib']:.3f}"
            print(f"| {layout} | {r['vae']} | {r['tokens_per_clip']} | {kind} | "
                  f"{m['steps_per_s']:.3f} | {m['seconds_per_step']:.3f} | "
                  f"{m['peak_extra_gib']:.3f} | {tensors} |")
    for kind, ratio in results["ratios"].items():
        print(f"{kind}: t4s16c64 speed-up x{ratio['speedup']:.2f} (target >= 2.3), "
              f"memory x{ratio['memory']:.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--latte", default="S", help="Latte preset (seed: XL)")
    p.add_argument("--num-classes", type=int, default=101, help="0: unconditional")
    p.add_argument("--t4s8-vae", default="wan2.1", choices=["wan2.1", "t4s8c16"])
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--frames", type=int, default=17)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                   help="autocast dtype of the Latte step")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    p.add_argument("--out", default="bench/results/gen_speed.json")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    torch.manual_seed(0)
    x = torch.rand(args.batch, 3, args.frames, args.size, args.size, device=device) * 2 - 1
    layouts = {**LAYOUTS, "t4s8c16": args.t4s8_vae}
    results: dict = {"config": vars(args), "layouts": {}, "ratios": {}}
    for layout, vae_name in layouts.items():
        results["layouts"][layout] = bench_layout(layout, vae_name, x, args, dtype)
    a, b = results["layouts"]["t4s16c64"], results["layouts"]["t4s8c16"]
    for kind in ("transformer", "with_vae"):
        results["ratios"][kind] = {
            "speedup": a[kind]["steps_per_s"] / b[kind]["steps_per_s"],
            "memory": a[kind]["peak_extra_gib"] / max(b[kind]["peak_extra_gib"], 1e-9),
        }
    print_table(results)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
