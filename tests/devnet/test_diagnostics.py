"""The operator's diagnostics on a real two-validator devnet: ``-l sync=debug`` passed through
``devnet up``, grandpa_roundState and the finality metrics of a running node, and ``devnet
status`` naming a stalled finality once one of the two validators is paused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from realnet import poll

from twinchain.client import RpcClient
from twinchain.devnet import manager
from twinchain.primitives.keys import encode_address

# Half-second slots: a stall (STALL_SLOTS slots) shows in half the time.
SLOT_MS = 500
SLOT_S = SLOT_MS / 1000


def metrics(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        s.name: s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if not s.labels
    }


@pytest.mark.slow
def test_debug_targets_round_state_metrics_and_stalled_finality(tmp_path: Path) -> None:
    base = tmp_path / "devnet"
    nodes = manager.up(base, 2, SLOT_MS, gateways=False, workers=False, log="sync=debug")
    a, b = nodes
    address = {n.name: encode_address(bytes.fromhex(n.public_key)) for n in nodes}
    try:

        def finalizing() -> bool:
            rows = manager.status(base)
            return all(r.get("finalized", 0) >= 3 and r["finality"] == "ok" for r in rows)

        poll(finalizing, 90, "both validators finalizing")

        # -l sync=debug reached the validators: sync's debug lines, target-prefixed, and no
        # other target's (gossip stays at info); info lines as before.
        log = (Path(a.base_path) / "node.log").read_text()
        assert "sync: status from" in log
        assert "imported, forwarded" not in log  # gossip's debug line
        assert "finalized #" in log

        with RpcClient(a.rpc_url, timeout=5) as rpc:
            state = rpc.call("grandpa_roundState")
        assert state["setId"] == 0 and isinstance(state["background"], list)
        best = state["best"]
        assert best["round"] >= 1
        assert (best["totalWeight"], best["thresholdWeight"]) == (2, 2)
        for stage in ("prevotes", "precommits"):
            assert 0 <= best[stage]["currentWeight"] <= 2
            assert set(best[stage]["missing"]) <= set(address.values())

        m = metrics(a.prometheus_port)
        assert m["substrate_finality_grandpa_round"] >= 1
        assert m["substrate_finality_grandpa_total_weight"] == 2
        assert m["substrate_finality_grandpa_threshold_weight"] == 2
        assert 0 <= m["substrate_finality_lag_blocks"] < 10
        assert 0 <= m["substrate_finality_lag_seconds"] < 10

        # Pause one of the two: the other keeps authoring, but 1 of 2 cannot finalize.
        os.kill(b.pid, signal.SIGSTOP)
        try:

            def stalled() -> dict[str, Any] | None:
                row = manager.status(base)[0]
                return row if row.get("finality") == "stalled" else None

            row = poll(stalled, 60, "devnet status to report the stalled finality")
            # "stalled" means older than STALL_SLOTS slots; the row rounds the age to 0.1 s
            # (10.04 s is stalled and reads 10.0).
            assert row["finality_lag_s"] >= manager.STALL_SLOTS * SLOT_S
            assert row["finality_lag_blocks"] > 0 and row["best"] > row["finalized"]
            cell = manager.finality_text(row)
            assert f"(#{row['finalized']}, " in cell and " behind)" in cell

            # The same from the command line, as JSON and as the table.
            cli = [sys.executable, "-m", "twinchain", "devnet", "status"]
            env = {**os.environ, "COLUMNS": "300"}
            out = subprocess.run(
                [*cli, "--base-dir", str(base), "--json"],
                capture_output=True, text=True, timeout=60, check=True, env=env,
            ).stdout  # fmt: skip
            assert json.loads(out)[0]["finality"] == "stalled"
            out = subprocess.run(
                [*cli, "--base-dir", str(base)],
                capture_output=True, text=True, timeout=60, check=True, env=env,
            ).stdout  # fmt: skip
            assert "stalled " in out and " behind)" in out

            # The running validator waits on the paused one, and its metrics show the lag.
            with RpcClient(a.rpc_url, timeout=5) as rpc:
                best = rpc.call("grandpa_roundState")["best"]
            missing = set(best["prevotes"]["missing"]) | set(best["precommits"]["missing"])
            assert address[b.name] in missing
            assert address[a.name] not in best["prevotes"]["missing"]
            m = metrics(a.prometheus_port)
            assert m["substrate_finality_lag_seconds"] > manager.STALL_SLOTS * SLOT_S
            assert m["substrate_finality_lag_blocks"] > 0
        finally:
            os.kill(b.pid, signal.SIGCONT)
    finally:
        manager.down(base)
