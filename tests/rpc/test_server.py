"""The JSON-RPC server end to end: a live hypercorn server on loopback, real chain and pool."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

from twinchain.client import RpcClient
from twinchain.primitives.keys import Keypair
from twinchain.primitives.types import extrinsic_hash
from twinchain.protocol import jsonrpc
from twinchain.protocol.jsonrpc import RpcError, header_from_json, to_hex
from twinchain.rpc import methods, subscriptions
from twinchain.rpc.hosting import serve_rpc
from twinchain.rpc.transport import RpcApp

if TYPE_CHECKING:
    from tests.rpc.conftest import StartServer, StubNode

JSON = {"content-type": "application/json"}
ALICE = Keypair.from_dev_name("Alice")
BOB = Keypair.from_dev_name("Bob")


async def post(url: str, payload: Any, **kw: Any) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        body = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
        headers = {**JSON, **kw.pop("headers", {})}
        return await http.post(f"http://{url}/", content=body, headers=headers, **kw)


async def call(url: str, method: str, *params: Any) -> Any:
    r = await post(url, {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == 1 and body["jsonrpc"] == "2.0"
    if "error" in body:
        e = body["error"]
        raise RpcError(e["code"], e["message"], e.get("data"))
    return body["result"]


async def call_error(url: str, method: str, *params: Any) -> RpcError:
    with pytest.raises(RpcError) as info:
        await call(url, method, *params)
    return info.value


async def alive(url: str) -> None:
    assert await call(url, "system_name") == "test-node"


async def ws_recv(ws: WebSocketConnection) -> Any:
    with trio.fail_after(5):
        return json.loads(await ws.get_message())


async def ws_call(ws: WebSocketConnection, rid: int, method: str, *params: Any) -> Any:
    await ws.send_message(
        json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": list(params)})
    )
    return await ws_recv(ws)


# --------------------------------------------------------------------------- methods


async def test_system_methods_in_one_batch(server: str) -> None:
    names = [
        "system_name",
        "system_version",
        "system_chain",
        "system_chainType",
        "system_properties",
        "system_health",
        "system_localPeerId",
        "system_localListenAddresses",
        "system_peers",
        "system_nodeRoles",
        "system_syncState",
    ]
    batch = [{"jsonrpc": "2.0", "id": i, "method": m} for i, m in enumerate(names)]
    r = await post(server, batch)
    assert r.status_code == 200
    got = {x["id"]: x["result"] for x in r.json()}
    res = dict(zip(names, (got[i] for i in range(len(names))), strict=True))
    assert res["system_name"] == "test-node"
    assert res["system_version"] == "0.1.0-test"
    assert res["system_chain"] == "Development"
    assert res["system_chainType"] == "Development"
    assert res["system_properties"]["ss58Format"] == 42
    assert res["system_health"] == {"peers": 0, "isSyncing": False, "shouldHavePeers": False}
    assert res["system_localPeerId"] == "12D3KooWTestPeer"
    assert res["system_localListenAddresses"] == ["/ip4/127.0.0.1/tcp/30333"]
    assert res["system_peers"] == []  # unsafe, but we are on loopback
    assert res["system_nodeRoles"] == ["Authority"]
    assert res["system_syncState"] == {"startingBlock": 0, "currentBlock": 0, "highestBlock": 0}


async def test_rpc_methods_lists_everything_on_loopback(server: str) -> None:
    res = await call(server, "rpc_methods")
    assert res["version"] == 1
    assert set(res["methods"]) == set(methods.METHODS)
    assert "author_insertKey" in res["methods"]


async def test_health_endpoint(server: str) -> None:
    async with httpx.AsyncClient() as http:
        r = await http.get(f"http://{server}/health")
    assert r.status_code == 200
    assert r.json()["isSyncing"] is False


async def test_chain_methods(server: str, node: StubNode) -> None:
    genesis = await call(server, "chain_getHeader")
    assert genesis["number"] == "0x0"
    assert set(genesis) == {
        "parentHash",
        "number",
        "stateRoot",
        "extrinsicsRoot",
        "slot",
        "digest",
        "seal",
    }
    assert genesis["digest"] == {"logs": []}
    g_hash = await call(server, "chain_getBlockHash", 0)
    assert g_hash == to_hex(node.chain.genesis_hash)
    assert header_from_json(genesis).hash == node.chain.genesis_hash

    h1 = node.author(finalize=True)
    assert await call(server, "chain_getBlockHash") == to_hex(h1)
    assert await call(server, "chain_getBlockHash", "0x1") == to_hex(h1)
    assert await call(server, "chain_getBlockHash", [0, 1, 7]) == [g_hash, to_hex(h1), None]
    assert await call(server, "chain_getFinalizedHead") == to_hex(h1)

    header = await call(server, "chain_getHeader", to_hex(h1))
    assert header["number"] == "0x1" and header["parentHash"] == g_hash
    assert header["slot"] == hex(node.slot)
    assert header_from_json(header).hash == h1  # the JSON carries the whole header
    assert await call(server, "chain_getHeader", "0x" + "ab" * 32) is None

    block = await call(server, "chain_getBlock", to_hex(h1))
    assert block["block"]["header"] == header
    assert len(block["block"]["extrinsics"]) == 1  # the timestamp inherent
    ((engine, just),) = block["justifications"]
    assert engine == to_hex(methods.FINALITY_ENGINE_ID) and just.startswith("0x")
    assert (await call(server, "chain_getBlock", g_hash))["justifications"] is None
    assert await call(server, "chain_getBlock", "0x" + "00" * 32) is None


async def test_state_methods(server: str, node: StubNode) -> None:
    account = node.chain.runtime.system.Account
    key = account.key(ALICE.public)
    value = await call(server, "state_getStorage", to_hex(key))
    stored = node.chain.state_at().get(key)
    assert stored is not None and value == to_hex(stored)
    genesis = to_hex(node.chain.genesis_hash)
    assert await call(server, "state_getStorage", to_hex(key), genesis) == value
    assert await call(server, "state_getStorage", "0x00") is None

    prefix = to_hex(account.prefix)
    every = await call(server, "state_getKeysPaged", prefix, 1000)
    assert to_hex(key) in every and len(every) >= 6  # the endowed dev accounts
    first = await call(server, "state_getKeysPaged", prefix, 2)
    rest = await call(server, "state_getKeysPaged", prefix, 1000, first[-1])
    assert first + rest == every

    meta = await call(server, "state_getMetadata")
    assert meta["spec_name"] == "twinchain"
    assert any(p["name"] == "Balances" for p in meta["pallets"])
    version = await call(server, "state_getRuntimeVersion", genesis)
    assert version["specName"] == "twinchain" and version["specVersion"] >= 1

    err = await call_error(server, "state_getStorage", to_hex(key), "0x" + "11" * 32)
    assert err.code == jsonrpc.STATE_UNAVAILABLE
    err = await call_error(server, "state_getKeysPaged", prefix, 1001)
    assert err.code == jsonrpc.INVALID_COUNT


# --------------------------------------------------------------------------- author


async def test_submit_pending_and_next_index(server: str, node: StubNode) -> None:
    xt = node.transfer(0)
    raw = xt.encode()
    assert await call(server, "system_accountNextIndex", ALICE.address) == 0
    h = await call(server, "author_submitExtrinsic", to_hex(raw))
    assert h == to_hex(extrinsic_hash(raw))
    assert await call(server, "author_pendingExtrinsics") == [to_hex(raw)]
    assert await call(server, "system_accountNextIndex", to_hex(ALICE.public)) == 1
    # A future nonce (gap at 1) does not move the next index.
    await call(server, "author_submitExtrinsic", to_hex(node.transfer(2).encode()))
    assert await call(server, "system_accountNextIndex", ALICE.address) == 1

    err = await call_error(server, "author_submitExtrinsic", to_hex(raw))
    assert err.code == jsonrpc.POOL_ALREADY_IMPORTED

    node.author()
    assert await call(server, "system_accountNextIndex", ALICE.address) == 1
    assert len(await call(server, "author_pendingExtrinsics")) == 1  # nonce 2 still waits


async def test_bad_signature_is_typed_1010(server: str, node: StubNode) -> None:
    xt = node.transfer(0)
    assert xt.signed is not None
    sig = bytes([xt.signed.signature[0] ^ 1]) + xt.signed.signature[1:]
    forged = replace(xt, signed=replace(xt.signed, signature=sig))
    err = await call_error(server, "author_submitExtrinsic", to_hex(forged.encode()))
    assert err.code == jsonrpc.POOL_INVALID_TX
    assert err.message == "Invalid Transaction"
    assert err.data["code"] == "Invalid:BadProof"

    err = await call_error(server, "author_submitExtrinsic", "0xdeadbeef")
    assert err.code == jsonrpc.POOL_INVALID_TX and err.data["code"].startswith("Invalid:")
    err = await call_error(server, "author_submitExtrinsic", "not hex")
    assert err.code == jsonrpc.INVALID_PARAMS
    assert await call(server, "author_pendingExtrinsics") == []


async def test_unsafe_methods_allowed_on_loopback(server: str, node: StubNode) -> None:
    seed = "0x" + "42" * 32
    kp = Keypair.from_seed(bytes.fromhex(seed[2:]))
    assert await call(server, "author_hasKey", to_hex(kp.public), "aura") is False
    assert await call(server, "author_insertKey", "aura", seed, to_hex(kp.public)) is None
    assert await call(server, "author_hasKey", to_hex(kp.public), "aura") is True
    assert node.keystore.get("aura", kp.public) == kp

    rotated = await call(server, "author_rotateKeys")
    assert len(rotated) == 2 + 64
    assert await call(server, "author_hasKey", rotated, "aura") is True

    err = await call_error(server, "author_insertKey", "aura", seed, to_hex(BOB.public))
    assert err.code == jsonrpc.INVALID_PARAMS
    err = await call_error(server, "author_insertKey", "nope", seed, to_hex(kp.public))
    assert err.code == jsonrpc.UNSUPPORTED_KEY_TYPE
    err = await call_error(server, "author_insertKey", "aura", "0x1234", to_hex(kp.public))
    assert "1234" not in json.dumps(err.data)  # a secret is never echoed back


async def _asgi_call(app: RpcApp, peer: str, method: str, *params: Any) -> dict[str, Any]:
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as http:
        r = await http.post(
            "/",
            json={"jsonrpc": "2.0", "id": 7, "method": method, "params": list(params)},
        )
    assert r.status_code == 200
    return r.json()  # type: ignore[no-any-return]


async def test_unsafe_methods_refused_from_remote_peers(node: StubNode) -> None:
    app = RpcApp(node, unsafe=False)
    for method in ("author_rotateKeys", "system_peers"):
        reply = await _asgi_call(app, "203.0.113.7", method)
        assert reply["error"]["code"] == jsonrpc.METHOD_NOT_FOUND
        assert "unsafe" in reply["error"]["message"]
    assert node.keystore.keys("aura") == []
    listed = (await _asgi_call(app, "203.0.113.7", "rpc_methods"))["result"]["methods"]
    assert "author_rotateKeys" not in listed and "chain_getHeader" in listed
    # Safe methods are answered; IPv4-mapped loopback counts as loopback.
    assert (await _asgi_call(app, "203.0.113.7", "system_name"))["result"] == "test-node"
    assert "result" in await _asgi_call(app, "::ffff:127.0.0.1", "author_rotateKeys")
    # --rpc-methods unsafe: answered to anyone.
    open_app = RpcApp(node, unsafe=True)
    assert "result" in await _asgi_call(open_app, "203.0.113.7", "author_rotateKeys")


# --------------------------------------------------------------------------- protocol


async def test_notifications_get_no_response(server: str) -> None:
    r = await post(server, {"jsonrpc": "2.0", "method": "system_name"})
    assert r.status_code == 204 and r.content == b""
    # Even a failing notification stays silent.
    r = await post(server, {"jsonrpc": "2.0", "method": "no_such_method"})
    assert r.status_code == 204
    r = await post(
        server,
        [
            {"jsonrpc": "2.0", "method": "system_name"},
            {"jsonrpc": "2.0", "id": "a", "method": "system_chain"},
            {"jsonrpc": "2.0", "method": "system_version"},
        ],
    )
    assert r.json() == [{"jsonrpc": "2.0", "result": "Development", "id": "a"}]
    r = await post(server, [{"jsonrpc": "2.0", "method": "system_name"}])
    assert r.status_code == 204


async def test_named_params(server: str, node: StubNode) -> None:
    r = await post(
        server,
        {"jsonrpc": "2.0", "id": 3, "method": "chain_getBlockHash", "params": {"number": 0}},
    )
    assert r.json()["result"] == to_hex(node.chain.genesis_hash)


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"{not json", jsonrpc.PARSE_ERROR),
        (b"\xff\xfe\x00garbage", jsonrpc.PARSE_ERROR),
        (b"[" * 100_000, jsonrpc.PARSE_ERROR),
        (b'{"jsonrpc":"2.0","id":1,"method":"system_name","params":[NaN]}', jsonrpc.PARSE_ERROR),
        (b"[]", jsonrpc.INVALID_REQUEST),
        (b"42", jsonrpc.INVALID_REQUEST),
        (b'{"jsonrpc":"1.0","id":1,"method":"system_name"}', jsonrpc.INVALID_REQUEST),
        (b'{"jsonrpc":"2.0","id":1,"method":5}', jsonrpc.INVALID_REQUEST),
        (b'{"jsonrpc":"2.0","id":[1],"method":"system_name"}', jsonrpc.INVALID_REQUEST),
        (b'{"jsonrpc":"2.0","id":1,"method":"system_name","params":"x"}', jsonrpc.INVALID_REQUEST),
        (b'{"jsonrpc":"2.0","id":1,"method":"nope_nothing"}', jsonrpc.METHOD_NOT_FOUND),
        (b'{"jsonrpc":"2.0","id":1,"method":"chain_getHeader","params":[1,2]}', -32602),
        (b'{"jsonrpc":"2.0","id":1,"method":"chain_getHeader","params":[12]}', -32602),
        (b'{"jsonrpc":"2.0","id":1,"method":"chain_getHeader","params":{"x":1}}', -32602),
        (b'{"jsonrpc":"2.0","id":1,"method":"chain_getBlockHash","params":[-1]}', -32602),
        (b'{"jsonrpc":"2.0","id":1,"method":"state_getKeysPaged","params":["0x",true]}', -32602),
        (b'{"jsonrpc":"2.0","id":1,"method":"system_accountNextIndex","params":["x"]}', -32602),
    ],
)
async def test_standard_errors_never_kill_the_server(
    server: str, payload: bytes, code: int
) -> None:
    r = await post(server, payload)
    assert r.status_code == 200
    body = r.json()
    assert body["jsonrpc"] == "2.0" and body["error"]["code"] == code
    await alive(server)


async def test_batch_items_fail_independently(server: str) -> None:
    r = await post(
        server,
        [
            {"jsonrpc": "2.0", "id": 1, "method": "system_name"},
            "junk",
            {"jsonrpc": "2.0", "id": 2, "method": "nope"},
        ],
    )
    by = r.json()
    assert by[0] == {"jsonrpc": "2.0", "result": "test-node", "id": 1}
    assert by[1]["error"]["code"] == jsonrpc.INVALID_REQUEST and by[1]["id"] is None
    assert by[2]["error"]["code"] == jsonrpc.METHOD_NOT_FOUND and by[2]["id"] == 2


async def test_internal_error_hides_details(
    server: str, node: StubNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode() -> list[bytes]:
        raise RuntimeError("secret internals /home/x/db")

    monkeypatch.setattr(node.pool, "pending", explode)
    r = await post(server, {"jsonrpc": "2.0", "id": 9, "method": "author_pendingExtrinsics"})
    assert r.json() == {
        "jsonrpc": "2.0",
        "error": {"code": jsonrpc.INTERNAL_ERROR, "message": "Internal error"},
        "id": 9,
    }
    assert "secret" not in r.text and "Traceback" not in r.text
    await alive(server)


async def test_http_limits_and_hostile_requests(server: str) -> None:
    big = {"jsonrpc": "2.0", "id": 1, "method": "system_name", "params": ["x" * 300_000]}
    r = await post(server, big)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == jsonrpc.OVERSIZED_REQUEST

    # Chunked, so no Content-Length to refuse it early.
    async def chunks() -> Any:
        for _ in range(40):
            yield b"x" * 10_000

    async with httpx.AsyncClient() as http:
        r = await http.post(f"http://{server}/", content=chunks(), headers=JSON)
        assert r.status_code == 413
        r = await http.post(
            f"http://{server}/", content=b"{}", headers={"content-type": "text/plain"}
        )
        assert r.status_code == 415
        r = await http.get(f"http://{server}/")
        assert r.status_code == 405
        huge_batch = [{"jsonrpc": "2.0", "id": i, "method": "system_name"} for i in range(1001)]
        r = await http.post(f"http://{server}/", json=huge_batch)
        assert r.json()["error"]["code"] == jsonrpc.BATCH_TOO_LARGE
    # Raw garbage and broken HTTP on the socket: refused, and the server carries on.
    assert (await raw_http(server, b"\x00\x01GARBAGE\r\n\r\n" * 50)).startswith(b"HTTP/1.1 400")
    bad_length = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    bad_length += b"Content-Length: abc\r\n\r\n{}"
    assert (await raw_http(server, bad_length)).startswith(b"HTTP/1.1 400")
    huge_header = b"POST / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n"
    reply = await raw_http(server, huge_header)
    assert reply == b"" or reply.startswith(b"HTTP/1.1 4")
    await alive(server)


async def raw_http(server: str, data: bytes) -> bytes:
    host, port = server.split(":")
    stream = await trio.open_tcp_stream(host, int(port))
    reply = b""
    with trio.move_on_after(3):
        try:
            await stream.send_all(data)
            while chunk := await stream.receive_some(65536):
                reply += chunk
        except trio.BrokenResourceError:
            pass
    await stream.aclose()
    return reply


async def test_cors(server: str) -> None:
    r = await post(
        server,
        {"jsonrpc": "2.0", "id": 1, "method": "system_name"},
        headers={"origin": "https://evil.example"},
    )
    assert r.status_code == 403
    r = await post(
        server,
        {"jsonrpc": "2.0", "id": 1, "method": "system_name"},
        headers={"origin": "http://localhost:3000"},
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "http://localhost:3000"
    async with httpx.AsyncClient() as http:
        r = await http.options(f"http://{server}/", headers={"origin": "http://127.0.0.1:8080"})
    assert r.status_code == 204 and "content-type" in r.headers["access-control-allow-headers"]


async def test_max_connections(start_server: StartServer) -> None:
    url = await start_server(max_connections=1)
    async with open_websocket_url(f"ws://{url}/") as ws:
        reply = await ws_call(ws, 1, "system_name")
        assert reply["result"] == "test-node"
        r = await post(url, {"jsonrpc": "2.0", "id": 1, "method": "system_name"})
        assert r.status_code == 503
        assert r.json()["error"]["code"] == jsonrpc.SERVER_BUSY
    with trio.fail_after(5):
        while (
            await post(url, {"jsonrpc": "2.0", "id": 1, "method": "system_name"})
        ).status_code != 200:
            await trio.sleep(0.05)


# --------------------------------------------------------------------------- WebSocket


async def test_websocket_calls_and_garbage(server: str) -> None:
    async with open_websocket_url(f"ws://{server}/") as ws:
        assert (await ws_call(ws, 1, "system_chain"))["result"] == "Development"
        await ws.send_message("{{{")
        assert (await ws_recv(ws))["error"]["code"] == jsonrpc.PARSE_ERROR
        await ws.send_message(b"\xff\xff")
        assert (await ws_recv(ws))["error"]["code"] == jsonrpc.PARSE_ERROR
        await ws.send_message(json.dumps([{"jsonrpc": "2.0", "id": 5, "method": "system_name"}]))
        assert (await ws_recv(ws)) == [{"jsonrpc": "2.0", "result": "test-node", "id": 5}]
        assert (await ws_call(ws, 2, "system_name"))["result"] == "test-node"


async def test_websocket_oversized_message_closes_that_connection(server: str) -> None:
    async with open_websocket_url(f"ws://{server}/") as ws:
        await ws.send_message("x" * 300_000)
        with pytest.raises(ConnectionClosed), trio.fail_after(5):
            await ws.get_message()
        assert ws.closed is not None and ws.closed.code == 1009
    await alive(server)


async def test_new_and_finalized_heads_subscriptions(server: str, node: StubNode) -> None:
    async with open_websocket_url(f"ws://{server}/") as ws:
        sub = (await ws_call(ws, 1, "chain_subscribeNewHeads"))["result"]
        first = await ws_recv(ws)  # the current best, right away
        assert first["method"] == "chain_newHead"
        assert first["params"]["subscription"] == sub
        assert first["params"]["result"]["number"] == "0x0"
        fin = (await ws_call(ws, 2, "chain_subscribeFinalizedHeads"))["result"]
        assert (await ws_recv(ws))["params"] == {
            "subscription": fin,
            "result": (await call(server, "chain_getHeader", to_hex(node.chain.genesis_hash))),
        }

        h1 = node.author(finalize=True)
        got = await ws_recv(ws)
        assert got["method"] == "chain_newHead" and got["params"]["subscription"] == sub
        assert header_from_json(got["params"]["result"]).hash == h1
        got = await ws_recv(ws)
        assert got["method"] == "chain_finalizedHead" and got["params"]["subscription"] == fin
        assert header_from_json(got["params"]["result"]).hash == h1

        assert (await ws_call(ws, 3, "chain_unsubscribeNewHeads", sub))["result"] is True
        assert (await ws_call(ws, 4, "chain_unsubscribeNewHeads", sub))["result"] is False
        assert (await ws_call(ws, 5, "chain_unsubscribeFinalizedHeads", fin))["result"] is True
        node.author(finalize=True)
        assert (await ws_call(ws, 6, "system_name"))["result"] == "test-node"  # nothing else

    err = await call_error(server, "chain_subscribeNewHeads")
    assert err.code == jsonrpc.METHOD_NOT_FOUND


async def test_finality_without_import_is_pushed_at_once(
    server: str, node: StubNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a validator, a block is usually finalized by votes arriving after its import: the
    finalized-heads subscribers hear of it then, not at the next poll (here never)."""
    async with open_websocket_url(f"ws://{server}/") as ws:
        fin = (await ws_call(ws, 1, "chain_subscribeFinalizedHeads"))["result"]
        await ws_recv(ws)  # genesis, right away
        monkeypatch.setattr(subscriptions, "FINALITY_POLL_S", 3600)
        await trio.sleep(0.6)  # the watch now sleeps on the long poll
        h1 = node.author()
        await trio.sleep(0.05)
        node.chain.finalize(h1)  # as the voter does when the precommits are in
        with trio.fail_after(5):
            got = await ws_recv(ws)
        assert got["method"] == "chain_finalizedHead" and got["params"]["subscription"] == fin
        assert header_from_json(got["params"]["result"]).hash == h1


async def test_subscription_limit_per_connection(start_server: StartServer) -> None:
    url = await start_server(max_subscriptions_per_connection=2)
    async with open_websocket_url(f"ws://{url}/") as ws:
        for i in range(2):
            assert "result" in await ws_call(ws, i, "chain_subscribeAllHeads")
            await ws_recv(ws)
        reply = await ws_call(ws, 9, "chain_subscribeAllHeads")
        assert reply["error"]["code"] == jsonrpc.TOO_MANY_SUBSCRIPTIONS
    # A new connection has its own budget.
    async with open_websocket_url(f"ws://{url}/") as ws:
        assert "result" in await ws_call(ws, 1, "chain_subscribeAllHeads")


async def test_server_stops_cleanly_and_unhooks(node: StubNode) -> None:
    before = list(node.chain.import_listeners)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(
            lambda task_status: serve_rpc(
                node, "127.0.0.1", 0, unsafe=False, task_status=task_status
            )
        )
        assert len(node.chain.import_listeners) == len(before) + 1
        await alive(f"127.0.0.1:{port}")
        nursery.cancel_scope.cancel()
    assert node.chain.import_listeners == before


# --------------------------------------------------------------------------- sync client


async def test_sync_client(server: str, node: StubNode) -> None:
    h1 = node.author(finalize=True)
    xt = node.transfer(0).encode()

    def use_client() -> None:
        with RpcClient(f"http://{server}") as rpc:
            assert rpc.call("system_name") == "test-node"
            assert rpc.block_hash(1) == h1 and rpc.block_hash(99) is None
            head = rpc.header()
            assert head is not None and head.hash == h1
            assert rpc.header(b"\x00" * 32) is None
            assert rpc.finalized_head() == h1
            key = node.chain.runtime.system.Account.key(ALICE.public)
            assert rpc.storage(key) == node.chain.state_at().get(key)
            assert rpc.storage(key, node.chain.genesis_hash) is not None
            assert rpc.submit(xt) == extrinsic_hash(xt)
            assert rpc.next_index(ALICE.public) == 1
            with pytest.raises(RpcError) as info:
                rpc.submit(xt)
            assert info.value.code == jsonrpc.POOL_ALREADY_IMPORTED
            with pytest.raises(RpcError) as info:
                rpc.call("nope")
            assert info.value.code == jsonrpc.METHOD_NOT_FOUND
            assert rpc.batch([("system_name", []), ("system_chain", [])]) == [
                "test-node",
                "Development",
            ]

    await trio.to_thread.run_sync(use_client)


async def test_oversized_responses(start_server: StartServer) -> None:
    url = await start_server(max_response_bytes=4000)
    err = await call_error(url, "state_getMetadata")
    assert err.code == jsonrpc.OVERSIZED_RESPONSE
    batch = [{"jsonrpc": "2.0", "id": i, "method": "system_name"} for i in range(200)]
    r = await post(url, batch)
    assert r.json()["error"]["code"] == jsonrpc.OVERSIZED_RESPONSE
    await alive(url)


async def test_slow_subscriber_is_disconnected(
    node: StubNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(subscriptions, "MAX_QUEUED_BYTES", 3000)
    app = RpcApp(node, unsafe=False)
    conn = subscriptions.WsConnection(app.hub, limit=8)  # no writer: nothing drains
    text, hooks = await app.handle(
        '{"jsonrpc":"2.0","id":1,"method":"chain_subscribeAllHeads"}', "127.0.0.1", conn
    )
    assert text is not None and "result" in text
    for hook in hooks:
        hook()
    node.chain.import_listeners.append(app.hub.on_import)
    try:
        for _ in range(10):
            node.author()
    finally:
        node.chain.import_listeners.remove(app.hub.on_import)
    assert conn.overflowed and conn.cancel_scope.cancel_called


async def test_port_in_use_is_a_plain_oserror(node: StubNode) -> None:
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        with pytest.raises(OSError, match="cannot listen on"):
            await serve_rpc(node, "127.0.0.1", port, unsafe=False)
    finally:
        listener.close()
    assert node.chain.import_listeners == []


@pytest.mark.parametrize("rid", [0, 7, -3, 2**53, 1.5, "a", "", None])
async def test_every_valid_id_type_is_echoed(server: str, rid: Any) -> None:
    r = await post(server, {"jsonrpc": "2.0", "id": rid, "method": "system_name"})
    assert r.json() == {"jsonrpc": "2.0", "result": "test-node", "id": rid}


@pytest.mark.parametrize("rid", [[1], {"a": 1}, True, False])
async def test_ids_of_other_json_types_are_invalid_requests(server: str, rid: Any) -> None:
    r = await post(server, {"jsonrpc": "2.0", "id": rid, "method": "system_name"})
    body = r.json()
    assert body["error"]["code"] == jsonrpc.INVALID_REQUEST and body["id"] is None
