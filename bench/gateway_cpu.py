"""The gateway's CPU cost per reading: one gateway, one ``--dev`` node, a paced simulator.

    python -m bench.gateway_cpu [--machines 100 --tick-ms 100 --seconds 20 --warmup 12]

Provisions a gateway with ``--machines`` simulated machines (about 12 readings each per
tick, so 100 machines every 100 ms offer about 12,000 readings/s), starts a ``--dev``
single-validator node with their twins and devices at genesis and the gateway process, and
after ``--warmup`` seconds measures over ``--seconds``: the gateway process's CPU time
(utime + stime from /proc, split by thread, and the system share), readings spooled and
finalized (its status.json), and so CPU microseconds per reading spooled. ``--profile
FILE`` runs the gateway under cProfile (its stats go to FILE.main and FILE.spool on exit;
the CPU figures then include the profiler's overhead).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from twinchain.client import RpcClient
from twinchain.gateway.provision import with_gateway, write_gateway
from twinchain.machines.simulator import default_machines
from twinchain.node.chain_spec import dev_spec

TICKS = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu(pid: int) -> tuple[float, dict[str, float]]:
    """(process CPU seconds, CPU seconds per thread: the main one, where the event loop
    runs, and the others by id: the spool's worker, uvloop's, SQLite's; and "system": the
    kernel's share of the total)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12])) / TICKS
    threads: dict[str, float] = {"system": int(fields[12]) / TICKS}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                raw = f.read()
        except OSError:
            continue
        name = "main" if int(tid) == pid else f"thread-{tid}"
        tf = raw.rsplit(")", 1)[1].split()
        threads[name] = (int(tf[11]) + int(tf[12])) / TICKS
    return total, threads


def _status(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / "status.json").read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return {}


def run(
    machines: int,
    tick_ms: int,
    seconds: float,
    warmup: float,
    *,
    profile: Path | None = None,
    keep: Path | None = None,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="twinchain-gwcpu-") as tmp:
        base = keep or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        port = _free_port()
        ms = default_machines(machines)
        gw = write_gateway(
            base / "gw",
            node=f"http://127.0.0.1:{port}",
            machines=ms,
            first_twin=0,
            tick_ms=tick_ms,
            realtime=True,
            batching={
                "max_delay_ms": 500,
                "max_readings_per_xt": 4096,
                "max_in_flight": 24,
                "high_water": 400_000,
                "low_water": 200_000,
            },
        )
        spec = with_gateway(dev_spec().to_json(), gw, ms, tick_ms=tick_ms)
        (base / "spec.json").write_text(json.dumps(spec))
        node_cmd = [
            sys.executable, "-m", "twinchain", "--log", "warning", "node",
            "--chain", str(base / "spec.json"), "--validator", "--key", "//Alice",
            "--base-path", str(base / "chain"), "--rpc-port", str(port),
            "--no-prometheus", "--no-p2p",
        ]  # fmt: skip
        gw_cmd = [sys.executable, "-m", "twinchain", "gateway", "--config", str(gw.config)]
        if profile is not None:
            gw_cmd = [sys.executable, "-m", "bench.gateway_cpu", "--child", str(gw.config)]
            gw_cmd += ["--profile", str(profile)]
        procs: list[subprocess.Popen[bytes]] = []
        try:
            procs.append(
                subprocess.Popen(
                    node_cmd, stdout=(base / "node.log").open("ab"), stderr=subprocess.STDOUT
                )
            )
            rpc = RpcClient(f"http://127.0.0.1:{port}", timeout=2)
            end = time.monotonic() + 60
            while True:
                try:
                    rpc.call("system_health")
                    break
                except Exception:
                    if time.monotonic() > end or procs[0].poll() is not None:
                        raise RuntimeError(f"the node did not start; see {base}/node.log") from None
                    time.sleep(0.2)
            rpc.close()
            g = subprocess.Popen(
                gw_cmd, stdout=(base / "gateway.log").open("ab"), stderr=subprocess.STDOUT
            )
            procs.append(g)
            time.sleep(warmup)
            s0, (c0, th0), t0 = _status(gw.folder), _cpu(g.pid), time.monotonic()
            time.sleep(seconds)
            s1, (c1, th1), t1 = _status(gw.folder), _cpu(g.pid), time.monotonic()
            node_cpu = _cpu(procs[0].pid)[0]
        finally:
            for p in reversed(procs):
                p.send_signal(signal.SIGINT)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
    dt = t1 - t0
    spooled = s1.get("spooled", 0) - s0.get("spooled", 0)
    final = s1.get("readings_final", 0) - s0.get("readings_final", 0)
    cpu = c1 - c0
    threads = {k: v - th0.get(k, 0.0) for k, v in th1.items()}
    return {
        "machines": machines,
        "tick_ms": tick_ms,
        "seconds": dt,
        "offered": machines * 12 * 1000 / tick_ms,
        "spooled_per_s": spooled / dt,
        "final_per_s": final / dt,
        "cpu_s": cpu,
        "cpu_share": cpu / dt,
        "us_per_reading": cpu / spooled * 1e6 if spooled else float("nan"),
        "threads": {
            k: round(v, 2) for k, v in sorted(threads.items(), key=lambda x: -x[1]) if v >= 0.05
        },
        "readings_per_batch": spooled
        / max(1, s1.get("batches_signed", 0) - s0.get("batches_signed", 0)),
        "backlog": s1.get("backlog"),
        "lost": s1.get("batches_lost"),
        "node_cpu_s_total": node_cpu,
    }


def _profiled_gateway(config: Path, out: Path) -> None:
    """Run a gateway with cProfile on the event loop's thread and on the spool's worker
    (stats to ``out``.main and ``out``.spool; cProfile alone sees one thread), timed in
    thread CPU time."""
    import cProfile
    import threading

    from twinchain.gateway import runner, state
    from twinchain.gateway.config import load

    workers: dict[int, cProfile.Profile] = {}
    plain = state.GatewayState.db

    async def db(self: state.GatewayState, fn: Any, *args: Any) -> Any:
        def profiled(*a: Any) -> Any:
            p = workers.get(threading.get_ident())
            if p is None:
                p = workers[threading.get_ident()] = cProfile.Profile(time.thread_time)
            p.enable()
            try:
                return fn(*a)
            finally:
                p.disable()

        return await plain(self, profiled, *args)

    state.GatewayState.db = db  # type: ignore[method-assign]
    prof = cProfile.Profile(time.thread_time)  # CPU time: waits (fsync, idle loop) are free
    prof.enable()
    try:
        runner.run(load(config))
    finally:
        prof.disable()
        prof.dump_stats(f"{out}.main")
        for p in workers.values():
            p.dump_stats(f"{out}.spool")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--machines", type=int, default=100)
    ap.add_argument("--tick-ms", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--warmup", type=float, default=12)
    ap.add_argument("--profile", type=Path, help="cProfile the gateway, stats to this file")
    ap.add_argument("--keep", type=Path, help="run in this folder and keep it (logs)")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child is not None:
        _profiled_gateway(args.child, args.profile)
        return
    r = run(
        args.machines,
        args.tick_ms,
        args.seconds,
        args.warmup,
        profile=args.profile,
        keep=args.keep,
    )
    print(
        f"gateway: {r['machines']} machines every {r['tick_ms']} ms (~{r['offered']:,.0f} "
        f"readings/s offered), {r['seconds']:.1f} s measured\n"
        f"  spooled   {r['spooled_per_s']:,.0f} readings/s\n"
        f"  finalized {r['final_per_s']:,.0f} readings/s\n"
        f"  CPU       {r['cpu_share'] * 100:.1f}% of a core, "
        f"{r['us_per_reading']:.2f} us per reading spooled\n"
        f"  threads   {r['threads']}\n"
        f"  {r['readings_per_batch']:.0f} readings per device batch\n"
        f"  backlog {r['backlog']}, lost batches {r['lost']}"
    )


if __name__ == "__main__":
    main()
