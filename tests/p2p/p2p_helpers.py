"""Helpers for the p2p tests: a NetworkHandler over a real Blockchain, and service start-up.

(Imported by the tests as a plain module: pytest puts this folder on sys.path.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import trio

from twinchain.consensus.proofs import JustificationError
from twinchain.node.blockchain import Blockchain, BlockImportError
from twinchain.node.chain_spec import dev_spec
from twinchain.p2p import ChainStatus, NetworkConfig, NetworkService, Verdict
from twinchain.p2p.sync_session import SyncConfig
from twinchain.primitives.codec import CodecError
from twinchain.primitives.keys import Keypair
from twinchain.primitives.types import Block

ALICE = Keypair.from_dev_name("Alice")

#: Faster status refresh and short bans, so tests wait less.
FAST = NetworkConfig(sync=SyncConfig(status_interval=0.5, progress_bar=False), ban_seconds=60.0)


class ChainHandler:
    """A minimal node: imports gossiped and synced blocks into a real Blockchain."""

    def __init__(self, chain: Blockchain | None = None) -> None:
        self.chain = chain or Blockchain(dev_spec(), None)
        self.votes: list[bytes] = []
        self.tx_batches: list[list[bytes]] = []
        self.gossip_accepted = 0
        self.commits: list[bytes] = []

    def status(self) -> ChainStatus:
        best, fin = self.chain.best, self.chain.finalized
        return ChainStatus(best.number, best.hash, fin.number, fin.hash, self.chain.genesis_hash)

    def _import(self, raw: bytes, justification: bytes | None) -> Verdict:
        try:
            block = Block.decode(raw)
        except CodecError:
            return Verdict.REJECT
        verdict = Verdict.ACCEPT
        try:
            self.chain.import_block(block)
        except BlockImportError as exc:
            if exc.reason == "invalid":
                return Verdict.REJECT
            if exc.reason != "known":
                return Verdict.IGNORE
            verdict = Verdict.IGNORE
        if justification is not None and self.chain.finalized.number < block.header.number:
            try:
                self.chain.verify_justification(block.hash, justification)
            except JustificationError:
                return Verdict.REJECT
            self.chain.finalize(block.hash, justification)
        return verdict

    def on_block(self, peer_id: str, raw: bytes) -> Verdict:
        verdict = self._import(raw, None)
        self.gossip_accepted += verdict is Verdict.ACCEPT
        return verdict

    def on_vote(self, peer_id: str, raw: bytes) -> Verdict:
        if not raw.startswith(b"vote"):
            return Verdict.REJECT
        self.votes.append(raw)
        return Verdict.ACCEPT

    def describe_vote(self, raw: bytes) -> str:
        return f"test vote {raw!r}"

    def on_transactions(self, peer_id: str, raws: list[bytes]) -> Verdict:
        self.tx_batches.append(raws)
        return Verdict.ACCEPT

    def blocks_by_range(self, start: int, count: int) -> list[tuple[bytes, bytes | None]]:
        out: list[tuple[bytes, bytes | None]] = []
        for n in range(start, start + count):
            h = self.chain.blocks.hash_at(n)
            if h is None:
                break
            raw = self.chain.blocks.block_bytes(h)
            assert raw is not None
            out.append((raw, self.chain.blocks.justification(h)))
        return out

    def import_synced(self, raw: bytes, justification: bytes | None) -> Verdict:
        return self._import(raw, justification)

    def on_commit(self, peer_id: str, raw: bytes) -> Verdict:
        self.commits.append(raw)
        return Verdict.IGNORE

    def justification_for(self, block_hash: bytes) -> bytes | None:
        return self.chain.blocks.justification(block_hash)

    def import_justification(self, peer_id: str, block_hash: bytes, raw: bytes) -> Verdict:
        if self.chain.blocks.header(block_hash) is None:
            return Verdict.IGNORE
        try:
            self.chain.verify_justification(block_hash, raw)
        except JustificationError:
            return Verdict.REJECT
        self.chain.finalize(block_hash, raw)
        return Verdict.ACCEPT

    def blocks_by_hash(self, block_hash: bytes, count: int) -> list[tuple[bytes, bytes | None]]:
        out: list[tuple[bytes, bytes | None]] = []
        h = block_hash
        for _ in range(count):
            header = self.chain.blocks.header(h)
            raw = self.chain.blocks.block_bytes(h)
            if header is None or raw is None or header.number == 0:
                break
            out.append((raw, self.chain.blocks.justification(h)))
            h = header.parent_hash
        return out

    def catch_up_for(self, set_id: int, round: int) -> bytes | None:
        return None

    def on_catch_up(self, peer_id: str, raw: bytes) -> Verdict:
        return Verdict.IGNORE

    # -- test conveniences
    def author(self, count: int = 1, *, finalize: bool = False) -> list[Block]:
        """Build ``count`` blocks on our best chain (one per slot, Alice is the dev authority)."""
        blocks = []
        for _ in range(count):
            slot = self.chain.best.slot + 1
            block, result = self.chain.propose(ALICE, slot, slot * 1000, [])
            if finalize:
                self.chain.self_finalize(ALICE, result.hash)
            blocks.append(block)
        return blocks


async def start_service(
    nursery: trio.Nursery,
    handler: ChainHandler,
    tmp_path: Path,
    name: str,
    *,
    bootnodes: tuple[str, ...] = (),
    config: NetworkConfig = FAST,
    port: int = 0,
) -> NetworkService:
    svc = NetworkService(
        handler,
        genesis_hash=handler.chain.genesis_hash,
        key_file=tmp_path / name / "network" / "secret_ed25519",
        listen_port=port,
        bootnodes=bootnodes,
        node_name=name,
        config=config,
    )
    await nursery.start(svc.run)
    return svc


async def wait_until(cond: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    """Poll ``cond`` until it holds; fail after ``timeout`` seconds."""
    with trio.fail_after(timeout):
        while not cond():
            await trio.sleep(0.05)


def same_chain(a: ChainHandler, b: ChainHandler) -> bool:
    return a.chain.best.hash == b.chain.best.hash


def with_sync(config: NetworkConfig, **changes: object) -> NetworkConfig:
    return replace(config, sync=replace(config.sync, **changes))


@contextmanager
def make_handlers(n: int) -> Iterator[list[ChainHandler]]:
    """``n`` fresh in-memory dev chains, closed afterwards."""
    made = [ChainHandler() for _ in range(n)]
    try:
        yield made
    finally:
        for h in made:
            h.chain.close()
