"""Long-lived signers across a runtime upgrade (spec 3 -> 4 at block H, scheduled by sudo on a
dev chain that starts at spec 3): a client that cached the version at connect time gets
``Invalid:BadProof`` once the next block runs the new one, re-reads the version (and the
metadata, once the best block runs it), says so once, signs again and is taken; the
predictive-maintenance worker's submissions go through the same way. Nothing is re-signed
while the version has not changed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from stub_node import ALICE, BOB, StubNode

from twinchain.client import AsyncClient, Client, TxStatus, is_bad_proof
from twinchain.node.blockchain import Blockchain
from twinchain.node.chain_spec import dev_spec
from twinchain.node.txpool import TransactionPool
from twinchain.offchain.worker import PdmWorker
from twinchain.primitives.keystore import Keystore
from twinchain.primitives.types import Extrinsic
from twinchain.protocol.jsonrpc import RpcError

H = 4  # the upgrade block
AMOUNT = 10**12
SAID = "runtime upgrade: the chain's next block runs spec version 4 (was 3)"


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[StubNode]:
    """The conftest's stand-in node, on a dev chain that starts at spec 3 and has spec 4
    scheduled at block H (block 1 holds the sudo call)."""
    spec = dev_spec()
    spec.genesis["system"] = {"name": "dev", "spec_version": 3}
    client = Blockchain(spec, None)
    node = StubNode(client, TransactionPool(client.validate_transaction), Keystore(tmp_path))
    rt = client.runtime
    inner = list(rt.call_by_name("System", "schedule_upgrade", 4, H).to_wire())
    xt = Extrinsic.sign(rt.call_by_name("Sudo", "sudo", inner), ALICE, 0, client.genesis_hash, 3)
    node.submit_extrinsic(xt.encode())
    node.author(finalize=True)
    assert client.scheduled_upgrade_at(client.best.hash) is not None
    yield node
    client.close()


def author_to(node: StubNode, number: int) -> None:
    while node.chain.best.number < number:
        node.author(finalize=True)


async def author_when_pooled(node: StubNode) -> bytes:
    with trio.fail_after(10):
        while node.pool.ready_count < 1:
            await trio.sleep(0.01)
    return node.author(finalize=True)


def said(caplog: pytest.LogCaptureFixture) -> int:
    return sum(SAID in r.getMessage() for r in caplog.records)


async def test_sync_client_reads_the_next_version_on_bad_proof_and_signs_again(
    url: str, chain: StubNode, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "twinchain.client")
    client = await trio.to_thread.run_sync(Client, url)
    try:
        assert (client.info.spec_version, client.info.signing_version) == (3, 3)
        assert not await trio.to_thread.run_sync(client.refresh_version), "nothing changed"
        call = client.call_function("Balances", "transfer", dest=BOB.public, value=AMOUNT)
        author_to(chain, H - 1)  # the best block runs 3, the next one 4
        assert chain.chain.next_spec_version() == 4
        stale = await trio.to_thread.run_sync(lambda: client.sign(call, ALICE))
        with pytest.raises(RpcError) as e:
            await trio.to_thread.run_sync(client.rpc.submit, stale.encode())
        assert is_bad_proof(e.value), "what the cached version signs is refused"

        tx = await trio.to_thread.run_sync(lambda: client.sign_and_submit(call, ALICE))
        assert chain.pool.contains(tx)
        # The best block still runs spec 3 (its metadata is kept); what is signed names 4.
        assert (client.info.spec_version, client.info.signing_version) == (3, 4)
        assert said(caplog) == 1
        chain.author(finalize=True)  # H: runs 4, the transfer in it
        assert chain.chain.spec_version_at(chain.chain.best.hash) == 4
        assert not chain.pool.contains(tx)
        # Signed from now on for 4 without another refusal or another log line.
        tx = await trio.to_thread.run_sync(lambda: client.sign_and_submit(call, ALICE))
        assert chain.pool.contains(tx) and said(caplog) == 1
    finally:
        client.close()


async def test_pdm_worker_submission_is_signed_again_after_the_upgrade(
    url: str, chain: StubNode, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker connected before the upgrade submits after it: refused once, re-signed for
    spec 4 with the metadata of the new version, finalized."""
    caplog.set_level(logging.WARNING, "twinchain.client")
    client = await trio.to_thread.run_sync(Client, url)
    try:
        worker = PdmWorker(client, ALICE, 0, {})
        author_to(chain, H + 1)
        assert client.info.signing_version == 3  # cached at connect time
        found: list[bytes] = []

        async def submit() -> None:
            found.append(
                await trio.to_thread.run_sync(
                    lambda: worker._submit("System", "remark", remark=b"pdm")
                )
            )

        async with trio.open_nursery() as nursery:
            nursery.start_soon(submit)
            block = await author_when_pooled(chain)
        assert found == [block]
        assert (client.info.spec_version, client.info.signing_version) == (4, 4)
        assert said(caplog) == 1
    finally:
        client.close()


async def test_async_client_watches_a_call_signed_again_after_the_upgrade(
    url: str, chain: StubNode, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "twinchain.client")

    async def connect_then_watch() -> list[TxStatus]:
        async with AsyncClient(url) as c:  # connected at spec 3
            call = c.call_function("Balances", "transfer", dest=BOB.public, value=AMOUNT)
            trio.from_thread.run_sync(author_to, chain, H)
            assert c.info.signing_version == 3
            seen: list[TxStatus] = []
            async with c.submit_and_watch(call, ALICE) as statuses:
                async for status in statuses:
                    seen.append(status)
                    if status.kind == "ready":
                        trio.from_thread.run_sync(lambda: chain.author(finalize=True))
            assert (c.info.spec_version, c.info.signing_version) == (4, 4)
            return seen

    seen = await trio.to_thread.run_sync(lambda: asyncio.run(connect_then_watch()))
    assert [s.kind for s in seen] == ["ready", "inBlock", "finalized"]
    assert said(caplog) == 1
    block = seen[-1].block
    assert block is not None and chain.chain.spec_version_at(block) == 4
