"""I3D port: every checkpoint tensor is used, TF SAME padding, deterministic logits, and a
sane Kinetics-400 prediction on a real clip."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from pvvae.eval.metrics.i3d import (
    MaxPool3dSame,
    default_checkpoint_path,
    i3d_logits,
    kinetics400_labels,
    pad_same,
    read_flax_checkpoint,
)

from .conftest import frames_to_video


def test_checkpoint_fully_loaded(i3d_model):
    flat = read_flax_checkpoint(default_checkpoint_path())
    assert len(flat) == 230
    assert sum(v.size for k, v in flat.items() if k.startswith("params/")) == 12_689_984
    assert len(i3d_model.state_dict()) == 230  # load_state_dict(strict=True) used all of them
    assert sum(p.numel() for p in i3d_model.parameters()) == 12_689_984
    assert sum(b.numel() for b in i3d_model.buffers()) == 14_560
    kernel = flat["params/Mixed_4c/Branch_1/Conv3d_0b_3x3/Conv_0/kernel"]  # (T, H, W, Cin, Cout)
    weight = i3d_model.trunk.Mixed_4c.branch_1[1].conv.weight  # (Cout, Cin, T, H, W)
    assert weight[5, 7, 0, 1, 2].item() == kernel[0, 1, 2, 7, 5]
    var = flat["batch_stats/Conv3d_2c_3x3/BatchNorm_0/var"].reshape(-1)
    np.testing.assert_array_equal(i3d_model.trunk.Conv3d_2c_3x3.bn.running_var.numpy(), var)
    assert all(not p.requires_grad for p in i3d_model.parameters()) and not i3d_model.training


def test_logits_shape_and_determinism(i3d_model):
    g = torch.Generator().manual_seed(0)
    videos = torch.rand(2, 3, 9, 64, 64, generator=g) * 2 - 1
    first = i3d_logits(videos, i3d_model, batch_size=1)
    assert first.shape == (2, 400) and first.dtype == torch.float64
    assert torch.isfinite(first).all() and not torch.equal(first[0], first[1])
    second = i3d_logits(iter([videos[:1], videos[1:]]), i3d_model)  # iterable of batches
    torch.testing.assert_close(second, first, rtol=0, atol=0)  # deterministic


def test_real_clip_top1_is_yawning(i3d_model, clip_frames):
    """carphone frames 48-63 show a man opening his mouth wide; the port answers 'yawning'
    with p ~ 0.79 (an H/W-transposed kernel or pads placed before instead of after both lose
    it), so this guards the port's layout and TF padding."""
    video = frames_to_video(clip_frames("carphone_pristine.mp4", 16, start=48))
    probs = i3d_logits(video, i3d_model)[0].softmax(0)
    labels = kinetics400_labels()
    assert labels[int(probs.argmax())] == "yawning"
    assert probs.max().item() > 0.5


def test_label_list():
    labels = kinetics400_labels()
    assert len(labels) == 400 and len(set(labels)) == 400
    assert labels == sorted(labels)
    assert labels[0] == "abseiling" and labels[-1] == "zumba"
    assert "passing American football (in game)" in labels


def test_tf_same_padding_puts_the_extra_pixel_after():
    x = torch.ones(1, 1, 5, 224, 7)
    padded = pad_same(x, kernel=(3, 7, 3), stride=(1, 2, 2), value=0.0)
    # T: 5 -> out 5, pad 2 = (1, 1); H: 224 -> out 112, pad 5 = (2, 3); W: 7 -> out 4, pad 2
    assert padded.shape == (1, 1, 7, 229, 9)
    column = padded[0, 0, 1, :, 4]  # along H, inside the W padding
    assert column[:2].abs().sum() == 0 and column[2] == 1  # 2 before
    assert column[-3:].abs().sum() == 0 and column[-4] == 1  # 3 after
    assert pad_same(torch.ones(1, 1, 4, 8, 8), (2, 2, 2), (2, 2, 2), 0.0).shape == (1, 1, 4, 8, 8)


def test_same_max_pool_ignores_padding():
    x = -torch.rand(1, 2, 3, 6, 6) - 1.0  # all negative: zero padding would leak zeros
    out = MaxPool3dSame((3, 3, 3), (1, 1, 1))(x)
    assert out.shape == x.shape and out.max() < -1.0


def test_rejects_too_few_frames(i3d_model):
    with pytest.raises(ValueError, match="at least 9 frames"):
        i3d_logits(torch.zeros(1, 3, 8, 32, 32), i3d_model)


def test_checkpoint_reader_refuses_arbitrary_objects(tmp_path):
    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps({"params": {"x": print}}))
    with pytest.raises(pickle.UnpicklingError):
        read_flax_checkpoint(path)
