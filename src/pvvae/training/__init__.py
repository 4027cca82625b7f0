"""pvvae.training: the three-stage training recipe of the paper (section 3.2) at any scale.

Entry point: ``pvvae train CONFIG [key=value ...] [--resume]`` (:mod:`pvvae.cli.train`), or
:func:`pvvae.training.trainer.train` from Python. Configs: ``configs/paper/{image,video,
decoder}.yaml`` (paper scale) and ``configs/smoke/...`` (seconds on a CPU).

Scale-out is torchrun's job; the same command runs a single process without it::

    torchrun --nproc_per_node=8 -m pvvae train configs/paper/video.yaml --resume
    torchrun --nnodes=4 --nproc_per_node=8 --rdzv_backend=c10d --rdzv_endpoint=HOST:29500 \\
        -m pvvae train configs/paper/video.yaml train.parallel=fsdp --resume

(multi-node runs need ``out_dir`` on a filesystem shared by the nodes, for resuming).

Modules, VAE-specific ones marked (*); the others are the training engine that the
generation trainer (:mod:`pvvae.gen.train`) runs on too: ``engine`` the run (folder, config
snapshot, loop, logging, non-finite guard), the recipe interface and one step's update with
the bf16 fallback; ``resume`` checkpoints of a run's state with RNG states; ``config`` (*)
the experiment dataclasses; ``data`` datasets from the config and the sharded, resumable
sample order; ``state`` (*) models, optimizers, stages; ``trainer`` (*) the VAE recipe and
``train_step``; ``distributed`` process group, collectives (the only reader of environment
variables); ``parallel`` DDP / FSDP2 / activation checkpointing and full state dicts;
``checkpoint`` atomic safetensors checkpoints; ``ema`` weight EMA; ``monitor`` JSON lines,
TensorBoard, progress bar; ``precision`` the bf16 policy; ``guards`` the non-finite stop;
``schedule`` warm-up + cosine lr; ``seeding`` per-step, per-rank random streams.
"""
