"""The node's own signers across a runtime upgrade: what they sign names the version the next
block runs (``Blockchain.next_spec_version``), so the pool takes it on either side of the
scheduled block, including the block just before it (whose successor runs the new version)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from twinchain.node.blockchain import Blockchain
from twinchain.node.chain_spec import ChainSpec, dev_spec
from twinchain.node.equivocation import EquivocationReporter
from twinchain.primitives.keys import Keypair
from twinchain.primitives.types import Extrinsic
from twinchain.runtime.executive import InvalidTransaction

ALICE = Keypair.from_dev_name("Alice")
H = 3  # the upgrade block


def spec_at_3() -> ChainSpec:
    spec = dev_spec()
    spec.genesis["system"] = {"name": "dev", "spec_version": 3}
    return spec


def sudo_schedule(chain: Blockchain, version: int, at: int) -> tuple[bytes, bytes]:
    rt = chain.runtime
    inner = list(rt.call_by_name("System", "schedule_upgrade", version, at).to_wire())
    xt = Extrinsic.sign(rt.call_by_name("Sudo", "sudo", inner), ALICE, 0, chain.genesis_hash, 3)
    return xt.hash, xt.encode()


@pytest.mark.parametrize("best", [1, H - 1, H])
def test_equivocation_evidence_is_signed_for_the_next_blocks_version(best: int) -> None:
    chain = Blockchain(spec_at_3(), None)
    try:
        block, _ = chain.propose(ALICE, 1, 1000, [sudo_schedule(chain, 4, H)])
        for slot in range(2, best + 1):
            block, _ = chain.propose(ALICE, slot, slot * 1000)
        assert chain.best.number == best
        expected = 3 if best + 1 < H else 4
        assert chain.next_spec_version() == expected
        taken: list[bytes] = []

        def submit(raw: bytes) -> bytes:
            chain.validate_transaction(raw)  # InvalidTransaction (BadProof) if misnamed
            taken.append(raw)
            return b""

        reporter = EquivocationReporter(chain, ALICE, submit)
        header = block.header
        reporter.check_slot(header)
        reporter.check_slot(replace(header, state_root=b"\x01" * 32))  # same slot, another
        assert len(taken) == 1, "the evidence went into the pool"
        # The other version is refused there: the signature covers it.
        call = Extrinsic.decode(taken[0]).call
        other = Extrinsic.sign(call, ALICE, 1, chain.genesis_hash, 7 - expected).encode()
        with pytest.raises(InvalidTransaction) as e:
            chain.validate_transaction(other)
        assert e.value.code == "BadProof"
    finally:
        chain.close()
