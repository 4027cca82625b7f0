"""``pvvae probe train|eval``: probe a trained Latte's features (paper section 4.3, Table 3).

    pvvae probe train LATTE_RUN --out DIR [--tasks flow next track] [--data synthetic]
    pvvae probe eval DIR_WO_PR DIR_W_PR --names "w/o PR" "w/ PR" --out DIR

Data: ``synthetic`` (all tasks), ``sintel:ROOT`` / ``sintel-final:ROOT`` (flow), ``davis:PKL``
(tracking), ``videos:DIR`` (next frame). See :mod:`pvvae.probe.run` for the outputs.
"""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``probe`` and its sub-verbs on the top-level sub-parsers."""
    probe = sub.add_parser(
        "probe", help="probe Latte features with task decoders (flow, next frame, tracking)",
        description="Probing of paper Table 3: frozen Latte features -> small task decoders.",
    )
    verbs = probe.add_subparsers(dest="probe_command", required=True, metavar="VERB")
    _add_train(verbs)
    _add_eval(verbs)


def _add_train(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("train", help="train and score task heads on a Latte's features",
                         description="Train one head per task (DiT frozen), score it against "
                         "the trivial baseline, write probe.json/.md, heads and figures.")
    p.add_argument("latte", help="Latte checkpoint or run folder (pvvae gen train)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--tasks", nargs="+", default=["flow", "next", "track"],
                   choices=["flow", "next", "track"], help="tasks to probe")
    p.add_argument("--data", default="synthetic", help="training data spec: synthetic "
                   "(proving-ground clips), synthetic:textured, sintel[-final]:ROOT, "
                   "davis:PKL, videos:DIR")
    p.add_argument("--eval-data", default="", help="evaluation data spec "
                   "(default: synthetic clips of seed+1, or --data)")
    p.add_argument("--num-frames", type=int, default=17, help="frames per clip (1 + 4k)")
    p.add_argument("--size", type=int, default=64, help="square frame side")
    p.add_argument("--train-clips", type=int, default=1024,
                   help="synthetic training clips (fewer over-fit: README, probing)")
    p.add_argument("--eval-clips", type=int, default=64, help="synthetic evaluation clips")
    p.add_argument("--seed", type=int, default=0, help="synthetic scene seed")
    p.add_argument("--vae", default="", help="VAE override (default: the Latte's)")
    p.add_argument("--layer", type=int, help="1-based Latte block (default depth//2; 0: latents)")
    p.add_argument("--t", type=float, default=0.05, help="flow time of the noised input")
    p.add_argument("--draws", type=int, default=1, help="noise draws averaged")
    p.add_argument("--steps", type=int, default=600, help="head training steps")
    p.add_argument("--batch-size", type=int, default=8, help="clips per step")
    p.add_argument("--lr", type=float, default=1e-3, help="head learning rate")
    p.add_argument("--width", type=int, default=32, help="head stem channels")
    p.add_argument("--residual-next", action="store_true",
                   help="next-frame head predicts the change from the last frame")
    p.add_argument("--flow-loss", default="mse", choices=["mse", "epe"],
                   help="flow head training loss: squared end-point error (default) or EPE")
    p.add_argument("--device", default="cpu", help="cpu | cuda[:N]")
    p.set_defaults(func=run_train)


def _add_eval(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("eval", help="score trained probes side by side (Table 3)",
                         description="Score `probe train` folders on the same clips and write "
                         "probe_compare.json/.md (rows: the folders, e.g. w/o PR and w/ PR).")
    p.add_argument("probes", nargs="+", help="folders written by `pvvae probe train`")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--names", nargs="+", help="row names (default: folder names)")
    p.add_argument("--data", default="", help="evaluation data spec (default: the probes')")
    p.add_argument("--device", default="cpu", help="cpu | cuda[:N]")
    p.set_defaults(func=run_eval)


def run_train(args: argparse.Namespace) -> int:
    from pvvae.probe.run import ProbeConfig, train_probes

    cfg = ProbeConfig(
        latte=args.latte, tasks=tuple(args.tasks), train_data=args.data,
        eval_data=args.eval_data, num_frames=args.num_frames, size=args.size,
        train_clips=args.train_clips, eval_clips=args.eval_clips, seed=args.seed,
        vae=args.vae, residual_next=args.residual_next, flow_loss=args.flow_loss,
        device=args.device,
        features={"layer": args.layer, "t": args.t, "num_draws": args.draws},
        head={"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
              "width": args.width, "seed": args.seed},
    )
    report = train_probes(cfg, args.out)
    print(json.dumps({k: {"probe": v["probe"], "baseline": v["baseline"]}
                      for k, v in report["tasks"].items()}))
    print(f"report: {args.out}/probe.md")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from pvvae.probe.run import evaluate_probes

    evaluate_probes(args.probes, args.out, args.data, args.names, args.device)
    print(open(f"{args.out}/probe_compare.md").read())
    return 0
