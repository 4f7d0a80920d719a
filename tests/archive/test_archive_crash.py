"""Exactly once across a crash in the middle of a flush or a compaction: every archived
reading ends in exactly one Parquet file, whatever step the process died after."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from archive.plant import DAY_MS, T0, Plant, make_batch

from twinchain.archive.query import ArchiveQuery


class Crash(Exception):
    pass


def crash_at(step: str):  # type: ignore[no-untyped-def]
    def hook(at: str) -> None:
        if at == step:
            raise Crash(at)

    return hook


def rows(plant: Plant) -> tuple[int, int]:
    """(rows, distinct (device, seq, idx)) in the files: equal when nothing is doubled."""
    with ArchiveQuery(plant.path) as q:
        (r,) = q.rows("SELECT count(*), count(DISTINCT (device, seq, idx)) FROM readings")[1]
    return int(r[0]), int(r[1])


def files(plant: Plant) -> list[str]:
    return sorted(
        p.relative_to(plant.path).as_posix() for p in (plant.path / "readings").rglob("*.parquet*")
    )


@pytest.mark.parametrize("step", ["written", "renamed", "marked"])
def test_flush_interrupted_at_each_step(plant: Plant, step: str) -> None:
    plant.archive(range(3))
    plant.store.fail_point = crash_at(step)
    with pytest.raises(Crash):
        plant.store.flush()
    if step == "renamed":  # the file is in place but no LevelDB write says so
        assert rows(plant) == (150, 150)
    store = plant.reopen()
    assert rows(plant) == ((150, 150) if step == "marked" else (0, 0))
    store.flush()
    assert rows(plant) == (150, 150)
    assert store.stats()["pending_readings"] == 0
    assert not [f for f in files(plant) if f.endswith(".tmp")]
    # More batches after the restart go to a new file beside the first.
    plant.archive(range(3, 5))
    store.flush()
    assert rows(plant) == (250, 250)


@pytest.mark.parametrize("step", ["written", "renamed", "marked"])
def test_compaction_interrupted_at_each_step(plant: Plant, step: str) -> None:
    for seq in range(3):  # three flushes: three part files in the day
        plant.archive(range(seq, seq + 1))
        plant.store.flush()
    assert len(files(plant)) == 3
    plant.now = T0 + 2 * DAY_MS  # the day is finished
    plant.store.fail_point = crash_at(step)
    with pytest.raises(Crash):
        plant.store.maintain()
    store = plant.reopen()
    assert rows(plant) == (150, 150)
    store.maintain()
    assert rows(plant) == (150, 150)
    assert len(files(plant)) == 1
    # Reads follow the batches into the compacted file.
    assert [a.seq for a in store.readings(7, None, 0, 2**62)] == [0, 1, 2]


def test_process_killed_mid_flush(plant: Plant, tmp_path: Path) -> None:
    """A real crash: a child process archives and dies (os._exit, no cleanup, no close)
    right after renaming its Parquet file into place; the parent reopens the archive."""
    plant.store.close()
    script = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {str(Path(__file__).parent.parent)!r})
        from archive.plant import Plant
        from pathlib import Path
        plant = Plant(Path({str(plant.path)!r}))
        plant.archive(range(4))
        plant.store.fail_point = lambda step: os._exit(9) if step == "renamed" else None
        plant.store.flush()
        os._exit(0)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], env={**os.environ}, timeout=120)
    assert proc.returncode == 9
    assert rows(plant) == (200, 200)  # in place, but never marked flushed
    store = plant.open()
    plant.store = store
    assert rows(plant) == (0, 0)  # removed on open: its batches are still pending
    assert store.stats()["archived_batches"] == 4
    assert store.flush() == 200
    assert rows(plant) == (200, 200)


def test_concurrent_deliveries_settling_and_flushes_archive_each_batch_once(
    plant: Plant,
) -> None:
    """Gateways deliver (twice each, some before and some after finality) from threads while
    the node's settling and flushing run in others: every batch ends in the files once."""
    import threading

    batches = [make_batch(plant.dev, 7, s, T0 + s * 5_000, 20) for s in range(120)]
    for b in batches[:60]:
        plant.chain.commit(b)  # final before delivery: archived at once
    stop = threading.Event()
    errors: list[BaseException] = []

    def run(fn) -> None:  # type: ignore[no-untyped-def]
        try:
            fn()
        except BaseException as exc:  # reported below
            errors.append(exc)

    def gateway(part: list) -> None:  # type: ignore[type-arg]
        for b in part + part:
            plant.store.deliver(plant.gw.public, [b])

    def node() -> None:
        while not stop.is_set():
            plant.store.on_finalized()
            plant.store.flush()

    workers = [threading.Thread(target=run, args=(node,))] + [
        threading.Thread(target=run, args=(lambda p=batches[i::3]: gateway(p),)) for i in range(3)
    ]
    for w in workers:
        w.start()
    for w in workers[1:]:
        w.join()
    for b in batches[60:]:
        plant.chain.commit(b)
    stop.set()
    workers[0].join()
    assert not errors, errors
    plant.store.on_finalized()
    plant.store.flush()
    assert rows(plant) == (120 * 20, 120 * 20)
    s = plant.store.stats()
    assert (s["archived_batches"], s["staged_batches"], s["refused_batches"]) == (120, 0, 0)
