"""A validator node signs with whichever of its keys the active set names: a session key queued
by Session.set_keys seals blocks and signs finality votes from the session boundary on, and
the old set votes up to the block that enacts the new set, never past it (GRANDPA's voting
limit), so each block's justification is by the set its parent names."""

from __future__ import annotations

from pathlib import Path

from twinchain.consensus import aura
from twinchain.consensus.proofs import GrandpaJustification
from twinchain.node.blockchain import Blockchain
from twinchain.node.chain_spec import dev_spec
from twinchain.node.equivocation import EquivocationReporter
from twinchain.node.finality import NodeFinality
from twinchain.primitives.keys import Keypair, verify
from twinchain.primitives.keystore import Keystore, SigningKeys
from twinchain.primitives.types import Extrinsic, extrinsic_hash
from twinchain.runtime.pallets.session import ownership_message

ALICE = Keypair.from_dev_name("Alice")
NEW = Keypair.from_seed(b"\x05" * 32)
SESSION = 3


def test_rotated_key_seals_and_votes_from_the_boundary(tmp_path: Path) -> None:
    spec = dev_spec()
    spec.genesis["authority"]["session_length"] = SESSION
    chain = Blockchain(spec, None)
    try:
        keystore = Keystore(tmp_path / "keystore")
        keys = SigningKeys(keystore, ALICE)
        finality = NodeFinality(
            chain,
            None,
            ALICE,
            EquivocationReporter(chain, ALICE, lambda raw: b""),
            is_syncing=lambda: False,
            keys=keys,
        )
        keystore.insert("aura", NEW)  # as author_rotateKeys does while the node runs

        call = chain.runtime.call_by_name(
            "Session",
            "set_keys",
            NEW.public,
            NEW.sign(ownership_message(chain.genesis_hash, ALICE.public)),
        )
        xt = Extrinsic.sign(call, ALICE, 0, chain.genesis_hash, chain.runtime.spec_version)
        raw = xt.encode()
        blocks = []
        for slot in range(1, 6):
            author = aura.slot_author(chain.authorities_at(chain.best.hash), slot)
            kp = keys.get(author)
            assert kp is not None, f"slot {slot}: no key for {author.hex()}"
            ready = [(extrinsic_hash(raw), raw)] if slot == 1 else []
            block, _ = chain.propose(kp, slot, slot * 1000, ready)
            assert len(block.extrinsics) == 2 - (slot != 1)  # the inherent (and set_keys)
            blocks.append(block)
        # Blocks 1..3 by Alice (block 3 enacts the new set), 4 and 5 by the new key.
        sealers = [
            [
                k.public
                for k in (ALICE, NEW)
                if verify(k.public, b.header.seal_message(), b.header.seal)
            ]
            for b in blocks
        ]
        assert sealers == [[ALICE.public]] * SESSION + [[NEW.public]] * 2
        assert chain.set_id_at(blocks[2].hash) == 1

        # Set 0 votes up to block 3, not to the best block 5.
        assert finality.voter.set_id == 0 and finality.voter.keypair == ALICE
        assert finality._best_containing((chain.genesis_hash, 0)) == (blocks[2].hash, 3)
        for t in range(1, 20):
            finality.step(t * 1000)
            if chain.finalized.number == 5:
                break
        assert chain.finalized.number == 5
        assert finality.voter.set_id == 1 and finality.voter.keypair == NEW
        for b, set_id, voter in ((blocks[2], 0, ALICE), (blocks[4], 1, NEW)):
            raw_just = chain.blocks.justification(b.hash)
            assert raw_just is not None
            just = GrandpaJustification.decode(raw_just)
            assert just.set_id == set_id
            assert [v.voter for v in just.precommits] == [voter.public]
            chain.verify_justification(b.hash, raw_just)  # as any peer checks it
    finally:
        chain.close()
