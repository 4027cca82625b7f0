"""Training-step speed and memory: predictive reconstruction (r = 1) against plain
reconstruction (r = 0), same model, batch and step code.

With r = 1 the encoder sees 1 + T - 4k frames (k ~ U{0..G-1}) while the decoder always
outputs the whole clip, so a step should not be slower than with r = 0. To compare fairly
the r = 1 step is timed at every k in 0..G-1 (the distribution it samples from, uniform)
and averaged; r = 0 is k = 0 every step. Steps of all settings are interleaved round by
round and the median per setting is kept, so load changes on a shared machine hit all
alike. A step is ``pvvae.training.trainer.train_step``: forward, Eq. 1 (MSE + Diff + KL;
LPIPS and GAN off: their cost does not depend on r since they see the full decoded clip),
backward, clipping, AdamW.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` (reset per measurement); on the CPU
the peak resident set size (VmHWM, reset through ``/proc/self/clear_refs``) minus the
resident size before the step: the extra memory a step needs on top of the model, optimizer
state and batch. Also reported: the activations saved for backward (device-independent).

    python bench/train_speed.py                    # CPU: tiny preset, 1 x 17x64x64, 1 thread
    python bench/train_speed.py --device cuda --preset paper --size 256 --batch 4 \\
        --warmup 10 --repeats 50 --precision bf16

Writes bench/results/train_speed.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vae_speed import PeakMemory  # noqa: E402  (the sibling benchmark's helper)

from pvvae.config import load_config  # noqa: E402
from pvvae.objectives.predictive import num_groups  # noqa: E402
from pvvae.training.config import ExperimentConfig  # noqa: E402
from pvvae.training.distributed import DistInfo, resolve_device  # noqa: E402
from pvvae.training.state import TrainState, build_state  # noqa: E402
from pvvae.training.trainer import train_step  # noqa: E402

MIB = 1024**2


def saved_activation_bytes(state: TrainState, x: torch.Tensor, k: int) -> int:
    """Bytes of the tensors the VAE's forward pass saves for backward at drop count k."""
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        state.forward(x, k, True, None)
    return total


def make_state(args: argparse.Namespace, r: float, device: torch.device) -> TrainState:
    overrides = [
        f"model.preset={args.preset}",
        f"objective.max_drop_ratio={r}",
        f"data.num_frames={args.frames}",
        f"data.size={args.size}",
        f"train.precision={args.precision}",
        "optim.warmup_steps=0",
    ]
    cfg = load_config(ExperimentConfig, None, overrides)
    return build_state(cfg, DistInfo(device=device))


def time_step(state: TrainState, x: torch.Tensor, k: int, device) -> tuple[float, int]:
    """Seconds and peak extra memory (bytes) of one training step at drop count k."""
    with PeakMemory(device) as mem:
        start = time.perf_counter()
        train_step(state, {"video": x}, k=k)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
    return seconds, mem.peak


def measure(runs: list[tuple[TrainState, int]], x, args, device) -> list[dict[str, float]]:
    """Time every (state, k) of ``runs``, interleaved round by round in a rotating order (so
    that load changes on a shared machine hit all of them alike); the median per run."""
    for state, k in runs:
        for _ in range(args.warmup):
            train_step(state, {"video": x}, k=k)
    samples: list[list[tuple[float, int]]] = [[] for _ in runs]
    for round_ in range(args.repeats):
        for j in range(len(runs)):
            i = (j + round_) % len(runs)  # rotate the order: no setting always goes first
            state, k = runs[i]
            samples[i].append(time_step(state, x, k, device))
    rows = []
    for (state, k), got in zip(runs, samples):
        seconds = sorted(t for t, _ in got)
        rows.append(
            {
                "k": k,
                "encoder_frames": x.shape[2] - 4 * k,
                "step_s": seconds[len(seconds) // 2],
                "peak_mib": max(m for _, m in got) / MIB,
                "saved_activations_mib": saved_activation_bytes(state, x, k) / MIB,
            }
        )
    return rows


def summarize(rows: list[dict[str, float]]) -> dict[str, float]:
    """Mean over k (uniform, as k is drawn); steps/s from the mean step time."""
    mean = {
        key: sum(r[key] for r in rows) / len(rows)
        for key in ("step_s", "peak_mib", "saved_activations_mib")
    }
    return {**mean, "steps_per_s": 1.0 / mean["step_s"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="tiny")
    p.add_argument("--frames", type=int, default=17)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5, help="timed rounds (median)")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    p.add_argument("--threads", type=int, default=1, help="CPU intra-op threads")
    p.add_argument("--out", default="bench/results/train_speed.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, 3, args.frames, args.size, args.size, generator=g) * 2 - 1
    x = x.to(device)
    groups = num_groups(args.frames)

    plain, predictive = make_state(args, 0.0, device), make_state(args, 1.0, device)
    rows = measure([(plain, 0)] + [(predictive, k) for k in range(groups)], x, args, device)
    r0, r1 = rows[:1], rows[1:]

    s0, s1 = summarize(r0), summarize(r1)
    result = {
        "command": "python bench/train_speed.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out"),
        "device": str(device)
        if device.type == "cuda"
        else f"cpu ({platform.processor() or platform.machine()}, {args.threads} thread(s))",
        "preset": args.preset,
        "clip": [args.batch, 3, args.frames, args.size, args.size],
        "precision": args.precision,
        "r0": {"per_k": r0, "mean": s0},
        "r1": {"per_k": r1, "mean": s1},
        "speed_ratio_r1_over_r0": s1["steps_per_s"] / s0["steps_per_s"],
        "peak_ratio_r1_over_r0": s1["peak_mib"] / max(s0["peak_mib"], 1e-9),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))

    print(
        f"{args.preset} preset, batch {args.batch} x {args.frames}x{args.size}x{args.size}, "
        f"{args.precision}, {result['device']}"
    )
    print("| objective | k | encoder frames | s/step | peak extra MiB | saved activations MiB |")
    print("|---|---|---|---|---|---|")
    for name, rows in (("r = 0", r0), ("r = 1", r1)):
        for row in rows:
            print(
                f"| {name} | {row['k']} | {row['encoder_frames']} | {row['step_s']:.3f} | "
                f"{row['peak_mib']:.0f} | {row['saved_activations_mib']:.0f} |"
            )
    print(
        "| **r = 0** | 0 | | "
        f"{s0['step_s']:.3f} ({s0['steps_per_s']:.2f} steps/s) | {s0['peak_mib']:.0f} | "
        f"{s0['saved_activations_mib']:.0f} |"
    )
    print(
        "| **r = 1, mean over k** | | | "
        f"{s1['step_s']:.3f} ({s1['steps_per_s']:.2f} steps/s) | {s1['peak_mib']:.0f} | "
        f"{s1['saved_activations_mib']:.0f} |"
    )
    print(
        f"r = 1 / r = 0: {result['speed_ratio_r1_over_r0']:.2f}x steps/s, "
        f"{result['peak_ratio_r1_over_r0']:.2f}x peak extra memory; wrote {out}"
    )


if __name__ == "__main__":
    main()
