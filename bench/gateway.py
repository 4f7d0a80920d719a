"""Gateway end to end: simulated readings to finalized blocks on the 4-validator devnet.

    python -m bench.gateway [--quick] [--machines N --tick-ms MS --validators V]

Starts the devnet as ``make run`` does (one validator process per facility on 127.0.0.1, all
started at once, one simulating gateway per facility), with ``--machines`` simulated
machines per gateway, each a twin with its own device key, ticking every ``--tick-ms`` in
real time (about 12 readings per machine per tick). The gateways batch as configured by
default (every device's batch leaves ``--slot-lead-ms`` before each slot, or after
``--max-delay-ms``). Without ``--machines`` it runs a sweep:
the 4-validator devnet at about 1,000, 9,600, 19,000 and 50,000 offered readings/s, and one
validator alone at about 29,000/s (the gateway and block import without replication to
three more nodes). After ``--warmup``
seconds each run measures for ``--seconds``:

* offered load: readings the gateways took from their simulators into their spools, per s;
* throughput: readings whose batches are in finalized blocks (confirmed on chain), per s;
* latency from a reading's arrival at the gateway to the gateway seeing its batch in a
  finalized block: p50 and p99 over every reading finalized in the window (50 ms buckets);
* the spool backlog at the end (growing: the chain did not keep up with the offered load);
* CPU used over the window by the validator processes together and by the gateways together,
  in cores (from /proc; "-" where there is none): all of them share this machine's cores.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from twinchain.client import RpcClient
from twinchain.devnet import manager


def _status(gws: list[Any]) -> list[dict[str, Any]]:
    out = []
    for g in gws:
        try:
            out.append(json.loads((Path(g.folder) / "status.json").read_text()))
        except (OSError, ValueError):
            out.append({})
    return out


def _cpu_seconds(pids: list[int]) -> float | None:
    """User + system CPU seconds of ``pids`` so far (None without /proc)."""
    total = 0
    try:
        for pid in pids:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    except (OSError, ValueError, IndexError):
        return None
    return total / os.sysconf("SC_CLK_TCK")


def _pct(hist: list[int], bucket_ms: int, q: float) -> float | None:
    total = sum(hist)
    if not total:
        return None
    acc = 0
    for i, n in enumerate(hist):
        acc += n
        if acc >= q * total:
            return (i + 1) * bucket_ms / 1000
    return None


def _chain_bytes(node: Any, first: int, last: int) -> tuple[int, int]:
    """(extrinsic bytes, readings committed) of finalized blocks ``first`` + 1 .. ``last``."""
    from twinchain.primitives.types import Extrinsic
    from twinchain.protocol.jsonrpc import from_hex

    total = readings = 0
    with RpcClient(node.rpc_url, timeout=10) as rpc:
        for k in range(first + 1, last + 1):
            block = rpc.call("chain_getBlock", rpc.call("chain_getBlockHash", k))
            for x in block["block"]["extrinsics"]:
                raw = from_hex(x, "extrinsic")
                total += len(raw)
                call = Extrinsic.decode(raw).call
                for item in call.args[0] if call.args and isinstance(call.args[0], list) else []:
                    # A Telemetry.submit commitment: [device, seq, count, ...].
                    if isinstance(item, list) and len(item) == 8 and isinstance(item[2], int):
                        readings += item[2]
    return total, readings


def run(
    machines: int,
    tick_ms: int,
    seconds: float,
    warmup: float,
    validators: int = 4,
    keep: Path | None = None,
    max_delay_ms: int = 1000,
    slot_lead_ms: int = 300,
    reports: bool = True,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="twinchain-gwbench-") as tmp:
        base = keep or Path(tmp)
        batching = {
            "max_delay_ms": max_delay_ms,
            "slot_lead_ms": slot_lead_ms,
            "max_in_flight": 24,
            "high_water": 400_000,
            "low_water": 200_000,
        }
        _, nodes, gws = manager.plan_all(
            base, validators, 1000, machines=machines, tick_ms=tick_ms, faults=False,
            batching=batching,
        )  # fmt: skip
        try:
            procs = [
                manager.start_node(
                    base, n, [m.multiaddr for m in nodes if m is not n], reports=reports
                )
                for n in nodes
            ]
            for node, proc in zip(nodes, procs, strict=True):
                node.pid = proc.pid
            for node, proc in zip(nodes, procs, strict=True):
                manager.wait_rpc(node, proc)
            for g in gws:
                g.pid = manager.start_gateway(g).pid
            time.sleep(warmup)
            node_pids, gw_pids = [p.pid for p in procs], [g.pid for g in gws]
            c0 = (_cpu_seconds(node_pids), _cpu_seconds(gw_pids))
            s0, t0 = _status(gws), time.monotonic()
            h0 = manager.node_status(nodes[0]).get("finalized", 0)
            time.sleep(seconds)
            s1, t1 = _status(gws), time.monotonic()
            c1 = (_cpu_seconds(node_pids), _cpu_seconds(gw_pids))
            heights = [manager.node_status(n) for n in nodes]
            chain_bytes, chain_readings = _chain_bytes(nodes[0], h0, heights[0].get("finalized", 0))
        finally:
            manager.down(base, nodes, gateways=gws)
    dt = t1 - t0
    spooled = sum(b.get("spooled", 0) - a.get("spooled", 0) for a, b in zip(s0, s1, strict=True))
    final = sum(
        b.get("readings_final", 0) - a.get("readings_final", 0) for a, b in zip(s0, s1, strict=True)
    )
    archived = sum(
        b.get("readings_archived", 0) - a.get("readings_archived", 0)
        for a, b in zip(s0, s1, strict=True)
    )
    bucket = 50

    def delta(key: str) -> list[int]:
        hist: list[int] = []
        for a, b in zip(s0, s1, strict=True):
            ha = (a.get(key) or [bucket, []])[1]
            hb = (b.get(key) or [bucket, []])[1]
            if len(hist) < len(hb):
                hist += [0] * (len(hb) - len(hist))
            for i, n in enumerate(hb):
                hist[i] += n - (ha[i] if i < len(ha) else 0)
        return hist

    hist = delta("latency_hist_ms")
    chain = delta("submit_to_final_hist_ms")
    return {
        "validators": validators,
        "gateways": len(gws),
        "machines": machines * len(gws),
        "tick_ms": tick_ms,
        "seconds": dt,
        "offered": spooled / dt,
        "finalized": final / dt,
        "archived": archived / dt,
        # Extrinsic bytes of the finalized blocks of the run per reading their commitments
        # stand for (the readings themselves are not on chain).
        "chain_bytes_per_reading": chain_bytes / chain_readings if chain_readings else None,
        "archive_lag_s": max((b.get("archive_lag_s") or 0 for b in s1), default=0),
        "p50": _pct(hist, bucket, 0.5),
        "p99": _pct(hist, bucket, 0.99),
        "chain_p50": _pct(chain, bucket, 0.5),
        "chain_p99": _pct(chain, bucket, 0.99),
        "backlog": sum(b.get("backlog", 0) for b in s1),
        "backlog_start": sum(a.get("backlog", 0) for a in s0),
        "lost": sum(b.get("batches_lost", 0) for b in s1),
        "finalized_height": max((h.get("finalized", 0) for h in heights), default=0),
        "cpu_validators": _rate(c0[0], c1[0], dt),
        "cpu_gateways": _rate(c0[1], c1[1], dt),
    }


def _rate(a: float | None, b: float | None, dt: float) -> float | None:
    return None if a is None or b is None else (b - a) / dt


def _row(t: Table, r: dict[str, Any]) -> None:
    def s(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    t.add_row(
        str(r["validators"]),
        f"{r['machines']} every {r['tick_ms']} ms",
        f"{r['offered']:,.0f}",
        f"[bold]{r['finalized']:,.0f}[/]",
        f"{r['archived']:,.0f} (lag {r['archive_lag_s']:.1f} s)",
        s(r["chain_bytes_per_reading"]),
        f"{s(r['p50'])} / {s(r['p99'])}",
        f"{s(r['chain_p50'])} / {s(r['chain_p99'])}",
        f"{r['backlog_start']:,} -> {r['backlog']:,}",
        str(r["lost"]),
        f"{s(r['cpu_validators'])} / {s(r['cpu_gateways'])}",
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--machines", type=int, help="per gateway (default: a sweep, see below)")
    ap.add_argument("--tick-ms", type=int, default=250)
    ap.add_argument("--validators", type=int, default=4)
    ap.add_argument("--max-delay-ms", type=int, default=1000, help="a batch's longest wait")
    ap.add_argument(
        "--slot-lead-ms", type=int, default=300, help="batches leave this long before a slot"
    )
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--warmup", type=float, default=15)
    ap.add_argument("--quick", action="store_true", help="one short, small run")
    ap.add_argument("--keep", type=Path, help="run in this folder and keep it (logs)")
    ap.add_argument(
        "--no-reports",
        action="store_true",
        help="validators without facility reports (make run has them: a comparison)",
    )
    args = ap.parse_args(argv)
    # (validators, machines per gateway, tick ms): the 4-validator devnet at four loads (the
    # last ~50,000 readings/s, the goal's scale), and one validator alone (the gateway and
    # block import without replication to 3 more nodes).
    runs = [(args.validators, args.machines, args.tick_ms)]
    if args.quick:
        runs, args.seconds, args.warmup = [(4, 5, 250)], 15, 10
    elif args.machines is None:
        runs = [(4, 5, 250), (4, 20, 100), (4, 40, 100), (4, 42, 40), (1, 120, 50)]
    t = Table(title="gateway: simulated readings to finalized blocks (readings/s)")
    cols = ("validators", "machines", "offered", "finalized", "archived",
            "chain bytes / reading", "p50 / p99 s",
            "submitted: p50 / p99 s", "backlog", "lost",
            "CPU cores: validators / gateways")  # fmt: skip
    for col in cols:
        t.add_column(col, justify="right")
    for validators, machines, tick in runs:
        r = run(
            machines,
            tick,
            args.seconds,
            args.warmup,
            validators,
            keep=args.keep,
            max_delay_ms=args.max_delay_ms,
            slot_lead_ms=args.slot_lead_ms,
            reports=not args.no_reports,
        )
        _row(t, r)
    Console().print(t)
    Console().print(
        "offered: readings into the gateways' spools; finalized: readings whose batches' "
        "commitments the gateways saw in finalized blocks; archived: readings their "
        "facility's archive took (lag: the oldest final batch's wait at the end); chain "
        "bytes / reading: extrinsic bytes of the run's finalized blocks per reading "
        "committed; latency: reading arrival to finalized (submitted: from the extrinsic's "
        "submission, the chain's share)."
    )


if __name__ == "__main__":
    main()
