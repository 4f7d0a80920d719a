"""Hypothesis: malformed, hostile and oversized requests each get an error, and the server
keeps answering valid requests (over HTTP and on one long-lived WebSocket)."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from functools import partial
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trio_websocket import open_websocket_url

from twinchain.node.blockchain import Blockchain
from twinchain.node.chain_spec import dev_spec
from twinchain.node.txpool import TransactionPool
from twinchain.primitives.keystore import Keystore
from twinchain.protocol import jsonrpc
from twinchain.rpc.hosting import serve_rpc

JSON = {"content-type": "application/json"}
LIMIT = 256 * 1024  # max_request_bytes of the server under test
VALID = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "system_name", "params": []})

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
# Request-shaped objects with some field wrong (bad version, method type, params or id).
near_requests = st.fixed_dictionaries(
    {
        "jsonrpc": st.sampled_from(["2.0", "1.0", 2, None]),
        "id": json_values,
        "method": st.one_of(st.text(max_size=30), json_values),
        "params": json_values,
    }
).filter(lambda d: not (d["jsonrpc"] == "2.0" and isinstance(d["method"], str)))


def _nested(depth: int, kind: str) -> str:
    return ("[" * depth + "]" * depth) if kind == "list" else ('{"a":' * depth + "1" + "}" * depth)


payloads = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    near_requests.map(lambda v: json.dumps(v).encode()),
    st.lists(near_requests, min_size=1, max_size=5).map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
    st.builds(_nested, st.integers(1_000, 100_000), st.sampled_from(["list", "dict"])).map(
        str.encode
    ),
    st.integers(LIMIT + 1, 4 * LIMIT).map(lambda n: b'"' + b"x" * n + b'"'),
    st.integers(1_000, LIMIT - 100).map(
        lambda n: json.dumps({"jsonrpc": "2.0", "id": 1, "method": "x" * n}).encode()
    ),
)


def _is_error(body: Any) -> bool:
    if isinstance(body, dict):
        return "error" in body and "result" not in body
    return isinstance(body, list) and bool(body) and all(_is_error(x) for x in body)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One server for every example, on its own trio thread: hypothesis runs each example
    as a plain call, and the server staying up across all of them is the point."""
    client = Blockchain(dev_spec(), None)
    node = SimpleNamespace(
        chain=client,
        pool=TransactionPool(client.validate_transaction),
        keystore=Keystore(tmp_path_factory.mktemp("ks")),
        name="test-node",
        version="0",
        roles=["Full"],
        is_syncing=False,
        peers=[],
        local_peer_id="12D3KooWFuzz",
        listen_addresses=[],
        submit_extrinsic=lambda raw: node.pool.submit(raw),
    )
    started: queue.Queue[tuple[int, trio.lowlevel.TrioToken, trio.CancelScope]] = queue.Queue()

    async def main() -> None:
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                port = await nursery.start(
                    partial(serve_rpc, node, "127.0.0.1", 0, unsafe=False, max_request_bytes=LIMIT)
                )
                started.put((port, trio.lowlevel.current_trio_token(), scope))

    thread = threading.Thread(target=trio.run, args=(main,), daemon=True)
    thread.start()
    port, token, scope = started.get(timeout=10)
    yield f"127.0.0.1:{port}"
    trio.from_thread.run_sync(scope.cancel, trio_token=token)
    thread.join(10)
    client.close()


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as c:
        yield c


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=payloads)
def test_hostile_http_requests_get_errors(live: str, http: httpx.Client, data: bytes) -> None:
    r = http.post(f"http://{live}/", content=data, headers=JSON)
    if len(data) > LIMIT:
        assert r.status_code == 413
        assert r.json()["error"]["code"] == jsonrpc.OVERSIZED_REQUEST
    else:
        assert r.status_code == 200, (r.status_code, data[:80])
        assert _is_error(r.json()), r.text[:200]
    ok = http.post(f"http://{live}/", content=VALID, headers=JSON)
    assert ok.json()["result"] == "test-node"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=st.lists(payloads.filter(lambda d: len(d) <= LIMIT), min_size=1, max_size=5))
def test_hostile_websocket_messages_get_errors(live: str, messages: list[bytes]) -> None:
    async def session() -> None:
        async with open_websocket_url(f"ws://{live}/") as ws:
            for data in messages:
                await ws.send_message(data)  # bytes go as binary frames, handled like text
                with trio.fail_after(5):
                    assert _is_error(json.loads(await ws.get_message()))
            await ws.send_message(VALID)
            with trio.fail_after(5):
                assert json.loads(await ws.get_message())["result"] == "test-node"

    trio.run(session)
