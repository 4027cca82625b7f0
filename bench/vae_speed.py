"""VAE inference speed and memory: PV-VAE (``paper`` preset) against the Wan2.1 / Wan2.2 VAEs.

Issue 2, section 8; the paper's Table 2 reports ISpeed / IMem (batch 4 of 17x256x256, 50
warm-up and 100 timed steps on one GPU): PV-VAE 0.69 it/s and 7.97 GiB against Wan2.2's
0.58 it/s and 9.36 GiB. Targets: >= 1.2x Wan2.2's throughput and <= 0.85x its peak memory;
streaming 17 -> 129 frames keeps peak memory flat (<= 1.1x).

All models have random weights (speed and memory do not depend on the values) and run in one
process on the same input. Each model runs as shipped: diffusers' Wan VAEs stream in chunks
of 1, 4, 4, ... frames with their feature cache; PV-VAE as below.

Peak memory, always the extra memory one call needs on top of the loaded model and input:

* on CUDA, ``torch.cuda.max_memory_allocated`` (reset per measurement) minus the memory
  allocated before the call;
* on the CPU, two figures. ``tensor peak``: the peak of the bytes held by live tensors
  during the call, summed from the allocation and free events of ``torch.profiler``
  (``profile_memory=True``), the CPU counterpart of the CUDA allocator peak and the figure
  compared with the target. ``RSS peak``: the peak resident set size of the process (VmHWM,
  reset through ``/proc/self/clear_refs``) minus the resident size before the call; it also
  counts the heap allocator's and oneDNN's caches, so it depends on what ran before.

Streaming (17, 65 and 129 frames of ``--stream-size``, default 128 like the main run):
``encode``, then ``iter_decode`` with each pixel chunk dropped as a video writer would, so
that the figure is the working memory, not the output video (which ``decode`` returns
whole: 196 KiB per 128x128 frame in float32). A 17-frame clip fits in one chunk; longer
ones reach the steady state in which every causal conv holds a 2-frame cache from the
previous chunk. On the CPU, oneDNN also copies each 1024-wide 3x3x3 conv weight (109 MiB)
into its blocked layout on every call; at small frame sizes (64x64) that transient sets the
peak, and a steady-state chunk then exceeds the first chunk by the cache (+33 MiB at 64x64:
112 -> 145 MiB, then flat). At 128x128 the activations dominate, as on a GPU, where there
is no such copy.

PV-VAE runs with its defaults: chunks of 8 latent frames, and the full-resolution parts of
the encoder and decoder in slices of 1 frame (``PVVAE.set_chunk_size``); ``--chunk`` and
``--slice`` (0: no slicing) change them.

PV-VAE* (paper section 5 and Table 7: 1.29 it/s against the CNN's 0.69 it/s), the
Transformer VAE, runs as ``transformer-paper`` (or ``transformer-tiny``) in ``--models``.
``--flops`` counts instead the FLOPs of one encode + decode per model with
``torch.utils.flop_counter.FlopCounterMode`` on the meta device (no weights, no time; PV-VAE
models run their encoder and decoder on the whole clip, unchunked) and writes
``bench/results/vae_flops.json``; the table gives each model's FLOPs over the first one's.

Half precision: ``--dtypes float32 bfloat16 float16`` runs every model in each
dtype and reports, beside the speed, the PSNR of the half-precision reconstruction against
the float32 one of the same model and input (``PSNR vs fp32``: how much precision costs) and,
with ``--weights`` (a trained PV-VAE folder, used instead of the random ``paper`` model),
the reconstruction PSNR against the input. Random weights give speed only: their PSNR
against the input means nothing. The inputs are uniform noise unless ``--video`` names a file.

    python bench/vae_speed.py                       # CPU defaults: batch 1, 17x128x128
    python bench/vae_speed.py --models paper --dtypes float32 bfloat16 float16 --stream-frames
    python bench/vae_speed.py --device cuda --size 256 --batch 4 --warmup 50 --repeats 100
    python bench/vae_speed.py --flops --models paper transformer-paper wan2.1 wan2.2 --size 256
    # ISpeed / IMem of PV-VAE* against the CNN (paper Table 7), on one GPU:
    python bench/vae_speed.py --device cuda --models paper transformer-paper --size 256 \
        --batch 4 --warmup 50 --repeats 100 --stream-frames --out bench/results/vae_speed_tf.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

GIB = 1024**3
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
WAN22 = dict(
    base_dim=160,
    decoder_base_dim=256,
    z_dim=48,
    is_residual=True,
    patch_size=2,
    scale_factor_spatial=16,
    in_channels=12,
    out_channels=12,
)


def build(name: str, chunk: int | None = 8, slice_frames: int | None = 1) -> torch.nn.Module:
    """Randomly initialised model ``name``: paper | tiny | t4s8c16 | wan2.1 | wan2.2, or
    transformer-NAME for ``TransformerPVVAE`` preset NAME (paper | tiny).

    ``chunk``: latent frames per temporal chunk of a PV-VAE (1 streams like Wan: 1, 4, 4, ...
    pixel frames); ``slice_frames``: frames per slice of its full-resolution parts.
    """
    if name.startswith("wan"):
        from diffusers import AutoencoderKLWan

        return AutoencoderKLWan(**(WAN22 if name == "wan2.2" else {}))
    from pvvae.model.registry import from_preset

    vae = from_preset(name)
    vae.set_chunk_size(chunk, slice_frames)
    return vae


def prepare(model: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """The model on ``device`` in eval mode; cast only for a non-float32 ``dtype`` (diffusers
    warns on every ``.to(dtype)`` call)."""
    model = model.to(device).eval()
    return model if dtype == torch.float32 else model.to(dtype)


def encode_decode(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    z = model.encode(x).latent_dist.mode()
    return model.decode(z).sample


def count_flops(name: str, batch: int, frames: int, size: int) -> dict:
    """Parameters (M) and TFLOP per clip of one encode + decode of a (batch, 3, frames, size,
    size) input by model ``name``, counted on the meta device. PV-VAE models run their
    networks directly (``encode`` checks pixel values, which meta tensors do not have), on
    the whole clip; Wan runs as shipped."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = build(name, chunk=None, slice_frames=None).eval()
        x = torch.empty(batch, 3, frames, size, size)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        if name.startswith("wan"):
            encode_decode(model, x)
        else:
            params = model.encoder(x)  # (B, 2 Cz, t, h, w)
            model.decoder(params[:, : params.shape[1] // 2])  # the posterior mean
    return {
        "params_m": sum(q.numel() for q in model.parameters()) / 1e6,
        "tflop_per_clip": counter.get_total_flops() / 1e12 / batch,
    }


def run_flops(args: argparse.Namespace) -> None:
    """The ``--flops`` mode: a table of FLOPs per clip and the JSON file."""
    rows = {name: count_flops(name, args.batch, args.frames, args.size) for name in args.models}
    first = args.models[0]
    clip = f"{args.frames}x{args.size}x{args.size}"
    print(f"\nFLOPs of encode + decode per {clip} clip (FlopCounterMode, meta device)")
    print(f"| model | params (M) | TFLOP per clip | x {first} |")
    print("|---|---|---|---|")
    for name, r in rows.items():
        r["ratio_to_first"] = r["tflop_per_clip"] / rows[first]["tflop_per_clip"]
        print(f"| {name} | {r['params_m']:.1f} | {r['tflop_per_clip']:.3f} | "
              f"{r['ratio_to_first']:.3f} |")
    if "paper" in rows and "transformer-paper" in rows:
        ratio = rows["transformer-paper"]["tflop_per_clip"] / rows["paper"]["tflop_per_clip"]
        print(f"\ntransformer-paper / paper FLOPs: x{ratio:.3f} (target <= 0.55)")
    write_json({"config": vars(args), "flops": rows}, args.out or "bench/results/vae_flops.json")


def write_json(results: dict, path: str) -> None:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


def _rss_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


class PeakMemory:
    """Extra peak memory of the code inside ``with`` (see module docstring)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak = 0

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        else:
            Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
            self.base = _rss_bytes("VmRSS")
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) - self.base
        else:
            self.peak = _rss_bytes("VmHWM") - self.base


def tensor_peak_bytes(fn) -> int:
    """Peak bytes held by CPU tensors allocated while ``fn()`` runs (torch.profiler events)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = prof.profiler.kineto_results.events()
    changes = sorted((e.start_ns(), e.nbytes()) for e in events if e.name() == "[memory]")
    live = peak = 0
    for _, nbytes in changes:
        live += nbytes
        peak = max(peak, live)
    return peak


def stream_encode_decode(model, x: torch.Tensor) -> None:
    """Encode, then decode chunk by chunk with ``iter_decode``, dropping each pixel chunk as a
    streaming writer would: the working memory, without holding the output video."""
    z = model.encode(x).latent_dist.mode()
    for chunk in model.iter_decode(z):
        del chunk  # written out


def measure(model, x: torch.Tensor, warmup: int, repeats: int, run=encode_decode) -> dict:
    """Clips/s of ``run(model, x)`` (default: encode + decode) and the peak extra memory of one
    call (``peak_gib``)."""
    device = x.device
    extra = {}
    with torch.no_grad():
        for _ in range(warmup):
            run(model, x)
        with PeakMemory(device) as mem:
            run(model, x)
        if device.type == "cpu":
            extra["rss_peak_gib"] = mem.peak / GIB
            extra["tensor_peak_gib"] = tensor_peak_bytes(lambda: run(model, x)) / GIB
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(repeats):
            run(model, x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = (time.perf_counter() - start) / repeats
    return {
        "seconds_per_call": seconds,
        "clips_per_s": x.shape[0] / seconds,
        "peak_gib": extra.get("tensor_peak_gib", mem.peak / GIB),
        **extra,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--models", nargs="*", default=["paper", "wan2.1", "wan2.2"])
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--frames", type=int, default=17)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--stream-frames", type=int, nargs="*", default=[17, 65, 129])
    p.add_argument("--stream-size", type=int, default=128, help="frame size of the streaming runs")
    p.add_argument("--dtype", default="float32", choices=list(DTYPES))
    p.add_argument("--dtypes", nargs="*", choices=list(DTYPES), help="compare these dtypes")
    p.add_argument("--weights", help="trained PV-VAE folder used for the 'paper' entry")
    p.add_argument("--video", help="input frames from this video file instead of noise")
    p.add_argument("--chunk", type=int, default=8, help="PV-VAE latent frames per chunk")
    p.add_argument("--slice", type=int, default=1, help="PV-VAE frames per slice (0: none)")
    p.add_argument("--flops", action="store_true", help="count FLOPs on the meta device only")
    p.add_argument("--out", default=None, help="JSON file (default bench/results/vae_*.json)")
    args = p.parse_args()
    if args.flops:
        run_flops(args)
        return
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    torch.manual_seed(0)
    x = torch.rand(args.batch, 3, args.frames, args.size, args.size, device=device) * 2 - 1
    if args.video:
        from pvvae.cli.video import load_clip

        clip = load_clip(args.video, args.frames, args.size).to(device)
        x = clip.expand(args.batch, -1, -1, -1, -1).contiguous()
    if args.dtypes:
        compare_dtypes(args, x)
        return
    x = x.to(dtype)
    results: dict = {"config": vars(args), "models": {}, "streaming": {}}
    for name in args.models:
        model = prepare(build(name, args.chunk, args.slice or None), device, dtype)
        params = sum(q.numel() for q in model.parameters())
        r = measure(model, x, args.warmup, args.repeats)
        results["models"][name] = {"params_m": params / 1e6, **r}
        print(
            f"{name:8s} {params / 1e6:7.1f}M  {r['clips_per_s']:.4f} clips/s  "
            f"{r['seconds_per_call']:.2f} s/call  peak +{r['peak_gib']:.3f} GiB"
            + (f" (RSS +{r['rss_peak_gib']:.3f})" if "rss_peak_gib" in r else ""),
            flush=True,
        )
        del model
    if args.stream_frames:
        model = prepare(build("paper", args.chunk, args.slice or None), device, dtype)
        for frames in args.stream_frames:
            xs = torch.rand(1, 3, frames, args.stream_size, args.stream_size, device=device)
            r = measure(model, xs.to(dtype) * 2 - 1, 0, 1, run=stream_encode_decode)
            results["streaming"][frames] = r
            print(f"paper streaming {frames:4d} frames: peak +{r['peak_gib']:.3f} GiB", flush=True)
    print_table(results)
    write_json(results, args.out or "bench/results/vae_speed.json")


def compare_dtypes(args: argparse.Namespace, x: torch.Tensor) -> None:
    """Speed of each model in each of ``args.dtypes``, and the PSNR of its output against the
    float32 output (and against the input with ``--weights``)."""
    from pvvae.eval.metrics.psnr_ssim import compute_psnr

    device = x.device
    rows = []
    for name in args.models:
        ref = None
        for dtype_name in args.dtypes:
            dtype = DTYPES[dtype_name]
            torch.manual_seed(0)  # the same random weights in every dtype
            model = build(name, args.chunk, args.slice or None)
            if name == "paper" and args.weights:
                from pvvae.training.checkpoint import load_model

                model = load_model(args.weights)
                model.set_chunk_size(args.chunk, args.slice or None)
            model = prepare(model, device, dtype)
            xd = x.to(dtype)
            try:
                with torch.no_grad():
                    out = encode_decode(model, xd)[:, :, : x.shape[2]].float()
                r = measure(model, xd, args.warmup, args.repeats)
            except RuntimeError as err:  # e.g. a kernel missing for fp16 on the CPU
                rows.append((name, dtype_name, None, str(err).splitlines()[0][:80]))
                continue
            ref = out if dtype == torch.float32 else ref
            vs_fp32 = compute_psnr(out.clamp(-1, 1), ref.clamp(-1, 1)) if ref is not None else None
            vs_input = compute_psnr(out.clamp(-1, 1), x.float()) if args.weights else None
            rows.append((name, dtype_name, r, (vs_fp32, vs_input)))
            print(f"{name} {dtype_name}: {r['clips_per_s']:.4f} clips/s", flush=True)
            del model
    print(f"\nencode + decode, batch {args.batch} x {args.frames}x{args.size}x{args.size}, "
          f"{args.device}")
    print("| model | dtype | clips/s | s/call | peak (GiB) | PSNR vs fp32 (dB) | PSNR vs input |")
    print("|---|---|---|---|---|---|---|")
    for name, dtype_name, r, extra in rows:
        if r is None:
            print(f"| {name} | {dtype_name} | failed: {extra} | | | | |")
            continue
        vs_fp32, vs_input = extra
        fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        print(f"| {name} | {dtype_name} | {r['clips_per_s']:.4f} | {r['seconds_per_call']:.2f} | "
              f"{r['peak_gib']:.3f} | {fmt(vs_fp32 if dtype_name != 'float32' else None)} | "
              f"{fmt(vs_input)} |")


def print_table(results: dict) -> None:
    cfg = results["config"]
    models = results["models"]
    print(
        f"\nencode + decode, batch {cfg['batch']} x {cfg['frames']}x{cfg['size']}x{cfg['size']}, "
        f"{cfg['device']}, {cfg['dtype']}"
    )
    cpu = cfg["device"] == "cpu"
    head = "tensor peak (GiB) | RSS peak (GiB)" if cpu else "peak extra memory (GiB)"
    print(f"| model | params (M) | clips/s | s/call | {head} |")
    print("|---|---|---|---|---|" + ("---|" if cpu else ""))
    for name, r in models.items():
        rss = f" {r['rss_peak_gib']:.3f} |" if cpu else ""
        print(
            f"| {name} | {r['params_m']:.1f} | {r['clips_per_s']:.4f} | "
            f"{r['seconds_per_call']:.2f} | {r['peak_gib']:.3f} |{rss}"
        )
    if "paper" in models and "wan2.2" in models:
        speed = models["paper"]["clips_per_s"] / models["wan2.2"]["clips_per_s"]
        mem = models["paper"]["peak_gib"] / max(models["wan2.2"]["peak_gib"], 1e-9)
        print(
            f"\npaper vs wan2.2: throughput x{speed:.2f} (target >= 1.2), "
            f"peak memory x{mem:.2f} (target <= 0.85)"
        )
    if results["streaming"]:
        peaks = {f: r["peak_gib"] for f, r in results["streaming"].items()}
        first, last = peaks[min(peaks)], peaks[max(peaks)]
        print(
            "streaming peak memory (GiB): "
            + ", ".join(f"{f} frames {v:.3f}" for f, v in peaks.items())
            + f"; ratio {max(peaks)}/{min(peaks)} frames = {last / max(first, 1e-9):.2f} "
            "(target <= 1.1)"
        )


if __name__ == "__main__":
    main()
