"""twinchain.client against a live RPC server over a real chain: calls from metadata,
signed transfers watched to finality, proof-checked storage reads, events, head
subscriptions; the asyncio client's batches, subscriptions and reconnection; the plans both
clients run.

The node serves from the test's trio loop; the asyncio client runs on its own loop in a
worker thread (:func:`_on_asyncio`) and authors blocks back on the trio side (:func:`_author`).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import pytest
import trio

from twinchain.client import (
    AsyncClient,
    Client,
    NodeUnavailable,
    ProofMismatch,
    ReconnectingClient,
    RpcClient,
    TxStatus,
    VersionMismatch,
    plans,
)
from twinchain.primitives.keys import Keypair
from twinchain.primitives.types import Era
from twinchain.protocol.jsonrpc import METHOD_NOT_FOUND, RpcError, from_hex, to_hex

if TYPE_CHECKING:
    from tests.client.conftest import ChainNode

ALICE = Keypair.from_dev_name("Alice")
BOB = Keypair.from_dev_name("Bob")
AMOUNT = 10**12


async def _on_asyncio(main: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``main()`` on an asyncio loop in a worker thread and return what it returns."""
    return await trio.to_thread.run_sync(lambda: asyncio.run(main()))  # type: ignore[arg-type]


def _author(chain: ChainNode, *, finalize: bool = True) -> bytes:
    """From the asyncio thread: author (and finalize) a block on the node's trio thread."""
    return trio.from_thread.run_sync(partial(chain.author, finalize=finalize))


async def _author_when_pooled(chain: ChainNode, count: int = 1) -> bytes:
    """Wait for ``count`` transactions in the pool, then author and finalize a block."""
    with trio.fail_after(10):
        while chain.pool.ready_count < count:
            await trio.sleep(0.01)
    return chain.author(finalize=True)


def _bob_free(chain: ChainNode) -> int:
    return chain.chain.runtime.balances.Account.value_type.decode(
        chain.chain.state_at(chain.chain.finalized.hash).get(
            chain.chain.runtime.balances.Account.key(BOB.public)
        )
    ).free


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: nothing listens there


async def test_async_transfer_watched_to_finalized(url: str, chain: ChainNode) -> None:
    before = _bob_free(chain)
    expected_call = chain.chain.runtime.call_by_name("Balances", "transfer", BOB.public, AMOUNT)

    async def main() -> tuple[list[TxStatus], bytes | None]:
        async with AsyncClient(url) as c:
            assert c.info.genesis_hash == chain.chain.genesis_hash
            call = c.call_function("Balances", "transfer", dest=BOB.public, value=AMOUNT)
            assert call == expected_call
            seen: list[TxStatus] = []
            block = None
            async with c.submit_and_watch(call, ALICE) as statuses:
                async for status in statuses:
                    seen.append(status)
                    if status.kind == "ready":
                        block = _author(chain)
            return seen, block

    seen, block = await _on_asyncio(main)
    assert [s.kind for s in seen] == ["ready", "inBlock", "finalized"]
    assert seen[1].block == seen[2].block == block
    assert _bob_free(chain) == before + AMOUNT


async def test_sync_client_sign_submit_and_watch(url: str, chain: ChainNode) -> None:
    client = await trio.to_thread.run_sync(Client, url)
    try:
        call = client.call_function("Balances", "transfer", dest=BOB.public, value=AMOUNT)
        # A plain submit, then a mortal one watched from a worker thread while we author.
        tx_hash = await trio.to_thread.run_sync(lambda: client.sign_and_submit(call, ALICE))
        assert chain.pool.contains(tx_hash)
        era = Era.mortal(64, chain.chain.best.number)
        result: list[list[TxStatus]] = []

        async def watch() -> None:
            result.append(
                await trio.to_thread.run_sync(
                    lambda: client.submit_and_watch(call, ALICE, era=era, timeout=10)
                )
            )

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            block = await _author_when_pooled(chain, 2)
        statuses = result[0]
        assert [s.kind for s in statuses] == ["ready", "inBlock", "finalized"]
        assert statuses[-1].block == block
        assert await trio.to_thread.run_sync(client.rpc.next_index, ALICE.public) == 2
        # The transfers' events, decoded from the block's System.Events.
        events = await trio.to_thread.run_sync(client.events, block)
        assert any(e["pallet"] == "Balances" and e["event"] == "Transfer" for e in events)
        assert any(e["event"] == "ExtrinsicSuccess" for e in events)
    finally:
        client.close()


async def test_read_storage_is_verified_against_finalized_root(url: str, chain: ChainNode) -> None:
    chain.author(finalize=True)
    expected = chain.chain.runtime.balances.Account.value_type.decode(
        chain.chain.state_at(chain.chain.finalized.hash).get(
            chain.chain.runtime.balances.Account.key(BOB.public)
        )
    )
    nobody = Keypair.from_dev_name("Nobody").public

    async def main() -> None:
        async with AsyncClient(url) as c:
            assert await c.read_storage("Balances", "Account", BOB.public) == expected
            assert await c.read_storage("Balances", "Account", BOB.public, verify=False) == expected
            # An account that does not exist proves absent and reads as the item's default.
            assert await c.read_storage("Balances", "Account", nobody) is None
            issuance = await c.read_storage("Balances", "TotalIssuance")
            assert isinstance(issuance, int) and issuance > 0

    await _on_asyncio(main)
    sync = await trio.to_thread.run_sync(Client, url)
    try:
        got = await trio.to_thread.run_sync(
            lambda: sync.read_storage("Balances", "Account", BOB.public)
        )
        assert got == expected
    finally:
        sync.close()


def _tamper(method: str, edit: Any) -> Any:
    """A replacement for AsyncClient.call that edits one method's result."""
    original = AsyncClient.call

    async def call(self: AsyncClient, m: str, *params: Any) -> Any:
        res = await original(self, m, *params)
        return edit(res) if m == method else res

    return call


def _flip_last_node(res: dict[str, Any]) -> dict[str, Any]:
    nodes = list(res["proof"])
    raw = bytearray(from_hex(nodes[-1]))
    raw[-1] ^= 0x01
    nodes[-1] = to_hex(bytes(raw))
    return {**res, "proof": nodes}


def _richer(value: str) -> str:
    raw = bytearray(from_hex(value))
    raw[-1] ^= 0x01
    return to_hex(bytes(raw))


@pytest.mark.parametrize(
    ("method", "edit"),
    [
        ("state_getReadProof", _flip_last_node),
        ("state_getReadProof", lambda r: {**r, "proof": r["proof"][1:]}),
        ("state_getStorage", _richer),
        ("chain_getHeader", lambda h: {**h, "stateRoot": "0x" + "11" * 32}),
    ],
)
async def test_tampered_reads_raise_proof_mismatch(
    url: str, chain: ChainNode, monkeypatch: pytest.MonkeyPatch, method: str, edit: Any
) -> None:
    chain.author(finalize=True)

    async def main() -> None:
        async with AsyncClient(url) as c:
            monkeypatch.setattr(AsyncClient, "call", _tamper(method, edit))
            with pytest.raises(ProofMismatch):
                await c.read_storage("Balances", "Account", BOB.public)
            # Unverified reads trust the node (that is what verify=False is for).
            if method != "state_getStorage":
                await c.read_storage("Balances", "Account", BOB.public, verify=False)

    await _on_asyncio(main)


async def test_sync_tampered_proof_raises(
    url: str, chain: ChainNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain.author(finalize=True)
    client = await trio.to_thread.run_sync(Client, url)
    try:
        original = client.rpc.call

        def call(method: str, *params: Any) -> Any:
            res = original(method, *params)
            return _flip_last_node(res) if method == "state_getReadProof" else res

        monkeypatch.setattr(client.rpc, "call", call)
        with pytest.raises(ProofMismatch):
            await trio.to_thread.run_sync(
                lambda: client.read_storage("Balances", "Account", BOB.public)
            )
    finally:
        client.close()


async def test_subscribe_new_heads_yields_heads(url: str, chain: ChainNode) -> None:
    best = chain.chain.best.hash

    async def main() -> tuple[bytes, list[bytes], list[bytes]]:
        async with AsyncClient(url) as c, c.subscribe_new_heads() as heads:
            async with asyncio.timeout(10):
                first = await heads.__anext__()
                authored = [_author(chain, finalize=False) for _ in range(2)]
                got = [(await heads.__anext__()).hash for _ in range(2)]
        return first.hash, authored, got

    first, authored, got = await _on_asyncio(main)
    assert first == best
    assert got == authored


async def test_call_function_checks_names_and_version(url: str, chain: ChainNode) -> None:
    async def main() -> None:
        async with AsyncClient(url) as c:
            with pytest.raises(TypeError):
                c.call_function("Balances", "transfer", dest=BOB.public)
            with pytest.raises(TypeError):
                c.call_function("Balances", "transfer", dest=BOB.public, value=1, memo=b"")
            with pytest.raises(Exception, match="no call"):
                c.call_function("Balances", "nope")
            c.info.version["specVersion"] = c.info.spec_version + 1
            with pytest.raises(VersionMismatch):
                c.call_function("Balances", "transfer", dest=BOB.public, value=1)
            with pytest.raises(VersionMismatch):
                await c.read_storage("Balances", "Account", BOB.public)

    await _on_asyncio(main)


async def test_async_batch_latest_heads_and_closing(url: str, chain: ChainNode) -> None:
    """Batches keep their order and raise the first error; ``latest`` skips to the newest
    head; a closed client fails calls and ends its subscriptions."""
    genesis = to_hex(chain.chain.genesis_hash)

    async def main() -> tuple[list[Any], int, bytes, int | None]:
        c = await AsyncClient(url).connect()
        try:
            got = await c.batch([("chain_getBlockHash", [0]), ("system_name", [])])
            with pytest.raises(RpcError) as err:
                await c.batch([("system_name", []), ("no_suchMethod", [])])
            heads = await c.subscribe("chain_subscribeNewHeads")
            assert (await heads.get()) is not None  # the current best head
            newest = [_author(chain) for _ in range(3)][-1]
            async with asyncio.timeout(10):
                while True:
                    head = await heads.latest()
                    assert head is not None
                    if int(head["number"], 16) == chain.chain.best.number:
                        break
            await c.close()
            assert await heads.get() is None
            with pytest.raises(NodeUnavailable):
                await c.call("system_name")
        finally:
            await c.close()
        return got, err.value.code, newest, int(head["number"], 16)

    got, code, newest, number = await _on_asyncio(main)
    assert got == [genesis, "test-node"]
    assert code == METHOD_NOT_FOUND
    assert number == chain.chain.best.number and chain.chain.best.hash == newest


async def test_reconnecting_client_follows_heads_and_reports_a_missing_node(
    url: str, chain: ChainNode
) -> None:
    nowhere = f"http://127.0.0.1:{_free_port()}"

    async def main() -> tuple[list[str], str, int]:
        rc = ReconnectingClient(url)
        rc.start()
        kinds: list[str] = []
        try:
            async with asyncio.timeout(10):
                while "newHead" not in kinds or "finalizedHead" not in kinds:
                    kinds.append((await rc.events.get()).kind)
                name = await rc.call("system_name")
        finally:
            await rc.stop()
        gone = ReconnectingClient(nowhere)
        assert gone.url == nowhere.replace("http", "ws") + "/"
        gone.start()
        try:
            ev = await asyncio.wait_for(gone.events.get(), 5)
            assert ev.kind == "disconnected" and not gone.connected
            with pytest.raises(NodeUnavailable):
                await gone.call("system_name")
            await asyncio.sleep(0.5)
            attempts = gone.attempts  # it keeps trying, with back-off
        finally:
            await gone.stop()
        return kinds, name, attempts

    kinds, name, attempts = await _on_asyncio(main)
    assert kinds[0] == "connected" and name == "test-node"
    assert attempts >= 2


def test_plans_are_one_implementation_for_both_clients() -> None:
    """A plan only yields calls: a scripted ``call`` drives it, blocking or awaited."""
    genesis = b"\x01" * 32
    replies = {
        "chain_getBlockHash": to_hex(genesis),
        "state_getRuntimeVersion": {"specVersion": 7},
        "state_getMetadata": {"pallets": []},
    }
    asked: list[tuple[str, tuple[Any, ...]]] = []

    def call(method: str, *params: Any) -> Any:
        asked.append((method, params))
        return replies[method]

    async def acall(method: str, *params: Any) -> Any:
        return call(method, *params)

    info = plans.run(plans.chain_info(), call)
    assert (info.genesis_hash, info.spec_version) == (genesis, 7)
    assert asyncio.run(plans.run_async(plans.chain_info(), acall)) == info
    assert [m for m, _ in asked] == [
        "chain_getBlockHash",
        "state_getRuntimeVersion",
        "state_getMetadata",
    ] * 2
    replies["system_accountNextIndex"] = "seven"
    with pytest.raises(RpcError):
        plans.run(plans.sign(info, None, ALICE), call)  # type: ignore[arg-type]


async def test_rpc_client_batches_and_maps_http_errors(url: str, chain: ChainNode) -> None:
    def run() -> None:
        with RpcClient(url, timeout=5) as rpc:
            assert rpc.url == url + "/"
            assert rpc.batch([("system_name", []), ("chain_getBlockHash", [0])]) == [
                "test-node",
                to_hex(chain.chain.genesis_hash),
            ]
            assert rpc.finalized_head() == chain.chain.finalized.hash
            with pytest.raises(RpcError) as err:
                rpc.call("no_suchMethod")
            assert err.value.code == METHOD_NOT_FOUND

    await trio.to_thread.run_sync(run)
