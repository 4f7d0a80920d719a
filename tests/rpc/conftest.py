"""A real chain (in-memory Blockchain, real TransactionPool) behind a stand-in node, and a live
RPC server on 127.0.0.1 with an OS-chosen port."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
from stub_node import ALICE, BOB, StubNode

from twinchain.node.blockchain import Blockchain
from twinchain.node.chain_spec import dev_spec
from twinchain.node.txpool import TransactionPool
from twinchain.primitives.keystore import Keystore
from twinchain.rpc.hosting import serve_rpc

__all__ = ["ALICE", "BOB", "StubNode"]


@pytest.fixture
def node(tmp_path: Path) -> Iterator[StubNode]:
    client = Blockchain(dev_spec(), None)
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
