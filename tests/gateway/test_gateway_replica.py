"""A facility archive on two machines: Alice validates and keeps facility 0's archive, Bob
follows the chain as a plain full node and keeps a second copy (``--archive-facility 0`` on
both); the gateway names Bob in ``archive_replicas``. Every reading reaches both archives,
exactly once; while Bob is down (SIGKILL) batches stay in the spool rather than leave with
one copy, and once he is back they drain into his archive."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from realnet import free_port, wait_for

from twinchain.devnet.chaos.invariants import archive_totals
from twinchain.gateway.provision import with_gateway, write_gateway
from twinchain.machines.simulator import MachineConfig
from twinchain.node.chain_spec import ChainSpec, dev_spec
from twinchain.p2p.host import load_or_create_identity, peer_id_of

MACHINES = [MachineConfig("pump-1", "pump"), MachineConfig("comp-1", "compressor")]
TICKS = 80


@pytest.mark.slow
def test_every_reading_in_both_archives_and_none_dropped_while_the_replica_is_down(
    tmp_path: Path,
) -> None:
    ports = {n: (free_port(), free_port()) for n in ("alice", "bob")}
    urls = {n: f"http://127.0.0.1:{rpc}" for n, (_, rpc) in ports.items()}
    gw = write_gateway(
        tmp_path / "gw",
        node=urls["alice"],
        machines=MACHINES,
        first_twin=0,
        tick_ms=250,
        batching={"max_delay_ms": 300, "archive_retry_s": 0.5},
    )
    text = gw.config.read_text().replace("realtime = true", f"realtime = true\nticks = {TICKS}")
    text = text.replace("[gateway]\n", f'[gateway]\narchive_replicas = ["{urls["bob"]}"]\n', 1)
    gw.config.write_text(text)
    spec = ChainSpec.from_json(with_gateway(dev_spec().to_json(), gw, MACHINES, window_ms=10_000))
    (tmp_path / "spec.json").write_text(json.dumps(spec.to_json()))
    key = load_or_create_identity(
        tmp_path / "alice" / "chains" / spec.id / "network" / "secret_ed25519"
    )
    alice_addr = f"/ip4/127.0.0.1/tcp/{ports['alice'][0]}/p2p/{peer_id_of(key)}"
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(name: str) -> None:
        p2p, rpc = ports[name]
        cmd = [
            sys.executable, "-m", "twinchain", "--log", "warning", "node",
            "--chain", str(tmp_path / "spec.json"), "--base-path", str(tmp_path / name),
            "--port", str(p2p), "--rpc-port", str(rpc), "--no-prometheus",
            "--archive-facility", "0", "--archive-flush-s", "1",
        ]  # fmt: skip
        cmd += (
            ["--validator", "--key", "//Alice"] if name == "alice" else ["--bootnodes", alice_addr]
        )
        log = (tmp_path / f"{name}.log").open("ab")
        procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)

    def status() -> dict[str, Any]:
        return json.loads((gw.folder / "status.json").read_text())  # type: ignore[no-any-return]

    devices = {"0x" + kp.public.hex(): name for name, kp in gw.devices.items()}
    try:
        start("alice")
        start("bob")
        procs["gateway"] = subprocess.Popen(
            [sys.executable, "-m", "twinchain", "gateway", "--config", str(gw.config)],
            stdout=(tmp_path / "gateway.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        wait_for(lambda: status()["readings_archived"] > 0, 60, "readings in both archives")
        # The replica goes down hard: final batches wait for it instead of leaving.
        procs.pop("bob").send_signal(signal.SIGKILL)
        # Final batches pile up instead of leaving the spool with one copy.
        wait_for(
            lambda: status()["readings_final"] - status()["readings_archived"] >= 100,
            60,
            "final batches held for the missing replica",
        )
        assert status()["archive_pending"] > 0
        assert "replica" in status()["archive_error"], status()["archive_error"]
        start("bob")

        def drained() -> bool:
            s = status()
            return s["spooled"] == s["readings_archived"] and s["backlog"] == 0

        wait_for(drained, 120, "the spool drained into both archives")
        total = status()["readings_archived"]

        def both() -> bool:
            a = archive_totals(tmp_path / "alice" / "archive", devices)
            b = archive_totals(tmp_path / "bob" / "archive", devices)
            return a == b and a[1] == 0 and sum(c for c, _ in a[0].values()) == total

        wait_for(both, 30, "the same readings, once each, in both archives' Parquet files")
    finally:
        for p in procs.values():
            p.kill()
            p.wait(10)
