"""Tests of pvvae.gen.train: config, overfitting a few cached clips, exact resume."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from safetensors.torch import load_file

from pvvae.config import ConfigError, load_config
from pvvae.gen.cache import LatentDataset
from pvvae.gen.checkpoint import load_latte
from pvvae.gen.flow import flow_matching_loss
from pvvae.gen.sample import sample_latents
from pvvae.gen.train import GenExperimentConfig, LatteRecipe, train
from pvvae.training.checkpoint import checkpoint_dirs, load_train_state
from pvvae.training.data import ResolutionBatchSampler
from pvvae.training.distributed import DistInfo
from pvvae.training.engine import restore, save
from pvvae.training.guards import NonFiniteLossError


def config(cache, out, *overrides: str) -> GenExperimentConfig:
    base = [
        f"data.cache={cache}",
        f"train.out_dir={out}",
        "name=run",
        "train.device=cpu",
        "train.progress=false",
        "train.tensorboard=false",
        "data.batch_size=6",
    ]
    return load_config(GenExperimentConfig, None, base + list(overrides))


def log_lines(run_dir) -> dict[int, dict]:
    lines = (run_dir / "log.jsonl").read_text().splitlines()
    return {r["step"]: r for r in map(json.loads, lines)}


def fixed_grid_loss(model, x0: torch.Tensor) -> float:
    """Flow-matching loss on fixed (t, eps) pairs, 8 times per clip."""
    g = torch.Generator().manual_seed(123)
    losses = []
    with torch.no_grad():
        for t in torch.linspace(0.05, 0.95, 8):
            eps = torch.randn(x0.shape, generator=g)
            tt = torch.full((len(x0),), float(t))
            losses.append(float(flow_matching_loss(model, x0, None, t=tt, eps=eps)[0]))
    return sum(losses) / len(losses)


def test_tiny_latte_overfits_a_few_cached_clips(latent_cache, tmp_path):
    cfg = config(
        latent_cache,
        tmp_path,
        "train.steps=300",
        "train.log_every=100",
        "train.ckpt_every=300",
        "train.ema=false",
        "data.sample_posterior=false",
        "optim.lr=0.001",
        "model.num_classes=0",
    )
    run = train(cfg)
    x0 = torch.stack([LatentDataset(latent_cache)[i]["latent"] for i in range(6)])
    model, meta = load_latte(run)
    assert meta.latent_shape == (8, 5, 2, 2) and not meta.config.conditional
    initial = fixed_grid_loss(lambda x, t, y: torch.zeros_like(x), x0)  # the zero-init model
    trained = fixed_grid_loss(model, x0)
    assert trained < 0.3 * initial, (trained, initial)
    g = torch.Generator().manual_seed(1)
    z = torch.cat(
        [z for z, _ in sample_latents(model, meta.latent_shape, None, 8, generator=g, num_steps=20)]
    )
    noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(1))
    to_data = torch.cdist(z.flatten(1), x0.flatten(1)).min(dim=1).values
    noise_to_data = torch.cdist(noise.flatten(1), x0.flatten(1)).min(dim=1).values
    assert to_data.mean() < 0.3 * noise_to_data.mean()  # sampling lands on the data


def test_resume_reproduces_losses_and_weights(latent_cache, tmp_path):
    common = (
        "train.log_every=1",
        "train.ckpt_every=3",
        "train.ema_decay=0.5",
        "optim.lr=0.001",
        "data.sample_posterior=true",
    )  # conditional, label dropout
    straight = train(config(latent_cache, tmp_path / "a", "train.steps=6", *common))
    cut = train(config(latent_cache, tmp_path / "b", "train.steps=3", *common))
    resumed = train(
        config(latent_cache, tmp_path / "b", "train.steps=6", "train.resume=true", *common)
    )
    assert resumed == cut
    a, b = log_lines(straight), log_lines(resumed)
    assert sorted(b) == [1, 2, 3, 4, 5, 6]
    for step in range(1, 7):
        assert a[step]["loss"] == b[step]["loss"], step  # bit-exact on the CPU
    for sub in ("", "ema/"):
        name = f"checkpoints/step-0000006/{sub}diffusion_pytorch_model.safetensors"
        wa, wb = load_file(straight / name), load_file(resumed / name)
        for k in wa:
            torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=0)
    # a fresh run into the folder moves the earlier run aside, as pvvae train does
    assert train(config(latent_cache, tmp_path / "b", "train.steps=1", *common)) == cut
    (old,) = cut.glob("superseded-*")
    assert [d.name for d in checkpoint_dirs(old)] == ["step-0000003", "step-0000006"]
    assert [d.name for d in checkpoint_dirs(cut)] == ["step-0000001"]
    with pytest.raises(ConfigError, match="same model section"):
        train(
            config(
                latent_cache,
                tmp_path / "b",
                "train.steps=7",
                "train.resume=true",
                "model.overrides={depth: 2}",
                *common,
            )
        )


def test_class_conditional_model_takes_the_cache_classes(latent_cache, tmp_path):
    run = train(config(latent_cache, tmp_path, "train.steps=1", "train.ema=false"))
    model, meta = load_latte(run)
    assert meta.config.num_classes == 4 and meta.classes[0] == "disc"
    assert meta.vae == "micro" and model.y_embedder is not None


def test_config_errors(latent_cache, tmp_path):
    with pytest.raises(ConfigError, match="unknown config key"):
        config(latent_cache, tmp_path, "train.stepz=3")
    with pytest.raises(ConfigError, match="data.cache"):
        train(load_config(GenExperimentConfig, None, ["train.device=cpu"]))
    with pytest.raises(ConfigError, match="model.overrides"):
        train(config(latent_cache, tmp_path, "model.overrides={depthh: 2}"))


def test_step_batches_partition_the_global_batch_over_ranks():
    # the Latte's batches: the VAE's sampler with plain indices and a per-rank batch size
    one = ResolutionBatchSampler(10, seed=0, batch_sizes={0: 4}, plain=True)
    ranks = [ResolutionBatchSampler(10, 0, {0: 2}, rank=r, world_size=2, plain=True)
             for r in range(2)]
    for step in range(5):
        merged = sorted(ranks[0].batch_at(step, 4 * step) + ranks[1].batch_at(step, 4 * step))
        assert merged == sorted(one.batch_at(step, 4 * step))
    seen = [i for s in range(5) for i in one.batch_at(s, 4 * s)][:10]
    assert sorted(seen) == list(range(10))  # one epoch visits every clip once


@pytest.mark.parametrize("name", ["smoke", "ucf101_xl"])
def test_shipped_configs_load(name):
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "configs" / "gen" / f"{name}.yaml"
    cfg = load_config(GenExperimentConfig, path)
    assert cfg.optim.lr == pytest.approx(1e-3 if name == "smoke" else 1e-4)
    if name == "ucf101_xl":  # paper section 4.1
        assert (cfg.model.preset, cfg.train.steps) == ("XL", 250_000)
        assert cfg.data.batch_size * 8 == 64  # per rank, on the 8 ranks of its torchrun line
        assert cfg.model.overrides == {"patch_size": 1}


def _nan_from(monkeypatch, first_bad_call: int) -> None:
    """Make the flow-matching loss NaN from its ``first_bad_call``-th call (1-based) on."""
    import pvvae.gen.train as gen_train

    calls = {"n": 0}

    def loss(*args, **kwargs):
        calls["n"] += 1
        value, metrics = flow_matching_loss(*args, **kwargs)
        return (value * float("nan"), metrics) if calls["n"] >= first_bad_call else (value, metrics)

    monkeypatch.setattr(gen_train, "flow_matching_loss", loss)


def test_nan_steps_are_skipped_and_stop_the_run_keeping_good_checkpoints(
    latent_cache, tmp_path, monkeypatch
):
    _nan_from(monkeypatch, 3)
    cfg = config(
        latent_cache,
        tmp_path / "nan",
        "train.steps=20",
        "train.ckpt_every=1",
        "train.keep_last=2",
        "train.max_nonfinite=3",
        "train.log_every=1",
    )
    with pytest.raises(NonFiniteLossError, match="3 consecutive steps") as err:
        train(cfg)  # before: NaN weights checkpointed, good ones pruned, exit 0
    run = tmp_path / "nan" / "run"
    assert [d.name for d in checkpoint_dirs(run)] == ["step-0000001", "step-0000002"]
    assert "step-0000002" in str(err.value)
    for sub in ("", "ema/"):
        weights = load_file(
            run / f"checkpoints/step-0000002/{sub}diffusion_pytorch_model.safetensors"
        )
        assert all(torch.isfinite(w).all() for w in weights.values())
    assert [r["skipped"] for r in log_lines(run).values()] == [0, 0, 1, 1, 1]


def test_run_ending_inside_a_nan_streak_is_an_error(latent_cache, tmp_path, monkeypatch):
    _nan_from(monkeypatch, 4)
    cfg = config(latent_cache, tmp_path / "end", "train.steps=4", "train.ckpt_every=2")
    with pytest.raises(NonFiniteLossError, match="ended"):
        train(cfg)  # before: exit 0 without a final checkpoint and without a word
    assert checkpoint_dirs(tmp_path / "end" / "run")[-1].name == "step-0000002"


# ------------------------------------------------------------------ the engine's behaviour
def _recipe_state(latent_cache, tmp_path, *overrides):
    recipe = LatteRecipe(config(latent_cache, tmp_path, "optim.lr=0.001", *overrides))
    return recipe, recipe.build_state(DistInfo())


def test_resume_restores_the_rng_state_and_gives_the_next_loss(latent_cache, tmp_path):
    recipe, state = _recipe_state(latent_cache, tmp_path, "train.steps=4")
    batches = iter(recipe.batches(state))
    for _ in range(2):
        recipe.train_step(state, next(batches))
    torch.manual_seed(1234)
    saved_rng = torch.get_rng_state()
    folder = save(state, tmp_path / "run")
    assert load_train_state(folder)["rng"][0]["torch"].equal(saved_rng)
    batch = next(batches)
    straight = recipe.train_step(state, batch)

    torch.manual_seed(999)  # the resumed process starts from another global RNG state
    _, resumed = _recipe_state(latent_cache, tmp_path, "train.steps=4")
    restore(resumed, folder)
    assert torch.equal(torch.get_rng_state(), saved_rng)
    assert (resumed.step, resumed.data_position) == (2, 12)  # per-rank batch 6, one rank
    again = next(iter(recipe.batches(resumed)))
    assert again["index"].tolist() == batch["index"].tolist()
    assert recipe.train_step(resumed, again)["loss"] == straight["loss"]  # bit-exact


FAULTY = "blocks.0.mlp.fc1"


def test_a_failing_bf16_layer_of_the_latte_is_pinned_to_fp32(latent_cache, tmp_path, caplog):
    from tests.training.test_precision import inject_bf16_fault

    recipe, state = _recipe_state(latent_cache, tmp_path, "train.precision=bf16")
    inject_bf16_fault(dict(state.model.named_modules())[FAULTY])
    batches = iter(recipe.batches(state))
    with caplog.at_level(logging.WARNING, logger="pvvae.training.precision"):
        history = [recipe.train_step(state, next(batches)) for _ in range(2)]
    assert [m["skipped"] for m in history] == [0, 0] and state.nonfinite_total == 0
    assert [m.get("precision/fp32_retry", 0) for m in history] == [1, 0]
    assert state.precision.pinned == [FAULTY] and state.precision.active
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and FAULTY in lines[0] and "fp32" in lines[0]
    assert all(torch.isfinite(p).all() for p in state.model.parameters())
    folder = save(state, tmp_path / "run")  # the pinned layer survives a checkpoint
    _, resumed = _recipe_state(latent_cache, tmp_path, "train.precision=bf16")
    restore(resumed, folder)
    assert resumed.precision.pinned == [FAULTY]


def test_a_latte_step_non_finite_in_fp32_too_is_skipped(latent_cache, tmp_path):
    recipe, state = _recipe_state(latent_cache, tmp_path, "train.precision=bf16")
    module = dict(state.model.named_modules())[FAULTY]
    module.weight.register_hook(lambda g: g * float("nan"))  # broken in every precision
    before = [p.detach().clone() for p in state.model.parameters()]
    metrics = recipe.train_step(state, next(iter(recipe.batches(state))))
    assert metrics["skipped"] == 1 and state.nonfinite_total == 1
    assert state.precision.pinned == []
    assert all(torch.equal(a, b) for a, b in zip(before, state.model.parameters()))
