"""Runtime upgrades at the node's chain (``Blockchain``, in memory): a node whose software
lacks the scheduled version warns ahead, imports and authors nothing from the upgrade block
on (no fork) and says what to install; with the new software on the same database it goes
on from where it stopped."""

from __future__ import annotations

import logging

import pytest

from twinchain.node.blockchain import Blockchain, BlockImportError
from twinchain.node.chain_spec import ChainSpec, dev_spec
from twinchain.primitives.keys import Keypair
from twinchain.primitives.types import Block, Extrinsic
from twinchain.runtime.executive import UnsupportedRuntime
from twinchain.runtime.migrations import MAX_SPEC_ENV

ALICE = Keypair.from_dev_name("Alice")


def spec_at_3() -> ChainSpec:
    spec = dev_spec()
    spec.genesis["system"] = {"name": "dev", "spec_version": 3}
    return spec


class Author:
    """Alice authoring a dev chain slot after slot."""

    def __init__(self, chain: Blockchain) -> None:
        self.chain = chain
        self.slot = 0
        self.nonce = 0

    def sudo(self, pallet: str, call: str, *args: object) -> tuple[bytes, bytes]:
        rt = self.chain.runtime
        inner = list(rt.call_by_name(pallet, call, *args).to_wire())
        version = self.chain.spec_version_at(self.chain.best.hash)
        xt = Extrinsic.sign(
            rt.call_by_name("Sudo", "sudo", inner),
            ALICE,
            self.nonce,
            self.chain.genesis_hash,
            version,
        )
        self.nonce += 1
        return xt.hash, xt.encode()

    def block(self, *ready: tuple[bytes, bytes]) -> Block:
        self.slot += 1
        block, _ = self.chain.propose(ALICE, self.slot, self.slot * 1000, list(ready))
        assert len(block.extrinsics) == 1 + len(ready)
        return block


def test_old_software_stops_at_the_upgrade_block_and_new_software_goes_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    spec = spec_at_3()
    upgraded = Blockchain(spec, None)
    monkeypatch.setenv(MAX_SPEC_ENV, "3")
    old = Blockchain(spec, None)
    monkeypatch.delenv(MAX_SPEC_ENV)
    alice = Author(upgraded)
    h = 4
    blocks = [alice.block(alice.sudo("System", "schedule_upgrade", 4, h))]
    nexts = [upgraded.next_spec_version()]
    for _ in range(h - 1):  # up to h
        blocks.append(alice.block())
        nexts.append(upgraded.next_spec_version())
    assert nexts == [3, 3, 4, 4], "what a transaction signed after each block names"
    assert upgraded.best.number == h
    assert [upgraded.spec_version_at(b.hash) for b in blocks] == [3, 3, 3, 4]

    caplog.set_level(logging.WARNING, "twinchain.chain")
    for b in blocks[:-1]:
        old.import_block(b, check_time=False)
    warned = [r.getMessage() for r in caplog.records if "will stop at block 4" in r.getMessage()]
    assert len(warned) == 1, "warned once, ahead of the upgrade block"
    assert old.upgrade_required is None
    with pytest.raises(BlockImportError) as e:
        old.import_block(blocks[-1], check_time=False)
    assert e.value.reason == "unsupported-runtime"
    message = (
        "runtime spec version 4 scheduled at block 4: install twinchain with spec 4 "
        "(this node runs spec versions up to 3)"
    )
    assert e.value.detail == message == str(old.upgrade_required)
    assert any(r.levelno == logging.ERROR and message in r.getMessage() for r in caplog.records)
    # No fork: it authors nothing on its head either, and its chain is the others' up to h-1.
    with pytest.raises(UnsupportedRuntime):
        old.propose(ALICE, 99, 99_000)
    assert old.best.hash == blocks[-2].hash
    # Later blocks never run: their parent is the block it refused.
    with pytest.raises(BlockImportError) as e:
        old.import_block(alice.block(), check_time=False)
    assert e.value.reason == "unknown-parent"
    # Offered again (sync retries), the block is refused again, and said again once a minute.
    with pytest.raises(BlockImportError) as e:
        old.import_block(blocks[-1], check_time=False)
    assert e.value.reason == "unsupported-runtime"

    # The operator installs the new release and restarts on the same database.
    new = Blockchain(spec, None, kv=old.kv)
    assert new.upgrade_required is None
    for b in [*blocks[-1:], *(upgraded.blocks.block(upgraded.blocks.hash_at(n)) for n in (h + 1,))]:
        new.import_block(b, check_time=False)  # type: ignore[arg-type]
    assert new.best.hash == upgraded.best.hash and new.spec_version_at(new.best.hash) == 4


def test_a_node_restarted_with_old_software_after_the_switch_stops_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = spec_at_3()
    chain = Blockchain(spec, None)
    alice = Author(chain)
    alice.block(alice.sudo("System", "schedule_upgrade", 4, 2))
    alice.block()
    monkeypatch.setenv(MAX_SPEC_ENV, "3")
    old = Blockchain(spec, None, kv=chain.kv)
    assert str(old.upgrade_required) == (
        "runtime spec version 4 in effect before block 3: install twinchain with spec 4 "
        "(this node runs spec versions up to 3)"
    )


def test_a_stop_met_on_a_branch_that_loses_is_lifted_by_the_winning_one() -> None:
    """The schedule rode on a fork; the best chain that wins passes H without it: the node
    runs that chain's block at H and is no longer stopped."""
    chain = Blockchain(spec_at_3(), None)
    alice = Author(chain)
    alice.block()
    chain.upgrade_required = UnsupportedRuntime(4, 2, 3)  # as a fork's block 2 left it
    alice.block()
    assert chain.best.number == 2 and chain.upgrade_required is None
