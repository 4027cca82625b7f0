"""Probing the latent space (seed section 4.3, Table 3): task decoders on diffusion features.

Modules: :mod:`~pvvae.probe.metrics` (EPE, MSE, TAP-Vid tracking accuracy and AUC).
"""
