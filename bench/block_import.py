"""Block import throughput: a block of N signed transfers, re-executed by a second node.

Prints tx/s on one core for a full import (batch signature check + re-execution + state root +
one LevelDB write), and, in the same run, the import with signatures already verified by the
pool, as a ratio: how much of the cost is signature checking.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from twinchain import native
from twinchain.node.blockchain import Blockchain
from twinchain.node.chain_spec import DEV_ENDOWMENT, dev_spec
from twinchain.primitives.keys import Keypair
from twinchain.primitives.types import Block, Extrinsic


def _signed_transfers(client: Blockchain, n: int, senders: int) -> list[bytes]:
    keys = [Keypair.from_dev_name(f"bench-{i}") for i in range(senders)]
    dest = Keypair.from_dev_name("Bob").public
    rt = client.runtime
    call = rt.call_by_name("Balances", "transfer", dest, 10**12)
    return [
        Extrinsic.sign(
            call, keys[i % senders], i // senders, client.genesis_hash, rt.spec_version
        ).encode()
        for i in range(n)
    ], keys


def run(n_tx: int = 5000, senders: int = 50) -> dict[str, Any]:
    spec = dev_spec()
    spec.genesis["balances"]["balances"] += [
        [f"//bench-{i}", DEV_ENDOWMENT] for i in range(senders)
    ]
    alice = Keypair.from_dev_name("Alice")
    with (
        tempfile.TemporaryDirectory() as a,
        tempfile.TemporaryDirectory() as b,
        tempfile.TemporaryDirectory() as c,
    ):
        author = Blockchain(spec, a)
        xts, _ = _signed_transfers(author, n_tx, senders)
        t0 = time.perf_counter()
        block, res = author.propose(alice, 10, 10_000, ((b"", x) for x in xts))
        build_s = time.perf_counter() - t0
        assert len(block.extrinsics) == n_tx + 1, "block did not take every transfer"
        raw = block.encode()

        importer = Blockchain(spec, b)
        t0 = time.perf_counter()
        importer.import_block(Block.decode(raw), check_time=False)
        import_s = time.perf_counter() - t0

        cached = Blockchain(spec, c)
        pre = [o.hash for o in res.outcomes]
        t0 = time.perf_counter()
        cached.import_block(Block.decode(raw), verified=pre, check_time=False)
        cached_s = time.perf_counter() - t0
        assert importer.best.state_root == cached.best.state_root == block.header.state_root
        for cl in (author, importer, cached):
            cl.close()
    return {
        "transactions": n_tx,
        "native": native.available,
        "build_s": build_s,
        "import_s": import_s,
        "import_tps": n_tx / import_s,
        "import_preverified_s": cached_s,
        "preverified_tps": n_tx / cached_s,
        "signature_share": 1 - cached_s / import_s,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tx", type=int, default=5000)
    ap.add_argument("--senders", type=int, default=50)
    args = ap.parse_args(argv)
    r = run(args.tx, args.senders)
    t = Table(title=f"block import: {r['transactions']} transfers (native={r['native']})")
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_row("build (author)", f"{r['build_s']:.3f} s")
    t.add_row("import (batch verify + re-execute)", f"{r['import_s']:.3f} s")
    t.add_row("import tx/s, one core", f"{r['import_tps']:,.0f}")
    t.add_row("import, signatures pre-verified", f"{r['import_preverified_s']:.3f} s")
    t.add_row("pre-verified tx/s", f"{r['preverified_tps']:,.0f}")
    t.add_row("share of import spent on signatures", f"{r['signature_share']:.0%}")
    Console().print(t)
    return r


if __name__ == "__main__":
    main()
