"""Learning smoke test (issue 9): the training recipe leaves the mean image within seconds.

Not a benchmark (bench/learning.py measures learning at scale, with the Wan reference): a
micro model trained through the real trainer on one proving-ground clip must reconstruct it
better than the clip's temporal mean (a static blur, the floor a collapsed model sits at).
"""

import torch

from pvvae.data.synthetic import SyntheticVideoDataset
from pvvae.training.trainer import train

from .conftest import micro_config, read_log


def test_loss_falls_below_the_temporal_mean_floor(tmp_path):
    steps = 120
    cfg = micro_config(
        tmp_path, f"train.steps={steps}", "data.num_clips=1", "data.batch_size=1",
        "objective.max_drop_ratio=0.0", "objective.sample_posterior=false",
        "objective.loss.lambda_kl=0.0", "optim.lr=1.0e-3", "optim.min_lr_ratio=1.0",
        "data.size=32",
    )
    clip = SyntheticVideoDataset(1, 9, 32, 32, seed=cfg.train.seed)[0]["video"]
    floor = (clip - clip.mean(dim=1, keepdim=True)).pow(2).mean().item()  # temporal-mean MSE
    log = read_log(train(cfg))
    final = sum(r["mse/observed"] for r in log[-5:]) / 5
    assert torch.isfinite(torch.tensor(final))
    assert log[0]["mse/observed"] > floor  # it starts above the floor ...
    assert final < 0.6 * floor, (final, floor)  # ... and ends well below it
