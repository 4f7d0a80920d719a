"""A gateway while finality is stalled, with real processes: a chain of two authorities, Alice
validating and Bob running as a plain full node, authors blocks that are never finalized
(2 of 2 votes are needed). The gateway says how far finality is behind in its status and log,
does not keep re-sending what the best chain already holds, and once Bob restarts as a
validator and finality resumes, it settles without help: every simulated reading on chain
exactly once (the public metrics' aggregates on chain, every reading in Alice's archive)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from realnet import free_port, wait_for

from twinchain.client import RpcClient
from twinchain.devnet.chaos.invariants import archive_totals, public_only, twin_totals
from twinchain.gateway.provision import with_gateway, write_gateway
from twinchain.machines.simulator import FactorySimulator, MachineConfig
from twinchain.node.chain_spec import ChainSpec, dev_spec
from twinchain.p2p.host import load_or_create_identity, peer_id_of

MACHINES = [MachineConfig("mill-1", "cnc_mill"), MachineConfig("comp-1", "compressor")]
# 36 s of readings: they go on through the stall and its 12 s watch, and end soon after the
# recovery (every one of them must settle; more ticks would only make the test longer).
TICKS, SEED = 36, 11
LAG_ALERT = 4
RESUBMIT_AFTER_S = 2.0


class Chain:
    """Alice (validator) and Bob (full node now, validator later) on one two-authority spec."""

    def __init__(self, tmp: Path, spec: Any) -> None:
        self.tmp = tmp
        spec.genesis["authority"]["authorities"] = ["//Alice", "//Bob"]
        (tmp / "spec.json").write_text(json.dumps(spec.to_json()))
        self.ports = {n: (free_port(), free_port()) for n in ("alice", "bob")}
        # Alice's libp2p key made here, so that Bob knows her address before she starts.
        key = load_or_create_identity(
            tmp / "alice" / "chains" / spec.id / "network" / "secret_ed25519"
        )
        self.alice_addr = f"/ip4/127.0.0.1/tcp/{self.ports['alice'][0]}/p2p/{peer_id_of(key)}"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.rpc_url = f"http://127.0.0.1:{self.ports['alice'][1]}"

    def start(self, name: str, *, validator: bool) -> None:
        p2p, rpc = self.ports[name]
        cmd = [
            sys.executable, "-m", "twinchain", "--log", "warning", "node",
            "--chain", str(self.tmp / "spec.json"), "--base-path", str(self.tmp / name),
            "--port", str(p2p), "--rpc-port", str(rpc), "--no-prometheus",
        ]  # fmt: skip
        if validator:
            cmd += ["--validator", "--key", f"//{name.capitalize()}"]
        if name == "alice":  # the twins' facility (0): its node keeps their raw readings
            cmd += ["--archive-facility", "0", "--archive-flush-s", "1"]
        if name != "alice":
            cmd += ["--bootnodes", self.alice_addr]
        log = (self.tmp / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)

    def stop(self, name: str) -> None:
        p = self.procs.pop(name)
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)

    def close(self) -> None:
        for p in self.procs.values():
            p.kill()
            p.wait(10)


@pytest.mark.slow
def test_stalled_finality_is_reported_backed_off_and_settled_exactly_once(tmp_path: Path) -> None:
    gw = write_gateway(
        tmp_path / "gw",
        node="http://127.0.0.1:1",  # set below, once Alice's port is known
        machines=MACHINES,
        first_twin=0,
        seed=SEED,
        batching={
            "max_delay_ms": 200,
            "resubmit_after_s": RESUBMIT_AFTER_S,
            "resubmit_max_s": 16.0,
            "finality_lag_alert": LAG_ALERT,
        },
    )
    chain = Chain(tmp_path, ChainSpec.from_json(with_gateway(dev_spec().to_json(), gw, MACHINES)))
    text = gw.config.read_text().replace("http://127.0.0.1:1", chain.rpc_url)
    gw.config.write_text(text.replace("realtime = true", f"realtime = true\nticks = {TICKS}"))
    status_file = gw.folder / "status.json"
    gw_log = tmp_path / "gateway.log"
    rpc = RpcClient(chain.rpc_url, timeout=5)
    gateway: subprocess.Popen[bytes] | None = None

    def status() -> dict[str, Any]:
        return json.loads(status_file.read_text())  # type: ignore[no-any-return]

    try:
        chain.start("alice", validator=True)
        chain.start("bob", validator=False)  # a peer, so that Alice authors; no vote
        wait_for(lambda: rpc.call("system_health") is not None, 30, "Alice's RPC")
        gateway = subprocess.Popen(
            [sys.executable, "-m", "twinchain", "gateway", "--config", str(gw.config)],
            stdout=gw_log.open("ab"),
            stderr=subprocess.STDOUT,
            env=dict(os.environ, COLUMNS="200"),  # rich wraps log lines at 80 columns
        )

        # 1. Finality stalls: the status says so plainly, and so does the log.
        wait_for(lambda: status()["finality_stalled_s"] is not None, 60, "the stall reported")
        s = status()
        assert s["finalized_block"] == 0 and s["finality_lag"] > LAG_ALERT
        assert s["finality_lag"] == s["best_block"] - s["finalized_block"]
        assert s["finality"].startswith(f"finality is {s['finality_lag']} blocks behind")
        lines = re.findall(r"finality is (\d+) blocks behind the best block", gw_log.read_text())
        assert lines and int(lines[0]) > LAG_ALERT, lines

        # 2. While it stays stalled, what the best chain holds waits for finality: the
        # submissions are bounded, not one per extrinsic every resubmit_after_s (which the
        # gateway did before: ~4 extrinsics x 6 rounds in this watch).
        def all_held() -> bool:
            s = status()
            return 0 < s["xts_on_best"] == s["xts_in_flight"]

        wait_for(all_held, 30, "every extrinsic in flight held on the best chain")
        before = status()
        time.sleep(6 * RESUBMIT_AFTER_S)  # past the first resubmissions' back-off (2, 4, 8 s)
        after = status()
        assert after["finality_stalled_s"] is not None and after["finalized_block"] == 0
        flying = after["xts_in_flight"]
        assert flying == before["xts_in_flight"] > 0
        sent = after["submit_attempts"] - before["submit_attempts"]
        assert sent == 0, (sent, before, after)
        assert after["submit_errors"].get("Invalid:Stale", 0) <= flying, after["submit_errors"]
        assert after["spooled"] > before["spooled"]  # readings keep coming into the spool
        assert "not accepted now (Invalid:Stale" not in gw_log.read_text()

        # 3. Bob restarts as a validator: finality resumes, and the gateway settles it all
        # without a restart: every reading the seeded run made is on chain exactly once.
        chain.stop("bob")
        chain.start("bob", validator=True)
        wait_for(lambda: status()["finality_stalled_s"] is None, 60, "the recovery reported")
        assert "finality resumed" in gw_log.read_text()
        assert gateway.poll() is None

        start = _sim_start(gw.folder / "spool.sqlite")
        sim = FactorySimulator(SEED, MACHINES, start_ms=start, tick_ms=1000)
        sums: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
        for r in sim.run(TICKS):
            sums[(r.machine, r.metric)][0] += 1
            sums[(r.machine, r.metric)][1] += r.value
        expected = {k: (c, v) for k, (c, v) in sums.items()}
        total = sum(c for c, _ in expected.values())

        def settled() -> bool:
            s = status()
            return s["readings_final"] == total and s["backlog"] == 0

        wait_for(settled, 120, "every reading settled in a finalized block and archived")
        assert _totals(rpc) == public_only(expected)
        devices = {"0x" + kp.public.hex(): name for name, kp in gw.devices.items()}
        archive = tmp_path / "alice" / "archive"
        wait_for(lambda: archive_totals(archive, devices) == (expected, 0), 30, "the Parquet files")
        for name, kp in gw.devices.items():
            d = rpc.call("twin_device", "0x" + kp.public.hex())
            assert d["gaps"] == 0 and d["batches"] == d["nextSeq"] > 0, name
        s = status()
        assert s["batches_lost"] == 0 and s["finality_lag"] <= LAG_ALERT
        assert s["finality"].startswith("finality is ") and "stalled" not in s["finality"]
    finally:
        if gateway is not None:
            gateway.kill()
            gateway.wait(10)
        chain.close()
        rpc.close()


def _sim_start(path: Path) -> int:
    """Where the simulator's clock started (it resumes from there; the test replays it)."""
    import sqlite3

    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(db.execute("SELECT value FROM meta WHERE key='sim:0:start'").fetchone()[0])
    finally:
        db.close()


def _totals(rpc: RpcClient) -> dict[tuple[str, int], tuple[int, int]]:
    return twin_totals(rpc, [(twin, m.name) for twin, m in enumerate(MACHINES)])
