"""LPIPS v0.1: backbone layout, head files, the formula, the missing-weights error, gradients."""

from __future__ import annotations

import pytest
import torch

from pvvae.objectives.lpips import (
    BACKBONES,
    LPIPS,
    alexnet_features,
    compute_lpips,
    default_backbone_path,
    lpips_heads_path,
    vgg16_features,
    video_lpips,
)

# torchvision's `alexnet().features` / `vgg16().features` parameter shapes (its state-dict keys)
TORCHVISION_ALEXNET = {
    "0": (64, 3, 11, 11), "3": (192, 64, 5, 5), "6": (384, 192, 3, 3),
    "8": (256, 384, 3, 3), "10": (256, 256, 3, 3),
}
TORCHVISION_VGG16 = {
    "0": (64, 3), "2": (64, 64), "5": (128, 64), "7": (128, 128), "10": (256, 128),
    "12": (256, 256), "14": (256, 256), "17": (512, 256), "19": (512, 512), "21": (512, 512),
    "24": (512, 512), "26": (512, 512), "28": (512, 512),
}


def _expected_keys(table: dict, kernel: tuple[int, ...] = ()) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for index, shape in table.items():
        weight = shape if len(shape) == 4 else shape + kernel
        shapes[f"{index}.weight"] = weight
        shapes[f"{index}.bias"] = (weight[0],)
    return shapes


@pytest.fixture(scope="module")
def random_alex() -> LPIPS:
    torch.manual_seed(0)
    return LPIPS("alex", pretrained_backbone=False)


def test_backbones_match_torchvision_layout():
    alex = {k: tuple(v.shape) for k, v in alexnet_features().state_dict().items()}
    vgg = {k: tuple(v.shape) for k, v in vgg16_features().state_dict().items()}
    assert alex == _expected_keys(TORCHVISION_ALEXNET)
    assert vgg == _expected_keys(TORCHVISION_VGG16, kernel=(3, 3))
    assert len(alexnet_features()) == 13 and len(vgg16_features()) == 31
    for net, features in (("alex", alexnet_features()), ("vgg", vgg16_features())):
        assert all(isinstance(features[i], torch.nn.ReLU) for i in BACKBONES[net].taps)


def test_torchvision_checkpoint_loads_from_hub_cache(tmp_path, monkeypatch):
    """A torchvision-style checkpoint (features + classifier) in the hub cache loads strictly."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(1)
    full = {f"features.{k}": v for k, v in alexnet_features().state_dict().items()}
    full["classifier.1.weight"] = torch.zeros(4096, 9216)  # must be ignored
    default_backbone_path("alex").parent.mkdir(parents=True)
    torch.save(full, default_backbone_path("alex"))
    model = LPIPS("alex", allow_download=False)
    for key, value in model.features.state_dict().items():
        assert torch.equal(value, full[f"features.{key}"])
    broken = dict(full)
    broken.pop("features.10.bias")
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(RuntimeError, match="10.bias"):
        LPIPS("alex", backbone_path=tmp_path / "broken.pth")


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_head_files_load(net):
    stored = torch.load(lpips_heads_path(net), map_location="cpu", weights_only=True)
    model = LPIPS(net, pretrained_backbone=False)
    for k, head in enumerate(model.heads):
        assert head.weight.shape == (1, BACKBONES[net].channels[k], 1, 1)
        assert torch.equal(head.weight, stored[f"lin{k}.model.1.weight"])
        assert head.weight.min() >= 0  # v0.1 heads are clamped non-negative in training


def _reference_lpips(model: LPIPS, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Straight re-computation of LPIPS v0.1 from its definition (metrics.md)."""
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    heads = torch.load(lpips_heads_path("alex"), map_location="cpu", weights_only=True)
    xs, ys = (x - shift) / scale, (y - shift) / scale
    total = torch.zeros(x.shape[0])
    for k, tap in enumerate((1, 4, 7, 9, 11)):
        fx, fy = model.features[: tap + 1](xs), model.features[: tap + 1](ys)
        nx = fx / (torch.sqrt((fx**2).sum(1, keepdim=True)) + 1e-10)
        ny = fy / (torch.sqrt((fy**2).sum(1, keepdim=True)) + 1e-10)
        w = heads[f"lin{k}.model.1.weight"].view(-1)  # (C_k,)
        weighted = torch.einsum("nchw,c->nhw", (nx - ny) ** 2, w)
        total += weighted.mean(dim=(1, 2))
    return total


def test_formula_matches_reference(random_alex):
    g = torch.Generator().manual_seed(2)
    x = torch.rand(3, 3, 64, 80, generator=g) * 2 - 1
    y = (x + 0.3 * torch.randn(3, 3, 64, 80, generator=g)).clamp(-1, 1)
    with torch.no_grad():
        ours, ref = random_alex(x, y), _reference_lpips(random_alex, x, y)
    assert ours.shape == (3,)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-7)
    assert torch.all(ours > 0)
    assert torch.allclose(random_alex(x, x), torch.zeros(3))


def test_video_helper_averages_frames(random_alex):
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 3, 3, 48, 48, generator=g) * 2 - 1
    y = torch.rand(2, 3, 3, 48, 48, generator=g) * 2 - 1
    with torch.no_grad():
        per_video = video_lpips(random_alex, x, y, frames_per_batch=4)
        frame = [[random_alex(x[:, :, t], y[:, :, t])[n] for t in range(3)] for n in range(2)]
    torch.testing.assert_close(per_video, torch.tensor(frame).mean(1), rtol=1e-5, atol=1e-7)
    assert compute_lpips(random_alex, x, y) == pytest.approx(per_video.mean().item(), rel=1e-5)


def test_gradients_reach_inputs_not_parameters(random_alex):
    x = (torch.rand(2, 3, 64, 64) * 2 - 1).requires_grad_(True)
    y = torch.rand(2, 3, 64, 64) * 2 - 1
    random_alex.train()  # must stay in eval mode
    assert not random_alex.training
    random_alex(x, y).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in random_alex.parameters())


def test_missing_backbone_error_says_what_to_put_where(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError) as info:
        LPIPS("vgg", allow_download=False)
    message = str(info.value)
    assert "vgg16-397923af.pth" in message
    assert "https://download.pytorch.org/models/vgg16-397923af.pth" in message
    assert str(tmp_path / "hub" / "checkpoints" / "vgg16-397923af.pth") in message
    with pytest.raises(FileNotFoundError, match="alexnet-owt-7be5be79.pth"):
        LPIPS("alex", backbone_path=tmp_path / "nowhere.pth")


@pytest.mark.skipif(
    not default_backbone_path("alex").is_file(),
    reason="torchvision's AlexNet ImageNet weights are not in the torch hub cache (offline)",
)
def test_reference_regression_value_with_real_alexnet():
    """common_metrics_on_video_quality reports LPIPS 0.8140 for all-zeros vs all-ones videos."""
    model = LPIPS("alex", allow_download=False)
    zeros, ones = -torch.ones(1, 3, 4, 64, 64), torch.ones(1, 3, 4, 64, 64)
    with torch.no_grad():
        assert video_lpips(model, zeros, ones).item() == pytest.approx(0.8140, abs=5e-4)
