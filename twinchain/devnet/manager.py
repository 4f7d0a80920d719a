"""Plans, starts, watches and stops the local devnet (see the package docstring)."""

from __future__ import annotations

import contextlib
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

from twinchain.client import RpcClient
from twinchain.devnet import domain
from twinchain.devnet.domain import GatewayInfo
from twinchain.node.chain_spec import DEV_ENDOWMENT, ChainSpec, _properties
from twinchain.primitives.keys import DEV_NAMES, Keypair
from twinchain.primitives.keystore import Keystore

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
#: The validators' libp2p peer ids: ``up`` runs a permissioned network of them
#: (``--authorized-peers-file``); a node added by hand must be appended to it.
AUTHORIZED_PEERS = "authorized-peers"
#: Blocks a session lasts on a devnet `up` starts: a validator the council approved (or a key
#: rotated) takes effect within a minute of 1 s slots.
SESSION_LENGTH = 60
#: Finality is "stalled" once the finalized block's slot started more than this many slots ago
#: while the best block is ahead of it: healthy finality trails the head by a slot or two.
STALL_SLOTS = 10


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
    #: Where the node listens (p2p and RPC): 127.0.0.1, or its own IP in a network namespace.
    host: str = "127.0.0.1"
    #: The facility whose archive the node keeps (its own; -1: none): the facility's gateway
    #: delivers its raw readings there.
    facility: int = -1

    @property
    def rpc_url(self) -> str:
        return f"http://{self.host}:{self.rpc_port}"


@dataclass
class WorkerInfo:
    """A facility's predictive-maintenance worker (``twinchain offchain pdm``)."""

    facility: str
    facility_id: int
    rpc_url: str
    key_file: str
    folder: str
    pid: int = 0


def plan_workers(base_dir: Path, nodes: list[NodeInfo]) -> list[WorkerInfo]:
    """One worker per facility, with the PredictiveWorker key genesis granted it."""
    accounts = json.loads((base_dir / "domain.json").read_text())
    out = []
    for n in nodes:
        a = accounts[n.slug]
        key = base_dir / "keys" / f"work-{a['worker'].removeprefix('0x')}"
        folder = Path(n.base_path) / "worker"
        folder.mkdir(parents=True, exist_ok=True)
        out.append(WorkerInfo(n.name, a["facility"], n.rpc_url, str(key), str(folder)))
    return out


def start_worker(w: WorkerInfo) -> subprocess.Popen[bytes]:
    """Start one facility's PdM worker (log: ``<facility>/worker/worker.log``)."""
    cmd = [
        sys.executable, "-m", "twinchain", "offchain", "pdm",
        "--rpc", w.rpc_url, "--key", w.key_file, "--facility", str(w.facility_id),
        "--evidence-dir", str(Path(w.folder) / "evidence"),
    ]  # fmt: skip
    log = open(Path(w.folder) / "worker.log", "ab")
    env = dict(os.environ, COLUMNS="160")
    return subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
    )


@dataclass
class DashboardInfo:
    """A facility's web dashboard (``twinchain dashboard``) beside its validator."""

    facility: str
    facility_id: int
    rpc_url: str
    url: str
    folder: str
    archive_dir: str
    api_keys: str
    #: Key files of the facility's operator and owner (who signs in to act on alarms).
    operator_key: str = ""
    owner_key: str = ""
    pid: int = 0


def plan_dashboards(base_dir: Path, nodes: list[NodeInfo]) -> list[DashboardInfo]:
    """One dashboard per facility on a free loopback port, reading its node's archive files."""
    accounts = json.loads((base_dir / "domain.json").read_text())
    ports = free_ports(len(nodes))
    out = []
    for n, port in zip(nodes, ports, strict=True):
        a = accounts[n.slug]
        folder = Path(n.base_path) / "dashboard"
        folder.mkdir(parents=True, exist_ok=True)
        key = base_dir / "keys"
        out.append(
            DashboardInfo(
                n.name, a["facility"], n.rpc_url.replace("http://", "ws://"),
                f"http://127.0.0.1:{port}", str(folder), str(Path(n.base_path) / "archive"),
                str(Path(n.base_path) / "api-keys.json"),
                str(key / f"acct-{a['operator'].removeprefix('0x')}"),
                str(key / f"acct-{a['owner'].removeprefix('0x')}"),
            )
        )  # fmt: skip
    return out


def start_dashboard(d: DashboardInfo) -> subprocess.Popen[bytes]:
    """Start one facility's dashboard (log: ``<facility>/dashboard/dashboard.log``)."""
    cmd = [
        sys.executable, "-m", "twinchain", "dashboard",
        "--rpc", d.rpc_url, "--listen", d.url.removeprefix("http://"),
        "--facility", str(d.facility_id), "--archive-dir", d.archive_dir,
        "--api-keys", d.api_keys,
    ]  # fmt: skip
    log = open(Path(d.folder) / "dashboard.log", "ab")
    env = dict(os.environ, COLUMNS="160")
    return subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
    )


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


def devnet_spec(
    keys: list[Keypair],
    slot_ms: int,
    domain: dict[str, Any] | None = None,
    session_length: int = 600,
) -> ChainSpec:
    """The devnet's spec: ``keys`` are the facility validators; ``domain`` the genesis sections
    of :func:`twinchain.devnet.domain.build` (facilities, twins, devices, gateways...);
    ``session_length``: blocks between authority set changes."""
    domain = dict(domain or {})
    extra = domain.pop("balances_extra", [])
    return ChainSpec(
        name="twinchain devnet",
        id=SPEC_ID,
        chain_type="Local",
        properties=_properties(),
        genesis={
            "authority": {
                "authorities": ["0x" + k.public.hex() for k in keys],
                "slot_duration_ms": slot_ms,
                "session_length": session_length,
            },
            "balances": {
                "balances": [[f"//{n}", DEV_ENDOWMENT] for n in DEV_NAMES]
                + [["0x" + k.public.hex(), DEV_ENDOWMENT] for k in keys]
                + extra
            },
            # No sudo: like every consortium chain, the devnet is governed by its council
            # (its verified facilities' operators).
            "timestamp": {},
            **domain,
        },
    )


def plan(base_dir: Path, validators: int, slot_ms: int) -> tuple[ChainSpec, list[NodeInfo]]:
    """Keys, spec, folders and ports for a new devnet in ``base_dir``."""
    spec, nodes, _ = plan_all(base_dir, validators, slot_ms)
    return spec, nodes


def plan_all(
    base_dir: Path,
    validators: int,
    slot_ms: int,
    hosts: Sequence[str] | None = None,
    *,
    session_length: int = 600,
    nodes_on_chain: bool = False,
    **domain_options: Any,
) -> tuple[ChainSpec, list[NodeInfo], list[GatewayInfo]]:
    """:func:`plan` with the facilities' domain and their gateways' folders
    (``domain_options``: see :func:`twinchain.devnet.domain.build`); ``hosts``: each node's
    IP (default 127.0.0.1; the chaos suite gives each its own network namespace).
    ``nodes_on_chain``: genesis lists each facility's validator node as its authorized node,
    so the nodes admit one another only (``twinchain.node.authorization``); without it a
    test's extra nodes connect freely."""
    from twinchain.p2p.host import load_or_create_identity, peer_id_of  # libp2p: heavy

    if not 1 <= validators <= len(FACILITIES):
        raise DevnetError(f"--validators must be between 1 and {len(FACILITIES)}")
    base_dir.mkdir(parents=True, exist_ok=True)
    # A devnet is throwaway: a new one never reuses an old one's chains (new keys, new genesis).
    for name in FACILITIES:
        shutil.rmtree(base_dir / name.lower().replace(" ", "-"), ignore_errors=True)
    shutil.rmtree(base_dir / "keys", ignore_errors=True)
    keys = [Keypair.generate() for _ in range(validators)]
    ports = free_ports(4 * validators)
    nodes = []
    for i, (name, kp) in enumerate(zip(FACILITIES, keys, strict=False)):
        slug = name.lower().replace(" ", "-")
        base = base_dir / slug
        Keystore(base / "chains" / SPEC_ID / "keystore").insert("aura", kp)
        p2p, rpc, prom = ports[4 * i : 4 * i + 3]
        # The libp2p key made here, so that every node's address is known before any starts.
        net = load_or_create_identity(base / "chains" / SPEC_ID / "network" / "secret_ed25519")
        host = hosts[i] if hosts else "127.0.0.1"
        addr = f"/ip4/{host}/tcp/{p2p}/p2p/{peer_id_of(net)}"
        nodes.append(
            NodeInfo(name, slug, str(base), p2p, rpc, kp.public.hex(), prom, 0, addr, host, i)
        )
    (base_dir / AUTHORIZED_PEERS).write_text(
        "".join(f"{n.multiaddr.rsplit('/p2p/', 1)[1]}  # {n.name}\n" for n in nodes)
    )
    genesis, gateways = domain.build(
        base_dir,
        [(n.name, n.slug, n.rpc_port, n.public_key) for n in nodes],
        [ports[4 * i + 3] for i in range(validators)],
        node_hosts=[n.host for n in nodes],
        **domain_options,
    )
    if nodes_on_chain:
        for entry, n in zip(genesis["facility"]["facilities"], nodes, strict=True):
            entry["nodes"] = [n.multiaddr.rsplit("/p2p/", 1)[1]]
    spec = devnet_spec(keys, slot_ms, genesis, session_length)
    (base_dir / "spec.json").write_text(json.dumps(spec.to_json(), indent=2))
    return spec, nodes, gateways


def facility_operator_key(base_dir: Path, node: NodeInfo) -> Path | None:
    """The key file of the node's facility operator (``domain.json`` names the account,
    ``keys/`` holds it), None on a net without a domain: it signs the facility's report
    anchors (``--archive-report-key``)."""
    try:
        accounts = json.loads((base_dir / "domain.json").read_text())
    except (OSError, ValueError):
        return None
    operator = accounts.get(node.slug, {}).get("operator")
    if not operator:
        return None
    key = base_dir / "keys" / f"acct-{operator.removeprefix('0x')}"
    return key if key.exists() else None


def start_node(
    base_dir: Path,
    node: NodeInfo,
    bootnodes: list[str],
    extra: Sequence[str] = (),
    validator: bool = True,
    *,
    wrap: Sequence[str] = (),
    env: dict[str, str] | None = None,
    reports: bool = True,
) -> subprocess.Popen[bytes]:
    """Start one node process of the devnet (``extra``: more ``twinchain node`` options;
    ``wrap``: a command prefix such as ``ip netns exec NS``, which execs, so the process's
    pid is the node's; ``env``: its environment, e.g. libfaketime's; ``reports``: a
    facility's node reports its twins' windows, anchored with its operator's key)."""
    cmd = [
        *wrap,
        sys.executable, "-m", "twinchain", "node",
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
    if node.facility >= 0:  # the custodian of its facility's raw readings
        cmd += ["--archive-facility", str(node.facility)]
        report_key = facility_operator_key(base_dir, node) if reports else None
        if report_key is not None:  # and of its KPI and alert reports, anchored on chain
            # One report a twin a minute (12 windows of 5 s: the devnet's analytics period):
            # an anchor every window would add an extrinsic per twin every 5 s.
            cmd += ["--archive-report-key", str(report_key), "--archive-report-windows", "12"]
    if node.host != "127.0.0.1":  # its own IP: peers and the gateway reach it there
        cmd += ["--listen-addr", node.host, "--rpc-external"]
    for b in bootnodes:
        cmd += ["--bootnodes", b]
    cmd += list(extra)
    log = open(Path(node.base_path) / "node.log", "ab")
    # rich wraps log lines at 80 columns in a file: give it room for one line a record.
    env = dict(os.environ if env is None else env)
    env.setdefault("COLUMNS", "200")
    # A session of its own: Ctrl-C in the terminal reaches `up`, which stops nodes cleanly.
    return subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
    )


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


def start_gateway(gw: GatewayInfo) -> subprocess.Popen[bytes]:
    """Start one facility's simulating gateway (log: ``<facility>/gateway/gateway.log``)."""
    cmd = [sys.executable, "-m", "twinchain", "gateway", "--config", gw.config]
    log = open(Path(gw.folder) / "gateway.log", "ab")
    env = dict(os.environ, COLUMNS="160")  # rich wraps log lines at 80 columns in a file
    return subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
    )


def up(
    base_dir: Path,
    validators: int,
    slot_ms: int = 1000,
    *,
    gateways: bool = True,
    workers: bool = True,
    dashboards: bool = False,
    log: str | None = None,
) -> list[NodeInfo]:
    """Start the devnet, then one gateway and one predictive-maintenance worker per facility
    (and with ``dashboards``, as ``make run`` asks, a web dashboard each);
    returns the running nodes (nodes, gateways and workers are also in devnet.json). ``log``:
    the validators' ``-l`` value (e.g. ``grandpa=debug,sync=debug``)."""
    state = base_dir / STATE_FILE
    if state.exists() and (
        any(_alive(n.pid) for n in load(base_dir))
        or any(_alive(g.pid) for g in load_gateways(base_dir))
        or any(_alive(w.pid) for w in load_workers(base_dir))
        or any(_alive(d.pid) for d in load_dashboards(base_dir))
    ):
        raise DevnetError(f"a devnet is already running in {base_dir} (devnet down first)")
    # Permissioned by chain: a node joins when governance authorizes it (README: Consortium).
    _, nodes, gws = plan_all(
        base_dir, validators, slot_ms, session_length=SESSION_LENGTH, nodes_on_chain=True
    )
    try:
        save(base_dir, nodes, gws)
        # All at once, each dialing every other (a full mesh): a validator that starts late
        # authors alone for a while and forks off what the others already finalized.
        extra = ["--log", log] if log else []
        extra += ["--authorized-peers-file", str(base_dir / AUTHORIZED_PEERS)]
        procs = [
            start_node(base_dir, n, [m.multiaddr for m in nodes if m is not n], extra)
            for n in nodes
        ]
        for node, proc in zip(nodes, procs, strict=True):
            node.pid = proc.pid
        save(base_dir, nodes, gws)
        for node, proc in zip(nodes, procs, strict=True):
            wait_rpc(node, proc)
        if gateways:
            for gw in gws:
                gw.pid = start_gateway(gw).pid
            save(base_dir, nodes, gws)
        if workers:
            wks = plan_workers(base_dir, nodes)
            for w in wks:
                w.pid = start_worker(w).pid
            save(base_dir, nodes, gws, wks)
        if dashboards:
            dbs = plan_dashboards(base_dir, nodes)
            for d in dbs:
                d.pid = start_dashboard(d).pid
            save(base_dir, nodes, gws, dashboards=dbs)
    except BaseException:
        down(base_dir, nodes, gateways=gws)
        raise
    return nodes


def save(
    base_dir: Path,
    nodes: list[NodeInfo],
    gateways: list[GatewayInfo] | None = None,
    workers: list[WorkerInfo] | None = None,
    *,
    dashboards: list[DashboardInfo] | None = None,
) -> None:
    if dashboards is None:
        dashboards = load_dashboards(base_dir)
    if gateways is None:
        gateways = load_gateways(base_dir)
    if workers is None:
        workers = load_workers(base_dir)
    tmp = base_dir / (STATE_FILE + ".tmp")
    state = {
        "nodes": [asdict(n) for n in nodes],
        "gateways": [asdict(g) for g in gateways],
        "workers": [asdict(w) for w in workers],
        "dashboards": [asdict(d) for d in dashboards],
    }
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(base_dir / STATE_FILE)


def load(base_dir: Path) -> list[NodeInfo]:
    try:
        data = json.loads((base_dir / STATE_FILE).read_text())
        return [NodeInfo(**n) for n in data["nodes"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DevnetError(f"no devnet in {base_dir}: {exc}") from None


def load_gateways(base_dir: Path) -> list[GatewayInfo]:
    """The devnet's gateways (none for a devnet state written before gateways existed)."""
    try:
        data = json.loads((base_dir / STATE_FILE).read_text())
        return [GatewayInfo(**g) for g in data.get("gateways", [])]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def load_workers(base_dir: Path) -> list[WorkerInfo]:
    """The devnet's predictive-maintenance workers (none if it was started without)."""
    try:
        data = json.loads((base_dir / STATE_FILE).read_text())
        return [WorkerInfo(**w) for w in data.get("workers", [])]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def load_dashboards(base_dir: Path) -> list[DashboardInfo]:
    """The devnet's dashboards (none if it was started without)."""
    try:
        data = json.loads((base_dir / STATE_FILE).read_text())
        return [DashboardInfo(**d) for d in data.get("dashboards", [])]
    except (OSError, ValueError, KeyError, TypeError):
        return []


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


def _stop(pids: list[int], timeout: float) -> int:
    running = [p for p in pids if _alive(p)]
    for p in running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGTERM)
    end = time.monotonic() + timeout
    while time.monotonic() < end and any(_alive(p) for p in running):
        time.sleep(0.1)
    for p in running:
        if _alive(p):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
    return len(running)


def down(
    base_dir: Path,
    nodes: list[NodeInfo] | None = None,
    timeout: float = 15,
    *,
    gateways: list[GatewayInfo] | None = None,
) -> int:
    """Stop the workers and gateways, then every node (SIGTERM, SIGKILL for those still
    running after ``timeout``); returns how many nodes were running."""
    nodes = load(base_dir) if nodes is None else nodes
    gateways = load_gateways(base_dir) if gateways is None else gateways
    workers = load_workers(base_dir)
    dashboards = load_dashboards(base_dir)
    _stop(
        [d.pid for d in dashboards] + [w.pid for w in workers] + [g.pid for g in gateways], timeout
    )
    stopped = _stop([n.pid for n in nodes], timeout)
    for item in (*nodes, *gateways, *workers, *dashboards):
        item.pid = 0
    if (base_dir / STATE_FILE).exists():
        save(base_dir, nodes, gateways, workers, dashboards=dashboards)
    return stopped


def gateway_status(gw: GatewayInfo) -> dict[str, Any]:
    """What a facility's gateway reports in its status file."""
    from twinchain.gateway.status import read_status

    out: dict[str, Any] = {"running": _alive(gw.pid), "account": gw.account}
    s = read_status(Path(gw.folder) / "status.json")
    if s is not None and out["running"]:
        for k in (
            "connected",
            "rate_in",
            "rate_final",
            "readings_final",
            "backlog",
            "xts_in_flight",
            "latency_p99_s",
            "rejected",
            "last_final_batch",
            "finality_lag",
            "finality_stalled_s",
            "readings_archived",
            "archive_pending",
            "archive_lag_s",
            "archive_refused_kept",
            "archive_error",
        ):
            out[k] = s.get(k)
    return out


def slot_ms_of(base_dir: Path) -> int:
    """The devnet's slot duration, from its spec (1000 ms if the spec cannot be read)."""
    try:
        spec = json.loads((base_dir / "spec.json").read_text())
        return int(spec["genesis"]["authority"]["slot_duration_ms"])
    except (OSError, ValueError, KeyError, TypeError):
        return 1000


def duration_text(seconds: float) -> str:
    """``45s``, ``2m13s``, ``1h02m``: short enough for a table cell."""
    s = max(int(seconds), 0)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def finality_state(
    best: int, best_slot: int, finalized: int, finalized_slot: int, slot_ms: int, now_ms: int
) -> dict[str, Any]:
    """Whether finality keeps up with the head: "ok"; "stalled" when the finalized block is
    more than STALL_SLOTS slots old while the best block is ahead of it and still moving
    (for ``finality_lag_s``, as its age); "halted" when no block was authored for as long
    either (then authoring, not finality, is what stopped)."""
    lag_s = max(now_ms - finalized_slot * slot_ms, 0) / 1000
    best_age_s = max(now_ms - best_slot * slot_ms, 0) / 1000
    stall_s = STALL_SLOTS * slot_ms / 1000
    if lag_s <= stall_s or best <= finalized:
        state = "ok" if best_age_s <= stall_s else "halted"
    else:
        state = "stalled" if best_age_s <= stall_s else "halted"
    return {
        "finality": state,
        "finality_lag_blocks": best - finalized,
        "finality_lag_s": round(lag_s, 1),
        "best_age_s": round(best_age_s, 1),
    }


def finality_text(row: dict[str, Any]) -> str:
    """The table's "finality" cell: ``ok``, ``stalled 2m13s (#150, 75 behind)``, ``halted``."""
    state = row.get("finality")
    if state is None:
        return "?"
    if state == "ok":
        return "[green]ok[/]"
    if state == "stalled":
        return (
            f"[red]stalled {duration_text(row['finality_lag_s'])}[/] "
            f"(#{row['finalized']}, {row['finality_lag_blocks']} behind)"
        )
    return f"[yellow]halted {duration_text(row['best_age_s'])}[/] (no block after #{row['best']})"


def node_status(node: NodeInfo, slot_ms: int = 1000) -> dict[str, Any]:
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
            now_ms = time.time_ns() // 1_000_000
            best_slot, fin_slot = int(best["slot"], 16), int(fin["slot"], 16)
            # Genesis has no slot: a chain just started counts from its first block (or now).
            if out["best"] == 0:
                best_slot = now_ms // slot_ms
            if out["finalized"] == 0:
                first = rpc.call("chain_getBlockHash", 1) if out["best"] else None
                fin_slot = (
                    int(rpc.call("chain_getHeader", first)["slot"], 16) if first else best_slot
                )
            out.update(
                finality_state(out["best"], best_slot, out["finalized"], fin_slot, slot_ms, now_ms)
            )
    except Exception as exc:
        out["error"] = str(exc)[:80]
    return out


def _open_alerts(base_dir: Path, rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Open maintenance alerts per facility and kind, read from one running node."""
    try:
        accounts = json.loads((base_dir / "domain.json").read_text())
    except (OSError, ValueError):
        return {}
    facility_of = {
        int(t): slug
        for slug, a in accounts.items()
        if isinstance(a, dict) and "twins" in a
        for t in a["twins"].values()
    }
    for r in rows:
        if "best" not in r:
            continue
        try:
            with RpcClient(r["rpc"], timeout=2) as rpc:
                alerts = rpc.call("twin_alerts", None, True)
        except Exception:
            continue
        out: dict[str, dict[str, int]] = {}
        for a in alerts:
            per = out.setdefault(facility_of.get(int(a["twin"]), "?"), {})
            per[a["kind"]] = per.get(a["kind"], 0) + 1
        return out
    return {}


def status(base_dir: Path) -> list[dict[str, Any]]:
    nodes = load(base_dir)
    slot_ms = slot_ms_of(base_dir)
    rows = [node_status(n, slot_ms) for n in nodes]
    gws = {g.facility: g for g in load_gateways(base_dir)}
    alerts = _open_alerts(base_dir, rows)
    for n, r in zip(nodes, rows, strict=True):
        g = gws.get(r["name"])
        if g is not None:
            r["gateway"] = gateway_status(g)
        r["alerts"] = alerts.get(n.slug, {})
    return rows


def table(rows: list[dict[str, Any]], rates: dict[str, float]) -> Table:
    t = Table(title="twinchain devnet", expand=False)
    cols = ("facility", "rpc", "best", "finalized", "finality", "peers", "ready txs",
            "blocks/min", "gateway readings/s", "on chain", "archived", "spool",
            "open alerts")  # fmt: skip
    for col in cols:
        left = col in ("facility", "rpc", "finality")
        t.add_column(col, justify="left" if left else "right")
    for r in rows:
        g = r.get("gateway") or {}
        if not g:
            gcols = ["", "", "", ""]
        elif not g.get("running"):
            gcols = ["[red]down[/]", "", "", ""]
        elif not g.get("connected"):
            gcols = ["[yellow]no node[/]", f"{g.get('readings_final') or 0:,}",
                     archived_text(g), f"{g.get('backlog') or 0:,}"]  # fmt: skip
        else:
            gcols = [
                f"{g.get('rate_in') or 0:,.0f} in / {g.get('rate_final') or 0:,.0f} final",
                f"{g.get('readings_final') or 0:,}",
                archived_text(g),
                f"{g.get('backlog') or 0:,}",
            ]
        al = r.get("alerts") or {}
        gcols.append(" ".join(f"{n} {k.lower()}" for k, n in sorted(al.items())) or "0")
        if not r.get("running"):
            t.add_row(r["name"], r["rpc"], "[red]down[/]", "", "", "", "", "", *gcols)
            continue
        t.add_row(
            r["name"],
            r["rpc"],
            str(r.get("best", "?")),
            str(r.get("finalized", "?")),
            finality_text(r),
            str(r.get("peers", "?")),
            str(r.get("ready", "?")),
            f"{rates.get(r['name'], 0.0):.0f}",
            *gcols,
        )
    return t


def archived_text(g: dict[str, Any]) -> str:
    """The table's "archived" cell: readings the facility archive holds (this gateway run),
    and what is wrong: an archive that does not answer, refused batches kept."""
    text = f"{g.get('readings_archived') or 0:,}"
    if g.get("archive_error"):
        text += " [red]unreachable[/]"
    elif (g.get("archive_lag_s") or 0) > 10:
        text += f" [yellow]lag {g['archive_lag_s']:.0f}s[/]"
    if g.get("archive_refused_kept"):
        text += f" [red]{g['archive_refused_kept']} refused[/]"
    return text


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
