"""A 2-minute seeded chaos run on real processes (``twinchain devnet chaos``, shorter).

As root with network namespaces: every fault kind (kill, pause, link down, partitions 2|2 and
3|1, clock skew, disk full) once, validators in namespaces of their own, gateways streaming.
Without namespaces (not root, or ``ip netns add`` fails): validators on 127.0.0.1 and only the
faults that need none; a fault whose tool is absent (libfaketime, tmpfs mounts) is skipped.
Both are said in the test's output (warnings summary).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from rich.console import Console

from twinchain.devnet.chaos import faults as fx
from twinchain.devnet.chaos import runner
from twinchain.devnet.chaos.netns import Netem


def test_plan_is_seeded_and_covers_every_kind_first() -> None:
    a = fx.plan(7, 12, 4, fx.ALL_KINDS, 1000)
    b = fx.plan(7, 12, 4, fx.ALL_KINDS, 1000)
    assert a == b
    assert {f.kind for f in a[: len(fx.ALL_KINDS)]} == set(fx.ALL_KINDS)
    assert a != fx.plan(8, 12, 4, fx.ALL_KINDS, 1000)
    for f in a:
        if f.kind == fx.PARTITION_22:
            assert sorted(map(len, f.groups)) == [2, 2]
        if f.kind == fx.PARTITION_31:
            assert sorted(map(len, f.groups)) == [1, 3]
        if f.kind == fx.SKEW:
            assert abs(f.skew_ms) == 500
        if f.kind == fx.PAUSE:
            assert 5 <= f.duration_s <= 15


@pytest.mark.slow
def test_two_minute_seeded_chaos_run(tmp_path: Path) -> None:
    out = tmp_path / "chaos.json"
    opts = runner.Options(
        seed=17,
        minutes=2,
        faults=len(fx.ALL_KINDS),
        base_dir=tmp_path / "run",
        json_out=out,
        netem=Netem(50, 20, 1.0),
        settle_s=60,
    )
    result = runner.run(opts)
    runner.report(result, Console(width=160))
    for note in result["notes"]:
        warnings.warn(f"chaos: {note}", stacklevel=1)
    for kind, why in result["skipped"].items():
        warnings.warn(f"chaos: skipped {kind}: {why}", stacklevel=1)
    assert json.loads(out.read_text())["seed"] == 17
    ran = {f["kind"] for f in result["faults"]}
    assert ran == set(fx.ALL_KINDS) - set(result["skipped"]), (ran, result["skipped"])
    assert result["telemetry"]["checked"]
    assert all(d["ok"] for d in result["databases"].values()), result["databases"]
    assert not result["violations"], "\n".join(
        f"[{v['at_s']} s] {v['kind']}: {v['detail']}" for v in result["violations"]
    )
    # Clean-up: nothing of this run is left.
    assert not any(Path("/run/twinchain-chaos").glob(f"{result['run_id']}.*"))
    from twinchain.devnet.chaos.netns import leftover_runs

    assert result["run_id"] not in leftover_runs()


def test_report_groups_recoveries_by_kind_with_percentiles() -> None:
    result = {
        "seed": 1, "slot_ms": 1000, "seconds": 600.0, "netns": True, "netem": None,
        "faults": [{"kind": fx.KILL}, {"kind": fx.KILL}, {"kind": fx.SKEW}],
        "recoveries": [
            {"kind": fx.KILL, "seconds": 2.0}, {"kind": fx.KILL, "seconds": 4.0},
            {"kind": f"{fx.SKEW} (skewed)", "seconds": 1.0}, {"kind": fx.SKEW, "seconds": None},
        ],
        "violations": [{"kind": "liveness", "detail": "x", "at_s": 5.0}],
        "telemetry": {"checked": False}, "databases": {}, "memory": [], "skipped": {},
        "notes": [], "folder": "/tmp/x",
    }  # fmt: skip
    rows = {r["kind"]: r for r in runner.by_kind(result, 1000)}
    assert rows[fx.KILL]["faults"] == 2 and rows[fx.KILL]["p50_s"] == 2.0
    assert rows[fx.KILL]["max_s"] == 4.0 and rows[fx.KILL]["p99_s"] == 4.0
    assert rows[fx.SKEW]["heals"] == 2 and rows[fx.SKEW]["recovered"] == 1
    assert rows[fx.SKEW]["p50_s"] == 1.0 and rows[fx.SKEW]["max_s"] is None  # never back
    assert rows["all"]["faults"] == 3 and rows["all"]["recovered"] == 3
    result["by_kind"] = list(rows.values())
    console = Console(record=True, width=160)
    runner.report(result, console)
    text = console.export_text()
    assert "liveness" in text and "netem unavailable" in text and "never" in text
