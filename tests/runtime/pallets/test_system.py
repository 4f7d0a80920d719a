"""System: remark, chain name, block number and hashes, accounts, events storage, metadata."""

from __future__ import annotations

import json
from typing import Any

import pytest

from twinchain.primitives.hashing import Domain, hash_for
from twinchain.primitives.keys import Keypair
from twinchain.runtime.executive import InvalidTransaction
from twinchain.runtime.framework import DispatchError, Origin
from twinchain.runtime.pallets import system as system_mod
from twinchain.runtime.weights.system import EXTRINSIC_BASE_WEIGHT, W_REMARK, W_REMARK_PER_BYTE

BOB = Keypair.from_dev_name("Bob")


def err(e: pytest.ExceptionInfo[DispatchError]) -> str:
    return f"{e.value.module}.{e.value.error}"


def test_remark_emits_its_hash(chain: Any) -> None:
    (out,) = chain.produce(chain.sign(BOB, chain.call("System", "remark", b"hello twin")))
    assert out.success
    assert out.weight == EXTRINSIC_BASE_WEIGHT + W_REMARK + W_REMARK_PER_BYTE * len(b"hello twin")
    (ev,) = [e for e in chain.events() if e["event"] == "Remarked"]
    assert ev["args"] == {
        "sender": BOB.public,
        "hash": hash_for(Domain.EXTRINSIC, b"hello twin"),
    }


def test_remark_origin_and_size(block: Any) -> None:
    for origin in (Origin.root(), Origin.none()):
        with pytest.raises(DispatchError) as e:
            block.rt.system.remark(origin, b"x")
        assert err(e) == "System.BadOrigin"
    with pytest.raises(InvalidTransaction) as e2:
        block.ex.apply_extrinsic(block.sign(BOB, _long(block)))
    assert e2.value.code == "Decode"


def _long(chain: Any) -> Any:
    """A remark call one byte over its 4096-byte bound, built without the typed check."""
    call = chain.call("System", "remark", b"")
    return type(call)(call.pallet, call.index, (b"x" * 4097,))


def test_set_chain_name_is_root_only(block: Any) -> None:
    assert block.rt.system.chain_name() == "test"
    with pytest.raises(DispatchError) as e:
        block.dispatch(Origin.signed(BOB.public), "System", "set_chain_name", "mine")
    assert err(e) == "System.BadOrigin"
    with pytest.raises(DispatchError) as e:
        block.rt.system.set_chain_name(Origin.signed(BOB.public), "mine")
    assert err(e) == "System.BadOrigin"
    block.dispatch(Origin.root(), "System", "set_chain_name", "factory-net")
    assert block.rt.system.chain_name() == "factory-net"


def test_block_number_parent_and_hashes(chain: Any) -> None:
    for _ in range(3):
        chain.produce()
    s = chain.rt.system
    assert s.Number.get() == 3
    assert s.ParentHash.get() == chain.hashes[2]
    assert [s.BlockHash.get(n) for n in range(3)] == [chain.hashes[n] for n in range(3)]
    assert s.BlockHash.get(0) == chain.rt.genesis_hash
    assert s.BlockHash.get(3) is None  # a block's own hash is known only to its child


def test_old_block_hashes_are_pruned_but_genesis_kept(
    chain: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(system_mod, "BLOCK_HASH_COUNT", 2)
    for _ in range(6):
        chain.produce()
    kept = sorted(k for k, _ in chain.rt.system.BlockHash.iter())
    assert kept == [0, 4, 5]  # the last two parents of the head (6), and genesis


def test_accounts_nonces_and_providers(block: Any) -> None:
    s = block.rt.system
    dave = Keypair.from_dev_name("Dave").public
    assert s.nonce(dave) == 0 and s.Account.get(dave) is None
    block.rt.state.events.clear()
    s.inc_providers(dave)
    assert [ev.name for _, ev in block.rt.state.events] == ["NewAccount"]
    s.inc_providers(dave)
    s.inc_nonce(dave)
    info = s.account(dave)
    assert (info.nonce, info.providers) == (1, 2)
    s.dec_providers(dave)
    s.dec_providers(dave)
    s.dec_providers(dave)  # never below zero
    info = s.account(dave)
    assert (info.nonce, info.providers) == (1, 0)


def test_block_bookkeeping_is_stored(chain: Any) -> None:
    chain.produce(chain.sign(BOB, chain.call("System", "remark", b"")))
    s = chain.rt.system
    assert s.ExtrinsicCount.get() == 2
    assert s.EventCount.get() == len(chain.events()) > 0
    assert s.BlockWeight.get() == chain.ex.block_weight > 0


def test_metadata_describes_every_pallet(chain: Any) -> None:
    meta = chain.rt.metadata()
    pallets = {p["index"]: p["name"] for p in meta["pallets"]}
    assert pallets == {
        0: "System",
        1: "Timestamp",
        2: "Authority",
        3: "Balances",
        4: "Multisig",
        5: "Sudo",
        10: "Roles",
        11: "Facility",
        12: "Equipment",
        13: "Telemetry",
        14: "Benchmark",
        15: "Maintenance",
        16: "Analytics",
        17: "Simulation",
        18: "Council",
        19: "Session",
    }
    system = meta["pallets"][0]
    assert {s["name"] for s in system["storage"]} >= {"Account", "BlockHash", "Events"}
    assert system["constants"]["MaxBlockWeight"] == system_mod.MAX_BLOCK_WEIGHT
    json.dumps(meta)  # served as JSON over RPC
