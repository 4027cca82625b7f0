"""File-to-file inference at any length: streamed encode / decode / predict and latent files."""
