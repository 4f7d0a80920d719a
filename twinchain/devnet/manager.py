"""Plans, starts, watches and stops the local devnet (see the package docstring)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from twinchain.node.chain_spec import DEV_ENDOWMENT, ChainSpec, _properties
from twinchain.node.keystore import Keystore
from twinchain.primitives.keys import DEV_NAMES, Keypair
from twinchain.rpc.client import RpcClient

FACILITIES = [
    "Aachen Press Shop",
    "Brno Foundry",
    "Chennai Assembly",
    "Detroit Machining",
    "Eindhoven Electronics",
    "Fukuoka Robotics",
    "Gdansk Welding",
    "Hermosillo Paint",
]
STATE_FILE = "devnet.json"
SPEC_ID = "twinchain_devnet"


class DevnetError(Exception):
    """The devnet cannot be planned, started or found."""


@dataclass
class NodeInfo:
    name: str
    slug: str
    base_path: str
    p2p_port: int
    rpc_port: int
    public_key: str
    prometheus_port: int = 0
    pid: int = 0
    multiaddr: str = ""

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.rpc_port}"


def free_ports(n: int) -> list[int]:
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def devnet_spec(keys: list[Keypair], slot_ms: int) -> ChainSpec:
    return ChainSpec(
        name="twinchain devnet",
        id=SPEC_ID,
        chain_type="Local",
        properties=_properties(),
        genesis={
            "authority": {
                "authorities": ["0x" + k.public.hex() for k in keys],
                "slot_duration_ms": slot_ms,
                "session_length": 600,
            },
            "balances": {
                "balances": [[f"//{n}", DEV_ENDOWMENT] for n in DEV_NAMES]
                + [["0x" + k.public.hex(), DEV_ENDOWMENT] for k in keys]
            },
            "sudo": {"key": "//Alice"},
            "timestamp": {},
        },
    )


def plan(base_dir: Path, validators: int, slot_ms: int) -> tuple[ChainSpec, list[NodeInfo]]:
    """Keys, spec, folders and ports for a new devnet in ``base_dir``."""
    if not 1 <= validators <= len(FACILITIES):
        raise DevnetError(f"--validators must be between 1 and {len(FACILITIES)}")
    base_dir.mkdir(parents=True, exist_ok=True)
    # A devnet is throwaway: a new one never reuses an old one's chains (new keys, new genesis).
    for name in FACILITIES:
        shutil.rmtree(base_dir / name.lower().replace(" ", "-"), ignore_errors=True)
    keys = [Keypair.generate() for _ in range(validators)]
    spec = devnet_spec(keys, slot_ms)
    (base_dir / "spec.json").write_text(json.dumps(spec.to_json(), indent=2))
    ports = free_ports(3 * validators)
    nodes = []
    for i, (name, kp) in enumerate(zip(FACILITIES, keys, strict=False)):
        slug = name.lower().replace(" ", "-")
        base = base_dir / slug
        Keystore(base / "chains" / SPEC_ID / "keystore").insert("aura", kp)
        p2p, rpc, prom = ports[3 * i : 3 * i + 3]
        nodes.append(NodeInfo(name, slug, str(base), p2p, rpc, kp.public.hex(), prom))
    return spec, nodes


def start_node(
    base_dir: Path,
    node: NodeInfo,
    bootnodes: list[str],
    extra: Sequence[str] = (),
    validator: bool = True,
) -> subprocess.Popen[bytes]:
    """Start one node process of the devnet (``extra``: more ``twinchain node`` options)."""
    cmd = [
        sys.executable, "-m", "twinchain.node.cli", "node",
        "--chain", str(base_dir / "spec.json"),
        "--base-path", node.base_path,
        "--name", node.name,
        "--port", str(node.p2p_port),
        "--rpc-port", str(node.rpc_port),
    ]  # fmt: skip
    cmd += (
        ["--prometheus-port", str(node.prometheus_port)]
        if node.prometheus_port
        else ["--no-prometheus"]
    )
    if validator:
        cmd.append("--validator")
    for b in bootnodes:
        cmd += ["--bootnodes", b]
    cmd += list(extra)
    log = open(Path(node.base_path) / "node.log", "ab")
    # A session of its own: Ctrl-C in the terminal reaches `up`, which stops nodes cleanly.
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_rpc(node: NodeInfo, proc: subprocess.Popen[bytes], timeout: float = 60) -> RpcClient:
    rpc = RpcClient(node.rpc_url, timeout=2)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise DevnetError(f"{node.name} exited; see {node.base_path}/node.log")
        try:
            rpc.call("system_health")
            return rpc
        except Exception:
            time.sleep(0.2)
    raise DevnetError(f"{node.name} did not answer RPC within {timeout:.0f} s")


def up(base_dir: Path, validators: int, slot_ms: int = 1000) -> list[NodeInfo]:
    """Start the devnet; returns the running nodes (also written to devnet.json)."""
    state = base_dir / STATE_FILE
    if state.exists() and any(_alive(n.pid) for n in load(base_dir)):
        raise DevnetError(f"a devnet is already running in {base_dir} (devnet down first)")
    _, nodes = plan(base_dir, validators, slot_ms)
    boot: list[str] = []
    try:
        for node in nodes:
            proc = start_node(base_dir, node, boot)
            node.pid = proc.pid
            rpc = wait_rpc(node, proc)
            addrs = rpc.call("system_localListenAddresses")
            node.multiaddr = addrs[0] if addrs else ""
            if node.multiaddr:  # later nodes dial every earlier one: a full mesh
                boot.append(node.multiaddr)
            save(base_dir, nodes)
    except BaseException:
        down(base_dir, nodes)
        raise
    return nodes


def save(base_dir: Path, nodes: list[NodeInfo]) -> None:
    tmp = base_dir / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps({"nodes": [asdict(n) for n in nodes]}, indent=2))
    tmp.replace(base_dir / STATE_FILE)


def load(base_dir: Path) -> list[NodeInfo]:
    try:
        data = json.loads((base_dir / STATE_FILE).read_text())
        return [NodeInfo(**n) for n in data["nodes"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DevnetError(f"no devnet in {base_dir}: {exc}") from None


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def down(base_dir: Path, nodes: list[NodeInfo] | None = None, timeout: float = 15) -> int:
    """SIGTERM every node, SIGKILL those still running after ``timeout``; returns how many."""
    nodes = load(base_dir) if nodes is None else nodes
    running = [n for n in nodes if _alive(n.pid)]
    for n in running:
        os.kill(n.pid, signal.SIGTERM)
    end = time.monotonic() + timeout
    while time.monotonic() < end and any(_alive(n.pid) for n in running):
        time.sleep(0.1)
    for n in running:
        if _alive(n.pid):
            os.kill(n.pid, signal.SIGKILL)
    for n in nodes:
        n.pid = 0
    if (base_dir / STATE_FILE).exists():
        save(base_dir, nodes)
    return len(running)


def node_status(node: NodeInfo) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": node.name,
        "rpc": node.rpc_url,
        "multiaddr": node.multiaddr,
        "running": _alive(node.pid),
    }
    if not out["running"]:
        return out
    try:
        with RpcClient(node.rpc_url, timeout=2) as rpc:
            best = rpc.call("chain_getHeader")
            fin = rpc.call("chain_getHeader", rpc.call("chain_getFinalizedHead"))
            out.update(
                best=int(best["number"], 16),
                finalized=int(fin["number"], 16),
                peers=rpc.call("system_health")["peers"],
                ready=len(rpc.call("author_pendingExtrinsics")),
            )
    except Exception as exc:
        out["error"] = str(exc)[:80]
    return out


def status(base_dir: Path) -> list[dict[str, Any]]:
    return [node_status(n) for n in load(base_dir)]


def table(rows: list[dict[str, Any]], rates: dict[str, float]) -> Table:
    t = Table(title="twinchain devnet", expand=False)
    for col in ("facility", "rpc", "best", "finalized", "peers", "ready txs", "blocks/min"):
        t.add_column(col, justify="right" if col not in ("facility", "rpc") else "left")
    for r in rows:
        if not r.get("running"):
            t.add_row(r["name"], r["rpc"], "[red]down[/]", "", "", "", "")
            continue
        t.add_row(
            r["name"],
            r["rpc"],
            str(r.get("best", "?")),
            str(r.get("finalized", "?")),
            str(r.get("peers", "?")),
            str(r.get("ready", "?")),
            f"{rates.get(r['name'], 0.0):.0f}",
        )
    return t


def watch(base_dir: Path, console: Console, until: float | None = None) -> None:
    """Live table until Ctrl-C (or ``until`` monotonic time)."""
    history: dict[str, list[tuple[float, int]]] = {}
    with Live(console=console, refresh_per_second=2) as live:
        while until is None or time.monotonic() < until:
            rows = status(base_dir)
            now = time.monotonic()
            rates = {}
            for r in rows:
                h = history.setdefault(r["name"], [])
                if "best" in r:
                    h.append((now, r["best"]))
                h[:] = [p for p in h if now - p[0] <= 60]
                if len(h) >= 2 and h[-1][0] > h[0][0]:
                    rates[r["name"]] = (h[-1][1] - h[0][1]) * 60 / (h[-1][0] - h[0][0])
            live.update(table(rows, rates))
            time.sleep(1)
