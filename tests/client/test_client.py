"""twinchain.client against a live RPC server over a real chain: calls from metadata,
signed transfers watched to finality, proof-checked storage reads, head subscriptions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import trio

from twinchain.client import AsyncClient, Client, ProofMismatch, TxStatus, VersionMismatch
from twinchain.primitives.keys import Keypair
from twinchain.primitives.types import Era
from twinchain.protocol.jsonrpc import from_hex, to_hex

if TYPE_CHECKING:
    from tests.chain.conftest import ChainNode

ALICE = Keypair.from_dev_name("Alice")
BOB = Keypair.from_dev_name("Bob")
AMOUNT = 10**12


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


async def test_async_transfer_watched_to_finalized(url: str, chain: ChainNode) -> None:
    before = _bob_free(chain)
    async with AsyncClient(url) as c:
        assert c.info.genesis_hash == chain.chain.genesis_hash
        call = c.call_function("Balances", "transfer", dest=BOB.public, value=AMOUNT)
        assert call == chain.chain.runtime.call_by_name("Balances", "transfer", BOB.public, AMOUNT)
        seen: list[TxStatus] = []
        async with c.submit_and_watch(call, ALICE) as statuses:
            async for status in statuses:
                seen.append(status)
                if status.kind == "ready":
                    block = chain.author(finalize=True)
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
    finally:
        client.close()


async def test_read_storage_is_verified_against_finalized_root(url: str, chain: ChainNode) -> None:
    chain.author(finalize=True)
    expected = chain.chain.runtime.balances.Account.value_type.decode(
        chain.chain.state_at(chain.chain.finalized.hash).get(
            chain.chain.runtime.balances.Account.key(BOB.public)
        )
    )
    async with AsyncClient(url) as c:
        assert await c.read_storage("Balances", "Account", BOB.public) == expected
        assert await c.read_storage("Balances", "Account", BOB.public, verify=False) == expected
        # An account that does not exist proves absent and reads as the item's default.
        nobody = Keypair.from_dev_name("Nobody").public
        assert await c.read_storage("Balances", "Account", nobody) is None
        issuance = await c.read_storage("Balances", "TotalIssuance")
        assert isinstance(issuance, int) and issuance > 0
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
    async with AsyncClient(url) as c:
        monkeypatch.setattr(AsyncClient, "call", _tamper(method, edit))
        with pytest.raises(ProofMismatch):
            await c.read_storage("Balances", "Account", BOB.public)
        # Unverified reads trust the node (that is what verify=False is for).
        if method != "state_getStorage":
            await c.read_storage("Balances", "Account", BOB.public, verify=False)


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
    async with AsyncClient(url) as c, c.subscribe_new_heads() as heads:
        with trio.fail_after(10):
            first = await heads.__anext__()
            assert first.hash == chain.chain.best.hash
            authored = [chain.author(finalize=False) for _ in range(2)]
            got = [(await heads.__anext__()).hash for _ in range(2)]
    assert got == authored


async def test_call_function_checks_names_and_version(url: str, chain: ChainNode) -> None:
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
