"""Inception Score of generated videos with the UCF101 C3D (paper Table 1, "IS").

Protocol of TGAN (Saito et al. 2017/2020) as packaged by StyleGAN-V and used by Latte:
2048 generated clips of 16 frames, class probabilities of C3D (Tran et al. 2015,
"C3D v1.0") fine-tuned on UCF101, split into 10 parts,
``IS = exp(mean_i KL(p(y|x_i) || p(y)))`` per part with ``p(y)`` the part's mean, and the mean
and standard deviation over parts. Like StyleGAN-V, the probabilities are shuffled with a
fixed seed (``numpy.random.RandomState(42)``) before splitting, so that videos generated
class by class do not make class-pure parts.

C3D architecture (TGAN2's ``C3DVersion1UCF101``): eight 3x3x3 convs (64, 128, 256, 256, 512,
512, 512, 512) with ReLU, max pools (1,2,2) after conv1a and 2x2x2 after conv2a, conv3b,
conv4b and conv5b (Chainer ``cover_all``, i.e. ceil mode, so 7 -> 4 at the last pool), then
fc6 8192 -> 4096, fc7 4096 -> 4096 (ReLU, dropout off), fc8 4096 -> 101.
Input preprocessing of TGAN2: RGB -> BGR, ``[-1, 1] -> [0, 256]`` (x * 128 + 128), bilinear
resize to 112x112, minus the C3D mean clip.

No C3D weights ship in any package: they are loaded from a user-given file, a PyTorch state
dict (``conv1a.weight`` ... ``fc8.bias``, optionally ``mean``) or TGAN2's Chainer ``.npz``
(``conv1a/W`` ... ``fc8/b``), converted from the Caffe model
``c3d_ucf101_finetune_whole_iter_20000``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

C3D_FRAMES = 16
C3D_SIZE = 112
UCF101_CLASSES = 101
# Per-channel (B, G, R) average of the C3D mean clip, as noted in TGAN2's c3d_ucf101.py; used
# when the weights file carries no full (3, 16, 112, 112) mean clip.
C3D_MEAN_BGR = (90.25164795, 97.65701294, 101.4083252)
CONV_CHANNELS = {
    "conv1a": (3, 64), "conv2a": (64, 128), "conv3a": (128, 256), "conv3b": (256, 256),
    "conv4a": (256, 512), "conv4b": (512, 512), "conv5a": (512, 512), "conv5b": (512, 512),
}
POOL_AFTER = {"conv1a": (1, 2, 2), "conv2a": (2, 2, 2), "conv3b": (2, 2, 2),
              "conv4b": (2, 2, 2), "conv5b": (2, 2, 2)}
WEIGHTS_HELP = (
    "IS needs the UCF101-finetuned C3D weights, which no package ships. Provide a PyTorch "
    "state dict with keys conv1a.weight ... fc8.bias (optionally 'mean', (3, 16, 112, 112) BGR "
    "mean clip) or TGAN2's Chainer file conv3d_deepnetA_ucf.npz (keys conv1a/W ... fc8/b)."
)


def default_mean_clip() -> torch.Tensor:
    """(3, 16, 112, 112) BGR mean clip filled with the per-channel C3D means."""
    mean = torch.tensor(C3D_MEAN_BGR).view(3, 1, 1, 1)
    return mean.expand(3, C3D_FRAMES, C3D_SIZE, C3D_SIZE).clone()


class C3D(nn.Module):
    """C3D v1.0 classifier for UCF101 (see the module docstring for layout and preprocessing).

    Args:
        num_classes: output classes (101 for UCF101).
    """

    def __init__(self, num_classes: int = UCF101_CLASSES) -> None:
        super().__init__()
        for name, (c_in, c_out) in CONV_CHANNELS.items():
            self.add_module(name, nn.Conv3d(c_in, c_out, kernel_size=3, padding=1))
        self.fc6 = nn.Linear(512 * 1 * 4 * 4, 4096)
        self.fc7 = nn.Linear(4096, 4096)
        self.fc8 = nn.Linear(4096, num_classes)
        self.register_buffer("mean", default_mean_clip())

    def preprocess(self, videos: torch.Tensor) -> torch.Tensor:
        """TGAN2 input pipeline.

        Args:
            videos: (N, 3, 16, H, W) RGB clips in [-1, 1].

        Returns:
            (N, 3, 16, 112, 112) BGR clips in C3D's [0, 255] scale minus the mean clip.
        """
        n = videos.shape[0]
        x = videos.float().flip(1) * 128.0 + 128.0  # RGB -> BGR, [-1, 1] -> [0, 256]
        frames = rearrange(x, "n c t h w -> (n t) c h w")
        frames = F.interpolate(frames, size=(C3D_SIZE, C3D_SIZE), mode="bilinear",
                               align_corners=True)  # Chainer's resize_images
        x = rearrange(frames, "(n t) c h w -> n c t h w", n=n)
        return x - self.mean

    def forward(self, videos: torch.Tensor) -> torch.Tensor:
        """Class logits.

        Args:
            videos: (N, 3, 16, H, W) RGB clips in [-1, 1].

        Returns:
            (N, num_classes) logits (fc8).
        """
        if videos.shape[1:3] != (3, C3D_FRAMES):
            raise ValueError(f"C3D expects (N, 3, {C3D_FRAMES}, H, W) clips, got {videos.shape}")
        h = self.preprocess(videos)  # (N, 3, 16, 112, 112)
        for name in CONV_CHANNELS:
            h = F.relu(getattr(self, name)(h))
            if name in POOL_AFTER:
                h = F.max_pool3d(h, POOL_AFTER[name], POOL_AFTER[name], ceil_mode=True)
        h = h.flatten(1)  # (N, 512, 1, 4, 4) -> (N, 8192)
        h = F.relu(self.fc6(h))
        h = F.relu(self.fc7(h))
        return self.fc8(h)


def read_c3d_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Read C3D weights as a :class:`C3D` state dict.

    Accepts a PyTorch state dict (``.pt``/``.pth``, keys as in :class:`C3D`) or TGAN2's
    Chainer ``.npz`` (``conv1a/W``, ``conv1a/b``, ..., Chainer and PyTorch share the weight
    layouts). A ``mean`` entry of shape (3, 16, 112, 112) or (3,) (BGR) is optional.

    Raises:
        FileNotFoundError: when the file does not exist (with what to provide).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"C3D weights not found at {path}. {WEIGHTS_HELP}")
    if path.suffix == ".npz":
        with np.load(path) as archive:
            state = {
                key.replace("/W", ".weight").replace("/b", ".bias"): torch.from_numpy(archive[key])
                for key in archive.files
            }
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k: v.float() for k, v in state.items()}
    if "mean" in state and state["mean"].shape == (3,):
        state["mean"] = state["mean"].view(3, 1, 1, 1).expand(3, C3D_FRAMES, C3D_SIZE, C3D_SIZE)
    return state


def load_c3d(path: str | Path, device: torch.device | str | None = None) -> C3D:
    """Build the UCF101 C3D and load user-supplied weights with strict checking.

    Args:
        path: weights file (see :func:`read_c3d_weights`).
        device: where to put the model (default CPU).

    Returns:
        Frozen :class:`C3D` in eval mode.

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: the file does not hold the C3D tensors (lists missing, unexpected and
            mis-shaped entries).
    """
    state = read_c3d_weights(path)
    with torch.device("meta"):  # no random init of 78M parameters that are overwritten anyway
        model = C3D()
    expected = model.state_dict()
    state.setdefault("mean", default_mean_clip())
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or misshaped:
        raise ValueError(
            f"{path} is not a UCF101 C3D checkpoint: missing {missing}, unexpected "
            f"{unexpected}, wrong shape {misshaped}. {WEIGHTS_HELP}"
        )
    model.load_state_dict(state, strict=True, assign=True)
    return model.requires_grad_(False).eval().to(device or "cpu")


def inception_score_from_probs(
    probs: torch.Tensor | np.ndarray, num_splits: int = 10, shuffle_seed: int | None = 42
) -> tuple[float, float]:
    """Inception Score from class probabilities.

    ``IS_i = exp(mean_{x in part i} KL(p(y|x) || p_i(y)))`` with ``p_i(y)`` the mean of part i
    (0 log 0 = 0), in float64.

    Args:
        probs: (N, K) class probabilities (rows sum to 1).
        num_splits: number of parts (10 in TGAN/StyleGAN-V).
        shuffle_seed: rows are permuted by ``numpy.random.RandomState(seed)`` before splitting,
            as StyleGAN-V does (42); None keeps the given order (TGAN).

    Returns:
        (mean, std) of the per-part scores (std with divisor num_splits, like numpy).
    """
    if isinstance(probs, torch.Tensor):
        probs = probs.detach().cpu().numpy()
    p = np.array(probs, dtype=np.float64)  # a copy: shuffled in place below
    n = p.shape[0]
    if n < num_splits:
        raise ValueError(f"need at least {num_splits} samples for {num_splits} splits, got {n}")
    if shuffle_seed is not None:
        np.random.RandomState(shuffle_seed).shuffle(p)
    scores = []
    for i in range(num_splits):
        part = p[i * n // num_splits : (i + 1) * n // num_splits]
        marginal = part.mean(axis=0, keepdims=True)  # (1, K)
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = np.where(part > 0, part * (np.log(part) - np.log(marginal)), 0.0)
        scores.append(np.exp(kl.sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))


@torch.no_grad()
def c3d_probs(
    videos: torch.Tensor | Iterable[torch.Tensor], model: C3D, batch_size: int = 16
) -> torch.Tensor:
    """Softmax class probabilities of C3D for videos.

    Args:
        videos: (N, 3, 16, H, W) float videos in [-1, 1], or an iterable of such batches.
        model: a loaded :class:`C3D`.
        batch_size: clips per forward pass.

    Returns:
        (N, 101) float64 probabilities on the CPU.
    """
    device = next(model.parameters()).device
    batches = [videos] if isinstance(videos, torch.Tensor) else videos
    outputs = []
    for batch in batches:
        for start in range(0, batch.shape[0], batch_size):
            logits = model(batch[start : start + batch_size].to(device))
            outputs.append(logits.double().softmax(dim=1).cpu())
    if not outputs:
        raise ValueError("no videos given")
    return torch.cat(outputs)


def compute_is(
    videos: torch.Tensor | Iterable[torch.Tensor],
    model: C3D,
    batch_size: int = 16,
    num_splits: int = 10,
    shuffle_seed: int | None = 42,
) -> tuple[float, float]:
    """Inception Score of generated videos with the UCF101 C3D (paper protocol: 2048 clips).

    Args:
        videos: (N, 3, 16, H, W) float videos in [-1, 1], or an iterable of such batches.
        model: C3D from :func:`load_c3d`.
        batch_size: clips per forward pass.
        num_splits, shuffle_seed: see :func:`inception_score_from_probs`.

    Returns:
        (mean, std) IS over the splits.
    """
    probs = c3d_probs(videos, model, batch_size)
    return inception_score_from_probs(probs, num_splits, shuffle_seed)
