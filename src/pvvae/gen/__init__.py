"""Generation: the Latte video diffusion transformer and the rectified-flow core.

Light to import (torch and einops only; no VAE import). Typical use::

    from pvvae.gen import Latte, flow_matching_loss, sample_euler

    model = Latte.from_preset("XL", in_channels=64, num_classes=101)
    loss, metrics = flow_matching_loss(model, x0, y, t_sampler="logit_normal", generator=g)
    x0_hat = sample_euler(model.eval(), noise, num_steps=100, y=y, guidance_scale=4.0)
"""

from pvvae.gen.flow import (
    SAMPLERS,
    T_SAMPLERS,
    Sampler,
    TSampler,
    VelocityFn,
    flow_matching_loss,
    guided_velocity,
    interpolate,
    sample_euler,
    sample_heun,
    sample_t_logit_normal,
    sample_t_uniform,
    target_velocity,
    time_grid,
)
from pvvae.gen.latte import LATTE_PRESETS, Latte, LatteConfig

__all__ = [
    "LATTE_PRESETS",
    "SAMPLERS",
    "T_SAMPLERS",
    "Latte",
    "LatteConfig",
    "Sampler",
    "TSampler",
    "VelocityFn",
    "flow_matching_loss",
    "guided_velocity",
    "interpolate",
    "sample_euler",
    "sample_heun",
    "sample_t_logit_normal",
    "sample_t_uniform",
    "target_velocity",
    "time_grid",
]
