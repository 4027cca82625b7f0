import pytest
import torch
from safetensors.torch import load_file, save_file

from pvvae.inference.latent_file import (
    LatentWriter,
    iter_latent_chunks,
    latent_metadata,
    load_latents,
)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_chunked_write_reads_back_exactly(tmp_path, dtype):
    z = torch.randn(1, 8, 7, 2, 3).to(dtype)
    path = tmp_path / "z.safetensors"
    with LatentWriter(path, {"fps": 8}) as writer:
        for chunk in z.split([2, 3, 2], dim=2):
            writer.write(chunk)
    assert torch.equal(load_latents(path), z)
    assert load_file(path)["latent_frames"].shape == (7, 8, 2, 3)  # plain safetensors
    assert latent_metadata(path) == {"fps": "8"}
    assert [c.shape[2] for c in iter_latent_chunks(path, 3, 2)] == [3, 2, 2]
    assert not (tmp_path / "z.safetensors.part").exists()


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="no latents"):
        LatentWriter(tmp_path / "empty.safetensors").close()
    writer = LatentWriter(tmp_path / "bad.safetensors")
    writer.write(torch.zeros(1, 8, 1, 2, 2))
    with pytest.raises(ValueError, match="does not match"):
        writer.write(torch.zeros(1, 4, 1, 2, 2))
    save_file({"weights": torch.zeros(2)}, tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="pvvae encode"):
        latent_metadata(tmp_path / "other.safetensors")
