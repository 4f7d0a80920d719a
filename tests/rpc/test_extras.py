"""Read proofs, extrinsic watching and storage subscriptions against a live server."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from twinchain.primitives.keys import Keypair
from twinchain.primitives.types import Extrinsic
from twinchain.protocol import jsonrpc
from twinchain.protocol.jsonrpc import RpcError, from_hex, to_hex
from twinchain.rpc.hosting import serve_rpc
from twinchain.storage.proof import ProofError, verify_read_proof

if TYPE_CHECKING:
    from stub_node import StubNode

JSON = {"content-type": "application/json"}
ALICE = Keypair.from_dev_name("Alice")
BOB = Keypair.from_dev_name("Bob")


async def call(url: str, method: str, *params: Any) -> Any:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
    async with httpx.AsyncClient() as http:
        r = await http.post(f"http://{url}/", content=json.dumps(body), headers=JSON)
    assert r.status_code == 200, r.text
    res = r.json()
    if "error" in res:
        e = res["error"]
        raise RpcError(e["code"], e["message"], e.get("data"))
    return res["result"]


async def ws_recv(ws: WebSocketConnection) -> Any:
    with trio.fail_after(5):
        return json.loads(await ws.get_message())


async def ws_call(ws: WebSocketConnection, rid: int, method: str, *params: Any) -> Any:
    await ws.send_message(
        json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": list(params)})
    )
    return await ws_recv(ws)


# --------------------------------------------------------------------------- read proofs


async def test_read_proof_verifies_and_tampering_is_refused(server: str, node: StubNode) -> None:
    node.author(finalize=True)
    account = node.chain.runtime.system.Account
    keys = [account.key(ALICE.public), account.key(BOB.public), b"\x00missing"]
    fin = await call(server, "chain_getFinalizedHead")
    res = await call(server, "state_getReadProof", [to_hex(k) for k in keys], fin)
    assert res["at"] == fin
    header = await call(server, "chain_getHeader", fin)
    root = from_hex(header["stateRoot"])
    nodes = [from_hex(n) for n in res["proof"]]

    values = verify_read_proof(root, keys, nodes)
    state = node.chain.state_at(from_hex(fin))
    assert values == {k: state.get(k) for k in keys}
    assert values[keys[0]] is not None and values[keys[2]] is None

    # Any flipped byte, a dropped node or a foreign root must fail verification.
    for i in range(len(nodes)):
        bad = bytearray(nodes[i])
        bad[len(bad) // 2] ^= 0x01
        with pytest.raises(ProofError):
            verify_read_proof(root, keys, [*nodes[:i], bytes(bad), *nodes[i + 1 :]])
    with pytest.raises(ProofError):
        verify_read_proof(root, keys, nodes[1:])
    with pytest.raises(ProofError):
        verify_read_proof(b"\x11" * 32, keys, nodes)

    # Default block is the best one; bad params are typed jsonrpc.
    best = await call(server, "state_getReadProof", [to_hex(keys[0])])
    assert best["at"] == to_hex(node.chain.best.hash)
    with pytest.raises(RpcError) as info:
        await call(server, "state_getReadProof", "0x00")
    assert info.value.code == jsonrpc.INVALID_PARAMS
    with pytest.raises(RpcError) as info:
        await call(server, "state_getReadProof", [to_hex(keys[0])], "0x" + "11" * 32)
    assert info.value.code == jsonrpc.STATE_UNAVAILABLE


# --------------------------------------------------------------------------- extrinsic watch


async def test_submit_and_watch_ready_in_block_finalized(server: str, node: StubNode) -> None:
    async with open_websocket_url(f"ws://{server}/") as ws:
        xt = node.transfer(0)
        reply = await ws_call(ws, 1, "author_submitAndWatchExtrinsic", to_hex(xt.encode()))
        sub = reply["result"]

        async def update() -> Any:
            msg = await ws_recv(ws)
            assert msg["method"] == "author_extrinsicUpdate"
            assert msg["params"]["subscription"] == sub
            return msg["params"]["result"]

        assert await update() == "ready"
        h = node.author(finalize=True)
        assert await update() == {"inBlock": to_hex(h)}
        assert await update() == {"finalized": to_hex(h)}
        # Finalized ends the subscription.
        assert (await ws_call(ws, 2, "author_unwatchExtrinsic", sub))["result"] is False

        # A resubmission is refused with an error and opens no subscription.
        reply = await ws_call(ws, 3, "author_submitAndWatchExtrinsic", to_hex(xt.encode()))
        assert reply["error"]["code"] in (jsonrpc.POOL_INVALID_TX, jsonrpc.POOL_TEMPORARILY_BANNED)


async def test_watch_future_then_dropped_and_unwatch(server: str, node: StubNode) -> None:
    async with open_websocket_url(f"ws://{server}/") as ws:
        gap = node.transfer(5)  # nonce 5 waits for 0..4
        sub = (await ws_call(ws, 1, "author_submitAndWatchExtrinsic", to_hex(gap.encode())))[
            "result"
        ]
        assert (await ws_recv(ws))["params"]["result"] == "future"
        node.pool.remove([gap.hash])
        got = await ws_recv(ws)
        assert got["params"]["subscription"] == sub
        assert list(got["params"]["result"]) == ["dropped"] and got["params"]["result"]["dropped"]

        other = node.transfer(7)
        sub2 = (await ws_call(ws, 2, "author_submitAndWatchExtrinsic", to_hex(other.encode())))[
            "result"
        ]
        assert (await ws_recv(ws))["params"]["result"] == "future"
        assert (await ws_call(ws, 3, "author_unwatchExtrinsic", sub2))["result"] is True
        node.pool.remove([other.hash])
        assert (await ws_call(ws, 4, "system_name"))["result"] == "test-node"  # no update

    with pytest.raises(RpcError) as info:
        await call(server, "author_submitAndWatchExtrinsic", to_hex(node.transfer(0).encode()))
    assert info.value.code == jsonrpc.METHOD_NOT_FOUND


# --------------------------------------------------------------------------- storage


async def test_subscribe_storage_sends_changes(server: str, node: StubNode) -> None:
    bob_key = node.chain.runtime.balances.Account.key(BOB.public)
    missing = b"\x00nothing-here"
    async with open_websocket_url(f"ws://{server}/") as ws:
        reply = await ws_call(ws, 1, "state_subscribeStorage", [to_hex(bob_key), to_hex(missing)])
        sub = reply["result"]
        first = await ws_recv(ws)
        assert first["method"] == "state_storage" and first["params"]["subscription"] == sub
        bob_before = node.chain.state_at().get(bob_key)
        assert bob_before is not None
        assert first["params"]["result"] == {
            "block": to_hex(node.chain.best.hash),
            "changes": [[to_hex(bob_key), to_hex(bob_before)], [to_hex(missing), None]],
        }

        node.pool.submit(node.transfer(0).encode())
        h = node.author()
        got = (await ws_recv(ws))["params"]["result"]
        bob_after = node.chain.state_at(h).get(bob_key)
        assert bob_after is not None and bob_after != bob_before
        assert got == {"block": to_hex(h), "changes": [[to_hex(bob_key), to_hex(bob_after)]]}

        node.author()  # Bob's account does not change: no notification
        assert (await ws_call(ws, 2, "state_unsubscribeStorage", sub))["result"] is True
        node.pool.submit(node.transfer(1).encode())
        node.author()
        assert (await ws_call(ws, 3, "system_name"))["result"] == "test-node"

        bad = await ws_call(ws, 4, "state_subscribeStorage", [])
        assert bad["error"]["code"] == jsonrpc.INVALID_PARAMS


async def test_pool_callback_is_chained_and_restored(node: StubNode) -> None:
    seen: list[tuple[bytes, str]] = []

    def existing(tx_hash: bytes, status: str, detail: Any) -> None:
        seen.append((tx_hash, status))

    node.pool.on_status = existing
    finality_before = list(node.chain.finality_listeners)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(
            lambda task_status: serve_rpc(
                node, "127.0.0.1", 0, unsafe=False, task_status=task_status
            )
        )
        xt = node.transfer(0)
        async with open_websocket_url(f"ws://127.0.0.1:{port}/") as ws:
            await ws_call(ws, 1, "author_submitAndWatchExtrinsic", to_hex(xt.encode()))
            assert (await ws_recv(ws))["params"]["result"] == "ready"
        assert seen == [(xt.hash, "ready")]  # the node's own callback still runs
        nursery.cancel_scope.cancel()
    assert node.pool.on_status is existing
    assert node.chain.finality_listeners == finality_before


async def test_watchers_that_disconnect_are_forgotten(
    server: str, node: StubNode, caplog: pytest.LogCaptureFixture
) -> None:
    bob_key = node.chain.runtime.balances.Account.key(BOB.public)
    async with open_websocket_url(f"ws://{server}/") as ws:
        await ws_call(ws, 1, "author_submitAndWatchExtrinsic", to_hex(node.transfer(0).encode()))
        await ws_recv(ws)
        await ws_call(ws, 2, "state_subscribeStorage", [to_hex(bob_key)])
        await ws_recv(ws)
    await trio.sleep(0.1)  # let the server notice the close
    with caplog.at_level("WARNING", logger="twinchain.rpc"):
        node.author(finalize=True)
        await trio.sleep(0.1)
    # Nothing went wrong (the server's own start-up lines may be captured at info).
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    async with open_websocket_url(f"ws://{server}/") as ws:
        assert (await ws_call(ws, 1, "system_name"))["result"] == "test-node"


async def test_watch_usurped_by_higher_tip(server: str, node: StubNode) -> None:
    rt = node.chain.runtime
    call_ = rt.call_by_name("Balances", "transfer", BOB.public, 10**12)
    old = Extrinsic.sign(call_, ALICE, 0, node.chain.genesis_hash, rt.spec_version, tip=1)
    new = Extrinsic.sign(call_, ALICE, 0, node.chain.genesis_hash, rt.spec_version, tip=2)
    async with open_websocket_url(f"ws://{server}/") as ws:
        sub = (await ws_call(ws, 1, "author_submitAndWatchExtrinsic", to_hex(old.encode())))[
            "result"
        ]
        assert (await ws_recv(ws))["params"]["result"] == "ready"
        # The pool reports the usurping during the submission: update first, then the reply.
        got = await ws_call(ws, 2, "author_submitExtrinsic", to_hex(new.encode()))
        assert got["params"] == {"subscription": sub, "result": {"usurped": to_hex(new.hash)}}
        assert (await ws_recv(ws))["result"] == to_hex(new.hash)
        assert (await ws_call(ws, 3, "author_unwatchExtrinsic", sub))["result"] is False
