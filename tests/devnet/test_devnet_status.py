"""devnet status's finality column: ok, stalled (for how long, how far behind), halted."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from twinchain.devnet import manager

SLOT_MS = 1000
NOW_MS = 1_765_000_000_000
NOW_SLOT = NOW_MS // SLOT_MS


def row(best: int, best_ago: int, fin: int, fin_ago: int) -> dict[str, object]:
    """A node's status row with its best and finalized blocks ``*_ago`` slots old."""
    state = manager.finality_state(
        best, NOW_SLOT - best_ago, fin, NOW_SLOT - fin_ago, SLOT_MS, NOW_MS
    )
    return {"name": "Aachen Press Shop", "rpc": "http://127.0.0.1:1", "running": True,
            "best": best, "finalized": fin, "peers": 3, "ready": 0, **state}  # fmt: skip


def render(rows: list[dict[str, object]]) -> str:
    console = Console(record=True, width=300, color_system=None)
    console.print(manager.table(rows, {}))
    return console.export_text()


def test_finality_trailing_the_head_is_ok() -> None:
    r = row(best=300, best_ago=0, fin=298, fin_ago=2)
    assert r["finality"] == "ok"
    assert r["finality_lag_blocks"] == 2 and r["finality_lag_s"] == 2.0
    assert "│ ok " in render([r])


def test_stalled_finality_says_since_when_and_how_far_behind() -> None:
    r = row(best=225, best_ago=0, fin=150, fin_ago=133)
    assert r["finality"] == "stalled"
    assert r["finality_lag_s"] == 133.0 and r["finality_lag_blocks"] == 75
    assert "stalled 2m13s (#150, 75 behind)" in render([r])
    # Just inside the limit (10 slots) is still ok: finality trails by a round or two.
    assert row(best=160, best_ago=0, fin=150, fin_ago=10)["finality"] == "ok"
    assert row(best=160, best_ago=0, fin=150, fin_ago=11)["finality"] == "stalled"


def test_no_new_blocks_is_halted_not_a_finality_stall() -> None:
    r = row(best=150, best_ago=70, fin=150, fin_ago=70)
    assert r["finality"] == "halted"
    assert "halted 1m10s (no block after #150)" in render([r])
    # A node that is down or unreachable shows no finality state.
    down = {"name": "Brno Foundry", "rpc": "http://127.0.0.1:2", "running": False}
    assert "down" in render([r, down])


def test_duration_text_and_slot_ms_of(tmp_path: Path) -> None:
    assert [manager.duration_text(s) for s in (0, 59.9, 60, 133, 3599, 3720)] == [
        "0s", "59s", "1m00s", "2m13s", "59m59s", "1h02m"
    ]  # fmt: skip
    assert manager.slot_ms_of(tmp_path) == 1000  # no spec: the default
    spec = {"genesis": {"authority": {"slot_duration_ms": 500}}}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert manager.slot_ms_of(tmp_path) == 500


class FakeRpc:
    """A node's RPC answers for node_status: a chain at #3 with only genesis final."""

    def __init__(self, url: str, timeout: float) -> None:
        now_slot = time.time_ns() // 1_000_000 // SLOT_MS
        # Genesis has slot 0; blocks #1..#3 are of the last three slots.
        self.headers = {f"0x{i}": {"number": hex(i), "slot": hex(now_slot - 3 + i if i else 0)}
                        for i in range(4)}  # fmt: skip

    def __enter__(self) -> FakeRpc:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def call(self, method: str, *params: Any) -> Any:
        if method == "chain_getHeader":
            return self.headers[params[0] if params else "0x3"]
        return {
            "chain_getFinalizedHead": "0x0",
            "chain_getBlockHash": f"0x{params[0] if params else 3}",
            "system_health": {"peers": 1},
            "author_pendingExtrinsics": [],
        }[method]


def test_a_chain_just_started_is_not_stalled_since_1970(monkeypatch: pytest.MonkeyPatch) -> None:
    """Genesis has no slot: with only it final, the lag counts from block #1."""
    monkeypatch.setattr(manager, "RpcClient", FakeRpc)
    node = manager.NodeInfo("Aachen Press Shop", "aachen", "/tmp", 1, 2, "00", pid=os.getpid())
    r = manager.node_status(node, SLOT_MS)
    assert (r["best"], r["finalized"], r["finality"]) == (3, 0, "ok")
    assert r["finality_lag_blocks"] == 3 and 2 <= r["finality_lag_s"] < 4


def test_the_archived_cell_says_what_the_facility_archive_holds_and_what_is_wrong() -> None:
    assert manager.archived_text({"readings_archived": 12_345}) == "12,345"
    text = manager.archived_text(
        {"readings_archived": 5, "archive_lag_s": 42.0, "archive_refused_kept": 2}
    )
    assert text == "5 [yellow]lag 42s[/] [red]2 refused[/]"
    assert "unreachable" in manager.archived_text({"archive_error": "-32601: no method"})


def test_each_validator_keeps_its_own_facility_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """plan_all numbers the nodes as domain.build numbers the facilities; start_node asks
    each for --archive-facility with its own."""
    _, nodes, gws = manager.plan_all(tmp_path, 2, SLOT_MS)
    assert [n.facility for n in nodes] == [0, 1]
    seen: list[list[str]] = []

    class Popen:
        def __init__(self, cmd: list[str], **_: Any) -> None:
            seen.append(cmd)

    monkeypatch.setattr(manager.subprocess, "Popen", Popen)
    for n in nodes:
        manager.start_node(tmp_path, n, [])
    for i, cmd in enumerate(seen):
        assert cmd[cmd.index("--archive-facility") + 1] == str(i)
    # ... and each facility's gateway talks to its own facility's node.
    assert [g.slug for g in gws] == [n.slug for n in nodes]
    import tomllib

    for g, n in zip(gws, nodes, strict=True):
        assert tomllib.loads(Path(g.config).read_text())["gateway"]["node"] == n.rpc_url
