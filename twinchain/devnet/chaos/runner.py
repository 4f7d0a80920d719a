"""One chaos run: the devnet's validators as separate hosts, seeded faults, invariants.

The devnet is the one ``twinchain devnet up`` plans (:mod:`twinchain.devnet.manager`: keys,
spec, ports, bootnodes, the facilities' domain and simulating gateways), with each validator
in its own network namespace (:mod:`.netns`) and its database on a tmpfs of its own (so that
any of them can have its disk filled). The gateways run in the root namespace and stream to
their validator's RPC over the bridge for the whole run; their simulators stop after the run's
length, so that what they made can be counted on chain at the end.

Faults run one at a time, spread evenly over the run, in the seeded plan's order
(:mod:`.faults`); each ends with a heal, and the time from the heal to finality on every live
node is the fault's recovery (:mod:`.invariants`). Cleanup (processes, mounts, namespaces,
bridge) runs in ``finally``; a state file per run under ``/run/twinchain-chaos`` lets the next
run (or ``--cleanup``) remove what a run killed with SIGKILL left behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console
from rich.table import Table

from twinchain.client import RpcClient
from twinchain.devnet import manager
from twinchain.devnet.chaos import faults as fx
from twinchain.devnet.chaos import invariants as inv
from twinchain.devnet.chaos.netns import (
    Netem,
    NetnsUnavailable,
    Network,
    free_subnet,
    leftover_runs,
    probe,
)
from twinchain.devnet.chaos.netns import teardown as net_teardown
from twinchain.devnet.domain import GatewayInfo

log = logging.getLogger("twinchain.chaos")
STATE_DIR = Path("/run/twinchain-chaos")
#: Time a disk-full validator gets to notice and stop.
DISK_FULL_STOP_S = 30.0


@dataclass
class Options:
    seed: int = 1
    minutes: float = 10.0
    faults: int = 40
    validators: int = 4
    slot_ms: int = 1000
    base_dir: Path | None = None
    json_out: Path | None = None
    netns: bool = True  # False: everything on 127.0.0.1, only the faults that need no netns
    netem: Netem = field(default_factory=Netem)
    kinds: tuple[str, ...] = fx.ALL_KINDS
    rss_limit_mb: float = 1024.0
    disk_mb: int = 1024  # each validator's database tmpfs
    settle_s: float = 120.0  # after the last fault: telemetry to settle
    gateways: bool = True
    keep: bool = False  # keep the run's folder (logs) even when it passed
    #: The validators' ``-l``: the voter's and sync's debug lines are what explain a stall.
    log: str = "info,grandpa=debug,sync=debug"


@dataclass
class FaultRecord:
    index: int
    kind: str
    what: str
    start_s: float
    heal_s: float
    note: str = ""


class Cluster:
    """The validator and gateway processes of a run, started with the devnet's functions."""

    def __init__(self, base: Path, nodes: list[manager.NodeInfo], net: Network | None) -> None:
        self.base, self.nodes, self.net = base, nodes, net
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * len(nodes)
        self.paused: set[int] = set()
        self.gw_procs: list[subprocess.Popen[bytes]] = []
        self.on_change: list[Any] = []
        self.log = ""

    def bootnodes(self, i: int) -> list[str]:
        return [m.multiaddr for j, m in enumerate(self.nodes) if j != i]

    def start(self, i: int, env: dict[str, str] | None = None) -> None:
        wrap = self.net.wrap(i) if self.net is not None else ()
        p = manager.start_node(
            self.base,
            self.nodes[i],
            self.bootnodes(i),
            ["--log", self.log] if self.log else [],
            wrap=wrap,
            env=env,
        )
        self.procs[i] = p
        self.nodes[i].pid = p.pid
        self._changed()

    def running(self, i: int) -> bool:
        p = self.procs[i]
        return p is not None and p.poll() is None

    def live(self, i: int) -> bool:
        return self.running(i) and i not in self.paused

    def pid(self, i: int) -> int:
        return self.procs[i].pid if self.running(i) else 0  # type: ignore[union-attr]

    def kill(self, i: int) -> None:
        p = self.procs[i]
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait(30)

    def term(self, i: int, timeout: float = 15) -> None:
        p = self.procs[i]
        if p is None or p.poll() is not None:
            return
        if i in self.paused:
            self.resume(i)
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(30)

    def pause(self, i: int) -> None:
        self.paused.add(i)
        os.kill(self.pid(i), signal.SIGSTOP)

    def resume(self, i: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.procs[i].pid, signal.SIGCONT)  # type: ignore[union-attr]
        self.paused.discard(i)

    def start_gateways(self, gateways: list[GatewayInfo], ticks: int) -> None:
        for g in gateways:
            cfg = Path(g.config)
            # The simulator stops after the run's length: then its readings can be counted.
            text = cfg.read_text()
            if "\nticks = " not in text:
                cfg.write_text(text.replace("realtime = true", f"realtime = true\nticks = {ticks}"))
            p = manager.start_gateway(g)
            g.pid = p.pid
            self.gw_procs.append(p)
        self._changed()

    def pids(self) -> list[int]:
        return [p.pid for p in (*self.procs, *self.gw_procs) if p is not None and p.poll() is None]

    def stop_all(self) -> None:
        for i in list(self.paused):
            self.resume(i)
        manager._stop([p.pid for p in self.gw_procs if p.poll() is None], 15)
        manager._stop([p.pid for p in self.procs if p is not None and p.poll() is None], 20)
        for p in (*self.procs, *self.gw_procs):
            if p is not None:
                with contextlib.suppress(Exception):
                    p.wait(5)

    def _changed(self) -> None:
        for fn in self.on_change:
            fn()


# --------------------------------------------------------------------------- stale runs


def _state_file(run_id: str) -> Path:
    return STATE_DIR / f"{run_id}.json"


def _write_state(run_id: str, data: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = _state_file(run_id).with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(_state_file(run_id))


def sweep_stale(console: Console | None = None) -> list[str]:
    """Remove what runs whose harness is gone left behind: their processes (only those whose
    command line is a twinchain program), tmpfs mounts, namespaces and bridge."""
    swept = []
    states = sorted(STATE_DIR.glob("*.json")) if STATE_DIR.exists() else []
    known = set()
    for path in states:
        try:
            st = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        known.add(st.get("run_id", path.stem))
        if psutil.pid_exists(int(st.get("harness", 0))):
            continue  # that run is still going
        for pid in st.get("pids", []):
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                if "twinchain" in " ".join(proc.cmdline()):
                    proc.kill()
        for m in st.get("mounts", []):
            subprocess.run(["umount", "-l", m], check=False, capture_output=True)
        net_teardown(st.get("run_id", path.stem), int(st.get("count", 8)))
        path.unlink(missing_ok=True)
        swept.append(st.get("run_id", path.stem))
    # Namespaces of a run that died before writing its state file.
    for rid in leftover_runs() - known:
        net_teardown(rid)
        swept.append(rid)
    if swept and console is not None:
        console.print(f"removed what earlier chaos runs left behind: {', '.join(swept)}")
    return swept


# --------------------------------------------------------------------------- the run


def _sleep_until(t: float) -> None:
    while (d := t - time.monotonic()) > 0:
        time.sleep(min(d, 0.5))


def _durations(f: fx.Fault, interval: float) -> float:
    """A fault holds at most 80 % of the spacing between faults (a short run's faults shrink)."""
    return max(min(f.duration_s, 0.8 * interval), 1.0)


def run(opts: Options, console: Console | None = None) -> dict[str, Any]:
    console = console or Console()
    sweep_stale(console)
    run_id = secrets.token_hex(3)
    notes: list[str] = []
    skipped: dict[str, str] = {}
    net: Network | None = None
    if opts.netns:
        why = probe()
        if why is not None:
            notes.append(
                f"network namespaces unavailable ({why}): validators run on 127.0.0.1, "
                "so only the faults that need none run"
            )
            opts.netns = False
    kinds = list(opts.kinds)
    for k in fx.NEEDS_NETNS:
        if k in kinds and not opts.netns:
            skipped[k] = "needs network namespaces"
    lib = fx.libfaketime()
    if fx.SKEW in kinds and lib is None:
        skipped[fx.SKEW] = "libfaketime is not installed (Debian: apt-get install faketime)"
    base = opts.base_dir or Path(tempfile.mkdtemp(prefix=f"twinchain-chaos-{run_id}-"))
    base.mkdir(parents=True, exist_ok=True)
    if fx.DISK_FULL in kinds:
        why = fx.can_mount_tmpfs(base / ".probe")
        if why is not None:
            skipped[fx.DISK_FULL] = why
    kinds = [k for k in kinds if k not in skipped]
    if not kinds:
        raise RuntimeError(f"no fault kind can run here: {skipped}")
    for n in notes:
        console.print(f"[yellow]note:[/] {n}")
    for k, why in skipped.items():
        console.print(f"[yellow]skipped:[/] {k}: {why}")

    plan = fx.plan(opts.seed, opts.faults, opts.validators, tuple(kinds), opts.slot_ms)
    disks: dict[int, fx.Disk] = {}
    cluster: Cluster | None = None
    mon: inv.Monitor | None = None
    records: list[FaultRecord] = []
    state: dict[str, Any] = {"run_id": run_id, "harness": os.getpid(), "count": opts.validators,
                             "mounts": [], "pids": [], "base": str(base)}  # fmt: skip
    _write_state(run_id, state)
    result: dict[str, Any] = {}
    t_start = time.monotonic()
    old_term = signal.signal(signal.SIGTERM, _raise_exit)  # SIGTERM cleans up as Ctrl-C does
    try:
        if opts.netns:
            net = Network(run_id, opts.validators, free_subnet(random.Random()), opts.netem)
            try:
                net.setup()
                if net.netem_error is not None and net.nft_loss_pct is not None:
                    notes.append(
                        f"no delay or jitter on the links: {net.netem_error}; "
                        f"{net.nft_loss_pct:g} % loss by nftables instead"
                    )
                    console.print(f"[yellow]note:[/] {notes[-1]}")
                elif net.netem_error is not None:
                    notes.append(f"no delay, jitter or loss on the links: {net.netem_error}")
                    console.print(f"[yellow]note:[/] {notes[-1]}")
            except NetnsUnavailable as exc:
                notes.append(f"network namespaces failed ({exc}): running on 127.0.0.1")
                console.print(f"[yellow]note:[/] {notes[-1]}")
                net, opts.netns = None, False
                for k in fx.NEEDS_NETNS:
                    skipped.setdefault(k, "needs network namespaces")
                kinds = [k for k in kinds if k not in fx.NEEDS_NETNS]
                plan = fx.plan(opts.seed, opts.faults, opts.validators, tuple(kinds), opts.slot_ms)
        _, nodes, gateways = manager.plan_all(
            base, opts.validators, opts.slot_ms,
            hosts=net.hosts if net is not None else None, faults=False,
        )  # fmt: skip
        for n in nodes:
            n.prometheus_port = 0  # nothing scrapes them here
        if fx.DISK_FULL in kinds:
            for i, n in enumerate(nodes):
                d = fx.Disk(Path(n.base_path) / "chains" / manager.SPEC_ID / "db", opts.disk_mb)
                d.mount()
                disks[i] = d
                state["mounts"].append(str(d.path))
                _write_state(run_id, state)
        cluster = Cluster(base, nodes, net)
        cluster.log = opts.log

        def remember() -> None:
            state["pids"] = cluster.pids()  # type: ignore[union-attr]
            _write_state(run_id, state)

        cluster.on_change.append(remember)
        names = [n.name.split()[0] for n in nodes]
        console.print(
            f"chaos run {run_id}: seed {opts.seed}, {opts.faults} faults over {opts.minutes:g} "
            f"min, {opts.validators} validators "
            + (f"in namespaces on 10.77.{net.subnet}.0/24, netem "
               f"{'off' if net.netem_error else ' '.join(opts.netem.args())}"
               if net else "on 127.0.0.1")
            + f"; folder {base}"
        )  # fmt: skip
        for i in range(len(nodes)):
            cluster.start(i)
        for i, n in enumerate(nodes):
            manager.wait_rpc(n, cluster.procs[i], timeout=90)  # type: ignore[arg-type]
        mon = inv.Monitor(
            nodes, cluster.live, cluster.pid, opts.slot_ms, rss_limit_mb=opts.rss_limit_mb
        )
        mon.start()
        ticks = int(opts.minutes * 60_000 / 1000)  # the devnet simulators tick every second
        if opts.gateways:
            cluster.start_gateways(gateways, ticks)
        if not mon.wait_finalized(2, 120):
            mon.violation("liveness", "the devnet did not finalize #2 within 120 s of starting")
        interval = opts.minutes * 60 / max(opts.faults, 1)
        t0 = time.monotonic()
        for k, f in enumerate(plan):
            # The previous fault's recovery is timed alone: a fault injected before it ends
            # would be counted into it (seen: a skew heal 3 s before a 2|2 split read 15
            # slots). Wait for it up to the liveness goal (slower is a violation anyway).
            mon.wait_recovered(inv.LIVENESS_SLOTS * opts.slot_ms / 1000)
            _sleep_until(max(t0 + k * interval, time.monotonic()))
            f.duration_s = _durations(f, interval)
            what = f.describe(names)
            console.print(
                f"[{mon.now():6.1f} s] fault {k + 1}/{len(plan)}: {f.kind} {what} "
                f"({f.duration_s:.1f} s)"
            )
            start_s = mon.now()
            note = _inject(f, cluster, net, disks, mon, lib, nodes)
            records.append(FaultRecord(k, f.kind, what, round(start_s, 1), round(mon.now(), 1),
                                       note))  # fmt: skip
        mon.wait_recovered(60)
        mon.close_recoveries()
        console.print(f"[{mon.now():6.1f} s] faults done; checking telemetry and databases")
        tele: dict[str, Any] = {"checked": False}
        if opts.gateways:
            rpcs: dict[int, RpcClient] = {}

            def rpc_for(i: int) -> RpcClient | None:
                if not cluster.live(i):  # type: ignore[union-attr]
                    return None
                return rpcs.setdefault(i, RpcClient(nodes[i].rpc_url, timeout=10))

            # The simulators end ``ticks`` s after they started; then their spools drain.
            # Waiting on a finality that stopped for good would only make the run longer.
            diffs, total = inv.check_telemetry(
                rpc_for,
                gateways,
                opts.settle_s + 60,
                lambda: mon.stalled(60),  # type: ignore[union-attr]
                # Each gateway's facility node keeps its archive (Parquet every 10 s).
                [Path(n.base_path) / "archive" for n in nodes],
            )
            for r in rpcs.values():
                r.close()
            tele = {"checked": True, "readings": total, "exactly_once": not diffs,
                    "differences": diffs[:20]}  # fmt: skip
            for d in diffs[:20]:
                mon.violation("telemetry", d)
        mon.final_sweep()
        mon.check_memory_growth()
        mon.stop()
        cluster.stop_all()
        dbs = {}
        for n in nodes:
            problem, fin = inv.check_database(n, base / "spec.json", base)
            dbs[n.name] = {"finalized": fin, "ok": problem is None, "problem": problem}
            if problem is not None:
                mon.violation("database", f"{n.name}: {problem}")
            elif fin < mon.seen[nodes.index(n)].finalized:
                mon.violation(
                    "database",
                    f"{n.name}: reopened at finalized #{fin}, it had reported "
                    f"#{mon.seen[nodes.index(n)].finalized}",
                )
        result = {
            "run_id": run_id,
            "seed": opts.seed,
            "minutes": opts.minutes,
            "faults_planned": opts.faults,
            "validators": opts.validators,
            "slot_ms": opts.slot_ms,
            "netns": net is not None,
            "netem": asdict(opts.netem) if net is not None and not net.netem_error else None,
            "nft_loss_pct": None if net is None else net.nft_loss_pct,
            "notes": notes,
            "skipped": skipped,
            "seconds": round(time.monotonic() - t_start, 1),
            "faults": [asdict(r) for r in records],
            "telemetry": tele,
            "databases": dbs,
            "folder": str(base),
            "rss_limit_mb": opts.rss_limit_mb,
            **mon.summary(),
        }
        result["by_kind"] = by_kind(result, opts.slot_ms)
    finally:
        signal.signal(signal.SIGTERM, old_term)
        # Each step on its own: one that fails must not leave the others' leftovers behind.
        steps = [
            mon.stop if mon is not None and mon.is_alive() else None,
            cluster.stop_all if cluster is not None else None,
            *(d.unmount for d in disks.values()),
            net.teardown if net is not None else None,
            lambda: _state_file(run_id).unlink(missing_ok=True),
        ]
        for step in steps:
            if step is not None:
                try:
                    step()
                except Exception:
                    log.exception("chaos cleanup step failed")
        if result and opts.json_out is not None:
            opts.json_out.parent.mkdir(parents=True, exist_ok=True)
            opts.json_out.write_text(inv.dumps(result))
        if result and not result["violations"] and not opts.keep and opts.base_dir is None:
            shutil.rmtree(base, ignore_errors=True)
    return result


def _raise_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _inject(
    f: fx.Fault,
    c: Cluster,
    net: Network | None,
    disks: dict[int, fx.Disk],
    mon: inv.Monitor,
    lib: str | None,
    nodes: list[manager.NodeInfo],
) -> str:
    """Inject ``f``, hold it, heal it and start timing the recovery; returns a note."""
    v = f.targets[0]
    note = ""
    if f.kind == fx.KILL:
        c.kill(v)
        time.sleep(f.duration_s)
        c.start(v)
        mon.healed(f.index, f.kind)
    elif f.kind == fx.PAUSE:
        c.pause(v)
        time.sleep(f.duration_s)
        c.resume(v)
        mon.healed(f.index, f.kind)
    elif f.kind == fx.LINK:
        assert net is not None
        net.link(v, False)
        time.sleep(f.duration_s)
        net.link(v, True)
        mon.healed(f.index, f.kind)
    elif f.kind in (fx.PARTITION_22, fx.PARTITION_31):
        assert net is not None
        net.partition(f.groups)
        time.sleep(f.duration_s)
        net.heal()
        mon.healed(f.index, f.kind)
    elif f.kind == fx.SKEW:
        assert lib is not None
        c.term(v)
        c.start(v, env=fx.faketime_env(lib, f.skew_ms))
        mon.healed(f.index, f"{f.kind} (skewed)")
        time.sleep(f.duration_s)
        c.term(v)
        c.start(v)
        mon.healed(f.index, f.kind)
    elif f.kind == fx.DISK_FULL:
        note = _disk_full(f, c, disks[v], mon, nodes[v])
    return note


def _disk_full(
    f: fx.Fault, c: Cluster, disk: fx.Disk, mon: inv.Monitor, node: manager.NodeInfo
) -> str:
    v = f.targets[0]
    logf = Path(node.base_path) / "node.log"
    log_from = logf.stat().st_size if logf.exists() else 0
    disk.fill()
    end = time.monotonic() + DISK_FULL_STOP_S
    while c.running(v) and time.monotonic() < end:
        time.sleep(0.2)
    p = c.procs[v]
    assert p is not None
    note = ""
    if p.poll() is None:
        mon.violation(
            "disk-full", f"{node.name} still running {DISK_FULL_STOP_S:.0f} s after its disk filled"
        )
        c.kill(v)
        note = "did not stop"
    else:
        with open(logf, "rb") as fh:
            fh.seek(log_from)
            tail = fh.read().decode(errors="replace")
        said = "disk full:" in tail
        # A traceback from the storage layer, not libp2p's noise flushed at exit.
        crashed = "Traceback" in tail and ("plyvel" in tail or "twinchain/storage" in tail)
        if p.returncode != 74 or not said or crashed:
            mon.violation(
                "disk-full",
                f"{node.name} stopped with status {p.returncode}"
                + ("" if said else ", without a 'disk full:' line")
                + (", with a traceback" if crashed else ""),
            )
        note = f"stopped with status {p.returncode}" + (" (disk full: ...)" if said else "")
    time.sleep(f.duration_s)
    disk.free()
    c.start(v)
    mon.healed(f.index, f.kind)
    return note


# --------------------------------------------------------------------------- report


def _pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, int(-(-q * len(s) // 1)) - 1))]


def by_kind(result: dict[str, Any], slot_ms: int) -> list[dict[str, Any]]:
    faults: dict[str, int] = {}
    for f in result["faults"]:
        faults[f["kind"]] = faults.get(f["kind"], 0) + 1
    rec: dict[str, list[dict[str, Any]]] = {}
    for r in result["recoveries"]:
        kind = r["kind"].removesuffix(" (skewed)")
        rec.setdefault(kind, []).append(r)
    rows = []
    for kind in [*sorted(faults), "all"]:
        rs = [r for k, v in rec.items() if kind in ("all", k) for r in v]
        # A heal finality never came back from counts as forever (shown "never", null in
        # JSON), so a stalled run cannot look fast by leaving its stalls out.
        xs = [math.inf if r["seconds"] is None else r["seconds"] for r in rs]

        def q(x: float | None) -> float | None:
            return None if x is None or math.isinf(x) else x

        rows.append(
            {
                "kind": kind,
                "faults": sum(faults.values()) if kind == "all" else faults[kind],
                "heals": len(rs),
                "recovered": sum(1 for x in xs if not math.isinf(x)),
                "p50_s": q(_pct(xs, 0.5)),
                "p99_s": q(_pct(xs, 0.99)),
                "max_s": q(max(xs) if xs else None),
                "slot_s": slot_ms / 1000,
            }
        )
    return rows


def table(result: dict[str, Any]) -> list[Table]:
    slot = result["slot_ms"] / 1000

    def fmt(x: float | None, row: dict[str, Any]) -> str:
        if x is None:  # a percentile that falls on a heal without recovery
            return "never" if row["heals"] else "-"
        return f"{x:.1f} s ({x / slot:.1f})"

    t = Table(
        title=f"chaos run: seed {result['seed']}, {len(result['faults'])} faults, "
        f"{result['seconds'] / 60:.1f} min, "
        + (
            "127.0.0.1 (no namespaces)"
            if not result["netns"]
            else "namespaces, netem "
            + (
                "on"
                if result["netem"]
                else f"unavailable, {result['nft_loss_pct']:g} % loss by nftables"
                if result.get("nft_loss_pct")
                else "unavailable"
            )
        )
    )
    for col in ("fault", "count", "heals", "recovered", "recovery p50 (slots)", "p99", "max"):
        t.add_column(col, justify="left" if col == "fault" else "right")
    for r in result["by_kind"]:
        style = "bold" if r["kind"] == "all" else ""
        t.add_row(
            r["kind"], str(r["faults"]), str(r["heals"]), str(r["recovered"]),
            fmt(r["p50_s"], r), fmt(r["p99_s"], r), fmt(r["max_s"], r), style=style,
        )  # fmt: skip
    v = Table(title="violations")
    v.add_column("invariant")
    v.add_column("count", justify="right")
    v.add_column("first")
    kinds: dict[str, list[dict[str, Any]]] = {}
    for x in result["violations"]:
        kinds.setdefault(x["kind"], []).append(x)
    for inv_kind in ("safety", "liveness", "telemetry", "database", "disk-full", "memory"):
        xs = kinds.get(inv_kind, [])
        first = f"[{xs[0]['at_s']:.0f} s] {xs[0]['detail']}" if xs else ""
        v.add_row(inv_kind, f"[red]{len(xs)}[/]" if xs else "0", first[:110])
    return [t, v]


def report(result: dict[str, Any], console: Console) -> None:
    for t in table(result):
        console.print(t)
    tele = result["telemetry"]
    if tele.get("checked"):
        console.print(
            f"telemetry: {tele['readings']:,} readings simulated, "
            + ("[green]all on chain exactly once[/]" if tele["exactly_once"] else
               f"[red]{len(tele['differences'])} differences[/]")
        )  # fmt: skip
    dbs = result["databases"]
    ok = sum(1 for d in dbs.values() if d["ok"])
    heights = ", ".join(f"#{d['finalized']}" for d in dbs.values())
    console.print(f"databases: {ok}/{len(dbs)} reopen and replay their finalized chain ({heights})")
    peaks = [m["peak_mb"] for m in result["memory"] if m["peak_mb"] is not None]
    if peaks:
        console.print(f"memory: validator RSS peak {max(peaks):.0f} MiB (bound "
                      f"{result.get('rss_limit_mb', '-')})")  # fmt: skip
    for k, why in result["skipped"].items():
        console.print(f"[yellow]skipped:[/] {k}: {why}")
    for n in result["notes"]:
        console.print(f"[yellow]note:[/] {n}")
    kept = Path(result["folder"]).exists()
    console.print(
        f"{len(result['violations'])} violations; folder {result['folder']}"
        + ("" if kept else " (removed: the run passed; --keep keeps it)")
    )
