"""The signed finality vote: what a GRANDPA voter signs and sends, and what proves an offence.

It sits below both the finality gadget (``twinchain.consensus``), which casts and counts
votes, and the runtime (``twinchain.runtime.pallets.authority``), which checks two of them as
proof of an equivocation; the network layer only describes them in its log lines. A vote for
block B counts for B and every ancestor of B; its signature covers the chain's genesis hash,
the authority set, the round, the kind and the target block.
"""

from __future__ import annotations

from dataclasses import dataclass

from twinchain.primitives import codec
from twinchain.primitives.codec import CodecError
from twinchain.primitives.hashing import Domain, hash_for
from twinchain.primitives.keys import Keypair, verify

#: The two kinds of vote in a round.
PREVOTE, PRECOMMIT = 0, 1

#: A block as finality names it: (hash, number).
Block = tuple[bytes, int]


def message_digest(genesis_hash: bytes, set_id: int, round: int, kind: int, target: Block) -> bytes:
    """What a vote's signature covers."""
    return hash_for(
        Domain.VOTE, codec.encode([genesis_hash, set_id, round, kind, target[0], target[1]])
    )


@dataclass(frozen=True)
class SignedVote:
    """One voter's prevote or precommit for ``target`` in (``set_id``, ``round``)."""

    kind: int
    round: int
    set_id: int
    target_hash: bytes
    target_number: int
    voter: bytes
    signature: bytes

    @property
    def target(self) -> Block:
        return (self.target_hash, self.target_number)

    @classmethod
    def sign(
        cls,
        keypair: Keypair,
        kind: int,
        round: int,
        set_id: int,
        target: Block,
        genesis_hash: bytes,
    ) -> SignedVote:
        sig = keypair.sign(message_digest(genesis_hash, set_id, round, kind, target))
        return cls(kind, round, set_id, target[0], target[1], keypair.public, sig)

    def verify(self, genesis_hash: bytes) -> bool:
        msg = message_digest(genesis_hash, self.set_id, self.round, self.kind, self.target)
        return verify(self.voter, msg, self.signature)

    def to_wire(self) -> list[object]:
        return [
            self.kind,
            self.round,
            self.set_id,
            self.target_hash,
            self.target_number,
            self.voter,
            self.signature,
        ]

    def encode(self) -> bytes:
        return codec.encode(self.to_wire())

    @classmethod
    def from_wire(cls, w: object) -> SignedVote:
        if type(w) is not list or len(w) != 7 or w[0] not in (PREVOTE, PRECOMMIT):
            raise CodecError("vote must be [kind, round, set, hash, number, voter, signature]")
        return cls(
            w[0],
            codec.U64.from_wire(w[1]),
            codec.U64.from_wire(w[2]),
            codec.H256.from_wire(w[3]),
            codec.U64.from_wire(w[4]),
            codec.AccountId.from_wire(w[5]),
            codec.Signature.from_wire(w[6]),
        )

    @classmethod
    def decode(cls, data: bytes) -> SignedVote:
        return cls.from_wire(codec.decode(data, 4096))


def describe_vote(payload: bytes) -> str:
    """An encoded vote for a log line: kind, round, set, target and voter."""
    try:
        v = SignedVote.decode(payload)
    except CodecError:
        return f"undecodable vote ({len(payload)} bytes)"
    return (
        f"{'prevote' if v.kind == PREVOTE else 'precommit'} round {v.round} set {v.set_id} "
        f"for #{v.target_number} (0x{v.target_hash.hex()[:12]}…) by 0x{v.voter.hex()[:12]}…"
    )
