"""``TransformerPVVAE``: PV-VAE*, the plain Transformer video VAE of paper section 5 (Table 7).

The same compression as the CNN (t4s16c64): the clip is cut into 4x16x16 spatiotemporal
patches, a stack of pre-norm Transformer blocks encodes them to the posterior of one latent
per patch, and the decoder maps each latent back through its own stack and a linear
pixel-shuffle head (a Cz -> 3 * 4 * 16 * 16 projection rearranged into the patch).

    x (B, 3, 1 + 4k, H, W) in [-1, 1]  --encode-->  z (B, 64, 1 + k, H/16, W/16)
    z                                  --decode-->  x_hat (B, 3, 1 + 4k, H, W)

The first frame forms its own group, as in the CNN. Patchifying 1 + 4k frames: on the first
chunk of a clip the first frame is repeated 3 times on the left (the CNN's causal convs pad
the same way), giving 4 (1 + k) frames and 1 + k temporal patches, the first of which holds
frame 0 alone. The decoder drops the 3 leading frames of its first pixel group in turn.
An image is the k = 0 case.

Causality (paper section 3.1 needs it for predictive reconstruction): attention is
block-causal over latent frames: the tokens of latent frame i attend to those of frames
0..i. Everything else (patch embedding, norms, MLPs, heads) acts per token. Hence changing
latent frame j changes neither the encodings of frames < j nor the decoded pixel frames
before group j, a prefix encodes to the prefix of the latents, and a long video can be
encoded and decoded chunk by chunk with a key/value cache (each attention layer's keys and
values of earlier frames, kept in the :class:`~pvvae.model.causal.CausalState` that the
CNN uses for its conv tails), equal to whole-clip processing up to float rounding. Each
latent frame's queries run as one ``scaled_dot_product_attention`` call on the keys up to
that frame, without a mask, so PyTorch can pick flash attention on a GPU and no masked-out
products are computed.

Positions: 3D rotary embeddings (RoPE) on queries and keys; a head's dimensions are split
between time, height and width as in the Wan DiT (2 * (d // 6) for each spatial axis, the
rest for time). Rotary positions are relative, so the model runs at any resolution and clip
length; chunks carry on the time index of the stream. Queries and keys are RMS-normalised
per head (QK-norm, as in SD3 / Wan), which keeps bf16 attention logits bounded.

The paper is silent on the block internals; this follows ViT / DiT: LayerNorm, MLP ratio 4
with tanh-GELU, linear layers with biases. ``paper``: 12 + 12 layers, 16 heads of dimension 128
(width 2048), 1.22B parameters (paper: about 1.2B).
"""

from __future__ import annotations

from types import MappingProxyType

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from einops import rearrange
from torch import Tensor, nn

from pvvae.model.causal import ChunkContext
from pvvae.model.common import VideoVAEMixin

TRANSFORMER_PRESETS = MappingProxyType(
    {
        # About 0.5M parameters, most of them in the 3072-wide patch projections: tests and
        # CPU runs.
        "tiny": dict(num_heads=2, head_dim=32, encoder_layers=2, decoder_layers=2),
        # The paper's PV-VAE* (section 5): 12 + 12 layers, 16 heads x 128 (width 2048).
        "paper": dict(num_heads=16, head_dim=128, encoder_layers=12, decoder_layers=12),
    }
)


# ---------------------------------------------------------------------------- positions
def rope_angles(
    t0: int, t: int, h: int, w: int, head_dim: int, theta: float, device: torch.device
) -> tuple[Tensor, Tensor]:
    """cos and sin of the 3D rotary angles of a (t, h, w) token grid starting at frame t0.

    Returns two (t * h * w, head_dim / 2) float32 tensors, tokens in (t, h, w) order; pairs of
    head dimensions rotate with time (the first ``head_dim - 4 (head_dim // 6)`` dims), then
    height, then width (``2 (head_dim // 6)`` each).
    """
    d_s = 2 * (head_dim // 6)
    d_t = head_dim - 2 * d_s

    def axis(start: int, n: int, dim: int) -> Tensor:  # (n, dim / 2)
        inv = theta ** (-torch.arange(0, dim, 2, device=device, dtype=torch.float32) / dim)
        return torch.outer(torch.arange(start, start + n, device=device).float(), inv)

    at, ah, aw = axis(t0, t, d_t), axis(0, h, d_s), axis(0, w, d_s)
    angles = torch.cat(
        [
            at[:, None, None].expand(t, h, w, -1),
            ah[None, :, None].expand(t, h, w, -1),
            aw[None, None, :].expand(t, h, w, -1),
        ],
        dim=-1,
    ).reshape(t * h * w, head_dim // 2)  # (L, d / 2)
    return angles.cos(), angles.sin()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate consecutive pairs of x's last dim: x (B, heads, L, d), cos/sin (L, d / 2)."""
    x0, x1 = x.unflatten(-1, (-1, 2)).unbind(-1)  # each (B, heads, L, d / 2)
    return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1).flatten(-2)


# ---------------------------------------------------------------------------- attention
def block_causal_attention(q: Tensor, k: Tensor, v: Tensor, tokens_per_frame: int) -> Tensor:
    """Attention in which each latent frame sees itself and the frames before it.

    Args:
        q: (B, heads, t * n, d), the queries of the t newest frames (n tokens each).
        k, v: (B, heads, (p + t) * n, d): keys and values of p cached frames, then of the
            same t frames.
    Returns:
        (B, heads, t * n, d). One SDPA call per query frame, unmasked (flash-eligible).
    """
    n = tokens_per_frame
    t = q.shape[2] // n
    past = k.shape[2] // n - t
    outs = []
    for i in range(t):
        stop = (past + i + 1) * n
        qi = q[:, :, i * n : (i + 1) * n]  # (B, heads, n, d): the queries of frame i
        outs.append(F.scaled_dot_product_attention(qi, k[:, :, :stop], v[:, :, :stop]))
    return torch.cat(outs, dim=2)


class Attention(nn.Module):
    """Multi-head block-causal self-attention with 3D RoPE, QK-norm and a key/value cache.

    x: (B, L, D) tokens of whole latent frames -> (B, L, D). With a chunk context, the keys
    and values of earlier chunks are read from it and the extended cache written back.
    """

    def __init__(self, width: int, num_heads: int, qk_norm: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        head_dim = width // num_heads
        self.qkv = nn.Linear(width, 3 * width)
        self.q_norm = nn.RMSNorm(head_dim, eps=1e-6) if qk_norm else nn.Identity()
        self.k_norm = nn.RMSNorm(head_dim, eps=1e-6) if qk_norm else nn.Identity()
        self.proj = nn.Linear(width, width)

    def forward(
        self,
        x: Tensor,
        rope: tuple[Tensor, Tensor],
        tokens_per_frame: int,
        ctx: ChunkContext | None,
    ) -> Tensor:
        qkv = rearrange(self.qkv(x), "b l (three n d) -> three b n l d", three=3, n=self.num_heads)
        v = qkv[2]  # (B, heads, L, d); q and k are normalised and rotated in float32
        q = apply_rope(self.q_norm(qkv[0].float()), *rope).to(v.dtype)
        k = apply_rope(self.k_norm(qkv[1].float()), *rope).to(v.dtype)
        cache = ctx.read(self) if ctx is not None else None
        if cache is not None:  # keys and values of the earlier chunks: (2, B, heads, L', d)
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
        if ctx is not None:
            ctx.write(self, torch.stack([k, v]))
        out = block_causal_attention(q, k, v, tokens_per_frame)  # (B, heads, L, d)
        return self.proj(rearrange(out, "b n l d -> b l (n d)"))


class TransformerBlock(nn.Module):
    """Pre-norm Transformer block: x + attn(LN(x)), then x + MLP(LN(x)). (B, L, D) kept."""

    def __init__(self, width: int, num_heads: int, mlp_ratio: float, qk_norm: bool) -> None:
        super().__init__()
        hidden = int(width * mlp_ratio)
        self.norm1 = nn.LayerNorm(width, eps=1e-6)
        self.attn = Attention(width, num_heads, qk_norm)
        self.norm2 = nn.LayerNorm(width, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(width, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, width)
        )

    def forward(
        self,
        x: Tensor,
        rope: tuple[Tensor, Tensor],
        tokens_per_frame: int,
        ctx: ChunkContext | None = None,
    ) -> Tensor:
        x = x + self.attn(self.norm1(x), rope, tokens_per_frame, ctx)
        return x + self.mlp(self.norm2(x))


# ---------------------------------------------------------------------------- networks
class TransformerStack(nn.Module):
    """A stack of blocks and a final LayerNorm over a (t, h, w) token grid.

    Supports diffusers' ``enable_gradient_checkpointing`` (per block, whole clips only: a
    chunk's key/value cache is written once, so streaming runs without recomputation).
    """

    def __init__(
        self,
        width: int,
        num_heads: int,
        layers: int,
        mlp_ratio: float,
        qk_norm: bool,
        rope_theta: float,
    ) -> None:
        super().__init__()
        self.head_dim, self.rope_theta = width // num_heads, rope_theta
        self.blocks = nn.ModuleList(
            TransformerBlock(width, num_heads, mlp_ratio, qk_norm) for _ in range(layers)
        )
        self.norm_out = nn.LayerNorm(width, eps=1e-6)
        self.gradient_checkpointing = False
        self._gradient_checkpointing_func = None

    def run(
        self, tokens: Tensor, grid: tuple[int, int, int], t0: int, ctx: ChunkContext | None
    ) -> Tensor:
        """tokens (B, t * h * w, D) of latent frames t0 .. t0 + t - 1 -> (B, t * h * w, D)."""
        t, h, w = grid
        rope = rope_angles(t0, t, h, w, self.head_dim, self.rope_theta, tokens.device)
        for block in self.blocks:
            if self.gradient_checkpointing and torch.is_grad_enabled() and ctx is None:
                tokens = self._gradient_checkpointing_func(block, tokens, rope, h * w)
            else:
                tokens = block(tokens, rope, h * w, ctx)
        return self.norm_out(tokens)


class TransformerEncoder(TransformerStack):
    """Patch embedding, block-causal Transformer, posterior head.

    x: (B, 3, T, H, W) with T = 1 + 4m on a first chunk (or a whole clip), 4m after it
    -> posterior parameters (B, 2 Cz, 1 + m or m, H / 16, W / 16).
    """

    def __init__(
        self, in_channels: int, out_channels: int, patch: tuple[int, int], **stack
    ) -> None:
        super().__init__(**stack)
        self.ct, s = patch
        width = stack["width"]
        self.patch_embed = nn.Conv3d(in_channels, width, (self.ct, s, s), stride=(self.ct, s, s))
        self.proj_out = nn.Linear(width, out_channels)

    def forward(
        self, x: Tensor, ctx: ChunkContext | None = None, slice_frames: int | None = None
    ) -> Tensor:
        """``slice_frames`` is accepted for the shared interface and unused (the only
        full-resolution activation is the input itself)."""
        first = ctx is None or ctx.is_first
        if first:  # frame 0 alone in the first group: (B, 3, ct - 1 + T, H, W)
            x = torch.cat([x[:, :, :1].expand(-1, -1, self.ct - 1, -1, -1), x], dim=2)
        if x.shape[2] % self.ct:
            raise ValueError(
                f"a chunk needs {'1 + ' if first else ''}{self.ct}m frames, got "
                f"{x.shape[2] - (self.ct - 1 if first else 0)}"
            )
        h = self.patch_embed(x)  # (B, D, t, h, w)
        t0 = 0 if first else 1 + (ctx.prev.frames - 1) // self.ct  # latent index of frame 0
        grid = tuple(h.shape[2:])
        tokens = self.run(rearrange(h, "b d t h w -> b (t h w) d"), grid, t0, ctx)
        out = self.proj_out(tokens)  # (B, t * h * w, 2 Cz)
        return rearrange(out, "b (t h w) c -> b c t h w", t=grid[0], h=grid[1], w=grid[2])


class TransformerDecoder(TransformerStack):
    """Latent projection, block-causal Transformer, pixel-shuffle head.

    z: (B, Cz, m, h, w) -> (B, 3, 1 + 4 (m - 1), 16 h, 16 w) on a first chunk (or a whole
    clip), (B, 3, 4m, 16 h, 16 w) after it.
    """

    def __init__(
        self, in_channels: int, out_channels: int, patch: tuple[int, int], **stack
    ) -> None:
        super().__init__(**stack)
        self.ct, self.s = patch
        width = stack["width"]
        self.proj_in = nn.Linear(in_channels, width)
        self.proj_out = nn.Linear(width, out_channels * self.ct * self.s * self.s)

    def forward(
        self, z: Tensor, ctx: ChunkContext | None = None, slice_frames: int | None = None
    ) -> Tensor:
        """``slice_frames`` is accepted for the shared interface and unused."""
        first = ctx is None or ctx.is_first
        grid = tuple(z.shape[2:])
        tokens = self.proj_in(rearrange(z, "b c t h w -> b (t h w) c"))  # (B, L, D)
        tokens = self.run(tokens, grid, 0 if first else ctx.prev.frames, ctx)
        patches = self.proj_out(tokens)  # (B, L, 3 * ct * s * s)
        x = rearrange(  # pixel shuffle: (B, 3, ct * t, s * h, s * w)
            patches,
            "b (t h w) (c pt ph pw) -> b c (t pt) (h ph) (w pw)",
            t=grid[0], h=grid[1], w=grid[2], pt=self.ct, ph=self.s, pw=self.s,
        )
        return x[:, :, self.ct - 1 :] if first else x


# ---------------------------------------------------------------------------- the model
class TransformerPVVAE(VideoVAEMixin, ModelMixin, ConfigMixin):
    """PV-VAE*, the Transformer video VAE (paper section 5), with the API of :class:`PVVAE`.

    Args:
        in_channels, out_channels: pixel channels (3).
        latent_channels: Cz (64 in the paper).
        num_heads, head_dim: attention heads and their dimension; the width is their product.
        encoder_layers, decoder_layers: Transformer blocks of each side (12 in the paper).
        mlp_ratio: MLP hidden width over the model width.
        temporal_patch_size, spatial_patch_size: the patch, i.e. the compression (4, 16).
        qk_norm: RMS-normalise queries and keys per head.
        rope_theta: base of the rotary frequencies.
        pad_mode, latents_mean, latents_std: as in :class:`PVVAE`.

    Encoding, decoding, chunked streaming, slicing, tiling, :meth:`forward`, prediction,
    padding and latent statistics come from :class:`~pvvae.model.common.VideoVAEMixin`,
    shared with :class:`PVVAE`; they reach the networks only through
    ``encoder(x, ctx, slice_frames)`` / ``decoder(z, ctx, slice_frames)``.
    """

    _supports_gradient_checkpointing = True
    _no_split_modules = ["TransformerBlock"]
    _repeated_blocks = ["TransformerBlock"]

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        latent_channels: int = 64,
        num_heads: int = 2,
        head_dim: int = 32,
        encoder_layers: int = 2,
        decoder_layers: int = 2,
        mlp_ratio: float = 4.0,
        temporal_patch_size: int = 4,
        spatial_patch_size: int = 16,
        qk_norm: bool = True,
        rope_theta: float = 10000.0,
        pad_mode: str = "learnable",
        latents_mean: list[float] | None = None,
        latents_std: list[float] | None = None,
    ) -> None:
        super().__init__()
        if head_dim % 2 or head_dim < 8:
            raise ValueError(f"head_dim must be even and >= 8 (3D rotary axes), got {head_dim}")
        self.check_latent_config(latent_channels, pad_mode, latents_mean, latents_std)
        patch = (temporal_patch_size, spatial_patch_size)
        stack = dict(
            width=num_heads * head_dim, num_heads=num_heads, mlp_ratio=mlp_ratio,
            qk_norm=qk_norm, rope_theta=rope_theta,
        )
        self.encoder = TransformerEncoder(
            in_channels, 2 * latent_channels, patch, layers=encoder_layers, **stack
        )
        self.decoder = TransformerDecoder(
            latent_channels, out_channels, patch, layers=decoder_layers, **stack
        )
        # The padding token of predictive reconstruction, as in PVVAE (paper Table 6).
        self.pad_token = nn.Parameter(torch.randn(latent_channels) * 0.02)
        self.initialize_weights()
        self.spatial_compression = spatial_patch_size
        self.temporal_compression = temporal_patch_size
        self.init_runtime_options()

    # ------------------------------------------------------------------ construction
    def initialize_weights(self) -> None:
        """N(0, 1/fan_in) weights and zero biases, as in :class:`PVVAE`; the residual output
        projections scaled by 1/sqrt(2 L) (GPT-2), and the posterior starts narrow
        (log-variance bias -4, as in PVVAE)."""
        for module in self.modules():
            if isinstance(module, (nn.Conv3d, nn.Linear)):
                nn.init.normal_(module.weight, 0.0, module.weight[0].numel() ** -0.5)
                nn.init.zeros_(module.bias)
        for stack in (self.encoder, self.decoder):
            scale = (2 * len(stack.blocks)) ** -0.5
            with torch.no_grad():
                for block in stack.blocks:
                    block.attn.proj.weight.mul_(scale)
                    block.mlp[2].weight.mul_(scale)
        with torch.no_grad():
            self.encoder.proj_out.bias[self.config.latent_channels :] = -4.0

    @classmethod
    def from_preset(cls, name: str, **overrides) -> TransformerPVVAE:
        """A randomly initialised model of a named preset (:data:`TRANSFORMER_PRESETS`)."""
        if name not in TRANSFORMER_PRESETS:
            raise KeyError(
                f"unknown Transformer preset {name!r}; valid presets: {sorted(TRANSFORMER_PRESETS)}"
            )
        return cls(**{**TRANSFORMER_PRESETS[name], **overrides})

    def get_last_layer(self) -> Tensor:
        """The decoder's last weight (the adaptive GAN weight is measured there)."""
        return self.decoder.proj_out.weight
