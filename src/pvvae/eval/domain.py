"""Domain FVD and class accuracy on proving-ground clips (metrics that see motion).

The Kinetics I3D behind FVD scores appearance on 64x64 synthetic clips (it ranks shuffled
frames better than a mild blur, docs/evaluation.md). The **domain network** is a small 3D
conv net trained here, on the proving ground itself, for two targets the data provides:

* **class**: the dataset's label, the kind of the largest shape (disc, square, triangle,
  ring; :func:`pvvae.data.synthetic.synthetic_clip`), the label of class-conditional
  generation, so the same head gives :func:`class_accuracy`;
* **motion**: the ground-truth forward flow (pixels per frame, shapes and the panned
  background) averaged over each 16x16 cell, for every pair of consecutive frames, so the
  features must see where things move from frame to frame.

Network (:class:`DomainNet`; ``widths`` (16, 32, 64) by default, 0.1M parameters), input
videos (B, 3, T, 64, 64) in [-1, 1] (other sides are resized to 64, any T >= 3):

* input: frames average-pooled to 32x32, with their forward differences ``x_{t+1} - x_t``
  (zero on the last frame) as three more channels: (B, 6, T, 32, 32);
* trunk: three blocks ``Conv3d(k=3, stride (1, 2, 2), pad 1) -> ReLU``, (B, 6, T, 32, 32)
  -> (B, 16, T, 16, 16) -> (B, 32, T, 8, 8) -> ``h`` (B, 64, T, 4, 4); time is never
  strided, so every frame keeps its own features (receptive field 7 frames);
* motion: ``Conv3d(64, 64, k=(2, 1, 1)) -> ReLU`` on consecutive frames, ``m``
  (B, 64, T - 1, 4, 4); the flow head ``Conv3d(64, 2, 1)`` gives (B, 2, T - 1, 4, 4);
* class head: ``Linear(64, 4)`` on ``h``'s maximum over (H, W) averaged over T (a mean
  over space learns about 3x slower: the background dilutes the shapes).

**Features** (:func:`domain_features`), (B, 192): ``[mean_t max_hw(h), mean(m),
mean(|m_{t+1} - m_t|)]`` (means over time and space): appearance (what the class head
reads), motion (what the flow head reads) and how the motion changes from frame to frame.
Each dimension is standardised by the mean and std of the build's real held-out clips
(buffers of the network), so that appearance and motion count alike (raw, the appearance
units are about 10x larger and make the distance). The domain FVD (:func:`domain_fvd`) is
:func:`pvvae.eval.metrics.fvd.fvd_from_features` of them.

Build (:func:`build_domain_network`): deterministic on one thread: initial weights from
``torch.manual_seed(seed)`` (the global RNG is restored afterwards), training clips
``0 .. steps * batch_size - 1`` of proving-ground stream ``TRAIN_SEED`` (60000; the study,
demo and benches use 0, 10000, 20000, 30000, 50000 and 50001), each clip seen once, AdamW
with a cosine schedule, loss ``cross-entropy + MOTION_WEIGHT * MSE(flow / FLOW_SCALE)``.
Held-out: ``heldout`` clips of stream ``HELDOUT_SEED`` (60001): class accuracy (chance
0.25) and the flow error in px. Weights (``domain.pt``) and ``domain.json`` (settings,
accuracy, flow error, seconds) go to ``cache_dir/domain-<key>``, ``key`` hashing the
settings; a later call with the same settings loads them instead of training.

Measured (default settings, one thread of a loaded 2-core machine): 150 s of training plus
about 5 s of held-out evaluation; held-out class accuracy 0.684 (chance 0.25); flow RMS
0.745 px per cell against 0.77 px for zero flow (the motion target is barely learnt: the
motion features see frame-to-frame change more than direction). Calibration against the
corruptions of :mod:`pvvae.eval.corrupt`: docs/evaluation.md, "Metrics that see motion".
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pvvae.eval.report import write_json

TRAIN_SEED = 60_000
HELDOUT_SEED = 60_001
SIZE = 64  # the side the network is trained on; other sides are resized
FRAMES = 17
CELL = 16  # flow cell side in px: the trunk's stride
FLOW_SCALE = 2.0  # px / frame: flow targets are divided by it
MOTION_WEIGHT = 1.0
STD_FLOOR = 1e-3  # of a feature's std in the standardisation (a dead unit stays 0)
VERSION = 2  # bump when the network, the data or the training changes
DEFAULT_CACHE = Path(os.environ.get("PVVAE_CACHE", Path.home() / ".cache" / "pvvae")) / "domain"


@dataclass(frozen=True)
class DomainSettings:
    """What a domain network build depends on (hashed into its cache folder's name)."""

    seed: int = 0
    steps: int = 900
    batch_size: int = 16
    lr: float = 2e-3
    widths: tuple[int, ...] = (16, 32, 64)
    heldout: int = 256
    frames: int = FRAMES
    version: int = VERSION

    def key(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:12]


class DomainNet(nn.Module):
    """The domain network of the module docstring."""

    def __init__(self, widths: Iterable[int] = (16, 32, 64), num_classes: int = 4) -> None:
        super().__init__()
        blocks, c_in = [], 6
        for c in widths:
            blocks += [nn.Conv3d(c_in, c, 3, stride=(1, 2, 2), padding=1), nn.ReLU()]
            c_in = c
        self.trunk = nn.Sequential(*blocks)
        self.motion = nn.Sequential(nn.Conv3d(c_in, c_in, (2, 1, 1)), nn.ReLU())
        self.flow_head = nn.Conv3d(c_in, 2, 1)
        self.class_head = nn.Linear(c_in, num_classes)
        # per-dimension statistics of the features of real held-out clips (set by the build)
        self.register_buffer("feature_mean", torch.zeros(3 * c_in))
        self.register_buffer("feature_std", torch.ones(3 * c_in))

    def forward(self, videos: Tensor) -> dict[str, Tensor]:
        """videos (B, 3, T, H, W) in [-1, 1] -> ``logits`` (B, classes), ``flow``
        (B, 2, T - 1, H', W') (in units of ``FLOW_SCALE`` px at the 64-px scale) and
        ``features`` (B, 3 C), raw (:func:`domain_features` standardises them)."""
        x = F.avg_pool3d(_to_size(videos), (1, 2, 2))  # (B, 3, T, 32, 32)
        moved = torch.cat([x[:, :, 1:] - x[:, :, :-1], x.new_zeros(x[:, :, :1].shape)], dim=2)
        h = self.trunk(torch.cat([x, moved], dim=1))
        m = self.motion(h)
        appearance = h.amax(dim=(3, 4)).mean(dim=2)  # strongest response, mean over time
        change = (m[:, :, 1:] - m[:, :, :-1]).abs().mean(dim=(2, 3, 4))
        return {"logits": self.class_head(appearance), "flow": self.flow_head(m),
                "features": torch.cat([appearance, m.mean(dim=(2, 3, 4)), change], dim=1)}


def _to_size(videos: Tensor) -> Tensor:
    """Frames resized to SIZE x SIZE (bilinear, per frame) where they are not."""
    b, c, t, h, w = videos.shape
    if (h, w) == (SIZE, SIZE):
        return videos
    frames = videos.transpose(1, 2).reshape(b * t, c, h, w)
    frames = F.interpolate(frames, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    return frames.reshape(b, t, c, SIZE, SIZE).transpose(1, 2)


def domain_batch(seed: int, start: int, num: int,
                 frames: int = FRAMES) -> tuple[Tensor, Tensor, Tensor]:
    """Clips ``start .. start + num - 1`` of proving-ground stream ``seed`` with their
    targets: videos (num, 3, frames, 64, 64), labels (num,), flow (num, 2, frames - 1, 4, 4)
    in px."""
    from pvvae.data.synthetic import preset_config, synthetic_clip

    cfg = preset_config("proving_ground", num_frames=frames, height=SIZE, width=SIZE,
                        num_tracks=0)
    items = [synthetic_clip(seed, i, cfg) for i in range(start, start + num)]
    flow = torch.stack([it["flow"] for it in items])  # (num, 2, 16, 64, 64)
    cells = F.avg_pool3d(flow, (1, CELL, CELL))
    return (torch.stack([it["video"] for it in items]),
            torch.tensor([it["label"] for it in items]), cells)


def _losses(net: DomainNet, videos: Tensor, labels: Tensor, flow: Tensor) -> tuple[Tensor, Tensor]:
    out = net(videos)
    return (F.cross_entropy(out["logits"], labels),
            F.mse_loss(out["flow"], flow / FLOW_SCALE))


def train_domain_network(settings: DomainSettings, log_every: int = 0) -> DomainNet:
    """Train a :class:`DomainNet` as the module docstring says (no caching)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        net = DomainNet(settings.widths)
    opt = torch.optim.AdamW(net.parameters(), lr=settings.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / max(settings.steps, 1))))
    net.train()
    for step in range(settings.steps):
        batch = domain_batch(TRAIN_SEED, step * settings.batch_size, settings.batch_size,
                             settings.frames)
        ce, mse = _losses(net, *batch)
        opt.zero_grad()
        (ce + MOTION_WEIGHT * mse).backward()
        opt.step()
        sched.step()
        if log_every and (step + 1) % log_every == 0:
            print(f"domain step {step + 1}: ce {ce.item():.3f} flow mse {mse.item():.3f}",
                  flush=True)
    return net.eval()


@torch.no_grad()
def evaluate_domain_network(net: DomainNet, num: int, batch_size: int = 32,
                            frames: int = FRAMES) -> dict:
    """Held-out class accuracy and flow error (px RMS per cell) on ``num`` clips of stream
    ``HELDOUT_SEED``."""
    correct, squared, features = 0, 0.0, []
    for start in range(0, num, batch_size):
        videos, labels, flow = domain_batch(HELDOUT_SEED, start, min(batch_size, num - start),
                                            frames)
        out = net(videos)
        correct += int((out["logits"].argmax(1) == labels).sum())
        squared += float(((out["flow"] * FLOW_SCALE - flow) ** 2).mean(dim=(1, 2, 3, 4)).sum())
        features.append(out["features"])
    features = torch.cat(features)
    return {"heldout_accuracy": correct / num, "heldout_flow_rms": math.sqrt(squared / num),
            "heldout_clips": num, "feature_mean": features.mean(0),
            "feature_std": features.std(0).clamp(min=STD_FLOOR)}


def build_domain_network(cache_dir: str | Path = DEFAULT_CACHE, *, log_every: int = 0,
                         **settings) -> DomainNet:
    """The domain network of ``settings`` (fields of :class:`DomainSettings`): loaded from
    ``cache_dir/domain-<key>`` when built before with the same settings, else trained,
    evaluated on the held-out stream and saved there (``domain.pt``, ``domain.json``).
    Returns the network in eval mode; its ``info`` attribute holds ``domain.json``."""
    widths = tuple(settings.get("widths", DomainSettings.widths))
    s = DomainSettings(**{**settings, "widths": widths})
    folder = Path(cache_dir) / f"domain-{s.key()}"
    meta_path = folder / "domain.json"
    if meta_path.is_file():
        info = json.loads(meta_path.read_text())
        if info.get("settings") == json.loads(json.dumps(asdict(s))):
            net = DomainNet(s.widths)
            net.load_state_dict(torch.load(folder / "domain.pt", weights_only=True))
            net.info = info
            return net.eval()
    start = time.perf_counter()
    net = train_domain_network(s, log_every)
    train_seconds = time.perf_counter() - start
    held = evaluate_domain_network(net, s.heldout, frames=s.frames)
    net.feature_mean.copy_(held.pop("feature_mean"))
    net.feature_std.copy_(held.pop("feature_std"))
    info = {"settings": asdict(s), "train_seed": TRAIN_SEED, "heldout_seed": HELDOUT_SEED,
            **held, "train_seconds": train_seconds, "threads": torch.get_num_threads()}
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "domain.pt.tmp"
    torch.save(net.state_dict(), tmp)
    tmp.replace(folder / "domain.pt")
    write_json(meta_path, info)  # last, atomically: its presence marks the build done
    net.info = info
    return net


def _batches(videos: Tensor | Iterable[Tensor], batch_size: int) -> Iterator[Tensor]:
    if isinstance(videos, Tensor):
        yield from videos.split(batch_size)
    else:
        yield from videos


@torch.no_grad()
def domain_outputs(videos: Tensor | Iterable[Tensor], net: DomainNet,
                   batch_size: int = 16) -> dict[str, Tensor]:
    """``features`` (N, 3 C) (standardised, float64) and class ``logits`` (N, classes) of
    videos (N, 3, T, H, W) in [-1, 1] (or an iterable of such batches)."""
    param = next(net.parameters())
    feats, logits = [], []
    for batch in _batches(videos, batch_size):
        out = net(batch.to(param.device, param.dtype))
        feats.append(((out["features"] - net.feature_mean) / net.feature_std).double().cpu())
        logits.append(out["logits"].cpu())
    if not feats:
        raise ValueError("no videos given")
    return {"features": torch.cat(feats), "logits": torch.cat(logits)}


def domain_features(videos: Tensor | Iterable[Tensor], net: DomainNet,
                    batch_size: int = 16) -> Tensor:
    """The pooled features (N, 3 C) float64 of the module docstring, standardised."""
    return domain_outputs(videos, net, batch_size)["features"]


def domain_fvd(real: Tensor | Iterable[Tensor], fake: Tensor | Iterable[Tensor],
               net: DomainNet, batch_size: int = 16) -> float:
    """Frechet distance of the domain features of two video sets (the FVD's variant:
    :func:`pvvae.eval.metrics.fvd.fvd_from_features`)."""
    from pvvae.eval.metrics.fvd import fvd_from_features

    return fvd_from_features(domain_features(real, net, batch_size),
                             domain_features(fake, net, batch_size))


def accuracy_from_logits(logits: Tensor, labels: Tensor | Iterable[int]) -> float:
    """Fraction of rows whose argmax is the label."""
    labels = torch.as_tensor(list(labels) if not isinstance(labels, Tensor) else labels)
    return float((logits.argmax(1) == labels.to(logits.device)).float().mean())


def class_accuracy(videos: Tensor | Iterable[Tensor], labels: Tensor | Iterable[int],
                   net: DomainNet, batch_size: int = 16) -> float:
    """Fraction of videos the domain network's class head assigns to ``labels`` (the
    classes a class-conditional generator was asked for; chance 0.25)."""
    return accuracy_from_logits(domain_outputs(videos, net, batch_size)["logits"], labels)
