"""The three stages of the seed (section 3.2): smoke configs chained image -> video ->
decoder, decoder-stage freezing, the GAN switch-on step, the LPIPS term, and a loss that
goes down."""

from __future__ import annotations

import pytest
import torch

from pvvae.config import ConfigError, load_config
from pvvae.model.causal import CausalConv3d
from pvvae.training.checkpoint import load_model
from pvvae.training.config import ExperimentConfig, validate
from pvvae.training.distributed import DistInfo
from pvvae.training.state import build_lpips, build_model, build_state
from pvvae.training.trainer import train, train_step

from .conftest import REPO, micro_config, read_log


def _clip(t: int = 9, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"video": torch.rand(2, 3, t, 32, 32, generator=g) * 2 - 1}


def test_smoke_configs_chain_image_video_decoder(tmp_path):
    runs = {}
    for stage, init in (("image", None), ("video", "smoke-image"), ("decoder", "smoke-video")):
        overrides = [f"train.out_dir={tmp_path}", "train.progress=false", "train.steps=3"]
        if init:
            overrides.append(f"model.init_from={tmp_path / init}")
        cfg = load_config(ExperimentConfig, REPO / "configs" / "smoke" / f"{stage}.yaml", overrides)
        runs[stage] = train(cfg)
        log = read_log(runs[stage])
        assert [r["step"] for r in log] == [1, 2, 3]
        assert all(r["data/resolution"] in (32, 64) for r in log)
        assert all(torch.isfinite(torch.tensor(r["loss/total"])) for r in log)
        assert all(r["loss/lpips"] > 0 for r in log)
        assert any(p.name.startswith("events") for p in (runs[stage] / "tb").iterdir())
    image_log, decoder_log = read_log(runs["image"]), read_log(runs["decoder"])
    assert all(r["step/k"] == 0 and "mse/predicted" not in r for r in image_log)  # T = 1
    assert "loss/gan_generator" not in image_log[1] and "loss/gan_generator" in image_log[2]
    assert all(r["step/k"] == 0 and "loss/gan_generator" in r for r in decoder_log)
    # the decoder stage kept the video stage's encoder (its EMA weights, the init) unchanged
    video, decoder = load_model(runs["video"]), load_model(runs["decoder"], use_ema=False)
    for name, value in video.encoder.state_dict().items():
        assert torch.equal(value, decoder.encoder.state_dict()[name])
    assert not torch.equal(video.decoder.conv_out.conv.weight, decoder.decoder.conv_out.conv.weight)


def test_decoder_stage_freezes_the_encoder_disables_dropping_and_starts_the_gan(tmp_path):
    cfg = micro_config(
        tmp_path,
        "train.stage=decoder",
        "objective.max_drop_ratio=1.0",
        "objective.loss.lambda_gan=0.5",
        "objective.gan.start_step=5000",
        "objective.gan.channels=8",
    )
    state = build_state(cfg, DistInfo())
    encoder = list(state.vae.encoder.parameters())
    optimized = {id(p) for group in state.optimizer.param_groups for p in group["params"]}
    assert all(not p.requires_grad and id(p) not in optimized for p in encoder)
    assert id(state.vae.pad_token) not in optimized
    assert not state.vae.encoder.training and state.vae.decoder.training
    before = {k: v.clone() for k, v in state.vae.encoder.state_dict().items()}
    for step in range(3):
        metrics = train_step(state, _clip(seed=step))
        assert metrics["step/k"] == 0 and "loss/gan_generator" in metrics  # GAN from step 0
    assert all(p.grad is None for p in encoder)
    assert all(len(state.optimizer.state[p]) == 0 for p in encoder)
    assert all(torch.equal(v, state.vae.encoder.state_dict()[k]) for k, v in before.items())


def test_gan_switches_on_at_its_start_step(tmp_path):
    cfg = micro_config(
        tmp_path,
        "objective.loss.lambda_gan=0.5",
        "objective.gan.start_step=2",
        "objective.gan.channels=8",
    )
    state = build_state(cfg, DistInfo())
    disc0 = {k: v.clone() for k, v in state.discriminator.state_dict().items()}
    history = [train_step(state, _clip(seed=s)) for s in range(4)]
    assert [("loss/gan_generator" in m, "loss/discriminator" in m) for m in history] == [
        (False, False),
        (False, False),
        (True, True),
        (True, True),
    ]
    assert history[2]["gan/weight"] > 0
    after = state.discriminator.state_dict()
    assert any(not torch.equal(disc0[k], after[k]) for k in disc0)  # it trained from step 2
    assert not any(p.requires_grad for p in state.discriminator.parameters())  # frozen for G


def test_lpips_is_a_loss_term(tmp_path):
    cfg = micro_config(
        tmp_path,
        "objective.loss.lambda_lpips=2.0",
        "objective.lpips.pretrained_backbone=false",
        "objective.lpips.net=alex",
    )
    state = build_state(cfg, DistInfo())
    m = train_step(state, _clip(), k=1)
    rec = m["loss/mse"] + m["loss/diff"]
    assert m["loss/lpips"] > 0
    expected = rec + 2.0 * m["loss/lpips"] + cfg.objective.loss.lambda_kl * m["loss/kl"]
    assert m["loss/total"] == pytest.approx(expected, rel=1e-5)


def test_missing_lpips_weights_stop_the_run_with_the_file_to_fetch(tmp_path):
    missing = tmp_path / "nowhere" / "alexnet.pth"
    cfg = micro_config(
        tmp_path,
        "objective.loss.lambda_lpips=1.0",
        "objective.lpips.net=alex",
        f"objective.lpips.backbone_path={missing}",
    )
    with pytest.raises(FileNotFoundError, match="alexnet-owt-7be5be79.pth"):
        train(cfg)
    cfg.objective.loss.lambda_lpips = 0.0
    assert build_lpips(cfg, torch.device("cpu")) is None  # not needed, not loaded


def test_stage_and_data_mismatches_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="single frames"):
        validate(micro_config(tmp_path, "train.stage=image"))  # 9-frame clips
    with pytest.raises(ConfigError, match="needs video data"):
        validate(micro_config(tmp_path, "data.kind=image_folder", f"data.root={tmp_path}"))
    with pytest.raises(ConfigError, match="needs data.root"):
        validate(micro_config(tmp_path, "data.kind=video_folder"))
    with pytest.raises(ConfigError, match="multiples of 16"):
        validate(micro_config(tmp_path, "data.batch_sizes={40: 2}"))
    assert micro_config(tmp_path, "optim.lr=1e-4").optim.lr == 1e-4  # YAML's string, coerced


def test_a_short_training_run_lowers_the_loss(tmp_path):
    run = train(micro_config(tmp_path, "name=learn", "train.steps=30", "data.num_frames=5"))
    mse = [r["loss/mse"] for r in read_log(run)]
    assert sum(mse[-5:]) < 0.5 * sum(mse[:5]), mse


def test_video_stage_can_inflate_the_image_stage_kernels(tmp_path):
    """model.inflate_temporal folds init_from's temporal taps onto the newest one."""
    image_run = train(micro_config(tmp_path, "name=img", "data.num_frames=1",
                                   "train.stage=image", "train.steps=1"))
    cfg = micro_config(tmp_path, f"model.init_from={image_run}", "model.inflate_temporal=true")
    source, model = load_model(image_run), build_model(cfg)
    pairs = [(a, b) for a, b in zip(source.modules(), model.modules())
             if isinstance(a, CausalConv3d) and a.time_kernel > 1]
    assert pairs
    for before, after in pairs:
        w0, w1 = before.conv.weight, after.conv.weight
        torch.testing.assert_close(w1[:, :, -1], w0.sum(dim=2))
        assert torch.count_nonzero(w1[:, :, :-1]) == 0
