"""The explorer's RPC client with no node to talk to (no node process needed here)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from twinchain.client import NodeUnavailable as Disconnected
from twinchain.client import ReconnectingClient as NodeRpc


def test_rpc_client_without_a_node_reports_disconnected() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there

    async def main() -> None:
        rpc = NodeRpc(f"http://127.0.0.1:{port}")  # http:// maps to the same port's ws://
        assert rpc.url == f"ws://127.0.0.1:{port}/"
        rpc.start()
        try:
            ev = await asyncio.wait_for(rpc.events.get(), 5)
            assert ev.kind == "disconnected" and not rpc.connected
            with pytest.raises(Disconnected):
                await rpc.call("system_name")
            await asyncio.sleep(0.5)
            assert rpc.attempts >= 2  # it keeps trying, with backoff
        finally:
            await rpc.stop()

    asyncio.run(main())
