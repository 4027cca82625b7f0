"""Latent files: the latents of a whole video in one safetensors file, written and read in chunks.

Layout: one tensor ``latent_frames`` of shape (t, Cz, h, w), frame-major, so that chunks are
appended as they are encoded and read back by slicing (``safe_open(...).get_slice``) without
loading the file; :func:`load_latents` returns the usual (1, Cz, t, h, w). The latents are the
**raw** posterior means (not normalised: use ``vae.normalize`` for a diffusion model). The
metadata records the source frame count, frame rate and frame size, and the fingerprint of the
model that wrote the latents (:func:`pvvae.inference.loading.model_fingerprint`), which
``pvvae decode`` checks.

Writing streams the chunks to a ``.part`` file beside the output and prepends the safetensors
header (whose size depends on the final shape) when closing.
"""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path

import torch
from einops import rearrange
from safetensors import safe_open
from torch import Tensor

KEY = "latent_frames"
_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}


class LatentWriter:
    """Append latent chunks (1, Cz, m, h, w) to a safetensors file; a context manager.

    Args:
        path: output ``.safetensors`` file.
        metadata: string key/values stored in the header (e.g. fps, num_frames).
    """

    def __init__(self, path: str | Path, metadata: dict[str, str] | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.metadata = dict(metadata or {})
        self._part = self.path.with_name(self.path.name + ".part")
        self._file = open(self._part, "wb")  # noqa: SIM115 (closed in close())
        self._shape: list[int] | None = None
        self._dtype: torch.dtype | None = None

    def write(self, z: Tensor) -> None:
        """Append latents (1, Cz, m, h, w)."""
        if z.ndim != 5 or z.shape[0] != 1:
            raise ValueError(f"expected latents (1, Cz, m, h, w), got {tuple(z.shape)}")
        frames = rearrange(z.detach().cpu(), "1 c t h w -> t c h w").contiguous()
        if self._shape is None:
            if frames.dtype not in _DTYPES:
                raise ValueError(f"latent dtype {frames.dtype} not in {list(_DTYPES)}")
            self._shape, self._dtype = [0, *frames.shape[1:]], frames.dtype
        elif list(frames.shape[1:]) != self._shape[1:] or frames.dtype != self._dtype:
            raise ValueError(f"chunk {tuple(frames.shape)} does not match {self._shape}")
        self._file.write(frames.view(torch.uint8).numpy().tobytes())
        self._shape[0] += frames.shape[0]

    def close(self, metadata: dict[str, str] | None = None) -> Path:
        """Write the header, then the chunks, to ``path``; ``metadata`` is added to the header."""
        self._file.close()
        if self._shape is None:
            self._part.unlink()
            raise ValueError(f"{self.path}: no latents were written")
        self.metadata.update(metadata or {})
        size = self._part.stat().st_size
        header = {
            KEY: {"dtype": _DTYPES[self._dtype], "shape": self._shape, "data_offsets": [0, size]},
            "__metadata__": {k: str(v) for k, v in self.metadata.items()},
        }
        raw = json.dumps(header).encode()
        raw += b" " * (-len(raw) % 8)  # align the data to 8 bytes, as safetensors does
        with open(self.path, "wb") as out, open(self._part, "rb") as part:
            out.write(struct.pack("<Q", len(raw)) + raw)
            shutil.copyfileobj(part, out, 1 << 24)
        self._part.unlink()
        return self.path

    def __enter__(self) -> LatentWriter:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:  # leave no half-written file behind
            self._file.close()
            self._part.unlink(missing_ok=True)


def _open(path: str | Path):
    """``safe_open`` of a latent file; any other file is a one-line ValueError."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such latent file (write one with `pvvae encode`)")
    try:
        return safe_open(str(path), framework="pt")
    except Exception as e:  # SafetensorError: not a safetensors file (e.g. an mp4)
        raise ValueError(
            f"{path} is not a latent file ({' '.join(str(e).split())}); pass the .safetensors "
            "file written by `pvvae encode`"
        ) from None


def latent_metadata(path: str | Path) -> dict[str, str]:
    """The header metadata of a latent file."""
    with _open(path) as f:
        if KEY not in f.keys():
            raise ValueError(f"{path}: no '{KEY}' tensor; write latent files with `pvvae encode`")
        return f.metadata() or {}


def latent_shape(path: str | Path) -> tuple[int, ...]:
    """The shape (t, Cz, h, w) of a latent file's tensor, read from its header."""
    latent_metadata(path)
    with _open(path) as f:
        return tuple(f.get_slice(KEY).get_shape())


def iter_latent_chunks(path: str | Path, first: int, rest: int) -> Iterator[Tensor]:
    """Read a latent file ``first`` latent frames, then ``rest`` at a time: (1, Cz, m, h, w)."""
    latent_metadata(path)  # a clear error for a file of another kind
    with _open(path) as f:
        frames = f.get_slice(KEY)
        total, start, size = frames.get_shape()[0], 0, first
        while start < total:
            chunk = frames[start : start + size]  # (m, Cz, h, w), read from disk now
            yield rearrange(chunk, "t c h w -> 1 c t h w")
            start, size = start + size, rest


def load_latents(path: str | Path) -> Tensor:
    """The whole latent file as (1, Cz, t, h, w)."""
    return torch.cat(list(iter_latent_chunks(path, 1 << 30, 1 << 30)), dim=2)
