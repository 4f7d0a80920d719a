"""What a chaos run checks, continuously and at the end.

* **Safety**: every finalized block every node reports, down to every height below its
  finalized head (``chain_getBlockHash`` for each newly finalized height, batched), goes into
  one height -> hash map for the whole run; a second hash at a height is a violation, as is a
  node whose finalized height goes back (after a restart).
* **Liveness**: after each heal (restart, resume, link up, partition healed), the time until
  every live node has finalized past the highest block any node had finalized at the heal.
* **Memory**: each validator's RSS, sampled every 5 s; over the bound is a violation, and so is
  a process that ends a long life at more than twice what it used a minute in.
* At the end, **exactly-once telemetry** (every reading each gateway's seeded simulator made
  is on chain once: counts and sums per machine and metric, no sequence gaps) and the
  **databases** (each opens, its finalized chain exports and re-imports into an empty
  database, re-executing every block, to the same block hash).
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections import defaultdict
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from twinchain.client import RpcClient
from twinchain.devnet.domain import GatewayInfo
from twinchain.devnet.manager import NodeInfo
from twinchain.protocol.telemetry import DEFAULT_PUBLIC

log = logging.getLogger("twinchain.chaos")

#: The issue's goal: finality back within 10 slots of every heal.
LIVENESS_SLOTS = 10


@dataclass
class Violation:
    kind: str  # safety, liveness, memory, telemetry, database, disk-full
    detail: str
    at_s: float = 0.0  # seconds into the run


@dataclass
class Recovery:
    fault: int
    kind: str
    heal_s: float  # run time of the heal
    target: int  # every live node must finalize at least this height
    seconds: float | None = None  # None: not recovered (yet)
    slots: float | None = None


@dataclass
class NodeSeen:
    best: int = -1
    finalized: int = -1
    checked: int = 0  # heights up to here were compared with the run's map
    rss_mb: list[tuple[float, float, int]] = field(default_factory=list)  # (t, MiB, pid)


class Monitor(threading.Thread):
    """Polls every node's RPC on its own thread; ``stop()`` ends it."""

    def __init__(
        self,
        nodes: list[NodeInfo],
        live: Callable[[int], bool],
        pid: Callable[[int], int],
        slot_ms: int,
        *,
        interval: float = 0.5,
        rss_limit_mb: float = 1024,
    ) -> None:
        super().__init__(daemon=True, name="chaos-monitor")
        self.nodes, self.live, self.pid = nodes, live, pid
        self.slot_ms, self.interval, self.rss_limit_mb = slot_ms, interval, rss_limit_mb
        self.t0 = time.monotonic()
        self.lock = threading.Lock()
        self.seen = [NodeSeen() for _ in nodes]
        self.hashes: dict[int, tuple[str, str]] = {}  # height -> (hash, first node seen)
        self.violations: list[Violation] = []
        self.recoveries: list[Recovery] = []
        self._pending: list[Recovery] = []
        self._halt = threading.Event()
        self._rpcs = [RpcClient(n.rpc_url, timeout=2) for n in nodes]
        self._pool = ThreadPoolExecutor(len(nodes), thread_name_prefix="chaos-poll")
        self._over_rss: set[int] = set()
        self._last_rss = 0.0
        self._top = -1
        self.progress_s = 0.0  # run time at which the highest finalized height last grew

    def now(self) -> float:
        return time.monotonic() - self.t0

    def violation(self, kind: str, detail: str) -> None:
        with self.lock:
            self.violations.append(Violation(kind, detail, round(self.now(), 1)))
        log.warning("VIOLATION %s: %s", kind, detail)

    # --------------------------------------------------------------- polling
    def run(self) -> None:
        while not self._halt.is_set():
            start = time.monotonic()
            try:
                self.poll()
            except Exception:  # the monitor must outlive any one bad answer
                log.exception("monitor poll failed")
            self._halt.wait(max(0.0, self.interval - (time.monotonic() - start)))

    def stop(self) -> None:
        self._halt.set()
        self.join(10)
        self._pool.shutdown(wait=False, cancel_futures=True)
        for r in self._rpcs:
            r.close()

    def _query(self, i: int) -> tuple[int, int, dict[int, str]] | None:
        """(best, finalized, {height: hash} for heights newly below the finalized head)."""
        if not self.live(i):
            return None
        rpc = self._rpcs[i]
        try:
            fin_hash, best = rpc.batch([("chain_getFinalizedHead", []), ("chain_getHeader", [])])
            fin = int(rpc.call("chain_getHeader", fin_hash)["number"], 16)
            start = self.seen[i].checked + 1
            # At most 256 heights a poll: a node that finalized many at once is read in steps.
            heights = list(range(start, min(fin, start + 255) + 1))
            got = rpc.batch([("chain_getBlockHash", [h]) for h in heights]) if heights else []
            out = dict(zip(heights, got, strict=True))
            out[fin] = fin_hash
            return int(best["number"], 16), fin, out
        except Exception:
            return None  # paused, starting, gone: the next poll tries again

    def poll(self) -> None:
        answers = list(self._pool.map(self._query, range(len(self.nodes))))
        now = self.now()
        for i, a in enumerate(answers):
            if a is None:
                continue
            best, fin, hashes = a
            seen = self.seen[i]
            if fin < seen.finalized:
                self.violation(
                    "safety",
                    f"{self.nodes[i].name}: finalized went back from #{seen.finalized} to #{fin}",
                )
                seen.checked = min(seen.checked, fin)
            seen.best, seen.finalized = best, fin
            for h, hsh in sorted(hashes.items()):
                if hsh is None:
                    continue
                first = self.hashes.setdefault(h, (hsh, self.nodes[i].name))
                if first[0] != hsh:
                    self.violation(
                        "safety",
                        f"two finalized blocks at #{h}: {first[0][:18]} on {first[1]}, "
                        f"{hsh[:18]} on {self.nodes[i].name}",
                    )
                if h == seen.checked + 1 and h <= fin:
                    seen.checked = h
        top = max(s.finalized for s in self.seen)
        if top > self._top:
            self._top, self.progress_s = top, now
        self._check_recoveries(now)
        if now - self._last_rss >= 5:
            self._last_rss = now
            self._sample_rss(now)

    def _check_recoveries(self, now: float) -> None:
        live = [i for i in range(len(self.nodes)) if self.live(i)]
        with self.lock:
            for r in list(self._pending):
                if live and all(self.seen[i].finalized >= r.target for i in live):
                    r.seconds = round(now - r.heal_s, 2)
                    r.slots = round(r.seconds * 1000 / self.slot_ms, 1)
                    self._pending.remove(r)
                    log.info("fault %d (%s): finality back in %.1f s", r.fault, r.kind, r.seconds)

    def _sample_rss(self, now: float) -> None:
        for i in range(len(self.nodes)):
            pid = self.pid(i)
            if pid <= 0:
                continue
            try:
                mb = psutil.Process(pid).memory_info().rss / 2**20
            except psutil.Error:
                continue
            self.seen[i].rss_mb.append((round(now, 1), round(mb, 1), pid))
            if mb > self.rss_limit_mb and i not in self._over_rss:
                self._over_rss.add(i)
                self.violation(
                    "memory", f"{self.nodes[i].name}: RSS {mb:.0f} MiB > {self.rss_limit_mb} MiB"
                )

    # --------------------------------------------------------------- liveness
    def healed(self, fault: int, kind: str) -> Recovery:
        """Start timing the recovery from a heal that happens now."""
        with self.lock:
            top = max((s.finalized for s in self.seen), default=0)
            r = Recovery(fault, kind, round(self.now(), 2), top + 1)
            self.recoveries.append(r)
            self._pending.append(r)
        return r

    def wait_recovered(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if not self._pending:
                    return True
            time.sleep(0.2)
        return False

    def stalled(self, seconds: float = 60) -> bool:
        """No node has finalized anything new for ``seconds``."""
        return self.now() - self.progress_s > seconds

    def close_recoveries(self) -> None:
        """Every recovery still open, or slower than the goal, is a liveness violation."""
        now = self.now()
        for r in self.recoveries:
            if r.seconds is None:
                self.violation(
                    "liveness",
                    f"fault {r.fault} ({r.kind}): no finality past #{r.target - 1} on every live "
                    f"node {now - r.heal_s:.0f} s after the heal",
                )
            elif r.slots is not None and r.slots > LIVENESS_SLOTS:
                self.violation(
                    "liveness",
                    f"fault {r.fault} ({r.kind}): finality back after {r.slots:.1f} slots "
                    f"(> {LIVENESS_SLOTS})",
                )

    def wait_finalized(self, height: int, timeout: float) -> bool:
        """Every node live now has finalized ``height`` (warm-up)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            live = [i for i in range(len(self.nodes)) if self.live(i)]
            if live and all(self.seen[i].finalized >= height for i in live):
                return True
            time.sleep(0.3)
        return False

    def final_sweep(self) -> None:
        """Every height on every node once more, against the run's map (nodes still up)."""
        for i, rpc in enumerate(self._rpcs):
            if not self.live(i):
                continue
            try:
                fin = self.seen[i].finalized
                for lo in range(1, fin + 1, 256):
                    hs = list(range(lo, min(fin, lo + 255) + 1))
                    got = rpc.batch([("chain_getBlockHash", [h]) for h in hs])
                    for h, hsh in zip(hs, got, strict=True):
                        first = self.hashes.setdefault(h, (hsh, self.nodes[i].name))
                        if hsh is not None and first[0] != hsh:
                            self.violation(
                                "safety",
                                f"final sweep: #{h} is {hsh[:18]} on {self.nodes[i].name}, "
                                f"{first[0][:18]} on {first[1]}",
                            )
            except Exception as exc:
                log.warning("final sweep of %s failed: %s", self.nodes[i].name, exc)

    def check_memory_growth(self, factor: float = 2.0, slack_mb: float = 100) -> None:
        """The longest-lived process of each validator must not end above ``factor`` times
        (plus ``slack_mb``) what it used a minute into its life: a leak grows without end,
        caches stop at their size."""
        for n, s in zip(self.nodes, self.seen, strict=True):
            lives: dict[int, list[tuple[float, float]]] = defaultdict(list)
            for t, mb, pid in s.rss_mb:
                lives[pid].append((t, mb))
            if not lives:
                continue
            life = max(lives.values(), key=lambda xs: xs[-1][0] - xs[0][0])
            if life[-1][0] - life[0][0] < 180:
                continue  # too short a life to tell growth from warm-up
            base = next((mb for t, mb in life if t - life[0][0] >= 60), life[0][1])
            end = life[-1][1]
            if end > factor * base + slack_mb:
                self.violation(
                    "memory",
                    f"{n.name}: RSS grew from {base:.0f} MiB to {end:.0f} MiB in "
                    f"{(life[-1][0] - life[0][0]) / 60:.0f} min",
                )

    def memory_summary(self) -> list[dict[str, Any]]:
        out = []
        for n, s in zip(self.nodes, self.seen, strict=True):
            mbs = [mb for _, mb, _ in s.rss_mb]
            out.append(
                {
                    "node": n.name,
                    "first_mb": mbs[0] if mbs else None,
                    "last_mb": mbs[-1] if mbs else None,
                    "peak_mb": max(mbs) if mbs else None,
                }
            )
        return out

    def summary(self) -> dict[str, Any]:
        return {
            "recoveries": [asdict(r) for r in self.recoveries],
            "violations": [asdict(v) for v in self.violations],
            "memory": self.memory_summary(),
            "finalized": {n.name: s.finalized for n, s in zip(self.nodes, self.seen, strict=True)},
        }


# ------------------------------------------------------------------- telemetry, exactly once


def expected_readings(gw: GatewayInfo) -> dict[tuple[str, int], tuple[int, int]] | None:
    """(count, sum) per (machine, metric) of every reading the gateway's seeded simulator made
    (None until it has finished its ``ticks``): the simulator replayed from its spool's start."""
    from twinchain.machines.simulator import FactorySimulator, MachineConfig

    cfg = tomllib.loads(Path(gw.config).read_text())
    sim_cfg = next(s for s in cfg["sources"] if s["type"] == "simulator")
    ticks = int(sim_cfg.get("ticks", 0))
    spool = Path(gw.folder) / cfg["gateway"]["spool"]
    try:
        db = sqlite3.connect(f"file:{spool}?mode=ro", uri=True, timeout=5)
        try:
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        finally:
            db.close()
    except sqlite3.Error:
        return None
    start, done = meta.get("sim:0:start"), meta.get("sim:0:ticks")
    if start is None or done is None or not ticks or int(done) < ticks:
        return None
    machines = [
        MachineConfig(
            str(m["name"]),
            str(m["class"]),
            initial_wear=float(m.get("initial_wear", 0.0)),
            wear_per_day=float(m.get("wear_per_day", 0.003)),
        )
        for m in sim_cfg["machines"]
    ]
    sim = FactorySimulator(
        int(sim_cfg.get("seed", 0)), machines, start_ms=int(start), tick_ms=int(sim_cfg["tick_ms"])
    )
    sums: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
    for r in sim.run(ticks):
        sums[(r.machine, r.metric)][0] += 1
        sums[(r.machine, r.metric)][1] += r.value
    return {k: (c, s) for k, (c, s) in sums.items()}


def public_only(
    totals: dict[tuple[str, int], tuple[int, int]], public: Collection[int] = DEFAULT_PUBLIC
) -> dict[tuple[str, int], tuple[int, int]]:
    """The (count, sum) of the metrics the twins make public: all the chain aggregates."""
    return {k: v for k, v in totals.items() if k[1] in public}


def archive_totals(
    archive_dir: Path, devices: dict[str, str]
) -> tuple[dict[tuple[str, int], tuple[int, int]], int]:
    """(count, sum) per (name, metric) of the readings a facility archive's Parquet files hold
    for ``devices`` (0x-hex key -> name), and how many (device, seq, idx) rows are there more
    than once (0: each archived reading once). Only flushed readings count (``flush_s``)."""
    import pyarrow.parquet as pq

    names = {k.lower().removeprefix("0x"): n for k, n in devices.items()}
    sums: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
    seen: set[tuple[str, int, int]] = set()
    dupes = 0
    for f in sorted((archive_dir / "readings").glob("twin=*/day=*/*.parquet")):
        cols = pq.read_table(f, columns=["device", "seq", "idx", "metric", "value"]).to_pydict()
        for dev, seq, idx, metric, value in zip(
            cols["device"], cols["seq"], cols["idx"], cols["metric"], cols["value"], strict=True
        ):
            dev = dev.lower().removeprefix("0x")
            name = names.get(dev)
            if name is None:
                continue
            if (dev, seq, idx) in seen:
                dupes += 1
                continue
            seen.add((dev, seq, idx))
            acc = sums[(name, metric)]
            acc[0] += 1
            acc[1] += value
    return {k: (c, v) for k, (c, v) in sums.items()}, dupes


def twin_totals(
    rpc: RpcClient, twins: list[tuple[int, str]]
) -> dict[tuple[str, int], tuple[int, int]]:
    """(count, sum) of the readings on chain per (name, metric), for each (twin id, name): the
    public metrics' only (the chain aggregates public summaries, never a private metric)."""
    out: dict[tuple[str, int], tuple[int, int]] = {}
    for twin, name in twins:
        per: dict[int, list[int]] = defaultdict(lambda: [0, 0])
        for a in rpc.call("twin_telemetryAggregates", twin):
            per[a["metric"]][0] += a["count"]
            per[a["metric"]][1] += a["sum"]
        out.update({(name, m): (c, s) for m, (c, s) in per.items()})
    return out


def chain_readings(
    rpc: RpcClient, gw: GatewayInfo
) -> tuple[dict[tuple[str, int], tuple[int, int]], list[str]]:
    """(count, sum) per (machine, metric) on chain for the gateway's twins, and the devices
    whose sequence numbers have gaps or unsettled batches."""
    cfg = tomllib.loads(Path(gw.config).read_text())
    out = twin_totals(rpc, [(d["twin"], d["name"]) for d in cfg["devices"]])
    bad = []
    for d in cfg["devices"]:
        dev = rpc.call("twin_device", d["key"])
        if dev["gaps"] != 0 or dev["batches"] != dev["nextSeq"]:
            bad.append(f"{d['name']}: gaps {dev['gaps']}, {dev['batches']}/{dev['nextSeq']}")
    return out, bad


def compare_readings(
    expected: dict[tuple[str, int], tuple[int, int]],
    got: dict[tuple[str, int], tuple[int, int]],
    where: str = "on chain",
) -> list[str]:
    """One line for what differs (empty: ``where`` holds exactly what was simulated)."""
    missing = extra = changed = 0
    for key in set(expected) | set(got):
        e, g = expected.get(key, (0, 0)), got.get(key, (0, 0))
        missing += max(0, e[0] - g[0])
        extra += max(0, g[0] - e[0])
        changed += e[0] == g[0] and e[1] != g[1]
    if not (missing or extra or changed):
        return []
    total = sum(c for c, _ in expected.values())
    return [
        f"{missing:,} of {total:,} readings missing {where}, {extra:,} too many"
        + (f", {changed} sums differ" if changed else "")
    ]


def check_telemetry(
    rpc_for: Callable[[int], RpcClient | None],
    gateways: list[GatewayInfo],
    timeout: float,
    stalled: Callable[[], bool] = lambda: False,
    archives: list[Path] | None = None,
) -> tuple[list[str], int]:
    """Wait (up to ``timeout``, or until finality has ``stalled``) until every gateway's
    readings are accounted for exactly once: the public metrics' in the chain's aggregates,
    every reading in its facility's archive (``archives``: each gateway's node's archive
    folder; not checked when None); returns the differences left (empty: exactly once) and
    the readings counted."""
    end = time.monotonic() + timeout
    diffs: list[str] = ["not checked"]
    total = 0
    while time.monotonic() < end:
        diffs, total = [], 0
        for i, gw in enumerate(gateways):
            exp = expected_readings(gw)
            if exp is None:
                diffs.append(f"{gw.slug}: its simulator has not finished its ticks")
                continue
            total += sum(c for c, _ in exp.values())
            rpc = rpc_for(i)
            if rpc is None:
                diffs.append(f"{gw.slug}: no node answers")
                continue
            try:
                got, bad = chain_readings(rpc, gw)
            except Exception as exc:
                diffs.append(f"{gw.slug}: {exc}")
                continue
            diffs += [f"{gw.slug}: {d}" for d in compare_readings(public_only(exp), got) + bad]
            if archives is not None:
                cfg = tomllib.loads(Path(gw.config).read_text())
                devices = {d["key"]: d["name"] for d in cfg["devices"]}
                held, dupes = archive_totals(archives[i], devices)
                diffs += [f"{gw.slug}: {d}" for d in compare_readings(exp, held, "in the archive")]
                if dupes:
                    diffs.append(f"{gw.slug}: {dupes} readings in the archive more than once")
        if not diffs or stalled():
            return diffs, total
        time.sleep(2)
    return diffs, total


# ------------------------------------------------------------------- databases


def check_database(node: NodeInfo, spec_path: Path, work: Path) -> tuple[str | None, int]:
    """Open the stopped node's database, export its finalized chain and re-import it into an
    empty one (every block re-executed); (problem or None, finalized height)."""
    from twinchain.node.blockchain import Blockchain
    from twinchain.node.chain_spec import resolve

    spec = resolve(False, str(spec_path))
    try:
        client = Blockchain(spec, node.base_path, pruning=None)
    except BaseException as exc:  # StorageError too: it is what we are here to find
        return f"does not open: {exc}", -1
    try:
        fin = client.finalized
        best = client.best
        if client.blocks.header(best.hash) is None:
            return "best block header missing", fin.number
    finally:
        client.close()
    if fin.number == 0:
        return None, 0
    py = [sys.executable, "-m", "twinchain"]
    with tempfile.TemporaryDirectory(dir=work, prefix="replay-") as tmp:
        blocks = Path(tmp) / "blocks.bin"
        r = subprocess.run(
            [*py, "export-blocks", "--chain", str(spec_path), "--base-path", node.base_path,
             "--to", str(fin.number), str(blocks)],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if r.returncode != 0:
            return f"export-blocks failed: {r.stderr.strip()[-300:]}", fin.number
        r = subprocess.run(
            [*py, "import-blocks", "--chain", str(spec_path), "--base-path", str(Path(tmp) / "b"),
             "--state-pruning", "archive", str(blocks)],
            capture_output=True, text=True, timeout=900, env={"COLUMNS": "400", **_env()},
        )  # fmt: skip
        if r.returncode != 0:
            return f"import-blocks failed: {(r.stderr + r.stdout).strip()[-300:]}", fin.number
        m = re.search(r"best #(\d+)\s+0x([0-9a-f]+)", re.sub(r"\s+", " ", r.stderr + r.stdout))
        if m is None:
            return f"import-blocks said: {(r.stderr + r.stdout).strip()[-200:]}", fin.number
        if int(m.group(1)) != fin.number or m.group(2) != fin.hash.hex():
            return (
                f"replay ends at #{m.group(1)} 0x{m.group(2)[:16]}, the database's finalized "
                f"is #{fin.number} 0x{fin.hash.hex()[:16]}",
                fin.number,
            )
    return None, fin.number


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "COLUMNS"}


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str)
