"""The adversarial term of Eq. 1 (paper section 3.2, "Loss functions": a GAN loss [17]).

As in the video VAEs the paper follows (WF-VAE, Open-Sora-Plan, VidTok; see
shared/notes/anchors.md): a 3D patch discriminator (taming-transformers' PatchGAN inflated
to 3D), the hinge loss (non-saturating as an option), the adaptive weight of VQGAN
(Esser et al. 2021, Eq. 7)

    lambda_adapt = ||grad_{W_L} L_rec|| / (||grad_{W_L} L_GAN|| + 1e-4),  clamped to [0, 1e4],

with W_L the decoder's last layer, and LeCam regularisation (Tseng et al. 2021, Eq. 3, in
the ReLU form of its official code and VidTok)

    R_LC = E[relu(D(x) - a_F)^2] + E[relu(a_R - D(G(z)))^2],

a_R, a_F being exponential moving averages of the discriminator's mean outputs on real and
fake inputs. The discriminator is a plain module and every loss a pure function; the
alternation of generator and discriminator updates lives in the training step.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

GanLoss = Literal["hinge", "non_saturating"]


class PatchDiscriminator3D(nn.Module):
    """3D PatchGAN: one real/fake logit per spatiotemporal patch.

    Layers: a 3x4x4 conv with stride (s_t, 2, 2), then ``num_layers - 1`` more of them with
    GroupNorm, then a stride-1 conv block and a stride-1 conv to one channel; LeakyReLU(0.2)
    between. Temporal kernels are 3 with padding 1, so single images (T = 1, the ``image``
    stage) pass through unchanged in time; the first two layers halve T (s_t = 2).

    Args:
        in_channels: pixel channels (3).
        channels: width of the first layer (doubled per layer, at most 8x).
        num_layers: stride-2 layers; inputs need H, W >= 2 ** (num_layers + 2).

    Shapes: x (B, 3, T, H, W) in [-1, 1] -> logits (B, 1, T', H / 2^L - 2, W / 2^L - 2),
    T' = ceil(T / 4) for L >= 2.
    """

    def __init__(self, in_channels: int = 3, channels: int = 64, num_layers: int = 3) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        widths = [channels * min(2**i, 8) for i in range(num_layers + 1)]
        layers: list[nn.Module] = [
            _conv(in_channels, widths[0], stride_t=2, stride=2, bias=True),
            nn.LeakyReLU(0.2),
        ]
        for i in range(1, num_layers + 1):
            stride = 2 if i < num_layers else 1
            layers += [
                _conv(widths[i - 1], widths[i], stride_t=2 if i == 1 else 1, stride=stride),
                nn.GroupNorm(math.gcd(32, widths[i]), widths[i]),
                nn.LeakyReLU(0.2),
            ]
        layers.append(_conv(widths[-1], 1, stride_t=1, stride=1, bias=True))
        self.net = nn.Sequential(*layers)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """taming-transformers' init: conv weights N(0, 0.02), norm gains N(1, 0.02)."""
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.GroupNorm):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, 3, T, H, W) -> patch logits (B, 1, T', H', W')."""
        return self.net(x)


def _conv(cin: int, cout: int, stride_t: int, stride: int, bias: bool = False) -> nn.Conv3d:
    return nn.Conv3d(cin, cout, (3, 4, 4), stride=(stride_t, stride, stride), padding=1, bias=bias)


def discriminator_loss(logits_real: Tensor, logits_fake: Tensor, kind: GanLoss = "hinge") -> Tensor:
    """Discriminator loss on patch logits of real and fake clips (any equal-rank shapes).

    hinge: 0.5 (E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]) (taming-transformers);
    non_saturating: 0.5 (E[softplus(-D(x))] + E[softplus(D(G(z)))]).
    """
    if kind == "hinge":
        return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())
    if kind == "non_saturating":
        return 0.5 * (F.softplus(-logits_real).mean() + F.softplus(logits_fake).mean())
    raise ValueError(f"unknown GAN loss {kind!r}; valid: hinge, non_saturating")


def generator_loss(logits_fake: Tensor, kind: GanLoss = "hinge") -> Tensor:
    """L_GAN of Eq. 1 for the generator (the VAE): -E[D(G(z))] (hinge) or
    E[softplus(-D(G(z)))] (non-saturating)."""
    if kind == "hinge":
        return -logits_fake.mean()
    if kind == "non_saturating":
        return F.softplus(-logits_fake).mean()
    raise ValueError(f"unknown GAN loss {kind!r}; valid: hinge, non_saturating")


def adaptive_weight(
    rec_loss: Tensor,
    gan_loss: Tensor,
    last_layer: Tensor,
    max_weight: float = 1e4,
    eps: float = 1e-4,
) -> Tensor:
    """VQGAN's adaptive GAN weight ||grad rec|| / (||grad gan|| + eps) at ``last_layer``.

    Args:
        rec_loss, gan_loss: scalar losses whose graphs contain ``last_layer`` (kept).
        last_layer: the weight of the decoder's last layer.
    Returns:
        a detached scalar in [0, max_weight].
    """
    g_rec = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_gan = torch.autograd.grad(gan_loss, last_layer, retain_graph=True)[0]
    weight = g_rec.float().norm() / (g_gan.float().norm() + eps)
    return weight.clamp(0.0, max_weight).detach()


def lecam_regularization(
    logits_real: Tensor, logits_fake: Tensor, anchor_real: float, anchor_fake: float
) -> Tensor:
    """LeCam regulariser E[relu(D(x) - a_F)^2] + E[relu(a_R - D(G(z)))^2] (module docstring)."""
    return (
        F.relu(logits_real - anchor_fake).pow(2).mean()
        + F.relu(anchor_real - logits_fake).pow(2).mean()
    )


def update_anchor(anchor: float, value: float, decay: float) -> float:
    """One EMA step of a LeCam anchor: decay * anchor + (1 - decay) * value."""
    return decay * anchor + (1.0 - decay) * value
