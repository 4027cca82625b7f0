"""Latte: a latent video diffusion transformer (Ma et al. 2024, arXiv:2401.03048), variant 1.

The generation model of the paper (section 4.1): a DiT (Peebles & Xie 2023) whose blocks
alternate between *spatial* attention over the tokens of one frame (blocks 0, 2, 4, ... counted
from 0) and *temporal* attention over the frames of one spatial position (blocks 1, 3, 5, ...).
Every block is conditioned by adaLN-Zero on ``c = t_emb + y_emb``.

Conventions of this module:

* Latents are channel-first ``(B, C, t, h, w)``; tokens live as ``(B, t, s, D)`` with
  ``s = (h / p) * (w / p)`` (``p`` the patch size) and are flattened to ``(B * t, s, D)`` for a
  spatial block or ``(B * s, t, D)`` for a temporal block only inside attention.
* The model receives the rectified-flow time ``t`` in ``[0, 1]`` (``t = 1`` is pure noise, see
  :mod:`pvvae.gen.flow`) and multiplies it by ``LatteConfig.timestep_scale`` (1000 by default)
  before the sinusoidal embedding, so the embedding sees the same range as DiT's integer steps.
* Block indices in the public API (:meth:`Latte.features`) are **1-based**: layer ``k`` is the
  residual stream right after the ``k``-th block, so ``layers=(14,)`` of Latte-XL is the paper's
  probing layer "14 of 28" (the output of the 7th temporal block).
* Position embeddings are fixed sin-cos tables computed for the input's own grid at every call,
  so any latent size and any number of latent frames (odd ones included) is accepted.

:class:`Latte` is a diffusers model (``ModelMixin`` + ``ConfigMixin``), like the VAEs of
:mod:`pvvae.model`: its constructor arguments are the :class:`LatteConfig` fields plus what
sampling needs (``latent_shape``, ``classes``, ``vae``), all saved in ``config.json``, so
``Latte.from_pretrained(folder)`` opens what ``save_pretrained`` and the Latte trainer's
checkpoints write. The building blocks live in :mod:`pvvae.gen.latte_blocks`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from types import MappingProxyType

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from einops import rearrange
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from pvvae.gen.flow import guided_velocity
from pvvae.gen.latte_blocks import (
    FinalLayer,
    LabelEmbedder,
    LatteBlock,
    TimestepEmbedder,
    sincos_embedding_1d,
    sincos_embedding_2d,
    timestep_embedding,
)

__all__ = [
    "LATTE_PRESETS",
    "Latte",
    "LatteBlock",
    "LatteConfig",
    "sincos_embedding_1d",
    "sincos_embedding_2d",
    "timestep_embedding",
]


@dataclass(frozen=True)
class LatteConfig:
    """Architecture of a :class:`Latte` model (the constructor signature is this config).

    Args:
        in_channels: latent channels ``C`` of the VAE (64 for the paper's t4s16c64 PV-VAE).
        out_channels: channels of the predicted velocity; ``None`` means ``in_channels``.
        patch_size: spatial patch size ``p`` (1 in the paper, which removes patchify; 2 for
            t4s8 VAEs). Frames are never patchified in time.
        hidden_size: token width ``D``.
        depth: number of blocks (spatial and temporal blocks alternate, spatial first).
        num_heads: attention heads (``hidden_size`` must be divisible by it).
        mlp_ratio: hidden width of the MLP relative to ``D``.
        num_classes: number of classes for class-conditional generation; ``0`` or ``None`` is
            unconditional. The label table has ``num_classes + 1`` rows, the last being the
            null label used for label dropout and classifier-free guidance.
        class_dropout_prob: probability of replacing a label by the null label in training.
        timestep_scale: factor applied to ``t`` in ``[0, 1]`` before the sinusoidal embedding.
        frequency_embedding_size: width of the sinusoidal timestep embedding (256 in DiT).
        grad_checkpointing: recompute block activations in the backward pass (training only).
    """

    in_channels: int = 64
    out_channels: int | None = None
    patch_size: int = 1
    hidden_size: int = 1152
    depth: int = 28
    num_heads: int = 16
    mlp_ratio: float = 4.0
    num_classes: int | None = 0
    class_dropout_prob: float = 0.1
    timestep_scale: float = 1000.0
    frequency_embedding_size: int = 256
    grad_checkpointing: bool = False

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads != 0:
            raise ValueError(f"hidden_size {self.hidden_size} not divisible by {self.num_heads}")
        if self.hidden_size % 4 != 0:
            raise ValueError("hidden_size must be divisible by 4 for the 2D sin-cos embedding")
        if self.patch_size < 1 or self.depth < 1 or self.in_channels < 1:
            raise ValueError("patch_size, depth and in_channels must be positive")
        if not 0.0 <= self.class_dropout_prob < 1.0:
            raise ValueError("class_dropout_prob must lie in [0, 1)")
        if self.frequency_embedding_size % 2 != 0:
            raise ValueError("frequency_embedding_size must be even")

    @property
    def conditional(self) -> bool:
        """Whether the model takes class labels."""
        return bool(self.num_classes)


# Sizes of DiT (Peebles & Xie 2023, Table 1), which Latte reuses; values are read-only.
LATTE_PRESETS: MappingProxyType[str, LatteConfig] = MappingProxyType(
    {
        "tiny": LatteConfig(in_channels=8, hidden_size=64, depth=4, num_heads=4),
        "S": LatteConfig(hidden_size=384, depth=12, num_heads=6),
        "B": LatteConfig(hidden_size=768, depth=12, num_heads=12),
        "L": LatteConfig(hidden_size=1024, depth=24, num_heads=16),
        "XL": LatteConfig(hidden_size=1152, depth=28, num_heads=16),
    }
)


# ----------------------------------------------------------------------------------------------
# Latte
# ----------------------------------------------------------------------------------------------


class Latte(ModelMixin, ConfigMixin):
    """Latte variant 1 predicting the rectified-flow velocity ``v = eps - x0`` of latent clips.

    Forward pass (Ma et al. 2024, Fig. 2a; DiT for the block and embeddings):

    1. patch-embed each frame with a ``(1, p, p)`` convolution and add the fixed 2D sin-cos
       spatial embedding: tokens ``(B, t, s, D)``;
    2. ``c = TimestepEmbedder(timestep_scale * t) + LabelEmbedder(y)`` (label term only when
       class-conditional);
    3. blocks ``0, 2, ...`` attend over the ``s`` tokens of each frame, blocks ``1, 3, ...``
       over the ``t`` frames of each position; the 1D sin-cos temporal embedding is added once,
       right before block 1 (the first temporal block);
    4. final adaLN layer and un-patchify back to ``(B, C_out, t, h, w)``.

    Args:
        in_channels ... grad_checkpointing: the architecture, the fields of
            :class:`LatteConfig` (validated there; ``self.arch`` holds it).
        latent_shape: (C, t, h, w) of the latent clips to sample (the training cache's shape).
        classes: class names (``classes[label]``); empty for an unconditional model.
        vae: the VAE that made the latents and decodes samples (path or ``preset:NAME``).
    """

    _supports_gradient_checkpointing = True  # per block (``grad_checkpointing`` in the config)

    @register_to_config
    def __init__(
        self,
        in_channels: int = 64,
        out_channels: int | None = None,
        patch_size: int = 1,
        hidden_size: int = 1152,
        depth: int = 28,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        num_classes: int | None = 0,
        class_dropout_prob: float = 0.1,
        timestep_scale: float = 1000.0,
        frequency_embedding_size: int = 256,
        grad_checkpointing: bool = False,
        latent_shape: Sequence[int] | None = None,
        classes: Sequence[str] = (),
        vae: str = "",
    ) -> None:
        super().__init__()
        config = LatteConfig(**{f.name: self.config[f.name] for f in fields(LatteConfig)})
        self.arch = config
        self.gradient_checkpointing = config.grad_checkpointing
        d, p = config.hidden_size, config.patch_size
        self.out_channels = config.out_channels or config.in_channels
        self.x_embedder = nn.Conv3d(config.in_channels, d, kernel_size=(1, p, p), stride=(1, p, p))
        self.t_embedder = TimestepEmbedder(d, config.frequency_embedding_size)
        self.y_embedder = (
            LabelEmbedder(config.num_classes, d, config.class_dropout_prob)
            if config.conditional
            else None
        )
        self.blocks = nn.ModuleList(
            LatteBlock(d, config.num_heads, config.mlp_ratio) for _ in range(config.depth)
        )
        self.final_layer = FinalLayer(d, p, self.out_channels)
        self.initialize_weights()

    @classmethod
    def from_preset(cls, name: str, **overrides) -> Latte:
        """Build a model from :data:`LATTE_PRESETS` (``tiny``, ``S``, ``B``, ``L``, ``XL``),
        with ``overrides`` replacing constructor arguments (unknown ones raise ``TypeError``)."""
        if name not in LATTE_PRESETS:
            raise KeyError(f"unknown Latte preset {name!r}; available: {sorted(LATTE_PRESETS)}")
        return cls(**{**asdict(LATTE_PRESETS[name]), **overrides})

    @classmethod
    def from_arch(cls, config: LatteConfig, **sampling) -> Latte:
        """A model of architecture ``config``; ``sampling``: ``latent_shape``, ``classes``,
        ``vae``."""
        return cls(**asdict(config), **sampling)

    @property
    def conditional(self) -> bool:
        """Whether the model takes class labels."""
        return self.arch.conditional

    @property
    def null_label(self) -> int:
        """Index of the null (unconditional) label, ``num_classes``."""
        if self.y_embedder is None:
            raise AttributeError("an unconditional Latte has no null label")
        return self.config.num_classes

    def initialize_weights(self) -> None:
        """All initialisation in one place, following DiT.

        Linear layers: Xavier-uniform weights, zero bias; patch embedding: Xavier-uniform on the
        flattened kernel; label table and timestep MLP: N(0, 0.02); adaLN modulation layers of
        every block and of the final layer, and the final linear layer: zero (adaLN-Zero), so
        the freshly initialised model outputs exactly zero.
        """
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        w = self.x_embedder.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))  # (D, C*1*p*p) viewed as a Linear
        nn.init.zeros_(self.x_embedder.bias)
        if self.y_embedder is not None:
            nn.init.normal_(self.y_embedder.embedding_table.weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
        for block in self.blocks:
            nn.init.zeros_(block.adaLN_modulation[-1].weight)
            nn.init.zeros_(block.adaLN_modulation[-1].bias)
        nn.init.zeros_(self.final_layer.adaLN_modulation[-1].weight)
        nn.init.zeros_(self.final_layer.adaLN_modulation[-1].bias)
        nn.init.zeros_(self.final_layer.linear.weight)
        nn.init.zeros_(self.final_layer.linear.bias)

    @staticmethod
    def is_temporal_block(index: int) -> bool:
        """Whether block ``index`` (0-based) attends over time (odd indices in variant 1)."""
        return index % 2 == 1

    # -- pieces of the forward pass ------------------------------------------------------------

    def _condition(
        self, x: Tensor, t: Tensor | float, y: Tensor | None, generator: torch.Generator | None
    ) -> Tensor:
        """Conditioning vector ``c = t_emb + y_emb``: (B, D)."""
        b = x.shape[0]
        t = torch.as_tensor(t, device=x.device, dtype=torch.float32)
        t = t.expand(b) if t.ndim == 0 else t.reshape(b)  # (B,)
        c = self.t_embedder(t * self.config.timestep_scale)  # (B, D)
        if self.y_embedder is None:
            if y is not None:
                raise ValueError("labels were given to an unconditional Latte (num_classes=0)")
            return c
        if y is None:
            raise ValueError("a class-conditional Latte needs labels y (use the null label)")
        return c + self.y_embedder(y.reshape(b), self.training, generator)  # (B, D)

    def _embed(self, x: Tensor) -> Tensor:
        """Patch embedding + 2D spatial position embedding: (B, C, t, h, w) -> (B, t, s, D)."""
        p = self.config.patch_size
        if x.ndim != 5 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"expected (B, {self.config.in_channels}, t, h, w), got {x.shape}")
        if x.shape[-2] % p or x.shape[-1] % p:
            raise ValueError(f"latent size {tuple(x.shape[-2:])} not divisible by patch {p}")
        x = self.x_embedder(x)  # (B, D, t, h/p, w/p)
        gh, gw = x.shape[-2:]
        x = rearrange(x, "b d t gh gw -> b t (gh gw) d")  # (B, t, s, D)
        pos = sincos_embedding_2d(gh, gw, self.config.hidden_size, device=x.device)  # (s, D)
        return x + pos.to(x.dtype)

    def _add_temporal_embedding(self, x: Tensor) -> Tensor:
        """Add the 1D sin-cos frame embedding to temporal-layout tokens (B, s, t, D)."""
        frames = torch.arange(x.shape[2], device=x.device)  # (t,)
        return x + sincos_embedding_1d(frames, self.config.hidden_size).to(x.dtype)

    def _run_block(self, index: int, x: Tensor, c: Tensor) -> Tensor:
        """Apply block ``index`` (0-based) to tokens (B, t, s, D); returns (B, t, s, D)."""
        block = self.blocks[index]
        temporal = self.is_temporal_block(index)
        if temporal:
            x = rearrange(x, "b t s d -> b s t d")  # (B, s, t, D): attend over frames
            if index == 1:  # the first temporal block: add the frame embedding once
                x = self._add_temporal_embedding(x)
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            x = checkpoint(block, x, c, use_reentrant=False)
        else:
            x = block(x, c)
        if temporal:
            x = rearrange(x, "b s t d -> b t s d")  # (B, t, s, D)
        return x

    def _unpatchify(self, x: Tensor, grid_w: int) -> Tensor:
        """(B, t, s, p*p*C_out) -> (B, C_out, t, h, w)."""
        p = self.config.patch_size
        return rearrange(
            x, "b t (gh gw) (ph pw c) -> b c t (gh ph) (gw pw)", gw=grid_w, ph=p, pw=p
        )  # (B, C_out, t, h, w)

    # -- public API ----------------------------------------------------------------------------

    def forward(
        self,
        x: Tensor,
        t: Tensor | float,
        y: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Predict the velocity ``v(x_t, t, y)``.

        Args:
            x: (B, C, t, h, w) noisy latents ``x_t``; ``h`` and ``w`` divisible by ``p``.
            t: (B,) or scalar flow time in ``[0, 1]`` (1 = noise).
            y: (B,) int64 labels in ``[0, num_classes]`` (``num_classes`` = null label) for a
                class-conditional model, ``None`` for an unconditional one.
            generator: randomness of label dropout (only used in training mode); global RNG
                when ``None``.

        Returns:
            (B, C_out, t, h, w) velocity.
        """
        c = self._condition(x, t, y, generator)  # (B, D)
        grid_w = x.shape[-1] // self.config.patch_size
        h = self._embed(x)  # (B, t, s, D)
        for index in range(len(self.blocks)):
            h = self._run_block(index, h, c)  # (B, t, s, D)
        return self._unpatchify(self.final_layer(h, c), grid_w)  # (B, C_out, t, h, w)

    def features(
        self,
        x: Tensor,
        t: Tensor | float,
        y: Tensor | None = None,
        layers: Sequence[int] | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> dict[int, Tensor]:
        """Read the residual stream after chosen blocks (diffusion features for probing).

        Layer numbers are **1-based**: layer ``k`` is the output of the ``k``-th block, so
        ``layers=(14,)`` on Latte-XL is the paper's "14th layer (out of 28)" (section 4.3).
        Blocks after ``max(layers)`` are not run.

        Args:
            x, t, y, generator: as in :meth:`forward`.
            layers: 1-based block numbers in ``[1, depth]``; ``None`` is the middle block
                ``depth // 2`` (14 for Latte-XL, as in the paper).

        Returns:
            ``{k: (B, D, t, h/p, w/p)}`` feature maps, channel-first like the latents.
        """
        depth = len(self.blocks)
        layers = (depth // 2,) if layers is None else tuple(int(k) for k in layers)
        if not layers or min(layers) < 1 or max(layers) > depth:
            raise ValueError(f"layers must lie in [1, {depth}], got {layers}")
        c = self._condition(x, t, y, generator)  # (B, D)
        grid_w = x.shape[-1] // self.config.patch_size
        h = self._embed(x)  # (B, t, s, D)
        out: dict[int, Tensor] = {}
        for index in range(max(layers)):
            h = self._run_block(index, h, c)  # (B, t, s, D)
            if index + 1 in layers:
                out[index + 1] = rearrange(h, "b t (gh gw) d -> b d t gh gw", gw=grid_w)
        return out

    def forward_with_cfg(
        self, x: Tensor, t: Tensor | float, y: Tensor, guidance_scale: float
    ) -> Tensor:
        """Classifier-free guidance (Ho & Salimans 2022): ``v = v_u + w (v_c - v_u)``.

        :func:`pvvae.gen.flow.guided_velocity` with this model's null label (the one CFG
        implementation the samplers use): for ``w != 1`` the conditional and null-label passes
        run as one batch of size ``2B``. Meant for sampling in eval mode (in training mode
        label dropout would hit the conditional half).

        Args:
            x: (B, C, t, h, w) noisy latents.
            t: (B,) or scalar flow time in ``[0, 1]``.
            y: (B,) labels in ``[0, num_classes)``.
            guidance_scale: ``w``; 1 gives the conditional velocity, 0 the unconditional one.

        Returns:
            (B, C_out, t, h, w) guided velocity.
        """
        b = x.shape[0]
        t = torch.as_tensor(t, device=x.device, dtype=torch.float32)
        t = t.expand(b) if t.ndim == 0 else t.reshape(b)  # (B,)
        y_null = torch.full_like(y, self.null_label)  # (B,)
        return guided_velocity(self, x, t, y, y_null, guidance_scale)
