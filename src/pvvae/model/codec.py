"""Encoding and decoding of long, large videos: temporal chunks, slices, tiles, streams.

:class:`ChunkedCodecMixin` runs a model's causal networks ``encoder(x, ctx, slice_frames)``
and ``decoder(z, ctx, slice_frames)`` on a whole clip in temporal chunks (activation memory
constant in the video length), one sample at a time (slicing) and in blended spatial tiles,
and exposes the same path as an explicit stream (:meth:`encode_chunk` / :meth:`decode_chunk`
with a :class:`~pvvae.model.causal.CausalState`, :meth:`iter_encode` / :meth:`iter_decode`).
Chunked, sliced and tiled results equal whole-clip processing up to float rounding (tiles up
to the blend of their overlaps).

It is a part of :class:`~pvvae.model.common.VideoVAEMixin`, which provides the attributes it
reads: the runtime options (``use_slicing``, ``use_tiling``, ``tile_size``, ``tile_stride``,
``chunk_latent_frames``, ``slice_frames``), :meth:`check_pixels`, :meth:`pad_frames`,
``latent_channels``, ``spatial_compression`` and ``temporal_compression``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
from diffusers.models.autoencoders.vae import DecoderOutput
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from torch import Tensor

from pvvae.model.causal import CausalState, ChunkContext
from pvvae.model.distributions import DiagonalGaussian
from pvvae.model.tiling import tiled_apply

# Blend margin of tiled encoding and decoding (pvvae.model.tiling.blend_weights): a tile's
# samples next to its interior edge are computed from padding, so the outer quarter of each
# overlap goes to the tile for which it is interior and the middle half ramps linearly
# (README, "Tiling seams": 12.9% -> 10.8% seam error with the demo's weights, 32 px overlap).
TILE_BLEND_MARGIN = 0.25


class ChunkedCodecMixin:
    """:meth:`encode` / :meth:`decode` in chunks, slices and tiles, and their streaming form."""

    # ------------------------------------------------------------------ encoding
    def encode(
        self, x: Tensor, return_dict: bool = True
    ) -> AutoencoderKLOutput | tuple[DiagonalGaussian]:
        """Encode pixels to the posterior over **raw** (un-normalised) latents.

        Args:
            x: (B, 3, T, H, W) in [-1, 1]; T not of the form 1 + 4k is padded by repeating
                the last frame; H and W multiples of 16.
        Returns:
            ``AutoencoderKLOutput(latent_dist=DiagonalGaussian)`` with latents of shape
            (B, Cz, 1 + ceil((T - 1) / 4), H / 16, W / 16), or a 1-tuple if not return_dict.
        """
        self.check_pixels(x)
        x = self.pad_frames(x)
        if self.use_slicing and x.shape[0] > 1:
            params = torch.cat([self._encode_tiled(xi) for xi in x.split(1)])
        else:
            params = self._encode_tiled(x)
        posterior = DiagonalGaussian(params)
        return AutoencoderKLOutput(latent_dist=posterior) if return_dict else (posterior,)

    def encode_chunk(
        self, x: Tensor, state: CausalState | None = None
    ) -> tuple[DiagonalGaussian, CausalState]:
        """Encode one temporal chunk of a stream; pass the returned state with the next chunk.

        Args:
            x: (B, 3, n, H, W). The first chunk holds 1 + 4m frames, later chunks 4m frames.
            state: None for the first chunk.
        Returns:
            the posterior of this chunk's latents, (B, Cz, 1 + m or m, h, w), and the new state.
        """
        ctx = ChunkContext(state, x.shape[2])
        posterior = DiagonalGaussian(self.encoder(x, ctx, self.slice_frames))
        return posterior, ctx.next_state()

    def _encode_tiled(self, x: Tensor) -> Tensor:
        """Posterior parameters (B, 2Cz, t, h, w) of valid-length pixels, tiled if enabled."""
        if self.use_tiling and max(x.shape[-2:]) > self.tile_size:
            scale = 1.0 / self.spatial_compression
            return tiled_apply(
                self._encode_stream, x, self.tile_size, self.tile_stride, scale,
                margin=TILE_BLEND_MARGIN,
            )
        return self._encode_stream(x)

    def _encode_stream(self, x: Tensor) -> Tensor:
        """Posterior parameters of x (B, 3, 1 + 4k, H, W) in temporal chunks."""
        if self.chunk_latent_frames is None:
            return self.encoder(x, slice_frames=self.slice_frames)
        state, outs = None, []
        for chunk in self._pixel_chunks(x):
            posterior, state = self.encode_chunk(chunk, state)
            outs.append(posterior.parameters)
        return torch.cat(outs, dim=2)  # (B, 2Cz, t, h, w)

    def _pixel_chunks(self, x: Tensor) -> list[Tensor]:
        """x (B, 3, 1 + 4k, H, W) split in time as the stream takes it: 1 + 4(n - 1) frames,
        then 4n frames per chunk (n = ``chunk_latent_frames``; one chunk when None)."""
        if self.chunk_latent_frames is None:
            return [x]
        ct, n = self.temporal_compression, self.chunk_latent_frames
        first = x[:, :, : 1 + ct * (n - 1)]
        rest = x[:, :, first.shape[2] :]
        return [first, *rest.split(ct * n, dim=2)] if rest.shape[2] else [first]

    def iter_encode(self, x: Tensor | Iterable[Tensor]) -> Iterator[DiagonalGaussian]:
        """Yield the posterior of each temporal chunk of a video, oldest first.

        The streaming counterpart of :meth:`encode` (and of :meth:`iter_decode`): activations
        and state are those of one chunk, so memory does not grow with the video length.
        Tiling applies when enabled, with one causal state per tile position.

        Args:
            x: a whole clip (B, 3, 1 + 4k, H, W), split like :meth:`encode` splits it, or any
                iterable of pixel chunks (e.g. read lazily from a file): the first of
                1 + 4m frames, the following of 4m frames (m >= 1 may vary).
        Yields:
            :class:`DiagonalGaussian` over latents (B, Cz, m_i, H / 16, W / 16).
        """
        chunks = self._pixel_chunks(x) if isinstance(x, Tensor) else x
        state = None
        for i, chunk in enumerate(chunks):
            self.check_pixels(chunk)
            ct = self.temporal_compression
            if (chunk.shape[2] - (i == 0)) % ct or chunk.shape[2] == 0:
                raise ValueError(
                    f"pixel chunk {i} has {chunk.shape[2]} frames; the first chunk needs "
                    f"1 + {ct}m frames (m >= 0) and later ones {ct}m (m >= 1): pad the last "
                    "one by repeating its last frame"
                )
            params, state = self._stream_step(self._encode_params, chunk, state, encode=True)
            yield DiagonalGaussian(params)

    def _encode_params(self, x: Tensor, state: CausalState | None) -> tuple[Tensor, CausalState]:
        posterior, state = self.encode_chunk(x, state)
        return posterior.parameters, state

    def _stream_step(self, step, x: Tensor, state, encode: bool):
        """``step(x, state) -> (y, state)`` on one chunk, tiled when tiling is on.

        With tiling, the state is a dict of one :class:`CausalState` per tile position.
        """
        s = self.spatial_compression
        size = self.tile_size if encode else self.tile_size // s
        if not (self.use_tiling and max(x.shape[-2:]) > size):
            return step(x, state)
        stride = self.tile_stride if encode else self.tile_stride // s
        states, new = state or {}, {}

        def tile_step(piece: Tensor, key: tuple[int, int]) -> Tensor:
            y, new[key] = step(piece, states.pop(key, None))
            return y

        scale = 1 / s if encode else float(s)
        out = tiled_apply(tile_step, x, size, stride, scale, keyed=True, margin=TILE_BLEND_MARGIN)
        return out, new

    # ------------------------------------------------------------------ decoding
    def decode(self, z: Tensor, return_dict: bool = True) -> DecoderOutput | tuple[Tensor]:
        """Decode raw latents (B, Cz, t, h, w) to pixels (B, 3, 1 + 4(t - 1), 16h, 16w).

        Processed in temporal chunks (and tiles / slices when enabled), so activation memory
        does not grow with t. For very long videos, :meth:`iter_decode` yields the pixels
        chunk by chunk instead of holding all of them.
        """
        if z.ndim != 5 or z.shape[1] != self.latent_channels:
            raise ValueError(
                f"expected latents (B, {self.latent_channels}, t, h, w), "
                f"got {tuple(z.shape)}"
            )
        if self.use_slicing and z.shape[0] > 1:
            x = torch.cat([self._decode_tiled(zi) for zi in z.split(1)])
        else:
            x = self._decode_tiled(z)
        return DecoderOutput(sample=x) if return_dict else (x,)

    def decode_chunk(
        self, z: Tensor, state: CausalState | None = None
    ) -> tuple[Tensor, CausalState]:
        """Decode one temporal chunk of latents (B, Cz, m, h, w) of a stream.

        Returns the pixels, (B, 3, 1 + 4(m - 1), H, W) for the first chunk and
        (B, 3, 4m, H, W) after it, and the state to pass with the next chunk.
        """
        ctx = ChunkContext(state, z.shape[2])
        return self.decoder(z, ctx, self.slice_frames), ctx.next_state()

    def iter_decode(self, z: Tensor | Iterable[Tensor], tiled: bool = True) -> Iterator[Tensor]:
        """Yield decoded pixel chunks, oldest first (tiled when tiling is enabled).

        Args:
            z: latents (B, Cz, t, h, w), split into ``chunk_latent_frames`` chunks, or any
                iterable of latent chunks (B, Cz, m_i, h, w), e.g. from :meth:`iter_encode`.
            tiled: honour :meth:`enable_tiling` (``decode`` tiles outside and passes False).
        Yields:
            pixels (B, 3, 1 + 4(m_0 - 1), H, W) for the first chunk, (B, 3, 4 m_i, H, W) after.
        """
        if isinstance(z, Tensor):
            z = z.split(self.chunk_latent_frames or z.shape[2], dim=2)
        state = None
        for zc in z:
            if tiled:
                x, state = self._stream_step(self.decode_chunk, zc, state, encode=False)
            else:
                x, state = self.decode_chunk(zc, state)
            yield x
            del x  # not held while the next chunk is decoded

    def _decode_tiled(self, z: Tensor) -> Tensor:
        s = self.spatial_compression
        if self.use_tiling and max(z.shape[-2:]) * s > self.tile_size:
            tile, stride = self.tile_size // s, self.tile_stride // s
            return tiled_apply(
                self._decode_stream, z, tile, stride, float(s), margin=TILE_BLEND_MARGIN
            )
        return self._decode_stream(z)

    def _decode_stream(self, z: Tensor) -> Tensor:
        if self.chunk_latent_frames is None:
            return self.decoder(z, slice_frames=self.slice_frames)
        return torch.cat(list(self.iter_decode(z, tiled=False)), dim=2)  # (B, 3, T, H, W)
