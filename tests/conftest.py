"""Suite-wide collection rules: which tests run in the real-process lane.

`make test` (scripts/test-lanes.sh) runs two pytest processes side by side: the tests marked
``slow`` one at a time at normal priority, and every other test at a lower priority beside
them. Waiting on slots and processes is most of the slow lane's time, so the compute lane
fits in its idle CPU. A test that starts node, gateway or browser processes (or an in-process
node with real slots) belongs in the slow lane: its timing bounds assume it is not competing
with another process's nodes. Modules below are marked here so that a file need not carry the
marker itself; a module may also mark itself with ``pytestmark = pytest.mark.slow``.

A few real-process tests measure recovery in slots against a bound (the 2-minute chaos run,
finality through pauses and restarts): they are also marked ``solo`` and run after both lanes,
with the machine to themselves (seen: the chaos run's first recovery took 13 slots, over its
10-slot bound, while the compute lane ran beside it; it passes alone).
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent

# Paths relative to tests/: a folder marks every module in it.
SLOW_PATHS: tuple[str, ...] = (
    "archive/test_archive_crash.py",
    "archive/test_archive_hosting.py",
    "dashboard/test_browser.py",
    "devnet/",
    "e2e/",
    "explorer/",
    "gateway/test_gateway_parts.py",
    "gateway/test_historian.py",
    "gateway/test_modbus.py",
    "native/test_native_build.py",
    "node/test_cli.py",
    "node/test_golden_replay.py",
    "node/test_service.py",
    "offchain/test_pdm_chain.py",
    "offchain/test_prognostics_chain.py",
    "p2p/test_permission.py",
    "rpc/test_hosting.py",
    "storage/test_kv_diskfull.py",
)


# Test ids relative to tests/ (a module path marks the whole module).
SOLO: tuple[str, ...] = (
    "devnet/test_chaos.py::test_two_minute_seeded_chaos_run",
    "e2e/test_finality_faults.py",
)


def _rel(path: Path) -> str | None:
    try:
        return path.relative_to(HERE).as_posix()
    except ValueError:
        return None


def _is_slow(path: Path) -> bool:
    rel = _rel(path)
    if rel is None:
        return False
    return any(rel == p or (p.endswith("/") and rel.startswith(p)) for p in SLOW_PATHS)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _is_slow(item.path):
            item.add_marker(pytest.mark.slow)
        rel = _rel(item.path)
        if rel is not None and (rel in SOLO or f"{rel}::{item.name}" in SOLO):
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.solo)
