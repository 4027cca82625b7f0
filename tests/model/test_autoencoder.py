import pytest
import torch

from pvvae import PRESETS, PVVAE
from tests.conftest import make_micro_vae, random_video


@pytest.mark.parametrize("t", [1, 5, 17, 33])
def test_shapes(micro_vae, t):
    x = random_video(2, t)
    with torch.no_grad():
        z = micro_vae.encode(x).latent_dist.sample()
        y = micro_vae.decode(z).sample
    assert z.shape == (2, 8, 1 + (t - 1) // 4, 2, 2)
    assert y.shape == x.shape


def test_tiny_preset_latent_layout():
    vae = PVVAE.from_preset("tiny").eval()
    with torch.no_grad():
        z = vae.encode(random_video(1, 17, 64, 64)).latent_dist.mode()
    assert z.shape == (1, 64, 5, 4, 4)
    assert vae.spatial_compression == 16 and vae.temporal_compression == 4


def test_any_frame_count_is_padded_and_trimmed(micro_vae):
    x = random_video(1, 7)
    with torch.no_grad():
        assert micro_vae.encode(x).latent_dist.mode().shape[2] == 3  # 7 frames -> 9 -> 3 latents
        assert micro_vae(x).sample.shape == x.shape
    padded = micro_vae.pad_frames(x)
    assert padded.shape[2] == 9 and torch.equal(padded[:, :, 7], x[:, :, 6])


def test_encoder_is_causal_per_group(micro_vae):
    x = random_video(1, 17)
    y = x.clone()
    y[:, :, 10] = -y[:, :, 10]  # frame 10 belongs to group 3 (frames 9..12)
    with torch.no_grad():
        diff = micro_vae.encode(x).latent_dist.mode() - micro_vae.encode(y).latent_dist.mode()
    per_group = diff.abs().amax(dim=(0, 1, 3, 4))
    assert torch.all(per_group[:3] == 0) and torch.all(per_group[3:] > 0)


def test_decoder_is_causal_per_frame(micro_vae):
    with torch.no_grad():
        z = micro_vae.encode(random_video(1, 17)).latent_dist.mode()
        z2 = z.clone()
        z2[:, :, 2] += 1.0  # latent 2 decodes to frames 5..8
        diff = (micro_vae.decode(z).sample - micro_vae.decode(z2).sample).abs()
    per_frame = diff.amax(dim=(0, 1, 3, 4))
    assert torch.all(per_frame[:5] == 0) and torch.all(per_frame[5:] > 0)


@pytest.mark.parametrize(
    ("chunk", "slice_frames", "shortcut"),
    [(1, 1, False), (2, 1, False), (3, 1, False), (3, None, False), (4, 3, False),
     (1, 1, True), (3, None, True), (2, 1, "none")],
)
def test_chunked_equals_whole_clip(chunk, slice_frames, shortcut):
    """Chunking and slicing are exact, with the resampling shortcuts (default), with the
    patch shortcut, and with no shortcut at all ("none")."""
    if shortcut == "none":
        vae = make_micro_vae(resample_shortcut=False)
    else:
        vae = _shortcut_vae() if shortcut else make_micro_vae()
    x = random_video(2, 33)
    with torch.no_grad():
        vae.set_chunk_size(None, slice_frames=None)
        params_whole = vae.encode(x).latent_dist.parameters
        z = params_whole[:, :8]
        x_whole = vae.decode(z).sample
        vae.set_chunk_size(chunk, slice_frames)
        params_chunked = vae.encode(x).latent_dist.parameters
        x_chunked = vae.decode(z).sample
    assert (params_chunked - params_whole).abs().max() <= 1e-4
    assert (x_chunked - x_whole).abs().max() <= 1e-4


def test_streaming_api_matches_encode(micro_vae):
    x = random_video(1, 17)
    with torch.no_grad():
        ref = micro_vae.encode(x).latent_dist.mode()
        post0, state = micro_vae.encode_chunk(x[:, :, :5])
        post1, state = micro_vae.encode_chunk(x[:, :, 5:17], state)
        z = torch.cat([post0.mode(), post1.mode()], dim=2)
        frames = torch.cat(list(micro_vae.iter_decode(ref)), dim=2)
    assert state.frames == 17
    torch.testing.assert_close(z, ref, atol=1e-5, rtol=0)
    assert frames.shape == x.shape


def test_state_is_consumed_and_copy_branches(micro_vae):
    z = micro_vae.encode(random_video(1, 17)).latent_dist.mode().detach()
    with torch.no_grad():
        _, state = micro_vae.decode_chunk(z[:, :, :2])
        branch = state.copy()
        a, _ = micro_vae.decode_chunk(z[:, :, 2:], state)
        b, _ = micro_vae.decode_chunk(z[:, :, 2:], branch)
    assert not state.tails  # every layer took its tail: old and new tails never coexist
    torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_bad_chunk_or_slice_size(micro_vae):
    with pytest.raises(ValueError, match="slice size"):
        micro_vae.set_chunk_size(2, slice_frames=0)
    with pytest.raises(ValueError, match="chunk size"):
        micro_vae.set_chunk_size(0)


def test_slicing_matches_batched(micro_vae):
    x = random_video(3, 5)
    with torch.no_grad():
        ref = micro_vae(x).sample
        micro_vae.enable_slicing()
        sliced = micro_vae(x).sample
    torch.testing.assert_close(sliced, ref, atol=1e-4, rtol=0)


def test_posterior_api(micro_vae):
    post = micro_vae.encode(random_video(2, 5)).latent_dist
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(post.sample(g1), post.sample(g2))
    assert post.kl().shape == (2,) and torch.all(post.kl() >= 0)
    assert post.mode().shape == (2, 8, 2, 2, 2)
    out = micro_vae(random_video(1, 5), sample_posterior=True, return_dict=False)
    assert isinstance(out, tuple) and out[0].shape == (1, 3, 5, 32, 32)


def test_predict_shapes_and_observed_prefix(micro_vae):
    x = random_video(1, 9)
    out = micro_vae.predict(x, num_future_frames=8)
    assert out.shape == (1, 3, 17, 32, 32)
    with torch.no_grad():  # the observed frames decode as in a plain reconstruction of them
        causal_prefix = micro_vae(x).sample
    torch.testing.assert_close(out[:, :, :9], causal_prefix, atol=1e-5, rtol=0)
    assert micro_vae.predict(random_video(1, 6), 3).shape == (1, 3, 9, 32, 32)


def test_normalize_round_trip(micro_vae):
    micro_vae.set_latent_stats([0.5] * 8, [2.0] * 8)
    z = torch.randn(2, 8, 3, 2, 2)
    torch.testing.assert_close(micro_vae.denormalize(micro_vae.normalize(z)), z)
    torch.testing.assert_close(micro_vae.normalize(z), (z - 0.5) / 2.0)


def test_save_load_round_trip_is_exact(tmp_path, micro_vae):
    micro_vae.set_latent_stats([0.1] * 8, [1.5] * 8)
    micro_vae.save_pretrained(tmp_path)
    loaded = PVVAE.from_pretrained(tmp_path).eval()
    x = random_video(1, 5)
    with torch.no_grad():
        assert torch.equal(loaded(x).sample, micro_vae(x).sample)
    assert loaded.config.latents_std == [1.5] * 8
    for (n1, p1), (n2, p2) in zip(micro_vae.state_dict().items(), loaded.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2)


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.zeros(1, 3, 32, 32), "unsqueeze"),
        (torch.zeros(1, 4, 5, 32, 32), "channels"),
        (torch.zeros(1, 3, 5, 40, 32), "multiples of 16"),
        (torch.full((1, 3, 5, 32, 32), 255.0), r"\[-1, 1\]"),
    ],
)
def test_bad_input_errors(micro_vae, bad, match):
    micro_vae.enable_range_check()
    with pytest.raises(ValueError, match=match):
        micro_vae.encode(bad)


def test_range_check_is_opt_in(micro_vae):
    x = torch.randn(1, 3, 5, 32, 32) * 3  # unclamped, as diffusers' tests feed
    with torch.no_grad():
        assert micro_vae(x).sample.shape == x.shape
    micro_vae.enable_range_check()
    with pytest.raises(ValueError, match="x / 127.5 - 1"):
        micro_vae.encode(x)


def test_bad_config_errors():
    with pytest.raises(KeyError, match="valid presets"):
        PVVAE.from_preset("huge")
    with pytest.raises(ValueError, match="one entry per resolution stage"):
        PVVAE(encoder_channels=(8, 8))
    with pytest.raises(ValueError, match="pad_mode"):
        PVVAE(pad_mode="zeros")


def test_paper_preset_parameter_count_on_meta_device():
    with torch.device("meta"):
        vae = PVVAE.from_preset("paper")
    total = sum(p.numel() for p in vae.parameters())
    assert all(p.is_meta for p in vae.parameters())
    assert 0.9 * 661e6 <= total <= 1.1 * 661e6, total
    assert set(PRESETS) >= {"tiny", "paper", "t4s8c16"}


def test_t4s8c16_preset_layout():
    with torch.device("meta"):
        vae = PVVAE.from_preset("t4s8c16")
    assert vae.spatial_compression == 8 and vae.temporal_compression == 4
    assert vae.config.latent_channels == 16


def _shortcut_vae() -> PVVAE:
    vae = make_micro_vae(patch_shortcut=True)
    with torch.no_grad():  # the decoder's linear path starts at zero: make it visible
        vae.decoder.shortcut.proj.weight.normal_(0.0, 0.05)
    return vae


def test_patch_shortcut_starts_at_zero_in_the_decoder_and_on_the_log_variance():
    vae = make_micro_vae(patch_shortcut=True)
    c = vae.config.latent_channels
    assert torch.count_nonzero(vae.decoder.shortcut.proj.weight) == 0
    assert torch.count_nonzero(vae.encoder.shortcut.proj.weight[c:]) == 0
    assert torch.count_nonzero(vae.encoder.shortcut.proj.weight[:c]) > 0


def test_patch_shortcut_keeps_causality():
    vae = _shortcut_vae()
    x = random_video(1, 17)
    y = x.clone()
    y[:, :, 10] = -y[:, :, 10]  # group 3 (frames 9..12)
    with torch.no_grad():
        enc = (vae.encode(x).latent_dist.mode() - vae.encode(y).latent_dist.mode()).abs()
        z = vae.encode(x).latent_dist.mode()
        z2 = z.clone()
        z2[:, :, 2] += 1.0  # latent 2 decodes to frames 5..8
        dec = (vae.decode(z).sample - vae.decode(z2).sample).abs()
    per_group, per_frame = enc.amax(dim=(0, 1, 3, 4)), dec.amax(dim=(0, 1, 3, 4))
    assert torch.all(per_group[:3] == 0) and torch.all(per_group[3:] > 0)
    assert torch.all(per_frame[:5] == 0) and torch.all(per_frame[5:9] > 0)


@pytest.mark.parametrize("tiling", [False, True])
def test_iter_encode_and_iter_decode_match_encode_and_decode(tiling):
    vae = make_micro_vae()
    vae.set_chunk_size(2)
    x = random_video(1, 17, 64, 48)
    if tiling:
        vae.enable_tiling(tile_size=32, tile_stride=16)
    with torch.no_grad():
        ref = vae.encode(x).latent_dist.parameters
        whole = torch.cat([p.parameters for p in vae.iter_encode(x)], dim=2)
        pieces = (x[:, :, :5], x[:, :, 5:13], x[:, :, 13:])  # uneven chunks from a reader
        lazy = torch.cat([p.parameters for p in vae.iter_encode(iter(pieces))], dim=2)
        z = ref[:, :8]
        x_ref = vae.decode(z).sample
        x_iter = torch.cat(list(vae.iter_decode(iter(z.split([1, 3, 1], dim=2)))), dim=2)
    torch.testing.assert_close(whole, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(lazy, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(x_iter, x_ref, atol=1e-5, rtol=0)


def test_iter_encode_rejects_a_misaligned_chunk(micro_vae):
    chunks = iter((random_video(1, 5), random_video(1, 3)))
    with pytest.raises(ValueError, match="pixel chunk 1 has 3 frames"):
        list(micro_vae.iter_encode(chunks))
