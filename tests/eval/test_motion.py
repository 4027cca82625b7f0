"""Motion metrics (``pvvae.eval.motion``) rank controlled corruptions of proving-ground clips
the way a person would: true frames score best, blur and shifts lose position and extent,
standing still loses the motion, and filling a ring's hole shows up in its IoU."""

from __future__ import annotations

import pytest
import torch

from pvvae.data.synthetic import SHAPE_KINDS, SyntheticVideoDataset
from pvvae.eval.motion import (
    blurred_copy_last_psnr,
    clip_object_errors,
    copy_last,
    gaussian_blur,
    object_errors,
    slice_objects,
)


@pytest.fixture(scope="module")
def clips():
    data = SyntheticVideoDataset(8, 17, 64, 64, seed=10_000, annotations=False)
    x = torch.stack([data[i]["video"] for i in range(len(data))])
    return x, [data.objects(i) for i in range(len(data))]


def test_true_frames_find_every_shape_where_it_is(clips):
    x, objects = clips
    e = object_errors(x, objects)
    assert e["position"] < 0.5 and e["iou"] > 0.85 and e["missed"] < 0.02 and e["pairs"] > 100


def test_corruptions_rank_by_severity(clips):
    x, objects = clips
    true = object_errors(x, objects)
    mild, strong = (object_errors(gaussian_blur(x, s), objects) for s in (1.0, 3.0))
    assert true["position"] < mild["position"] < strong["position"]
    assert true["iou"] > mild["iou"] > strong["iou"]
    shifted = object_errors(torch.roll(x, shifts=(0, 3), dims=(3, 4)), objects)
    assert shifted["position"] == pytest.approx(3.0, abs=0.6)  # 3 px to the right


def test_standing_still_is_the_prediction_baseline(clips):
    x, objects = clips
    future = slice_objects(objects, 9)
    still = object_errors(copy_last(x, 9), future)
    assert still["position"] > 3 * object_errors(x[:, :, 9:], future)["position"] + 2.0
    motion = torch.stack([torch.linalg.vector_norm(o["centres"][:, 9:] - o["centres"][:, 8:9],
                                                   dim=-1).mean() for o in objects]).mean()
    assert still["position"] == pytest.approx(motion.item(), rel=0.35)


def test_filling_a_ring_lowers_its_iou():
    data = SyntheticVideoDataset(64, 5, 64, 64, seed=3, annotations=False, num_shapes=(1, 1))
    index = next(i for i in range(len(data)) if data.objects(i)["colours"].shape[0] == 1
                 and _kind(data, i) == "ring")
    x, objects = data[index]["video"], data.objects(index)
    colour = objects["colours"][0].view(3, 1, 1, 1)
    filled = x.clone()
    hole = _hole(objects["masks"][0])
    filled[:, hole] = colour.view(3, 1).expand(3, int(hole.sum()))
    assert hole.any()
    ring, disc = clip_object_errors(x, objects), clip_object_errors(filled, objects)
    assert disc["iou"].mean() < ring["iou"].mean() - 0.1


def _kind(data, index):
    import numpy as np

    from pvvae.data.synthetic_scene import sample_shapes

    rng = np.random.default_rng(np.random.SeedSequence([data.seed, index]).spawn(3)[0])
    return SHAPE_KINDS[int(sample_shapes(rng, data.config).kind[0])]


def _hole(mask: torch.Tensor) -> torch.Tensor:
    """Pixels inside a ring's outer boundary that it does not cover. (T, H, W) bool."""
    ys, xs = torch.meshgrid(torch.arange(mask.shape[1]), torch.arange(mask.shape[2]),
                            indexing="ij")
    out = torch.zeros_like(mask)
    for t in range(mask.shape[0]):
        m = mask[t]
        cx, cy = xs[m].float().mean(), ys[m].float().mean()
        r_in = ((xs[m] - cx) ** 2 + (ys[m] - cy) ** 2).float().sqrt().min()
        out[t] = ((xs - cx) ** 2 + (ys - cy) ** 2).float().sqrt() < r_in
    return out


def test_blurred_copy_last_is_at_least_copy_last():
    data = SyntheticVideoDataset(4, 17, 64, 64, seed=1, annotations=False)
    x = torch.stack([data[i]["video"] for i in range(4)])
    best = blurred_copy_last_psnr(x, 9)
    assert best["psnr"] >= best["psnr_by_sigma"][0.0]
    assert best["psnr"] == max(best["psnr_by_sigma"].values())
    static = x[:, :, :1].expand_as(x).contiguous()  # nothing moves: no blur is best
    assert blurred_copy_last_psnr(static, 9)["sigma"] == 0.0
