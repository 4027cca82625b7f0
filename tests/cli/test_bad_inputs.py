"""Every bad input of the video verbs is exit code 2 and one error line, never a traceback
nor a silent wrong answer (the cases a new user hit first)."""

from __future__ import annotations

import json

import pytest
import torch

from pvvae.cli.main import main
from pvvae.data.samples import sample_video_path
from pvvae.data.video_io import read_video
from pvvae.inference.latent_file import latent_metadata
from pvvae.inference.loading import load_model, model_fingerprint
from tests.conftest import make_micro_vae, one_error_line

VIDEO = str(sample_video_path("bikes"))
SMALL = ["--size", "32", "--no-progress"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two micro models of width 8 (different weights), one of width 4, and latents of the
    first."""
    root = tmp_path_factory.mktemp("models")
    make_micro_vae().save_pretrained(root / "a")
    make_micro_vae(seed=1).save_pretrained(root / "b")
    make_micro_vae(latent_channels=4).save_pretrained(root / "c4")
    latents = root / "z.safetensors"
    assert main(["encode", str(root / "a"), VIDEO, str(latents), *SMALL, "--max-frames", "5"]) == 0
    return root


def test_decode_refuses_a_video_given_as_latents(models, tmp_path, capsys):
    assert main(["decode", str(models / "a"), VIDEO, str(tmp_path / "o.mp4")]) == 2
    one_error_line(capsys, "bikes.mp4 is not a latent file", "pvvae encode")


def test_decode_refuses_a_model_of_another_latent_width(models, tmp_path, capsys):
    code = main(["decode", str(models / "c4"), str(models / "z.safetensors"),
                 str(tmp_path / "o.mp4")])
    assert code == 2
    one_error_line(capsys, "(2, 8, 2, 2)", "4 latent channels")


def test_decode_refuses_latents_of_another_model_unless_forced(models, tmp_path, capsys):
    latents, out = str(models / "z.safetensors"), str(tmp_path / "o.mp4")
    assert main(["decode", str(models / "b"), latents, out, "--no-progress"]) == 2
    one_error_line(capsys, "was written by model", "--force")
    assert main(["decode", str(models / "b"), latents, out, "--no-progress", "--force"]) == 0
    assert read_video(out).shape[0] == 5


def test_latent_file_records_the_fingerprint_of_its_model(models):
    meta = latent_metadata(models / "z.safetensors")
    assert meta["model_fingerprint"] == model_fingerprint(load_model(models / "a"))
    assert meta["model_fingerprint"] != model_fingerprint(load_model(models / "b"))


def test_edited_latent_channels_in_config_json_is_one_line(models, tmp_path, capsys):
    folder = tmp_path / "edited"
    folder.mkdir()
    config = json.loads((models / "a" / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "latent_channels": 4}))
    (folder / "diffusion_pytorch_model.safetensors").write_bytes(
        (models / "a" / "diffusion_pytorch_model.safetensors").read_bytes()
    )
    assert main(["reconstruct", str(folder), VIDEO, str(tmp_path / "o.mp4"), *SMALL]) == 2
    one_error_line(capsys, "does not fit", "config.json edited")


@pytest.mark.parametrize("verb", ["encode", "reconstruct", "predict"])
def test_max_frames_zero_is_refused(models, tmp_path, capsys, verb):
    extra = ["--observe", "1"] * (verb == "predict")
    with pytest.raises(SystemExit) as exit_info:
        main([verb, str(models / "a"), VIDEO, str(tmp_path / "o"), "--max-frames", "0", *extra])
    assert exit_info.value.code == 2
    one_error_line(capsys, "--max-frames", "must be >= 1")


@pytest.mark.parametrize(("observe", "hint"), [("10", "use --observe 9 or 13"),
                                               ("2", "use --observe 1 or 5")])
def test_observe_must_be_what_the_encoder_sees(models, tmp_path, capsys, observe, hint):
    code = main(["predict", str(models / "a"), VIDEO, str(tmp_path / "o.mp4"), *SMALL,
                 "--max-frames", "13", "--observe", observe])
    assert code == 2
    one_error_line(capsys, f"--observe {observe}", hint)


def test_observe_past_the_clip_is_one_line(models, tmp_path, capsys):
    code = main(["predict", str(models / "a"), VIDEO, str(tmp_path / "o.mp4"), *SMALL,
                 "--max-frames", "5", "--observe", "9"])
    assert code == 2
    one_error_line(capsys, "more than the 5 frames read")


def test_missing_latent_file_is_one_line(models, tmp_path, capsys):
    code = main(["decode", str(models / "a"), str(tmp_path / "none.safetensors"),
                 str(tmp_path / "o.mp4")])
    assert code == 2
    one_error_line(capsys, "no such latent file")


def test_missing_video_is_one_line(models, tmp_path, capsys):
    code = main(["reconstruct", str(models / "a"), str(tmp_path / "none.mp4"),
                 str(tmp_path / "o.mp4")])
    assert code == 2
    one_error_line(capsys, "cannot read video", "none.mp4: no such file")


def test_a_folder_given_as_the_video_is_one_line(models, tmp_path, capsys):
    assert main(["encode", str(models / "a"), str(tmp_path), str(tmp_path / "z.safetensors")]) == 2
    one_error_line(capsys, "not a regular file")


def test_empty_video_is_one_line(models, tmp_path, capsys):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert main(["reconstruct", str(models / "a"), str(empty), str(tmp_path / "o.mp4")]) == 2
    one_error_line(capsys, "empty.mp4")


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["encode"], "pvvae encode: error: the following arguments are required: checkpoint, "
                     "input, output (see pvvae encode -h)"),
        (["reconstruct", "m", "v.mp4", "o.mp4", "--size", "x"],
         "pvvae reconstruct: error: argument --size: --size 'x' is not a whole number "
         "(see pvvae reconstruct -h)"),
        (["predict", "m", "v.mp4", "o.mp4", "--dtype", "fp8"],
         "pvvae predict: error: argument --dtype: invalid choice: 'fp8'"),
        (["decode", "m", "z.safetensors", "o.mp4", "--bogus", "1"],
         "pvvae decode: error: unrecognized arguments: --bogus 1 (see pvvae decode -h)"),
        (["reconstruct", "m", "v.mp4", "o.mp4", "--chunk", "0"],
         "pvvae reconstruct: error: argument --chunk: 0: must be >= 1"),
        (["predict", "m", "v.mp4", "o.mp4", "--observe", "0"],
         "pvvae predict: error: argument --observe: 0: must be >= 1"),
        (["predict", "m", "v.mp4", "o.mp4"],
         "pvvae predict: error: the following arguments are required: --observe"),
        (["eval", "recon"], "pvvae eval recon: error: the following arguments are required"),
        (["gen", "smaple"], "pvvae gen: error: argument VERB: invalid choice: 'smaple'"),
        (["recon"], "pvvae: error: argument COMMAND: invalid choice: 'recon'"),
        ([], "pvvae: error: the following arguments are required: COMMAND (see pvvae -h)"),
    ],
)
def test_a_refused_command_line_is_one_line(capsys, argv, line):
    """argparse's refusals: no usage block, one line naming the problem and the help to read."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(line), err
    assert err.rstrip().endswith(" -h)"), err


def test_output_that_is_the_input_is_refused(models, tmp_path, capsys):
    """Streaming writes the output while reading the input: the same file would be lost."""
    video = tmp_path / "clip.mp4"
    video.write_bytes(sample_video_path("bikes").read_bytes())
    before = video.read_bytes()
    for same in (str(video), f"{tmp_path}/./clip.mp4"):
        assert main(["reconstruct", str(models / "a"), str(video), same, *SMALL]) == 2
        one_error_line(capsys, "is the input", "name another output file")
    assert video.read_bytes() == before


@pytest.mark.parametrize(("verb", "name"), [("reconstruct", "o.webm"), ("predict", "o.gif"),
                                            ("reconstruct", "o.txt"), ("reconstruct", "out")])
def test_a_video_output_that_cannot_hold_h264_is_one_line(models, tmp_path, capsys, verb, name):
    extra = ["--observe", "1"] * (verb == "predict")
    code = main([verb, str(models / "a"), VIDEO, str(tmp_path / name), *SMALL, *extra])
    assert code == 2
    one_error_line(capsys, f"output {tmp_path / name}", "name it e.g. o")
    assert not (tmp_path / name).exists()


def test_decode_to_a_non_video_name_is_one_line(models, tmp_path, capsys):
    code = main(["decode", str(models / "a"), str(models / "z.safetensors"),
                 str(tmp_path / "o.safetensors")])
    assert code == 2
    one_error_line(capsys, "videos are written as H.264", "o.mp4")


def test_encode_to_a_video_name_is_one_line(models, tmp_path, capsys):
    """`encode` writes latents: an .mp4 name means the user wanted `reconstruct`."""
    assert main(["encode", str(models / "a"), VIDEO, str(tmp_path / "z.mp4"), *SMALL]) == 2
    one_error_line(capsys, "encode writes latents", ".safetensors", "pvvae reconstruct")


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal needs a machine without CUDA")
@pytest.mark.parametrize("verb", ["reconstruct", "encode"])
def test_cuda_without_cuda_is_one_line(models, tmp_path, capsys, verb):
    out = tmp_path / ("o.mp4" if verb == "reconstruct" else "z.safetensors")
    assert main([verb, str(models / "a"), VIDEO, str(out), *SMALL, "--device", "cuda"]) == 2
    one_error_line(capsys, "CUDA is not available", "use cpu or auto")
