"""The model compiles and exports whole: no graph break, no data-dependent branch, no host
sync in encode / decode / forward (issue 14). Dynamo runs with ``fullgraph=True`` so any
break is an error. The ``eager`` backend runs dynamo's capture only; decode also goes through
``aot_eager`` (AOTAutograd tracing, as inductor would) without inductor's C++ compile, which
takes minutes on a CPU (measured: 79 s for the micro decode on 1 thread)."""

import torch
from torch import nn

from tests.conftest import make_micro_vae


class _Encode(nn.Module):
    """encode() as a tensor -> tensor module for torch.export (posterior parameters)."""

    def __init__(self, vae) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, x):
        return self.vae.encode(x).latent_dist.parameters


class _Decode(_Encode):
    def forward(self, z):
        return self.vae.decode(z).sample


def _inputs():
    x = torch.randn(1, 3, 9, 32, 32)  # unclamped: the range check is opt-in
    return x, torch.randn(1, 8, 3, 2, 2)


def test_compile_fullgraph_encode_decode_forward():
    vae, (x, z) = make_micro_vae(), _inputs()
    with torch.no_grad():
        refs = vae.encode(x).latent_dist.parameters, vae.decode(z).sample, vae(x).sample
        vae.enable_range_check()  # skipped while compiling instead of breaking the graph
        enc = torch.compile(vae.encode, fullgraph=True, backend="eager")
        dec = torch.compile(vae.decode, fullgraph=True, backend="aot_eager")
        fwd = torch.compile(vae, fullgraph=True, backend="eager")
        outs = enc(x).latent_dist.parameters, dec(z).sample, fwd(x).sample
    for out, ref in zip(outs, refs):
        torch.testing.assert_close(out, ref)


def test_compile_fullgraph_with_tiling_and_slicing():
    vae = make_micro_vae()
    vae.enable_tiling(tile_size=32, tile_stride=16)
    vae.enable_slicing()
    z = torch.randn(2, 8, 1, 2, 3)  # 2 tiles of 2x2 latents per sample
    with torch.no_grad():
        dec = torch.compile(vae.decode, fullgraph=True, backend="eager")
        torch.testing.assert_close(dec(z).sample, vae.decode(z).sample)


def test_export_encode_and_decode():
    vae, (x, z) = make_micro_vae(), _inputs()
    for module, arg in ((_Encode(vae), x), (_Decode(vae), z)):
        program = torch.export.export(module, (arg,))
        with torch.no_grad():
            torch.testing.assert_close(program.module()(arg), module(arg))
