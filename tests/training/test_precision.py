"""The bf16 precision policy (``pvvae.training.precision``): a bf16 kernel that fails for one
layer costs one fp32 recomputation and pins that layer to fp32, never a skipped step; and the
demo's model trains in bf16 at the demo's shapes under every oneDNN ISA this CPU can run."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest
import torch

from pvvae.training.distributed import DistInfo
from pvvae.training.engine import checkpoint_payload, restore
from pvvae.training.state import build_state
from pvvae.training.trainer import save, train_step

from .conftest import micro_config, subprocess_env

FAULTY = "decoder.ups.3.spatial"  # the layer whose bf16 weight gradient failed on AMX


def inject_bf16_fault(module: torch.nn.Module) -> None:
    """Make ``module``'s weight gradient NaN whenever its forward ran in bf16, as a broken
    bf16 kernel for its shapes would; its fp32 path stays correct."""
    ran_bf16 = {}

    def record(mod, args, out):
        ran_bf16["last"] = out.dtype == torch.bfloat16

    module.register_forward_hook(record)
    module.weight.register_hook(lambda g: g * float("nan") if ran_bf16.get("last") else g)


def _batch():
    g = torch.Generator().manual_seed(0)
    return {"video": torch.rand(2, 3, 9, 32, 32, generator=g) * 2 - 1}


def test_a_failing_bf16_layer_is_pinned_to_fp32_and_no_step_is_skipped(tmp_path, caplog):
    state = build_state(micro_config(tmp_path, "train.precision=bf16"), DistInfo())
    inject_bf16_fault(dict(state.vae.named_modules())[FAULTY])
    with caplog.at_level(logging.WARNING, logger="pvvae.training.precision"):
        history = [train_step(state, _batch(), k=k) for k in (1, 0, 1)]
    assert [m["step/skipped"] for m in history] == [0, 0, 0]
    assert [m.get("precision/fp32_retry", 0) for m in history] == [1, 0, 0]
    assert state.precision.pinned == [FAULTY]
    assert state.precision.active  # the rest of the model stays in bf16
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and FAULTY in lines[0] and "fp32" in lines[0]
    assert all(torch.isfinite(p).all() for p in state.vae.parameters())


def test_the_pinned_layers_survive_a_checkpoint(tmp_path):
    cfg = micro_config(tmp_path, "train.precision=bf16")
    state = build_state(cfg, DistInfo())
    inject_bf16_fault(dict(state.vae.named_modules())[FAULTY])
    train_step(state, _batch(), k=1)
    folder = save(state, tmp_path / "run")
    assert checkpoint_payload(state)["train_state"]["precision"]["fp32_modules"] == [FAULTY]
    resumed = build_state(cfg, DistInfo())
    restore(resumed, folder)
    assert resumed.precision.pinned == [FAULTY]
    inject_bf16_fault(dict(resumed.vae.named_modules())[FAULTY])
    metrics = train_step(resumed, _batch(), k=0)
    assert metrics["step/skipped"] == 0 and "precision/fp32_retry" not in metrics


def test_a_step_non_finite_in_fp32_too_is_skipped_and_nothing_is_pinned(tmp_path):
    state = build_state(micro_config(tmp_path, "train.precision=bf16"), DistInfo())
    module = dict(state.vae.named_modules())[FAULTY]
    module.weight.register_hook(lambda g: g * float("nan"))  # broken in every precision
    before = [p.detach().clone() for p in state.vae.parameters()]
    metrics = train_step(state, _batch(), k=1)
    assert metrics["step/skipped"] == 1 and state.nonfinite_total == 1
    assert state.precision.pinned == []
    assert all(torch.equal(a, b) for a, b in zip(before, state.vae.parameters()))


def test_fp32_runs_never_retry(tmp_path):
    state = build_state(micro_config(tmp_path), DistInfo())
    assert not state.precision.active
    metrics = train_step(state, _batch(), k=1)
    assert metrics["step/skipped"] == 0 and "precision/fp32_retry" not in metrics


# ------------------------------------------------------------------ every oneDNN kernel path
_DEMO_STEPS = """
import json, torch
from pvvae.config import load_config
from pvvae.training.config import ExperimentConfig
from pvvae.training.distributed import DistInfo
from pvvae.training.state import build_state
from pvvae.training.trainer import train_step
from pvvae.data.synthetic import SyntheticVideoDataset
torch.set_num_threads(1)
cfg = load_config(ExperimentConfig, "configs/demo.yaml", ["train.out_dir=OUT", "train.steps=10",
                                                             "train.precision=bf16"])
state = build_state(cfg, DistInfo())
data = SyntheticVideoDataset(2, cfg.data.num_frames, cfg.data.size, cfg.data.size, seed=0)
batch = {"video": torch.stack([data[i]["video"] for i in range(2)])}
steps = [train_step(state, batch, k=k) for k in (2, 0)]
print(json.dumps({
    "skipped": [m["step/skipped"] for m in steps],
    "finite": all(bool(torch.isfinite(p).all()) for p in state.vae.parameters()),
    "pinned": state.precision.pinned,
    "capability": torch.backends.cpu.get_cpu_capability(),
}))
"""

ISAS = ("DEFAULT", "AVX512_CORE_BF16", "AVX512_CORE", "AVX2")


@pytest.mark.parametrize("isa", ISAS)
def test_the_demo_model_trains_in_bf16_on_every_kernel_path(isa, tmp_path):
    """Two bf16 steps of the demo's config (``tiny``, 2 clips of 17x64x64, r = 1) in a fresh
    process per ``ONEDNN_MAX_CPU_ISA`` (read once, at the first oneDNN call): every step is
    applied and the weights stay finite. A kernel path that fails for some layer shows up as a
    pinned layer (printed), not as a skipped step; ``bench/bf16_kernels.py`` names the kernel."""
    from .conftest import REPO

    env = subprocess_env()
    env.pop("ONEDNN_MAX_CPU_ISA", None)
    if isa != "DEFAULT":
        env["ONEDNN_MAX_CPU_ISA"] = isa
    code = _DEMO_STEPS.replace("OUT", str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(isa, result)
    assert result["skipped"] == [0, 0]
    assert result["finite"]
