"""A stand-in for the node service around a real chain: an in-memory Blockchain and a real
TransactionPool, with blocks authored on demand by the test (used by the RPC and client tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twinchain.consensus.grandpa import Voter
from twinchain.node.blockchain import Blockchain
from twinchain.node.txpool import TransactionPool
from twinchain.primitives.keys import Keypair
from twinchain.primitives.keystore import Keystore
from twinchain.primitives.types import Extrinsic

ALICE = Keypair.from_dev_name("Alice")
BOB = Keypair.from_dev_name("Bob")


@dataclass
class StubNode:
    """Satisfies twinchain.rpc.api.NodeHandle with a real client and pool."""

    chain: Blockchain
    pool: TransactionPool
    keystore: Keystore
    name: str = "test-node"
    version: str = "0.1.0-test"
    roles: list[str] = field(default_factory=lambda: ["Authority"])
    is_syncing: bool = False
    peers: list[dict[str, Any]] = field(default_factory=list)
    local_peer_id: str = "12D3KooWTestPeer"
    listen_addresses: list[str] = field(default_factory=lambda: ["/ip4/127.0.0.1/tcp/30333"])
    slot: int = 1000
    #: The finality voter; by default Alice alone votes, as on the dev chain (see dev_voter).
    voter: Voter | None = None

    def __post_init__(self) -> None:
        if self.voter is None:
            self.voter = self.dev_voter([ALICE.public])

    def dev_voter(self, authorities: list[bytes], key: Keypair | None = ALICE) -> Voter:
        """A real voter over this chain; authorities other than ``key`` vote only when a test
        feeds it their signed votes (until then round_state lists them as missing)."""
        fin = self.chain.finalized
        return Voter(
            genesis_hash=self.chain.genesis_hash,
            authorities=authorities,
            set_id=0,
            finalized=(fin.hash, fin.number),
            lookup=self.chain.blocks.header,
            best_chain_containing=lambda base: (self.chain.best.hash, self.chain.best.number),
            keypair=key,
            slot_ms=self.chain.slot_duration(),
            now_ms=0,
        )

    def submit_extrinsic(self, raw: bytes) -> bytes:
        return self.pool.submit(raw)

    def author(self, *, finalize: bool = False) -> bytes:
        """Author the next block with Alice (pool transactions included); return its hash."""
        self.slot += 1
        _, result = self.chain.propose(
            ALICE, self.slot, self.slot * 1000, self.pool.ready(), verified=self.pool.contains
        )
        self.pool.prune([o.hash for o in result.outcomes])
        self.pool.revalidate()
        if finalize:
            assert self.chain.self_finalize(ALICE, result.hash)
        return result.hash

    def transfer(self, nonce: int, amount: int = 10**12, signer: Keypair = ALICE) -> Extrinsic:
        rt = self.chain.runtime
        call = rt.call_by_name("Balances", "transfer", BOB.public, amount)
        return Extrinsic.sign(call, signer, nonce, self.chain.genesis_hash, rt.spec_version)
