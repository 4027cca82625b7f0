"""Streaming reconstruction and prediction: chunk in, chunk out, flat memory in the length.

The causal model (paper section 3.1) lets a video pass through encoder and decoder one
temporal chunk at a time (``PVVAE.iter_encode`` / ``iter_decode``). The generators here chain
them lazily, so each pixel chunk is encoded, its latents decoded and the result handed back
before the next chunk is read: a file-to-file pipeline holds a few chunks at once, whatever
the number of frames.

Chunk layout: the first chunk has 1 + 4m frames, the following ones 4m (a causal VAE's groups:
frame 0 alone, then groups of 4). :func:`group_frames` builds that layout from a frame
iterator and pads the last chunk by repeating its last frame, reporting how many frames are
real so that callers trim the output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import torch
from torch import Tensor

from pvvae.inference.loading import supports_streaming
from pvvae.model.autoencoder import PVVAE


def group_frames(
    frames: Iterable[Tensor], first: int, rest: int, multiple: int = 4
) -> Iterator[tuple[Tensor, int]]:
    """Group single frames into model chunks.

    Args:
        frames: frames of any layout (e.g. uint8 (H, W, 3)), oldest first.
        first: frames of the first chunk (1 + multiple * m).
        rest: frames of each following chunk (multiple * m).
        multiple: the temporal compression (4).
    Yields:
        (chunk, n_real): the stacked frames (n, ...) with n = ``first`` / ``rest``, except a
        last shorter chunk, padded to 1 + multiple * j (first) or multiple * j frames by
        repeating its last frame; ``n_real`` counts the frames that came from ``frames``.
    """
    buffer: list[Tensor] = []
    size, index = first, 0
    for frame in frames:
        buffer.append(frame)
        if len(buffer) == size:
            yield torch.stack(buffer), size
            buffer, size, index = [], rest, index + 1
    if buffer:
        n = len(buffer)
        offset = 1 if index == 0 else 0
        padded = offset + multiple * -(-(n - offset) // multiple)
        buffer += [buffer[-1]] * (padded - n)
        yield torch.stack(buffer), n


def encode_stream(vae: PVVAE, chunks: Iterable[Tensor]) -> Iterator:
    """Posteriors of pixel chunks: ``vae.iter_encode`` (causal state carried from chunk to
    chunk), or each chunk encoded alone for a model without streaming."""
    if supports_streaming(vae):
        return vae.iter_encode(chunks)
    return (vae.encode(x).latent_dist for x in chunks)


def decode_stream(vae: PVVAE, latents: Iterable[Tensor]) -> Iterator[Tensor]:
    """Pixels of latent chunks: ``vae.iter_decode``, or each chunk decoded alone for a model
    without streaming."""
    if supports_streaming(vae):
        return vae.iter_decode(latents)
    return (vae.decode(z).sample for z in latents)


def reconstruct_chunks(
    vae: PVVAE, chunks: Iterable[Tensor], generator: torch.Generator | None = None
) -> Iterator[Tensor]:
    """Encode and decode a stream of pixel chunks, one chunk at a time.

    Args:
        vae: the model (its tiling / slicing options apply).
        chunks: pixel chunks (B, 3, n_i, H, W) in [-1, 1], laid out as in the module doc.
        generator: when given, decode a posterior sample drawn from it instead of the mean.
    Yields:
        the reconstruction of each chunk, (B, 3, n_i, H, W).
    """
    posteriors = encode_stream(vae, chunks)
    latents = (p.mode() if generator is None else p.sample(generator) for p in posteriors)
    yield from decode_stream(vae, latents)


def predict_chunks(
    vae: PVVAE,
    observed: Iterable[Tensor],
    num_predicted: Callable[[], int],
    generator: torch.Generator | None = None,
) -> Iterator[Tensor]:
    """Reconstruct an observed stream, then predict what follows it (paper Figure 6).

    As :meth:`PVVAE.predict`, chunk by chunk: the observed chunks are encoded and decoded one
    at a time, then padding latents (:meth:`PVVAE.pad_latents`) are decoded from the
    decoder's state, ``chunk_latent_frames`` at a time.

    Args:
        observed: pixel chunks (B, 3, n_i, H, W) laid out as in the module doc.
        num_predicted: called once the observed stream is exhausted; returns how many frames
            to predict after it (a callable, because a reader learns the observed length
            only at its end).
        generator: noise for ``pad_mode="gaussian"``.
    Yields:
        reconstructed chunks, then predicted chunks (B, 3, 4j, H, W); the last predicted chunk
        may run up to 3 frames past the requested count (trim it).
    """
    ct = vae.temporal_compression
    last: list[Tensor] = []  # the latest latent chunk: shape template for the padding
    if not supports_streaming(vae):  # one decode over observed + padding latents, then split
        observed = list(observed)
        z = torch.cat([vae.encode(x).latent_dist.mode() for x in observed], dim=2)
        k = -(-num_predicted() // ct)
        x_hat = vae.decode(vae.pad_latents(z, k, generator)).sample
        start = 0
        for x in observed:  # the reconstructed chunks, as a streaming model yields them
            yield x_hat[:, :, start : start + x.shape[2]]
            start += x.shape[2]
        if start < x_hat.shape[2]:
            yield x_hat[:, :, start:]
        return

    def latents() -> Iterator[Tensor]:
        for posterior in vae.iter_encode(observed):
            last[:] = [posterior.mode()]
            yield last[0]
        k = -(-num_predicted() // ct)  # latent frames covering the predicted frames
        step = vae.chunk_latent_frames or max(k, 1)
        for start in range(0, k, step):
            yield vae.pad_latents(last[0][:, :, :0], min(step, k - start), generator)

    yield from vae.iter_decode(latents())
