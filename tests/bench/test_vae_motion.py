"""bench/vae_motion.py: the rows of real clips and of a clip that jumps between latent groups."""

import torch

from pvvae.data.synthetic import SyntheticVideoDataset


def test_real_clips_have_no_group_structure_and_held_frames_do(bench_script):
    bench = bench_script("vae_motion")
    data = SyntheticVideoDataset(6, 17, 64, 64, seed=50_000, annotations=False)
    real = torch.stack([data[i]["video"] for i in range(len(data))])
    clean = bench.row("real", real, real)
    assert clean["inner_own_colours"] == clean["inner_real_colours"] < 0.8
    assert 0.5 < clean["boundary_ratio"] < 2.0 and len(clean["profile_real_colours"]) == 17
    # each latent group shows its last frame: still within a group, a jump at its end
    held = real[:, :, [0, *[4 * ((t + 3) // 4) for t in range(1, 17)]]]
    steps = bench.row("held", held, real)
    assert steps["boundary_ratio"] > 3 and steps["group_end_real_colours"] > 2
    assert "| held |" in bench.table([clean, steps])
