"""Evaluation suite of pvvae: the metrics of the paper's tables (paper section 4.1).

Reconstruction (Table 2): per-frame PSNR / SSIM / LPIPS (AlexNet) averaged over frames and
videos, and rFVD. Generation (Table 1): FVD and KVD on Kinetics-400 I3D logits, IS with the
UCF101 C3D. All video inputs are float tensors (N, 3, T, H, W) in [-1, 1].

Names are resolved lazily so that ``import pvvae.eval`` loads no network and no scipy.

Example::

    from pvvae.eval import compute_fvd, compute_psnr, load_i3d
    i3d = load_i3d("cuda")
    fvd = compute_fvd(real_videos, reconstructions, model=i3d)  # StyleGAN-V/Latte variant
    psnr = compute_psnr(reconstructions, real_videos)
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "pvvae.eval.metrics.psnr_ssim": (
        "psnr_frames", "ssim_frames", "video_psnr", "video_ssim", "compute_psnr", "compute_ssim",
    ),
    "pvvae.objectives.lpips": ("LPIPS", "video_lpips", "compute_lpips"),
    "pvvae.eval.metrics.i3d": ("I3D", "load_i3d", "i3d_logits", "kinetics400_labels"),
    "pvvae.eval.metrics.fvd": (
        "compute_fvd", "compute_kvd", "compute_fvd_kvd", "frechet_distance",
        "feature_statistics", "fvd_from_features", "kvd_from_features", "fvd_noise_floor",
    ),
    "pvvae.eval.metrics.inception": (
        "C3D", "load_c3d", "c3d_probs", "compute_is", "inception_score_from_probs",
    ),
    "pvvae.eval.coherence": (
        "object_masks", "clip_coherence", "per_clip_coherence", "video_coherence",
        "acceleration_profile", "boundary_ratio",
    ),
    "pvvae.eval.corrupt": ("corruptions",),
    "pvvae.eval.vae_adapter": ("VAEAdapter", "PredictionNotSupported"),
    "pvvae.eval.adapters": ("PVVAEAdapter", "load_vae"),
    "pvvae.eval.diffusers_adapters": (
        "WanAdapter", "CogVideoXAdapter", "HunyuanVideoAdapter", "LTXVideoAdapter",
        "load_diffusers_vae",
    ),
    "pvvae.eval.clips": ("EvalData", "open_eval_data"),
    "pvvae.eval.recon": (
        "ReconConfig", "MetricModels", "load_metric_models", "evaluate_reconstruction",
        "run_recon",
    ),
    "pvvae.eval.speed": ("measure_speed",),
    "pvvae.eval.recon_report": ("write_recon_report",),
    "pvvae.eval.latent_math": (
        "ChannelStats", "latent_temporal_distance", "pca_project", "pca_rgb",
    ),
    "pvvae.eval.latents": ("LatentsConfig", "analyze_latents", "write_latent_stats", "run_latents"),
    "pvvae.eval.latents_report": ("write_latents_report",),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name in _MODULE_OF:
        return getattr(importlib.import_module(_MODULE_OF[name]), name)
    raise AttributeError(f"module 'pvvae.eval' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
