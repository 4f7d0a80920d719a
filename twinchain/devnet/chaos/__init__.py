"""A chaos suite for the devnet: validators as separate hosts, seeded faults, invariants.

    twinchain devnet chaos --seed N --minutes M --faults K [--json FILE] [--base-dir DIR]
    python -m twinchain.devnet.chaos ...        (the same)
    twinchain devnet chaos --cleanup             (remove what a killed run left behind)

Modules: :mod:`.netns` (namespaces, bridge, veths, netem, partitions), :mod:`.faults` (the
seeded plan; libfaketime; the tmpfs a disk-full fault fills), :mod:`.invariants` (safety,
liveness, memory, exactly-once telemetry, databases), :mod:`.runner` (one run and its report).
Needs root for namespaces and tmpfs mounts; without, it runs the faults that need neither
and says which it skipped. A kernel without the netem qdisc (some VMs) still gets the
namespaces, without delay, jitter or loss, and the run says so.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from rich.console import Console


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=1, help="same seed, same faults (default 1)")
    p.add_argument("--minutes", type=float, default=10.0, help="length of the fault phase")
    p.add_argument("--faults", type=int, default=40, help="how many faults")
    p.add_argument("--validators", type=int, default=4)
    p.add_argument("--json", type=Path, dest="json_out", help="write the result here")
    p.add_argument("--base-dir", type=Path, help="run in this folder (default: a new one in /tmp)")
    p.add_argument("--no-netns", action="store_true", help="all on 127.0.0.1 (fewer fault kinds)")
    p.add_argument("--delay-ms", type=int, default=50, help="netem delay per validator link")
    p.add_argument("--jitter-ms", type=int, default=20, help="netem jitter")
    p.add_argument("--loss", type=float, default=1.0, help="netem loss, percent")
    p.add_argument(
        "--kinds",
        help="comma-separated fault kinds (default: all): kill, pause, link, partition22, "
        "partition31, skew, diskfull",
    )
    p.add_argument("--rss-limit-mb", type=float, default=1024, help="validator memory bound")
    p.add_argument("--settle", type=float, default=120, help="s for telemetry to settle at the end")
    p.add_argument("--keep", action="store_true", help="keep the run's folder even if it passed")
    p.add_argument(
        "--node-log",
        default="info,grandpa=debug,sync=debug",
        help="the validators' -l (log targets and levels)",
    )
    p.add_argument("--cleanup", action="store_true", help="only remove leftovers of killed runs")


def main(args: argparse.Namespace, console: Console | None = None) -> int:
    from twinchain.devnet.chaos import faults as fx
    from twinchain.devnet.chaos import runner
    from twinchain.devnet.chaos.netns import Netem

    console = console or Console()
    if not console.is_terminal:  # make chaos > file: keep the table's rows on one line each
        console.width = max(console.width, 140)
    if args.cleanup:
        swept = runner.sweep_stale(console)
        console.print(f"{len(swept)} leftover runs removed")
        return 0
    kinds = fx.ALL_KINDS
    if args.kinds:
        kinds = tuple(fx.ALIASES.get(k.strip(), k.strip()) for k in args.kinds.split(","))
        bad = [k for k in kinds if k not in fx.ALL_KINDS]
        if bad:
            console.print(f"[red]error:[/] unknown kinds {bad}; known: {', '.join(fx.ALIASES)}")
            return 2
    opts = runner.Options(
        seed=args.seed,
        minutes=args.minutes,
        faults=args.faults,
        validators=args.validators,
        base_dir=args.base_dir,
        json_out=args.json_out,
        netns=not args.no_netns and os.geteuid() == 0,
        netem=Netem(args.delay_ms, args.jitter_ms, args.loss),
        kinds=kinds,
        rss_limit_mb=args.rss_limit_mb,
        settle_s=args.settle,
        keep=args.keep,
        log=args.node_log,
    )
    if not args.no_netns and os.geteuid() != 0:
        console.print("[yellow]note:[/] not root: no network namespaces, validators on 127.0.0.1")
    logging.getLogger("twinchain.chaos").setLevel(logging.INFO)
    result = runner.run(opts, console)
    runner.report(result, console)
    if args.json_out:
        console.print(f"result: {args.json_out}")
    return 1 if result["violations"] else 0
