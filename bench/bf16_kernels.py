"""Which bf16 kernel breaks training on this machine? A per-op reproduction under each oneDNN ISA.

bf16 autocast on a CPU runs each convolution and matmul on the kernel oneDNN picks for the
hardware (AMX on Sapphire Rapids and later, AVX512-BF16, plain AVX-512 or AVX2), so a bf16
failure can exist on one machine and not on the next. This script isolates it:

1. one fp32 training step of the demo's model (``tiny``, train mode, 2 proving-ground clips of
   17x64x64, MSE) records the input and output gradient of every convolution and linear layer;
2. each layer then reruns its forward and backward alone in bf16 on those tensors, and its
   weight, bias and input gradients are compared with the fp32 ones (non-finite values,
   relative error), with the oneDNN implementation that ran each pass (``ONEDNN_VERBOSE``);
3. a whole-model bf16 step names every parameter whose gradient is non-finite (the
   end-to-end symptom that stops a run).

Each ISA runs in a fresh process (``ONEDNN_MAX_CPU_ISA`` is read once, at the first oneDNN
call). Capping the ISA can only move a machine down the list, so AMX is tested where the CPU
has it (``DEFAULT`` then picks it).

    python bench/bf16_kernels.py             # DEFAULT, AVX512_CORE_BF16, AVX512_CORE, AVX2
    python bench/bf16_kernels.py --isa DEFAULT --frames 17 --size 64

Prints a table (one row per ISA: failing layers, worst relative weight-gradient error,
end-to-end non-finite parameters) and writes ``bench/results/bf16_kernels.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ISAS = ("DEFAULT", "AVX512_CORE_BF16", "AVX512_CORE", "AVX2")
OUT = Path("bench/results/bf16_kernels.json")


def _clips(frames: int, size: int):
    import torch

    from pvvae.data.synthetic import SyntheticVideoDataset

    data = SyntheticVideoDataset(2, frames, size, size, seed=0, annotations=False)
    return torch.stack([data[i]["video"] for i in range(2)])


def _record(model, x):
    """One fp32 step; {name: (module, input, grad_output)} for every conv / linear layer.

    A layer called several times (frame slices) keeps the call whose backward pairs with it
    (calls and gradients matched in reverse order, shapes checked).
    """
    from torch import nn

    calls: dict = {}
    hooks = []
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv3d, nn.Conv2d, nn.Linear, nn.ConvTranspose3d)):
            calls[name] = ([], [])

            def fwd(mod, args, out, name=name):
                calls[name][0].append((mod, args[0].detach().clone(), out.shape))

            def bwd(mod, grad_in, grad_out, name=name):
                calls[name][1].append(grad_out[0].detach().clone())

            hooks += [m.register_forward_hook(fwd), m.register_full_backward_hook(bwd)]
    ((model(x).sample - x) ** 2).mean().backward()
    for h in hooks:
        h.remove()
    model.zero_grad(set_to_none=True)
    seen = {}
    for name, (forwards, grads) in calls.items():
        for (mod, inp, shape), g in zip(forwards, reversed(grads)):
            if g.shape == shape:
                seen[name] = (mod, inp, g)
                break
    return seen


def _captured_stdout(fn):
    """Run ``fn()`` with the process's fd 1 sent to a file; returns (result, text)."""
    sys.stdout.flush()
    with tempfile.TemporaryFile(mode="w+") as f:
        saved = os.dup(1)
        os.dup2(f.fileno(), 1)
        try:
            result = fn()
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
        f.seek(0)
        return result, f.read()


def _implementations(verbose: str) -> list[str]:
    """oneDNN convolution / matmul implementations named in ONEDNN_VERBOSE lines."""
    names = []
    for line in verbose.splitlines():
        parts = line.split(",")
        if len(parts) > 7 and parts[2] == "primitive" and parts[3] == "exec" and parts[5] in (
            "convolution", "matmul", "inner_product", "deconvolution"
        ):
            names.append(f"{parts[5]}:{parts[6]}:{parts[7]}")
    return sorted(set(names))


def _layer_bf16(module, inp, grad_out) -> dict:
    """Forward + backward of one layer in bf16 against fp32: errors and kernels used."""
    import torch

    def grads(dtype):
        x = inp.to(dtype).requires_grad_(True)
        params = [p.detach().to(dtype).requires_grad_(True) for p in module.parameters()]
        names = [n for n, _ in module.named_parameters()]
        out = torch.func.functional_call(module, dict(zip(names, params)), (x,))
        out.backward(grad_out.to(dtype))
        return {"input": x.grad, **{n: p.grad for n, p in zip(names, params)}}

    ref = grads(torch.float32)
    with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
        low, text = _captured_stdout(lambda: grads(torch.bfloat16))
    row = {"kernels": _implementations(text), "nonfinite": [], "rel_error": {}}
    for key, g in low.items():
        if g is None or ref[key] is None:
            continue
        g = g.float()
        if not torch.isfinite(g).all():
            row["nonfinite"].append(key)
        scale = ref[key].norm().item() or 1.0
        row["rel_error"][key] = (g - ref[key]).norm().item() / scale
    return row


def run_isa(frames: int, size: int) -> dict:
    """Child process: every layer alone, then the whole model, in bf16 (this process's ISA)."""
    import torch

    from pvvae import PVVAE

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = PVVAE.from_preset("tiny").train()
    x = _clips(frames, size)
    layers = {}
    for name, (module, inp, grad_out) in _record(model, x).items():
        layers[name] = {"shape": list(inp.shape), **_layer_bf16(module, inp, grad_out)}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x).sample
    ((out.float() - x) ** 2).mean().backward()
    bad = [n for n, p in model.named_parameters() if p.grad is not None
           and not torch.isfinite(p.grad).all()]
    return {
        "isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "DEFAULT"),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "layers": layers,
        "model_nonfinite_grads": bad,
    }


def _spawn(isa: str, args) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("ONEDNN_MAX_CPU_ISA", None)
    if isa != "DEFAULT":
        env["ONEDNN_MAX_CPU_ISA"] = isa
    cmd = [sys.executable, __file__, "--child", "--frames", str(args.frames),
           "--size", str(args.size)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise SystemExit(f"bf16_kernels: the {isa} run failed: {tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarise(result: dict) -> dict:
    layers = result["layers"]
    failing = {n: r["nonfinite"] for n, r in layers.items() if r["nonfinite"]}
    worst = max(layers.items(), key=lambda kv: kv[1]["rel_error"].get("weight", 0.0))
    return {
        "isa": result["isa"],
        "failing_layers": failing,
        "worst_weight_grad_rel_error": [worst[0], worst[1]["rel_error"].get("weight", 0.0)],
        "model_nonfinite_grads": result["model_nonfinite_grads"],
        "kernels": sorted({k for r in layers.values() for k in r["kernels"]}),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--isa", nargs="+", default=list(ISAS), help="oneDNN ISAs to test")
    p.add_argument("--frames", type=int, default=17)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(run_isa(args.frames, args.size)))
        return
    results = [_spawn(isa, args) for isa in args.isa]
    rows = [summarise(r) for r in results]
    print("| ISA | layers with non-finite bf16 gradients | worst weight-grad rel. error | "
          "model params with non-finite grads |")
    print("|---|---|---|---|")
    for r in rows:
        failing = ", ".join(f"{n} ({'/'.join(k)})" for n, k in r["failing_layers"].items())
        name, err = r["worst_weight_grad_rel_error"]
        print(f"| {r['isa']} | {failing or 'none'} | {err:.4f} ({name}) | "
              f"{', '.join(r['model_nonfinite_grads']) or 'none'} |")
    for r in rows:
        print(f"{r['isa']}: oneDNN kernels {', '.join(r['kernels']) or '(none: ATen kernels)'}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": rows, "runs": results}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
