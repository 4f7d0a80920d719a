"""A real chain (in-memory node Client, real TransactionPool) behind a stand-in node and a
live RPC server on 127.0.0.1 with an OS-chosen port, for the Python client's tests."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
import trio
from stub_node import ALICE, StubNode

from twinchain.node.blockchain import Blockchain as ChainClient
from twinchain.node.chain_spec import dev_spec
from twinchain.node.txpool import TransactionPool
from twinchain.primitives.keystore import Keystore
from twinchain.rpc.hosting import serve_rpc

__all__ = ["ALICE", "ChainNode"]


ChainNode = StubNode


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
