"""Probing the latent space (paper section 4.3, Table 3): task decoders on diffusion features.

A frozen Latte (and the VAE whose latents it was trained on) gives features of layer
``depth // 2``; small decoders read optical flow, the next frame and point tracks from them.

Modules: :mod:`~pvvae.probe.features` (feature extraction), :mod:`~pvvae.probe.heads` (task
decoders), :mod:`~pvvae.probe.tasks` (losses, baselines, scores), :mod:`~pvvae.probe.metrics`
(EPE, MSE, TAP-Vid accuracy and AUC), :mod:`~pvvae.probe.data` (synthetic ground truth,
Sintel, TAP-Vid-DAVIS, video folders), :mod:`~pvvae.probe.train` (head training and
evaluation), :mod:`~pvvae.probe.report` (Table 3 and figures), :mod:`~pvvae.probe.run`
(``pvvae probe train|eval``). Typical use::

    from pvvae.probe import FeatureExtractor, SyntheticProbeClips, build_task, extract_features

    ext = FeatureExtractor(vae, latte)
    data = extract_features(ext, SyntheticProbeClips(64, 17, 64))  # features + targets
    task = build_task("flow")
    head = task.build_head(ext.channels, ext.spatial_factor, ext.temporal_factor, 64)
    losses = train_head(task, head, data, HeadTrainConfig(steps=300))
"""

from pvvae.probe.data import (
    NextFrameClips,
    SintelClips,
    SyntheticProbeClips,
    TapVidDavisClips,
    read_flo,
    write_flo,
)
from pvvae.probe.features import FeatureConfig, FeatureExtractor
from pvvae.probe.heads import DenseHead, TrackHead
from pvvae.probe.metrics import endpoint_error, frame_mse, tracking_metrics
from pvvae.probe.tasks import TASKS, build_task
from pvvae.probe.train import HeadTrainConfig, evaluate_head, extract_features, train_head

__all__ = [
    "TASKS",
    "DenseHead",
    "FeatureConfig",
    "FeatureExtractor",
    "HeadTrainConfig",
    "NextFrameClips",
    "SintelClips",
    "SyntheticProbeClips",
    "TapVidDavisClips",
    "TrackHead",
    "build_task",
    "endpoint_error",
    "evaluate_head",
    "extract_features",
    "frame_mse",
    "read_flo",
    "tracking_metrics",
    "train_head",
    "write_flo",
]
