"""``make bench``: every benchmark, each printing ratios measured in the same run.

    python -m bench [--quick]

``--quick`` shrinks the sizes (for a smoke run); the README's figures use the defaults.
"""

from __future__ import annotations

import argparse

from rich.console import Console

from bench import (
    archive,
    block_import,
    gateway,
    native,
    network,
    operations,
    rpc,
    state_root,
    telemetry,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = ap.parse_args()
    console = Console()
    console.rule("state root: incremental update vs full rebuild")
    if args.quick:
        state_root.main(["--keys", "100000", "--changes", "1000"])
    else:
        state_root.main([])
    console.rule("block import")
    block_import.main(["--tx", "1000" if args.quick else "5000"])
    console.rule("native hot path")
    native.main(["--quick"] if args.quick else [])
    console.rule("telemetry import")
    telemetry.main(["--batches", "100"] if args.quick else [])
    console.rule("JSON-RPC")
    rpc.main(["--reads", "500", "--extrinsics", "500"] if args.quick else [])
    console.rule("network")
    network.main(["--seconds", "20", "--blocks", "1000"] if args.quick else [])
    console.rule("gateway: simulator to finalized blocks")
    gateway.main(["--quick"] if args.quick else [])
    console.rule("operations pallets: window-close hooks and heavy calls")
    operations.main(["--twins", "48"] if args.quick else [])
    console.rule("facility archive: delivery, Parquet, DuckDB, verification")
    archive.main(["--quick"] if args.quick else [])
    console.rule("predictive maintenance")
    from bench import pdm  # numpy and the simulator load only when this is reached

    pdm.main(["--quick"] if args.quick else [])
    console.rule("prognostics for any class: ProgPy fleets (tuning, held out) and the simulator")
    from bench import prognostics

    prognostics.main(["--quick"] if args.quick else [])


if __name__ == "__main__":
    main()
