"""bench/tiling_seams.py: a trained diffusers Wan folder is loaded and compared."""

import torch
from diffusers import AutoencoderKLWan


def test_wan_weights_folder_is_loaded_and_measured(tmp_path, bench_script):
    seams = bench_script("tiling_seams")
    torch.manual_seed(1)
    wan = AutoencoderKLWan(base_dim=8, z_dim=4, num_res_blocks=1).eval()
    wan.save_pretrained(tmp_path / "wan")
    loaded = seams.load_wan(str(tmp_path / "wan"), base_dim=32)
    assert loaded.config.base_dim == 8
    saved = wan.state_dict()
    assert all(torch.equal(saved[k], v) for k, v in loaded.state_dict().items())
    rows = seams.main(["--size", "64", "--frames", "1", "--tile", "32", "--strides", "16",
                       "--wan-weights", str(tmp_path / "wan")])
    (name,) = [n for n in rows if n.startswith("Wan ")]
    assert str(tmp_path / "wan") in name
    assert all(0 < e < 10 for errs in rows.values() for e in errs.values())  # tiling ran
