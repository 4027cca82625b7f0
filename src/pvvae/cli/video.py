"""``pvvae reconstruct | predict | encode | decode``: run a trained VAE on files, streamed.

Every verb reads frames lazily, encodes and decodes chunk by chunk and writes frames as they
come (:mod:`pvvae.inference.stream`), so memory stays flat in the video length; a progress bar
shows frames, fps and ETA. Large frames are tiled (``--tiling auto`` tiles frames with a side
above 1024 pixels).

Spatial rule: with ``--size S`` the short side is resized to S and a centred S x S square is
cropped (the evaluation rule of :func:`pvvae.data.resize_and_crop`); without it, each side is
centre-cropped to the largest multiple of 16 (:func:`pvvae.data.fit_to_multiple`, no
resampling). Any frame count works: the last chunk is padded and the output trimmed back.

Every VAE kind runs here (any spec of :mod:`pvvae.inference.spec`): PV-VAE model,
checkpoint and run folders, ``preset:NAME``, and a (fine-tuned) diffusers Wan VAE as a run
folder, as the folder ``pvvae export`` writes, or as ``wan:PATH``. A Wan VAE has no
chunk-by-chunk streaming: it encodes and decodes the whole read clip at once (memory grows
with ``--max-frames``), and the result line says so.

``encode`` records the model's fingerprint in the latent file; ``decode`` refuses latents of
another model (``--force`` decodes them anyway) and latents of another width. Before any work,
every verb refuses an output that is its input or that cannot hold what it writes
(:func:`check_output`).
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Iterator

import torch

# load_clip: re-exported (pvvae.load_clip and earlier callers import it from here)
from pvvae.data.video_io import load_clip, prepare_frames, video_info  # noqa: F401

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
AUTO_TILE_ABOVE = 1024  # pixels: --tiling auto tiles frames with a longer side
# containers that hold the H.264 stream VideoWriter writes (webm and gif do not)
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".m4v")
WHOLE = 1 << 40  # the chunk length of a model without streaming: the whole clip


def frame_size(text: str) -> int:
    """argparse type of ``--size``: a positive multiple of 16 (the spatial compression)."""
    try:
        size = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size {text!r} is not a whole number") from None
    if size <= 0 or size % 16:
        raise argparse.ArgumentTypeError(
            f"--size {size}: use a positive multiple of 16 (e.g. {max(16, 16 * round(size / 16))})"
        )
    return size


def count(minimum: int):
    """argparse type of a frame count: a whole number >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value}: must be >= {minimum}")
        return value

    return parse


def add_parser(sub: argparse._SubParsersAction) -> None:
    model = argparse.ArgumentParser(add_help=False)
    model.add_argument("checkpoint", help="model, checkpoint or run folder, or a VAE spec "
                       "(preset:NAME, wan:PATH)")
    run = argparse.ArgumentParser(add_help=False)
    run.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    run.add_argument("--dtype", choices=list(DTYPES), default="fp32", help="inference precision")
    run.add_argument(
        "--tiling", choices=["auto", "on", "off"], default="auto",
        help=f"spatial tiling (auto: frames with a side above {AUTO_TILE_ABOVE} px)",
    )
    run.add_argument("--chunk", type=count(1), default=4,
                     help="latent frames per streamed chunk")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    video_in = argparse.ArgumentParser(add_help=False)
    video_in.add_argument("input", help="input video file")
    video_in.add_argument("output", help="output file")
    video_in.add_argument("--size", type=frame_size,
                          help="short-side resize + centre crop to SIZE (a multiple of 16)")
    video_in.add_argument("--max-frames", type=count(1), help="read at most this many frames")
    both = [model, video_in, run]

    p = sub.add_parser("reconstruct", parents=both, help="encode and decode a video (streamed)")
    p.set_defaults(func=run_reconstruct)
    p = sub.add_parser("predict", parents=both, help="observe N frames, predict the rest")
    p.add_argument("--observe", type=count(1), required=True,
                   help="frames the encoder sees: 1 + 4m (1, 5, 9, 13, ...)")
    p.add_argument(
        "--future", type=count(0), help="frames to predict (default: the rest of the read clip)"
    )
    p.set_defaults(func=run_predict)
    p = sub.add_parser("encode", parents=both, help="video -> latents (.safetensors, streamed)")
    p.set_defaults(func=run_encode)
    p = sub.add_parser("decode", parents=[model, run], help="latents (.safetensors) -> mp4")
    p.add_argument("input", help="latent file written by `pvvae encode`")
    p.add_argument("output", help="output mp4")
    p.add_argument("--force", action="store_true",
                   help="decode latents that another model (another fingerprint) wrote")
    p.set_defaults(func=run_decode)


class _Session:
    """The model, device and options of one CLI run, and the helpers every verb shares."""

    def __init__(self, args: argparse.Namespace) -> None:
        from pvvae.inference.loading import model_fingerprint, supports_streaming
        from pvvae.inference.spec import load_vae
        from pvvae.training.distributed import resolve_device

        self.args = args
        self.device, self.dtype = resolve_device(args.device), DTYPES[args.dtype]
        self.vae = load_vae(args.checkpoint, self.device)
        self.fingerprint = model_fingerprint(self.vae)  # before any cast (the values change)
        if self.dtype != torch.float32:
            # nn.Module.to, not diffusers' ModelMixin.to: that one warns about fp32 modules
            # that these models do not have
            torch.nn.Module.to(self.vae, self.dtype)
        self.streams = supports_streaming(self.vae)
        self.vae.set_chunk_size(args.chunk)
        if args.tiling == "on":
            self.vae.enable_tiling()

    def note(self) -> str:
        """What the result line says about a model that could not stream."""
        if self.streams:
            return ""
        return f" (not streamed: {type(self.vae).__name__} encodes and decodes whole clips)"

    def configure_tiling(self, height: int, width: int) -> None:
        """Turn tiling on for large frames under ``--tiling auto``."""
        if self.args.tiling == "auto" and max(height, width) > AUTO_TILE_ABOVE:
            self.vae.enable_tiling()

    def chunks(self, frames: Iterator[torch.Tensor], real: list[int]):
        """Model-ready pixel chunks (1, 3, n, H, W) of uint8 frames; appends real counts."""
        from pvvae.inference.stream import group_frames

        ct, n = self.vae.temporal_compression, self.args.chunk
        first, rest = (1 + ct * (n - 1), ct * n) if self.streams else (WHOLE, WHOLE)
        for chunk, n_real in group_frames(frames, first, rest, ct):
            x = prepare_frames(chunk, getattr(self.args, "size", None))
            if not real:
                self.configure_tiling(*x.shape[-2:])
            real.append(n_real)
            yield x.to(self.device, self.dtype)

    def progress(self, total: int | None, desc: str):
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit="frame", disable=self.args.no_progress)


def check_output(args: argparse.Namespace, suffixes: tuple[str, ...] = VIDEO_SUFFIXES) -> None:
    """Refuse, before any work, an output that cannot hold what the verb writes or that is
    its own input (streaming would overwrite the frames it is still reading)."""
    from pathlib import Path

    out = Path(args.output)
    if out.suffix.lower() not in suffixes:
        if suffixes == VIDEO_SUFFIXES:
            kind = f"a {out.suffix} file" if out.suffix else "a name without a suffix"
            raise ValueError(
                f"output {out}: videos are written as H.264 to {', '.join(suffixes)}, not to "
                f"{kind}; name it e.g. {out.with_suffix('.mp4').name}"
            )
        raise ValueError(
            f"output {out}: encode writes latents; name it {suffixes[0]} (to write a video, "
            "use pvvae reconstruct)"
        )
    source = Path(args.input)
    if out.exists() and source.exists() and out.resolve() == source.resolve():
        raise ValueError(f"output {out} is the input: it would be overwritten while being read;"
                         " name another output file")


def _frames(args: argparse.Namespace, start: int = 0, stop: int | None = None):
    """Lazy uint8 frames start..stop-1 of the input, never past --max-frames."""
    from pvvae.data.video_stream import iter_frames

    stops = [v for v in (stop, args.max_frames) if v is not None]
    count = max(min(stops) - start, 0) if stops else None
    return iter_frames(args.input, start=start, num_frames=count)


def _expected_frames(args: argparse.Namespace) -> tuple[int, float]:
    info = video_info(args.input)  # the header's count: for the progress bar only
    total = info.num_frames if args.max_frames is None else min(info.num_frames, args.max_frames)
    return total, info.fps or 8


def run_reconstruct(args: argparse.Namespace) -> int:
    from pvvae.data.video_stream import VideoWriter
    from pvvae.eval.metrics.psnr_ssim import compute_psnr
    from pvvae.inference.stream import reconstruct_chunks

    check_output(args)
    s = _Session(args)
    total, fps = _expected_frames(args)
    real: list[int] = []
    inputs: list[torch.Tensor] = []  # the chunk being decoded (for PSNR), one at a time
    chunks = (inputs.append(x) or x for x in s.chunks(_frames(args), real))
    psnr_sum = frames = 0
    with VideoWriter(args.output, fps=fps) as writer, s.progress(total, "reconstruct") as bar:
        with torch.no_grad():
            for x_hat in reconstruct_chunks(s.vae, chunks):
                n, x = real.pop(0), inputs.pop(0)
                x_hat = x_hat[:, :, :n].float().cpu()
                writer.write(x_hat[0])
                psnr_sum += compute_psnr(x_hat, x[:, :, :n].float().cpu()) * n
                frames += n
                bar.update(n)
    if not frames:
        raise ValueError(f"{args.input}: no frame could be read; is it a video file?")
    print(f"{args.output}: {frames} frames, PSNR {psnr_sum / frames:.2f} dB{s.note()}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from pvvae.data.video_stream import VideoWriter
    from pvvae.inference.stream import predict_chunks

    check_output(args)
    total, fps = _expected_frames(args)
    _check_observe(args.observe, total)
    s = _Session(args)
    n_obs = encoded = args.observe
    future = args.future if args.future is not None else total - n_obs
    out_total, written = n_obs + future, 0
    real: list[int] = []
    observed = s.chunks(_frames(args, stop=encoded), real)
    truth = _frames(args, start=encoded)  # ground truth after the prefix, where the file has it
    score = _PredictionScore(_take(_frames(args, n_obs - 1, n_obs), 1, args.size), n_obs)
    with VideoWriter(args.output, fps=fps) as writer, s.progress(out_total, "predict") as bar:
        with torch.no_grad():
            for x_hat in predict_chunks(s.vae, observed, lambda: out_total - encoded):
                keep = real.pop(0) if real else min(x_hat.shape[2], out_total - written)
                x_hat = x_hat[:, :, :keep].float().cpu()
                writer.write(x_hat[0])
                if written >= encoded:  # a predicted chunk
                    score.add(x_hat, _take(truth, keep, args.size), written)
                written += keep
                bar.update(keep)
    print(f"{args.output}: observed {n_obs} frames, predicted {future}{score.summary()}"
          f"{s.note()}")
    return 0


def _check_observe(n_obs: int, total: int, ct: int = 4) -> None:
    """--observe must be 1 + 4m (the frames one causal encoder pass takes) and fit the clip."""
    if (n_obs - 1) % ct:
        low = 1 + ct * ((n_obs - 1) // ct)
        raise ValueError(
            f"--observe {n_obs}: the encoder sees 1 + {ct}m frames; use --observe {low} or "
            f"{low + ct}"
        )
    if n_obs > total:
        raise ValueError(f"--observe {n_obs} is more than the {total} frames read")


class _PredictionScore:
    """PSNR of predicted frames (after the observed ones) against the file, and of the
    copy-last-observed-frame baseline, accumulated chunk by chunk."""

    def __init__(self, last_observed: torch.Tensor, n_obs: int) -> None:
        self.last, self.n_obs = last_observed, n_obs  # (1, 3, 1, H, W)
        self.pred = self.copy = 0.0
        self.frames = 0

    def add(self, x_hat: torch.Tensor, truth: torch.Tensor | None, first_index: int) -> None:
        """x_hat (1, 3, n, H, W) holds frames first_index..; truth the same frames or fewer."""
        from pvvae.eval.metrics.psnr_ssim import compute_psnr

        skip = max(self.n_obs - first_index, 0)  # frames observed but not encoded
        k = 0 if truth is None else min(truth.shape[2], x_hat.shape[2]) - skip
        if k <= 0:
            return
        ref = truth[:, :, skip : skip + k]
        self.pred += compute_psnr(x_hat[:, :, skip : skip + k], ref) * k
        self.copy += compute_psnr(self.last.expand(-1, -1, k, -1, -1), ref) * k
        self.frames += k

    def summary(self) -> str:
        if not self.frames:
            return ""
        return (
            f"; PSNR on predicted frames {self.pred / self.frames:.2f} dB"
            f" (copy-last-frame baseline {self.copy / self.frames:.2f} dB)"
        )


def _take(frames: Iterator[torch.Tensor], n: int, size: int | None) -> torch.Tensor | None:
    """The next up-to-n frames of an iterator as a model-range (1, 3, n', H, W), or None."""
    got = list(itertools.islice(frames, n))
    return prepare_frames(torch.stack(got), size) if got else None


def run_encode(args: argparse.Namespace) -> int:
    from pvvae.inference.latent_file import LatentWriter
    from pvvae.inference.stream import encode_stream

    check_output(args, (".safetensors",))
    s = _Session(args)
    total, fps = _expected_frames(args)
    real: list[int] = []
    latent_frames, shape = 0, None
    header = {"fps": fps, "model": type(s.vae).__name__, "model_fingerprint": s.fingerprint}
    with LatentWriter(args.output, header) as writer, s.progress(total, "encode") as bar:
        with torch.no_grad():
            for posterior in encode_stream(s.vae, s.chunks(_frames(args), real)):
                z = posterior.mode().float()  # (1, Cz, m, h, w), raw latents
                writer.write(z)
                latent_frames, shape = latent_frames + z.shape[2], z.shape
                bar.update(real[-1])
        if shape is None:
            raise ValueError(f"{args.input}: no frame could be read; is it a video file?")
        sf = s.vae.spatial_compression
        writer.metadata.update(
            num_frames=sum(real), height=shape[-2] * sf, width=shape[-1] * sf
        )
    dims = (latent_frames, shape[1], *shape[-2:])
    print(f"{args.output}: {sum(real)} frames -> latent_frames {dims} (t, Cz, h, w){s.note()}")
    return 0


def check_latents_fit(path: str, vae, fingerprint: str, force: bool) -> dict[str, str]:
    """The metadata of latent file ``path`` once it is known that ``vae`` can decode it.

    Raises:
        ValueError: another latent width (never decodable), or latents written by a model of
            another fingerprint (unless ``force``).
    """
    from pvvae.inference.latent_file import latent_metadata, latent_shape

    meta, shape = latent_metadata(path), latent_shape(path)
    if len(shape) != 4 or shape[1] != vae.latent_channels:
        raise ValueError(
            f"{path} holds latents (t, Cz, h, w) = {shape}, but the model has "
            f"{vae.latent_channels} latent channels; decode with the model that encoded them"
        )
    written_by = meta.get("model_fingerprint")
    if written_by is not None and written_by != fingerprint and not force:
        raise ValueError(
            f"{path} was written by model {written_by} ({meta.get('model', '?')}), not by this "
            f"one ({fingerprint}): its decoded frames would be noise; decode with the model "
            "that encoded it, or pass --force"
        )
    return meta


def run_decode(args: argparse.Namespace) -> int:
    from pvvae.data.video_stream import VideoWriter
    from pvvae.inference.latent_file import iter_latent_chunks, latent_metadata
    from pvvae.inference.stream import decode_stream

    check_output(args)
    latent_metadata(args.input)  # a file of another kind fails before the model loads
    s = _Session(args)
    meta = check_latents_fit(args.input, s.vae, s.fingerprint, args.force)
    num_frames = int(meta.get("num_frames", 0)) or None
    s.configure_tiling(int(meta.get("height", 0)), int(meta.get("width", 0)))
    n = args.chunk if s.streams else WHOLE
    latents = (
        z.to(s.device, s.dtype) for z in iter_latent_chunks(args.input, n, n)
    )
    written = 0
    fps = float(meta.get("fps", 8))
    with VideoWriter(args.output, fps=fps) as writer, s.progress(num_frames, "decode") as bar:
        with torch.no_grad():
            for x_hat in decode_stream(s.vae, latents):
                keep = x_hat.shape[2] if num_frames is None else num_frames - written
                x_hat = x_hat[:, :, :keep].float().cpu()
                writer.write(x_hat[0])
                written += x_hat.shape[2]
                bar.update(x_hat.shape[2])
    print(f"{args.output}: {written} frames{s.note()}")
    return 0
