"""Building blocks of :class:`pvvae.gen.latte.Latte` (DiT, Peebles & Xie 2023): the fixed
sin-cos embeddings of timesteps and positions, the timestep and label embedders, attention,
the adaLN-Zero block and the final layer. Tokens are ``(B, S, L, D)``: attention runs over
``L``, the caller chooses whether that is space or time.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

__all__ = [
    "FinalLayer",
    "LabelEmbedder",
    "LatteBlock",
    "TimestepEmbedder",
    "sincos_embedding_1d",
    "sincos_embedding_2d",
    "timestep_embedding",
]


# ----------------------------------------------------------------------------------------------
# Fixed embeddings
# ----------------------------------------------------------------------------------------------


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps, as in DiT / ADM.

    ``emb = [cos(t * f_0..f_{dim/2-1}), sin(t * f_0..f_{dim/2-1})]`` with
    ``f_i = max_period ** (-i / (dim / 2))``.

    Args:
        t: (N,) timesteps (already scaled, e.g. ``1000 * t``).
        dim: embedding width (even).
        max_period: lowest frequency period.

    Returns:
        (N, dim) float32 embedding.
    """
    half = dim // 2
    exponent = torch.arange(half, dtype=torch.float32, device=t.device) / half  # (half,)
    freqs = torch.exp(-math.log(max_period) * exponent)  # (half,)
    args = t.float()[:, None] * freqs[None, :]  # (N, half)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # (N, dim)


def sincos_embedding_1d(positions: Tensor, dim: int) -> Tensor:
    """1D sin-cos position embedding of MAE / DiT: ``[sin(pos * w), cos(pos * w)]``.

    Args:
        positions: (L,) positions.
        dim: embedding width (even); ``w_i = 10000 ** (-i / (dim / 2))``.

    Returns:
        (L, dim) float32 embedding.
    """
    omega = torch.arange(dim // 2, dtype=torch.float32, device=positions.device)  # (dim/2,)
    omega = 1.0 / 10000.0 ** (omega / (dim / 2))  # (dim/2,)
    args = positions.float()[:, None] * omega[None, :]  # (L, dim/2)
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)  # (L, dim)


def sincos_embedding_2d(height: int, width: int, dim: int, device=None) -> Tensor:
    """2D sin-cos position embedding: the first half of the channels encodes the row, the
    second half the column, each with :func:`sincos_embedding_1d` (MAE / DiT).

    Args:
        height, width: token grid size.
        dim: embedding width (divisible by 4).
        device: device of the result.

    Returns:
        (height * width, dim) float32 embedding, rows in raster order (row-major).
    """
    rows = torch.arange(height, device=device).repeat_interleave(width)  # (h*w,)
    cols = torch.arange(width, device=device).repeat(height)  # (h*w,)
    emb_rows = sincos_embedding_1d(rows, dim // 2)  # (h*w, dim/2)
    emb_cols = sincos_embedding_1d(cols, dim // 2)  # (h*w, dim/2)
    return torch.cat([emb_rows, emb_cols], dim=-1)  # (h*w, dim)


# ----------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """adaLN modulation ``x * (1 + scale) + shift``.

    Args:
        x: (B, S, L, D) tokens.
        shift, scale: (B, D) per-sample vectors, broadcast over ``S`` and ``L``.
    """
    return x * (1 + scale[:, None, None, :]) + shift[:, None, None, :]


class TimestepEmbedder(nn.Module):
    """``t -> MLP(sinusoidal(t))``: 256-d sinusoidal embedding -> Linear -> SiLU -> Linear."""

    def __init__(self, hidden_size: int, frequency_embedding_size: int = 256) -> None:
        super().__init__()
        self.frequency_embedding_size = frequency_embedding_size
        self.mlp = nn.Sequential(
            nn.Linear(frequency_embedding_size, hidden_size),
            nn.SiLU(),
            nn.Linear(hidden_size, hidden_size),
        )

    def forward(self, t: Tensor) -> Tensor:
        """Args: t (B,) scaled timesteps. Returns: (B, D)."""
        emb = timestep_embedding(t, self.frequency_embedding_size)  # (B, 256)
        return self.mlp(emb.to(self.mlp[0].weight.dtype))  # (B, D)


class LabelEmbedder(nn.Module):
    """Class embedding table with a trailing null label and label dropout (DiT).

    The table has ``num_classes + 1`` rows; index ``num_classes`` is the null label. In training,
    each label is replaced by the null label with probability ``dropout_prob``, which teaches
    the unconditional model used by classifier-free guidance (Ho & Salimans 2022).
    """

    def __init__(self, num_classes: int, hidden_size: int, dropout_prob: float) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.dropout_prob = dropout_prob
        self.embedding_table = nn.Embedding(num_classes + 1, hidden_size)

    def drop_labels(self, y: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Replace each label by the null label with probability ``dropout_prob``.

        Args:
            y: (B,) int64 labels.
            generator: source of randomness; the global RNG when ``None``. Its device may
                differ from ``y``'s (the draw is made on the generator's device).

        Returns:
            (B,) labels.
        """
        device = generator.device if generator is not None else y.device
        u = torch.rand(y.shape[0], generator=generator, device=device).to(y.device)  # (B,)
        return torch.where(u < self.dropout_prob, torch.full_like(y, self.num_classes), y)

    def forward(self, y: Tensor, train: bool, generator: torch.Generator | None = None) -> Tensor:
        """Args: y (B,) labels in ``[0, num_classes]``. Returns: (B, D) embeddings."""
        if train and self.dropout_prob > 0:
            y = self.drop_labels(y, generator)
        return self.embedding_table(y)  # (B, D)


class Attention(nn.Module):
    """Multi-head self-attention with qkv bias over the last-but-one axis of ``(N, L, D)``."""

    def __init__(self, hidden_size: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size, bias=True)
        self.proj = nn.Linear(hidden_size, hidden_size)

    def forward(self, x: Tensor) -> Tensor:
        """Args: x (N, L, D). Returns: (N, L, D)."""
        qkv = self.qkv(x)  # (N, L, 3D)
        q, k, v = rearrange(qkv, "n l (three h d) -> three n h l d", three=3, h=self.num_heads)
        out = F.scaled_dot_product_attention(q, k, v)  # (N, H, L, D/H)
        out = rearrange(out, "n h l d -> n l (h d)")  # (N, L, D)
        return self.proj(out)


class Mlp(nn.Module):
    """Linear -> GELU (tanh approximation) -> Linear."""

    def __init__(self, hidden_size: int, mlp_hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(hidden_size, mlp_hidden)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(mlp_hidden, hidden_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class LatteBlock(nn.Module):
    """A DiT block with adaLN-Zero conditioning (Peebles & Xie 2023, section 3.2).

    ``x = x + g1 * Attn(modulate(LN(x), b1, a1)); x = x + g2 * MLP(modulate(LN(x), b2, a2))``
    where ``(b1, a1, g1, b2, a2, g2) = Linear(SiLU(c))`` is zero-initialised, so the block starts
    as the identity. Attention runs over axis ``L`` of ``(B, S, L, D)``: the caller chooses
    whether ``L`` is space (spatial block) or time (temporal block).
    """

    def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(hidden_size, num_heads)
        self.norm2 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(hidden_size, int(hidden_size * mlp_ratio))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 6 * hidden_size))

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        """Args: x (B, S, L, D) tokens, c (B, D) conditioning. Returns: (B, S, L, D)."""
        b, s = x.shape[:2]
        mods = self.adaLN_modulation(c).chunk(6, dim=-1)  # 6 x (B, D)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mods
        h = modulate(self.norm1(x), shift_msa, scale_msa)  # (B, S, L, D)
        h = rearrange(h, "b s l d -> (b s) l d")  # (B*S, L, D)
        h = rearrange(self.attn(h), "(b s) l d -> b s l d", b=b, s=s)  # (B, S, L, D)
        x = x + gate_msa[:, None, None, :] * h
        h = self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))  # (B, S, L, D)
        return x + gate_mlp[:, None, None, :] * h


class FinalLayer(nn.Module):
    """adaLN (shift, scale) -> zero-initialised Linear to ``p * p * C_out`` per token (DiT)."""

    def __init__(self, hidden_size: int, patch_size: int, out_channels: int) -> None:
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden_size, patch_size * patch_size * out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size))

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        """Args: x (B, S, L, D), c (B, D). Returns: (B, S, L, p*p*C_out)."""
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=-1)  # 2 x (B, D)
        return self.linear(modulate(self.norm_final(x), shift, scale))
