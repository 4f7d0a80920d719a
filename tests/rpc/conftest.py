"""A real chain (in-memory Client, real TransactionPool) behind a stand-in node, and a live
RPC server on 127.0.0.1 with an OS-chosen port."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from twinchain.node.chain_spec import dev_spec
from twinchain.node.client import Client
from twinchain.node.keystore import Keystore
from twinchain.node.txpool import TransactionPool
from twinchain.primitives.keys import Keypair
from twinchain.primitives.types import Extrinsic
from twinchain.rpc.server import serve_rpc

ALICE = Keypair.from_dev_name("Alice")
BOB = Keypair.from_dev_name("Bob")


@dataclass
class StubNode:
    """Satisfies twinchain.rpc.api.NodeHandle with a real client and pool."""

    client: Client
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

    def submit_extrinsic(self, raw: bytes) -> bytes:
        return self.pool.submit(raw)

    def author(self, *, finalize: bool = False) -> bytes:
        """Author the next block with Alice (pool transactions included); return its hash."""
        self.slot += 1
        _, result = self.client.propose(
            ALICE, self.slot, self.slot * 1000, self.pool.ready(), verified=self.pool.contains
        )
        self.pool.prune([o.hash for o in result.outcomes])
        self.pool.revalidate()
        if finalize:
            assert self.client.self_finalize(ALICE, result.hash)
        return result.hash

    def transfer(self, nonce: int, amount: int = 10**12, signer: Keypair = ALICE) -> Extrinsic:
        rt = self.client.runtime
        call = rt.call_by_name("Balances", "transfer", BOB.public, amount)
        return Extrinsic.sign(call, signer, nonce, self.client.genesis_hash, rt.spec_version)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[StubNode]:
    client = Client(dev_spec(), None)
    n = StubNode(client, TransactionPool(client.validate_transaction), Keystore(tmp_path / "ks"))
    yield n
    client.close()


StartServer = Callable[..., Awaitable[str]]


@pytest.fixture
def start_server(node: StubNode, nursery: trio.Nursery) -> StartServer:
    """``await start_server(**serve_rpc kwargs)`` -> base URL ``127.0.0.1:PORT``."""

    async def start(**kwargs: Any) -> str:
        kwargs.setdefault("unsafe", False)
        port = await nursery.start(partial(serve_rpc, node, "127.0.0.1", 0, **kwargs))
        return f"127.0.0.1:{port}"

    return start


@pytest.fixture
async def server(start_server: StartServer) -> str:
    return await start_server(max_request_bytes=256 * 1024)
