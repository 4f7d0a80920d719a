"""``twinchain offchain``: the predictive-maintenance worker and its model training.

    twinchain offchain train --out DIR [--classes ...] [--kinds ...] [--seed N] [--version N]
    twinchain offchain pdm --rpc URL --key SEED_OR_KEYSTORE --facility N [--models DIR]

(heavy imports stay inside the commands)
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

TRAINED = Path(__file__).with_name("trained")  # shipped models: trained/<profile>/


def cmd_train(args: argparse.Namespace) -> int:
    from rich.console import Console

    from twinchain.offchain.training import PROFILES, profile_runs, train

    console = Console()
    profile = PROFILES[args.profile]
    out = args.out if args.out is not None else TRAINED / args.profile
    for cls in args.classes:
        n = args.machines
        healthy = profile_runs(cls, args.seed, profile, machines=n)
        calib = profile_runs(cls, args.seed + 1, profile, machines=n, faulty=n // 2)
        for kind in args.kinds:
            model = train(
                cls, kind, seed=args.seed, version=args.version, profile=profile,
                healthy=healthy, calibration_runs=calib,
            )  # fmt: skip
            path = model.save(out)
            console.print(f"{path}  0x{model.hash.hex()}", soft_wrap=True)
    return 0


def cmd_pdm(args: argparse.Namespace) -> int:
    import logging

    import httpx

    from twinchain.client import Client, ClientError
    from twinchain.offchain.models import DEFAULT_KIND
    from twinchain.offchain.training import PROFILES
    from twinchain.offchain.worker import PdmWorker, WorkerError, keypair_from, load_models
    from twinchain.protocol.jsonrpc import RpcError

    log = logging.getLogger("twinchain.offchain.pdm")
    try:
        keypair = keypair_from(args.key)
        with Client(args.rpc) as client:
            folder = args.models
            if folder is None:  # the shipped profile whose window is the chain's
                window = int(client.read_storage("Telemetry", "WindowMs"))
                names = [n for n, p in PROFILES.items() if p.window_ms == window]
                if not names:
                    raise WorkerError(f"no shipped models for {window} ms windows: train some")
                folder = TRAINED / names[0]
            models = load_models(folder, args.kind or DEFAULT_KIND)
            worker = PdmWorker(
                client, keypair, args.facility, models, since_ms=args.since_ms,
                evidence_dir=args.evidence_dir, api_key=args.api_key,
            )  # fmt: skip
            for cls, m in sorted(models.items()):
                log.info("%s: %s 0x%s", cls, m.filename, m.hash.hex())
            if args.once:
                worker.ensure_models_registered()
                worker.poll_once()
            else:
                worker.run(poll_s=args.poll)
    except (WorkerError, ClientError, RpcError, httpx.HTTPError) as exc:
        log.error("%s", exc or type(exc).__name__)
        return 1
    return 0


def add_parser(sub: Any) -> None:
    """Register this package's subcommands on the main CLI's subparsers."""
    from twinchain.machines.classes import EQUIPMENT_CLASSES

    p = sub.add_parser("offchain", help="off-chain workers (predictive maintenance)")
    osub = p.add_subparsers(dest="offchain_cmd", required=True)

    t = osub.add_parser("train", help="train per-class models on simulated machines")
    t.add_argument("--out", type=Path, default=None, help="model folder (default: shipped)")
    t.add_argument("--profile", choices=("plant", "devnet"), default="plant",
                   help="time scale: plant (1 h windows) or devnet (5 s windows)")  # fmt: skip
    t.add_argument("--classes", nargs="+", default=list(EQUIPMENT_CLASSES))
    t.add_argument("--kinds", nargs="+", default=["isolation_forest", "cusum"])
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--version", type=int, default=1)
    t.add_argument("--machines", type=int, default=24, help="per class")
    t.set_defaults(fn=cmd_train)

    w = osub.add_parser("pdm", help="follow finalized telemetry and submit maintenance alerts")
    w.add_argument("--rpc", default="127.0.0.1:9944", help="node RPC URL")
    w.add_argument("--key", required=True, help="//Name, hex seed, key file or keystore")
    w.add_argument("--facility", type=int, required=True, help="facility id to serve")
    w.add_argument(
        "--models", type=Path, default=None, help="model folder (default: shipped, by window)"
    )
    w.add_argument("--kind", default=None, help="model kind (default: the benchmark's best)")
    w.add_argument("--poll", type=float, default=2.0, help="seconds between polls")
    w.add_argument("--since-ms", type=int, default=None, help="alert only on windows after")
    w.add_argument("--evidence-dir", type=Path, default=None, help="write evidence here")
    w.add_argument("--once", action="store_true", help="one poll, then exit")
    w.add_argument(
        "--api-key",
        default=None,
        help="read private telemetry with this API key (issued by the node's operator with "
        "'twinchain node api-key create'); default: signed requests with --key",
    )
    w.set_defaults(fn=cmd_pdm)
