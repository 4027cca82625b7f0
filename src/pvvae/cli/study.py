"""``pvvae study``: run a replication study and write its report.

    pvvae study run configs/studies/table4.yaml                   # everything, resumable
    pvvae study run configs/studies/table4.yaml --seeds 0 --variants baseline
    pvvae study run configs/studies/table4.yaml measure.fvd_clips=64   # overrides
    pvvae study status configs/studies/table4.yaml                # which steps are complete
    pvvae study report configs/studies/table4.yaml                # tables and figures so far

Runs can be spread over processes or machines sharing ``root``: give each a disjoint
``--variants`` / ``--seeds`` selection (a step two selections share is built once, under a
file lock).
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("study", help="replication studies: ablations and analyses",
                            description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    verbs = parser.add_subparsers(dest="study_command", required=True, metavar="VERB")
    run = verbs.add_parser("run", help="run (or resume) a study, then write its report")
    _common(run)
    run.add_argument("--variants", nargs="+", metavar="NAME", help="only these variants")
    run.add_argument("--seeds", nargs="+", type=int, metavar="SEED", help="only these seeds")
    run.add_argument("--no-report", action="store_true", help="do not rewrite the report")
    run.add_argument("--vae-only", action="store_true",
                     help="only the VAE stages and their measurements (reconstruction, "
                     "latents, ceiling); the generators of a later run reuse them")
    run.set_defaults(func=run_command)
    status = verbs.add_parser("status", help="list the steps of each pair, complete or not")
    _common(status)
    status.add_argument("--variants", nargs="+", metavar="NAME", help="only these variants")
    status.add_argument("--seeds", nargs="+", type=int, metavar="SEED", help="only these seeds")
    status.set_defaults(func=status_command)
    report = verbs.add_parser("report", help="write the report of what is measured so far")
    _common(report)
    report.add_argument("--out", help="report folder (default: ROOT/STUDY), e.g. docs/...")
    report.set_defaults(func=report_command)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("study", metavar="STUDY", help="study file (configs/studies/*.yaml)")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the study file")


def run_command(args: argparse.Namespace) -> int:
    from pvvae.study.pipeline import run_study
    from pvvae.study.report import write_report
    from pvvae.study.spec import load_study, select

    spec = load_study(args.study, args.overrides)
    pairs = select(spec, args.variants, args.seeds)
    results, ran = run_study(spec, pairs, vae_only=args.vae_only)
    print(f"study {spec.name}: {len(results)} pair(s) complete; {len(ran)} step(s) run now, "
          "the others were already complete")
    if not args.no_report:
        print(f"report: {write_report(spec)}")
    return 0


def report_command(args: argparse.Namespace) -> int:
    from pvvae.study.report import write_report
    from pvvae.study.spec import load_study

    print(f"report: {write_report(load_study(args.study, args.overrides), args.out)}")
    return 0


def status_command(args: argparse.Namespace) -> int:
    from pvvae.study.pipeline import plan_study
    from pvvae.study.spec import load_study, select

    spec = load_study(args.study, args.overrides)
    rows = plan_study(spec, select(spec, args.variants, args.seeds))
    for row in rows:
        done = sum(complete for _, complete in row["steps"])
        steps = " ".join(f"{sid}{'' if ok else '*'}" for sid, ok in row["steps"])
        print(f"{row['variant']}, seed {row['seed']}: {done}/{len(row['steps'])} complete "
              f"({steps}; * = to run)")
    return 0
