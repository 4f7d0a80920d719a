"""State root: incremental trie update vs full rebuild of the same final state.

    python -m bench.state_root [--keys 1000000] [--changes 10000]

Builds a state of ``--keys`` realistic storage keys (32-byte map prefix + 16-byte key hash +
8-byte raw key, ~40-byte values) on a MemoryStore, then times, in the same run:

(a) the incremental update of ``--changes`` keys (80% edits, 10% inserts, 10% deletes):
    ``StateDB.prepare`` (walks + path rebuild + level-by-level hashing) and committing its
    nodes into the store, with a cold node cache as for the first block after a restart;
(b) ``build_from_scratch`` of the same final state.

Both roots must be equal; the ratio (b)/(a) is what the incremental path saves.
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from twinchain import native
from twinchain.storage.abc import WriteBatch
from twinchain.storage.kv import MemoryStore
from twinchain.storage.statedb import StateDB
from twinchain.storage.trie import TrieUpdate, build_from_scratch

_MAPS = 4  # distinct storage maps (32-byte prefixes) the keys are spread over


def _keys(rng: random.Random, n: int) -> list[bytes]:
    prefixes = [rng.randbytes(32) for _ in range(_MAPS)]
    # Hashed part + raw part, as a Substrate "blake2_128_concat" map key of a u64.
    return [prefixes[i % _MAPS] + rng.randbytes(16) + rng.randbytes(8) for i in range(n)]


def run(n_keys: int = 1_000_000, n_changes: int = 10_000, seed: int = 7) -> dict[str, Any]:
    """Run the benchmark; returns the figures (seconds, counts, ratio)."""
    console = Console(stderr=True)
    rng = random.Random(seed)
    t = time.perf_counter()
    keys = _keys(rng, n_keys)
    state = {k: rng.randbytes(40) for k in keys}
    console.log(f"generated {n_keys:,} keys in {time.perf_counter() - t:.1f}s")

    t = time.perf_counter()
    root0, nodes0 = build_from_scratch(state)
    t_initial = time.perf_counter() - t
    console.log(f"initial build: {len(nodes0):,} nodes in {t_initial:.1f}s")

    store = MemoryStore()
    sdb = StateDB(store, pruning=None)
    batch = WriteBatch()
    sdb.commit(batch, TrieUpdate(b"\x00" * 32, root0, nodes0, set()), b"\x00" * 32, 0)
    store.write(batch)
    del batch, nodes0
    # A fresh StateDB: its node cache is cold, as after a restart.
    sdb = StateDB(store, pruning=None)
    console.log(f"stored {len(store):,} records")

    n_edit = n_changes * 8 // 10
    n_ins = n_changes // 10
    n_del = n_changes - n_edit - n_ins
    picked = rng.sample(keys, n_edit + n_del)
    changes: dict[bytes, bytes | None] = {k: rng.randbytes(40) for k in picked[:n_edit]}
    changes.update(dict.fromkeys(picked[n_edit:]))
    changes.update((k, rng.randbytes(40)) for k in _keys(rng, n_ins))

    t = time.perf_counter()
    update = sdb.prepare(root0, changes)
    t_prepare = time.perf_counter() - t
    batch = WriteBatch()
    sdb.commit(batch, update, b"\x01" * 32, 1)
    store.write(batch)
    t_incremental = time.perf_counter() - t
    console.log(
        f"incremental: {len(update.nodes):,} new nodes, {len(update.replaced):,} replaced, "
        f"{t_incremental:.3f}s"
    )

    for k, v in changes.items():
        if v is None:
            del state[k]
        else:
            state[k] = v
    t = time.perf_counter()
    root_full, nodes_full = build_from_scratch(state)
    t_rebuild = time.perf_counter() - t
    console.log(f"full rebuild: {len(nodes_full):,} nodes in {t_rebuild:.1f}s")
    if root_full != update.root:
        raise AssertionError("incremental and rebuilt state roots differ")

    return {
        "keys": n_keys,
        "changes": n_changes,
        "native": native.available,
        "initial_build_s": t_initial,
        "prepare_s": t_prepare,
        "incremental_s": t_incremental,
        "rebuild_s": t_rebuild,
        "ratio": t_rebuild / t_incremental,
        "new_nodes": len(update.nodes),
        "replaced_nodes": len(update.replaced),
        "total_nodes": len(nodes_full),
        "root": update.root.hex(),
    }


def report(r: dict[str, Any]) -> None:
    table = Table(
        title=f"state root, {r['keys']:,} keys, {r['changes']:,} changes "
        f"({'native' if r['native'] else 'pure-Python'} hashing)"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("incremental update (prepare)", f"{r['prepare_s'] * 1e3:,.1f} ms")
    table.add_row("incremental update + node commit", f"{r['incremental_s'] * 1e3:,.1f} ms")
    table.add_row("full rebuild of the same state", f"{r['rebuild_s'] * 1e3:,.1f} ms")
    table.add_row("rebuild / incremental", f"{r['ratio']:,.1f}x")
    table.add_row(
        "new / replaced / total nodes",
        f"{r['new_nodes']:,} / {r['replaced_nodes']:,} / {r['total_nodes']:,}",
    )
    table.add_row("root (incremental = rebuild)", r["root"][:16] + "…")
    Console().print(table)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--changes", type=int, default=10_000)
    args = ap.parse_args(argv)
    r = run(args.keys, args.changes)
    report(r)
    return r


if __name__ == "__main__":
    main()
