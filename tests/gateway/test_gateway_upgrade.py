"""A gateway streaming into a dev node across a runtime upgrade, real processes.

The chain starts at spec 3; while the simulator streams readings in real time, sudo
schedules spec 4 at block H. Signatures cover the spec version, so from the block before H
on the pool refuses what is signed for 3: the gateway reads the version the next block runs
(on each best head, on the runtime-version subscription, on ``Invalid:BadProof``), signs for
4 from then on, signs again what it held for 3 (same nonces, same batches), and says so once.
Readings are finalized on both sides of H, and every simulated reading is on chain and in the
archive exactly once: while streaming through H, and when the gateway held extrinsics signed
for 3 that the chain never got (its node killed before H, the gateway frozen until after)."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from realnet import free_port, wait_for

from twinchain.client import Client, RpcClient
from twinchain.devnet.chaos.invariants import archive_totals, public_only, twin_totals
from twinchain.gateway.provision import with_gateway, write_gateway
from twinchain.machines.simulator import FactorySimulator, MachineConfig
from twinchain.node.chain_spec import dev_spec
from twinchain.primitives.keys import Keypair

MACHINES = [MachineConfig("mill-1", "cnc_mill"), MachineConfig("pump-1", "pump")]
SEED, TICK_MS = 5, 500
ALICE = Keypair.from_dev_name("Alice")
SAID = re.compile(
    r"runtime upgrade: the block after #(\d+) runs spec version 4 \(was 3\): signing for 4 "
    r"from now on; (\d+) unsettled extrinsics signed again"
)


class Rig:
    """Alice's dev node (sudo; starting at spec 3; facility 0's archive) and a gateway with a
    real-time simulator of ``ticks`` ticks."""

    def __init__(self, tmp: Path, ticks: int) -> None:
        self.tmp, self.ticks = tmp, ticks
        self.rpc_port = free_port()
        self.url = f"http://127.0.0.1:{self.rpc_port}"
        self.gw = write_gateway(
            tmp / "gw",
            node=self.url,
            machines=MACHINES,
            first_twin=0,
            seed=SEED,
            tick_ms=TICK_MS,
            batching={"max_delay_ms": 200, "resubmit_after_s": 3.0},
        )
        text = self.gw.config.read_text()
        self.gw.config.write_text(
            text.replace("realtime = true", f"realtime = true\nticks = {ticks}")
        )
        spec = with_gateway(dev_spec().to_json(), self.gw, MACHINES, tick_ms=TICK_MS)
        spec["genesis"]["system"] = {**spec["genesis"].get("system", {}), "spec_version": 3}
        (tmp / "spec.json").write_text(json.dumps(spec))
        self.rpc = RpcClient(self.url, timeout=5)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.gw_log = tmp / "gateway.log"

    def start_node(self) -> None:
        cmd = [
            sys.executable, "-m", "twinchain", "--log", "warning", "node",
            "--chain", str(self.tmp / "spec.json"), "--validator", "--key", "//Alice",
            "--base-path", str(self.tmp / "chain"), "--rpc-port", str(self.rpc_port),
            "--no-prometheus", "--no-p2p", "--archive-facility", "0", "--archive-flush-s", "1",
        ]  # fmt: skip
        log = (self.tmp / "node.log").open("ab")
        self.procs["node"] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: self.rpc.call("system_health") is not None, 30, "the node's RPC")

    def start_gateway(self) -> None:
        self.procs["gateway"] = subprocess.Popen(
            [sys.executable, "-m", "twinchain", "gateway", "--config", str(self.gw.config)],
            stdout=self.gw_log.open("ab"),
            stderr=subprocess.STDOUT,
            env=dict(os.environ, COLUMNS="250"),  # rich wraps log lines at 80 columns
        )

    def signal(self, name: str, sig: int) -> None:
        self.procs[name].send_signal(sig)

    def status(self) -> dict[str, Any]:
        return json.loads((self.gw.folder / "status.json").read_text())  # type: ignore[no-any-return]

    def best(self) -> int:
        return int(self.rpc.call("chain_getHeader")["number"], 16)

    def version_at(self, number: int) -> int:
        at = self.rpc.call("chain_getBlockHash", number)
        return int(self.rpc.call("state_getRuntimeVersion", at)["specVersion"])

    def schedule_upgrade(self, ahead: int) -> int:
        """Sudo (Alice) schedules spec 4 ``ahead`` blocks after the best one; H."""
        with Client(self.url) as client:
            h = self.best() + ahead
            inner = client.call_function("System", "schedule_upgrade", spec_version=4, at_block=h)
            sudo = client.codec.build_call("Sudo", "sudo", {"call": list(inner.to_wire())})
            client.sign_and_submit(sudo, ALICE)
        return h

    def said(self) -> list[tuple[int, int]]:
        """(best block, extrinsics signed again) of each 'runtime upgrade' log line."""
        return [(int(b), int(n)) for b, n in SAID.findall(self.gw_log.read_text())]

    def check_exactly_once(self) -> dict[str, Any]:
        """Every reading of the seeded run final, archived and on chain once; the status."""
        db = sqlite3.connect(f"file:{self.gw.folder / 'spool.sqlite'}?mode=ro", uri=True)
        start = int(db.execute("SELECT value FROM meta WHERE key='sim:0:start'").fetchone()[0])
        db.close()
        sums: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
        sim = FactorySimulator(SEED, MACHINES, start_ms=start, tick_ms=TICK_MS)
        for r in sim.run(self.ticks):
            sums[(r.machine, r.metric)][0] += 1
            sums[(r.machine, r.metric)][1] += r.value
        expected = {k: (c, v) for k, (c, v) in sums.items()}
        total = sum(c for c, _ in expected.values())

        def settled() -> bool:
            s = self.status()
            return s["readings_final"] == total and s["backlog"] == 0

        wait_for(settled, 60, f"all {total} readings final and archived")
        twins = [(twin, m.name) for twin, m in enumerate(MACHINES)]
        assert twin_totals(self.rpc, twins) == public_only(expected)
        devices = {"0x" + kp.public.hex(): name for name, kp in self.gw.devices.items()}
        wait_for(
            lambda: archive_totals(self.tmp / "chain" / "archive", devices) == (expected, 0),
            30,
            "the archive's Parquet files: every reading once",
        )
        for name, kp in self.gw.devices.items():
            d = self.rpc.call("twin_device", "0x" + kp.public.hex())
            assert d["gaps"] == 0 and d["batches"] == d["nextSeq"] > 0, name
        spool = sqlite3.connect(f"file:{self.gw.folder / 'spool.sqlite'}?mode=ro", uri=True)
        left = spool.execute("SELECT COUNT(*) FROM batches").fetchone()[0]
        meta = spool.execute("SELECT value FROM meta WHERE key='spec_version'").fetchone()
        spool.close()
        assert left == 0 and bytes(meta[0]) == b"4"
        s = self.status()
        assert s["readings_archived"] == s["readings_final"] == total
        assert s["batches_lost"] == 0 and s["spec_version"] == 4
        assert [(u["from"], u["to"]) for u in s["runtime_upgrades"]] == [(3, 4)]
        assert self.procs["gateway"].poll() is None
        return s

    def close(self) -> None:
        for p in self.procs.values():
            p.kill()
            p.wait(10)
        self.rpc.close()


@pytest.mark.slow
def test_gateway_keeps_finalizing_exactly_once_across_a_runtime_upgrade(tmp_path: Path) -> None:
    rig = Rig(tmp_path, ticks=50)  # 25 s of readings
    try:
        rig.start_node()
        assert rig.version_at(0) == 3
        rig.start_gateway()
        wait_for(lambda: rig.status()["readings_final"] > 0, 30, "readings final at spec 3")
        assert rig.status()["spec_version"] == 3
        h = rig.schedule_upgrade(ahead=8)
        # Readings final in blocks before H, and more after it.
        wait_for(lambda: rig.status()["finalized_block"] >= h - 1, 30, "finality at H - 1")
        before = rig.status()["readings_final"]
        assert before > 0 and rig.version_at(h - 1) == 3
        wait_for(lambda: rig.status()["finalized_block"] >= h + 3, 30, "finality past H")
        assert rig.version_at(h) == 4
        wait_for(lambda: rig.status()["readings_final"] > before, 30, "readings final at 4")
        s = rig.check_exactly_once()
        # Switched for the block before H (on its head, or on the first refusal), said once.
        said = rig.said()
        assert len(said) == 1 and h - 1 <= said[0][0] <= h + 1, (h, said)
        assert s["runtime_upgrades"][0]["best_block"] == said[0][0]
    finally:
        rig.close()


@pytest.mark.slow
def test_extrinsics_held_for_the_old_version_are_signed_again_exactly_once(
    tmp_path: Path,
) -> None:
    """The node freezes before H with the gateway's latest extrinsics (signed for 3) unseen,
    and is killed: the chain never gets them. The gateway is frozen too while the restarted
    node runs past H alone; woken, it finds them refused for the new version, signs them
    again for 4 under the same nonces and batches, and everything settles once."""
    rig = Rig(tmp_path, ticks=60)  # 30 s of readings
    try:
        rig.start_node()
        rig.start_gateway()
        wait_for(lambda: rig.status()["readings_final"] > 0, 30, "readings final at spec 3")
        h = rig.schedule_upgrade(ahead=8)
        wait_for(lambda: rig.best() >= h - 6, 15, "the upgrade scheduled")
        rig.signal("node", signal.SIGSTOP)  # it takes the gateway's requests, answers none
        time.sleep(1.5)  # status.json is a snapshot a second old at most
        seen = rig.status()["submit_attempts"]
        wait_for(lambda: rig.status()["submit_attempts"] >= seen + 2, 15, "submissions unseen")
        rig.signal("gateway", signal.SIGSTOP)
        held = rig.status()["xts_in_flight"]
        assert held > 0
        rig.signal("node", signal.SIGKILL)
        rig.procs.pop("node").wait(10)
        rig.start_node()  # same database: the chain goes on from where it was, without them
        wait_for(lambda: rig.best() >= h + 1, 30, "the restarted node past H")
        assert rig.version_at(h) == 4
        rig.signal("gateway", signal.SIGCONT)
        s = rig.check_exactly_once()
        said = rig.said()
        assert len(said) == 1 and said[0][0] >= h, (h, said)
        assert said[0][1] >= 1 and s["xts_resigned"] == said[0][1], (said, s["xts_resigned"])
    finally:
        if "gateway" in rig.procs:
            rig.signal("gateway", signal.SIGCONT)
        rig.close()
