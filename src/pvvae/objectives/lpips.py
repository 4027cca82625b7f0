"""LPIPS v0.1 (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a
Perceptual Metric"), re-implemented without torchvision.

Convention of the ``lpips`` package 0.1 (the one video-VAE tables use, AlexNet by default):

1. inputs in [-1, 1] go through the scaling layer ``(x - shift) / scale`` with
   shift ``(-.030, -.088, -.188)`` and scale ``(.458, .448, .450)``;
2. the ImageNet backbone (torchvision's AlexNet or VGG16 ``features``) is tapped after 5 ReLUs;
3. each tapped map is unit-normalised over channels, ``f / (||f||_2 + 1e-10)``;
4. the squared difference of the two normalised maps goes through a learned 1x1 conv
   (``weights/v0.1/{alex,vgg}.pth`` of the ``lpips`` package), is averaged over space,
   and the 5 layers are summed.

The backbones are ``nn.Sequential`` stacks laid out exactly like torchvision's ``features``,
so the ``features.*`` tensors of torchvision's ImageNet checkpoints load with strict key
checking. Those checkpoints are not shipped in any package: they are read from an explicit
path, else from the torch hub cache, else downloaded from the torchvision URL when online.

It lives with the objectives because the training loss (:mod:`pvvae.objectives.perceptual`)
and the evaluation (``pvvae eval recon``) share it, and training must not import eval.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import torch
from einops import rearrange
from torch import nn


@dataclass(frozen=True)
class BackboneSpec:
    """Where a torchvision backbone's weights live and where LPIPS taps it.

    Attributes:
        filename: torchvision checkpoint file name (also the torch hub cache name).
        url: torchvision download URL.
        taps: indices in ``features`` of the ReLUs whose outputs LPIPS compares.
        channels: channel count of each tapped map.
    """

    filename: str
    url: str
    taps: tuple[int, ...]
    channels: tuple[int, ...]


BACKBONES = {
    "alex": BackboneSpec(
        filename="alexnet-owt-7be5be79.pth",
        url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        taps=(1, 4, 7, 9, 11),
        channels=(64, 192, 384, 256, 256),
    ),
    "vgg": BackboneSpec(
        filename="vgg16-397923af.pth",
        url="https://download.pytorch.org/models/vgg16-397923af.pth",
        taps=(3, 8, 15, 22, 29),
        channels=(64, 128, 256, 512, 512),
    ),
}
SCALING_SHIFT = (-0.030, -0.088, -0.188)
SCALING_SCALE = (0.458, 0.448, 0.450)
NORM_EPS = 1e-10
VGG16_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                512, 512, 512, "M")


def alexnet_features() -> nn.Sequential:
    """AlexNet convolutional trunk laid out like torchvision's ``alexnet().features``.

    Returns:
        ``nn.Sequential`` of 13 modules; (N, 3, H, W) -> (N, 256, h, w).
    """
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )


def vgg16_features() -> nn.Sequential:
    """VGG16 (configuration "D", no batch norm) trunk laid out like torchvision's
    ``vgg16().features``.

    Returns:
        ``nn.Sequential`` of 31 modules; (N, 3, H, W) -> (N, 512, H/32, W/32).
    """
    layers: list[nn.Module] = []
    in_channels = 3
    for item in VGG16_CONFIG:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(in_channels, item, kernel_size=3, padding=1), nn.ReLU()]
            in_channels = item
    return nn.Sequential(*layers)


def default_backbone_path(net: str) -> Path:
    """Torch hub cache location of a torchvision backbone: ``<hub dir>/checkpoints/<file>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / BACKBONES[net].filename


def _missing_backbone_message(net: str, reason: str) -> str:
    spec = BACKBONES[net]
    return (
        f"LPIPS({net!r}) needs torchvision's ImageNet backbone weights '{spec.filename}' "
        f"({reason}). Download {spec.url} and either put it at {default_backbone_path(net)} "
        f"(the torch hub cache) or pass its path as backbone_path=..."
    )


def load_backbone_state_dict(
    net: str, backbone_path: str | Path | None = None, allow_download: bool = True
) -> dict[str, torch.Tensor]:
    """Read the ``features`` tensors of a torchvision ImageNet checkpoint.

    Lookup order: ``backbone_path`` if given; else the torch hub cache
    (``torch.hub.get_dir()/checkpoints/<torchvision file name>``); else, when
    ``allow_download``, ``torch.hub.load_state_dict_from_url`` with the torchvision URL.

    Args:
        net: "alex" or "vgg".
        backbone_path: explicit checkpoint path (a full torchvision state dict, or the
            ``features`` part with or without the ``features.`` prefix).
        allow_download: whether to try the network when the file is not found locally.

    Returns:
        State dict of the ``features`` Sequential (keys ``"0.weight"``, ``"0.bias"``, ...).

    Raises:
        FileNotFoundError: with the file name, the cache location and the URL to fetch.
    """
    spec = BACKBONES[net]
    if backbone_path is not None:
        if not Path(backbone_path).is_file():
            raise FileNotFoundError(_missing_backbone_message(net, f"{backbone_path} not found"))
        state = torch.load(backbone_path, map_location="cpu", weights_only=True)
    elif default_backbone_path(net).is_file():
        state = torch.load(default_backbone_path(net), map_location="cpu", weights_only=True)
    elif allow_download:
        try:
            state = torch.hub.load_state_dict_from_url(
                spec.url, map_location="cpu", progress=False, file_name=spec.filename
            )
        except Exception as error:  # offline, proxy, HTTP error: all end in the same advice
            message = _missing_backbone_message(net, f"download failed: {error}")
            raise FileNotFoundError(message) from error
    else:
        raise FileNotFoundError(_missing_backbone_message(net, "not in the torch hub cache"))
    prefix = "features."
    if any(key.startswith(prefix) for key in state):
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    return state


def lpips_heads_path(net: str) -> Path:
    """Location of the v0.1 linear-head weights inside the installed ``lpips`` package
    (found without importing it, since ``lpips`` imports torchvision)."""
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the LPIPS v0.1 linear heads ship inside the 'lpips' package: "
            "pip install --no-deps lpips==0.1.4 (or pass heads_path=...)"
        )
    return Path(spec.submodule_search_locations[0]) / "weights" / "v0.1" / f"{net}.pth"


def load_heads_state_dict(
    net: str, heads_path: str | Path | None = None
) -> dict[str, torch.Tensor]:
    """Read the 5 LPIPS v0.1 1x1 heads and rename them for :class:`LPIPS`.

    The ``lpips`` files hold ``lin{k}.model.1.weight`` of shape (1, C_k, 1, 1)
    (``model.0`` is a parameter-free dropout).

    Returns:
        ``{"{k}.weight": (1, C_k, 1, 1)}`` for k = 0..4, the state dict of ``LPIPS.heads``.
    """
    path = Path(heads_path) if heads_path is not None else lpips_heads_path(net)
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {f"{k}.weight": state[f"lin{k}.model.1.weight"] for k in range(5)}


class LPIPS(nn.Module):
    """LPIPS v0.1 distance between images in [-1, 1] (see the module docstring).

    The parameters are frozen (``requires_grad=False``) and the module stays in eval mode,
    but the distance is differentiable with respect to its inputs, so a training loss can
    use it.

    Args:
        net: backbone, "alex" (default of the video-VAE tables) or "vgg".
        backbone_path: torchvision checkpoint path; None looks in the torch hub cache, then
            downloads (see :func:`load_backbone_state_dict`).
        pretrained_backbone: False keeps a randomly initialised backbone (tests only: the
            distance is then not LPIPS).
        heads_path: v0.1 head weights; None reads them from the ``lpips`` package data.
        allow_download: whether a missing backbone may be fetched from the torchvision URL.
    """

    def __init__(
        self,
        net: str = "alex",
        backbone_path: str | Path | None = None,
        pretrained_backbone: bool = True,
        heads_path: str | Path | None = None,
        allow_download: bool = True,
    ) -> None:
        super().__init__()
        if net not in BACKBONES:
            raise ValueError(f"net must be one of {sorted(BACKBONES)}, got {net!r}")
        self.net = net
        self.taps = BACKBONES[net].taps
        self.features = alexnet_features() if net == "alex" else vgg16_features()
        self.heads = nn.ModuleList(
            nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in BACKBONES[net].channels
        )
        self.register_buffer("shift", torch.tensor(SCALING_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALING_SCALE).view(1, 3, 1, 1))
        if pretrained_backbone:
            backbone = load_backbone_state_dict(net, backbone_path, allow_download)
            self.features.load_state_dict(backbone, strict=True)
        self.heads.load_state_dict(load_heads_state_dict(net, heads_path), strict=True)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> LPIPS:
        """LPIPS has no training-time behaviour: the module always stays in eval mode."""
        return super().train(False)

    def tapped_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Backbone activations after the 5 LPIPS ReLUs.

        Args:
            x: (N, 3, H, W) images in [-1, 1].

        Returns:
            5 maps (N, C_k, H_k, W_k).
        """
        h = (x - self.shift) / self.scale  # the v0.1 scaling layer
        taps = []
        for index, layer in enumerate(self.features[: self.taps[-1] + 1]):
            h = layer(h)
            if index in self.taps:
                taps.append(h)
        return taps

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """LPIPS distance of each image pair.

        Args:
            x, y: (N, 3, H, W) images in [-1, 1].

        Returns:
            (N,) distances (0 for identical images).
        """
        if x.shape != y.shape or x.ndim != 4:
            raise ValueError(f"expected two (N, 3, H, W) tensors, got {x.shape} and {y.shape}")
        distance = x.new_zeros(x.shape[0])
        for head, fx, fy in zip(self.heads, self.tapped_features(x), self.tapped_features(y)):
            diff = (_unit_normalize(fx) - _unit_normalize(fy)) ** 2  # (N, C_k, H_k, W_k)
            distance = distance + head(diff).mean(dim=(1, 2, 3))  # (N,)
        return distance


def _unit_normalize(f: torch.Tensor) -> torch.Tensor:
    """Divide a (N, C, H, W) map by its channel L2 norm plus 1e-10 (lpips' normalize_tensor)."""
    return f / (f.pow(2).sum(dim=1, keepdim=True).sqrt() + NORM_EPS)


def video_lpips(
    model: LPIPS, x: torch.Tensor, y: torch.Tensor, frames_per_batch: int | None = None
) -> torch.Tensor:
    """Per-video LPIPS: the distance of every frame pair, averaged over frames.

    Args:
        model: an :class:`LPIPS` module.
        x, y: (N, 3, T, H, W) videos in [-1, 1].
        frames_per_batch: frames sent through the backbone at once (None: all N*T).

    Returns:
        (N,) mean LPIPS over the T frames of each video (differentiable w.r.t. x and y).
    """
    if x.shape != y.shape or x.ndim != 5:
        raise ValueError(f"expected two (N, 3, T, H, W) tensors, got {x.shape} and {y.shape}")
    n = x.shape[0]
    frames_x = rearrange(x, "n c t h w -> (n t) c h w")
    frames_y = rearrange(y, "n c t h w -> (n t) c h w")
    step = frames_per_batch or frames_x.shape[0]
    starts = range(0, frames_x.shape[0], step)
    scores = torch.cat([model(frames_x[i : i + step], frames_y[i : i + step]) for i in starts])
    return rearrange(scores, "(n t) -> n t", n=n).mean(dim=1)  # (N * T,) -> (N,)


def compute_lpips(
    model: LPIPS, x: torch.Tensor, y: torch.Tensor, frames_per_batch: int | None = None
) -> float:
    """LPIPS over a batch of videos: the mean over all frames of all videos (no gradient).

    Args:
        model: an :class:`LPIPS` module (AlexNet for the video-VAE tables).
        x, y: (N, 3, T, H, W) videos in [-1, 1].
        frames_per_batch: see :func:`video_lpips`.

    Returns:
        Mean per-frame LPIPS.
    """
    with torch.no_grad():
        return video_lpips(model, x, y, frames_per_batch).mean().item()
