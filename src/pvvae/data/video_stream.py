"""Frame-by-frame video reading and writing, for processing videos of any length.

:func:`iter_frames` decodes one frame at a time and :class:`VideoWriter` encodes frames as they
come, so a file-to-file pipeline (``pvvae reconstruct``) holds a few chunks of frames at once,
never the whole video. Both live in :mod:`pvvae.data.video_io`, where
:func:`~pvvae.data.video_io.read_video` and :func:`~pvvae.data.video_io.write_video` are built
on them (one reader, one writer); this module names the streaming pair.
"""

from pvvae.data.video_io import VideoWriter, iter_frames

__all__ = ["VideoWriter", "iter_frames"]
