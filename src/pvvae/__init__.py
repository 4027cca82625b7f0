"""pvvae: the Predictive Video VAE of "Video Generation with Predictive Latents".

Top-level names are imported lazily so that ``import pvvae.data`` or ``import pvvae.eval``
stays light. ``pvvae.load_model(folder)`` opens any saved VAE (model, checkpoint, run or
exported diffusers folder: :func:`pvvae.inference.loading.load_model`);
``pvvae.load_clip(path, num_frames, size)`` reads a video file as a model input.

Importing the package filters the known third-party warnings that say nothing about a run
(diffusers' "accelerate not found" notice on ``from_pretrained``, its empty "kept in float32"
list on ``.to(dtype)``) at the loggers that emit them: :mod:`pvvae._warnings`;
``pvvae._warnings.quiet_third_party(verbose=True)`` (the CLI's ``-v``) shows them again.
"""

from __future__ import annotations

from pvvae._warnings import quiet_third_party as _quiet_third_party

__version__ = "0.1.0"
__all__ = ["PVVAE", "PRESETS", "TransformerPVVAE", "load_clip", "load_model", "__version__"]

_quiet_third_party(verbose=False)


def __getattr__(name: str):
    if name in ("PVVAE", "PRESETS"):
        from pvvae.model import autoencoder, presets

        return autoencoder.PVVAE if name == "PVVAE" else presets.PRESETS
    if name == "TransformerPVVAE":
        from pvvae.model.transformer import TransformerPVVAE

        return TransformerPVVAE
    if name == "load_model":
        from pvvae.inference.loading import load_model

        return load_model
    if name == "load_clip":
        from pvvae.cli.video import load_clip

        return load_clip
    raise AttributeError(f"module 'pvvae' has no attribute {name!r}")
