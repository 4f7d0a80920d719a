"""A real chain (in-memory node Client, real TransactionPool) behind a stand-in node and a
live RPC server on 127.0.0.1 with an OS-chosen port, for the Python client's tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from twinchain.node.chain_spec import dev_spec
from twinchain.node.client import Client as ChainClient
from twinchain.node.keystore import Keystore
from twinchain.node.txpool import TransactionPool
from twinchain.primitives.keys import Keypair
from twinchain.rpc.server import serve_rpc

ALICE = Keypair.from_dev_name("Alice")


@dataclass
class ChainNode:
    """Satisfies twinchain.rpc.api.NodeHandle; blocks are authored on demand by the test."""

    client: ChainClient
    pool: TransactionPool
    keystore: Keystore
    name: str = "client-test-node"
    version: str = "0.1.0-test"
    roles: list[str] = field(default_factory=lambda: ["Authority"])
    is_syncing: bool = False
    peers: list[dict[str, Any]] = field(default_factory=list)
    local_peer_id: str = "12D3KooWClientTest"
    listen_addresses: list[str] = field(default_factory=list)
    slot: int = 1000

    def submit_extrinsic(self, raw: bytes) -> bytes:
        return self.pool.submit(raw)

    def author(self, *, finalize: bool = True) -> bytes:
        """Author the next block with Alice from the pool; return its hash."""
        self.slot += 1
        _, result = self.client.propose(
            ALICE, self.slot, self.slot * 1000, self.pool.ready(), verified=self.pool.contains
        )
        self.pool.prune([o.hash for o in result.outcomes])
        self.pool.revalidate()
        if finalize:
            assert self.client.self_finalize(ALICE, result.hash)
        return result.hash


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[ChainNode]:
    client = ChainClient(dev_spec(), None)
    node = ChainNode(
        client, TransactionPool(client.validate_transaction), Keystore(tmp_path / "ks")
    )
    yield node
    client.close()


@pytest.fixture
async def url(chain: ChainNode, nursery: trio.Nursery) -> str:
    port = await nursery.start(partial(serve_rpc, chain, "127.0.0.1", 0, unsafe=False))
    return f"http://127.0.0.1:{port}"
