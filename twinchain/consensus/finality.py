"""Finality votes and justifications.

A vote is an authority's signature over (genesis hash, round, block hash, number). A block with
votes from more than 2/3 of the authority set is final; the set of votes is its justification,
stored with the block and served to peers and RPC clients. (The gossip-based gadget across
several validators is built on these types by the network layer.)
"""

from __future__ import annotations

from dataclasses import dataclass

from twinchain.primitives import codec
from twinchain.primitives.codec import CodecError
from twinchain.primitives.hashing import Domain, hash_for
from twinchain.primitives.keys import Keypair, verify


def vote_message(genesis_hash: bytes, round: int, block_hash: bytes, number: int) -> bytes:
    return hash_for(Domain.VOTE, codec.encode([genesis_hash, round, block_hash, number]))


@dataclass(frozen=True)
class Vote:
    voter: bytes
    block_hash: bytes
    number: int
    round: int
    signature: bytes

    @classmethod
    def sign(
        cls, keypair: Keypair, block_hash: bytes, number: int, *, round: int, genesis_hash: bytes
    ) -> Vote:
        msg = vote_message(genesis_hash, round, block_hash, number)
        return cls(keypair.public, block_hash, number, round, keypair.sign(msg))

    def verify(self, genesis_hash: bytes) -> bool:
        return verify(
            self.voter,
            vote_message(genesis_hash, self.round, self.block_hash, self.number),
            self.signature,
        )

    def to_wire(self) -> list:
        return [self.voter, self.block_hash, self.number, self.round, self.signature]

    @classmethod
    def from_wire(cls, w: object) -> Vote:
        if type(w) is not list or len(w) != 5:
            raise CodecError("vote must have 5 fields")
        return cls(
            codec.AccountId.from_wire(w[0]),
            codec.H256.from_wire(w[1]),
            codec.U64.from_wire(w[2]),
            codec.U64.from_wire(w[3]),
            codec.Signature.from_wire(w[4]),
        )


@dataclass(frozen=True)
class Justification:
    block_hash: bytes
    number: int
    votes: tuple[Vote, ...]

    def encode(self) -> bytes:
        return codec.encode([self.block_hash, self.number, [v.to_wire() for v in self.votes]])

    @classmethod
    def decode(cls, data: bytes) -> Justification:
        w = codec.decode(data, 1 << 20)
        if type(w) is not list or len(w) != 3 or type(w[2]) is not list:
            raise CodecError("justification must be [hash, number, [votes]]")
        return cls(
            codec.H256.from_wire(w[0]),
            codec.U64.from_wire(w[1]),
            tuple(Vote.from_wire(v) for v in w[2]),
        )

    def check(self, authorities: list[bytes], genesis_hash: bytes) -> bool:
        """Votes for this block from more than 2/3 of ``authorities``, all valid, no dupes."""
        voters = set()
        for v in self.votes:
            if v.block_hash != self.block_hash or v.number != self.number:
                return False
            if v.voter not in authorities or v.voter in voters or not v.verify(genesis_hash):
                return False
            voters.add(v.voter)
        return 3 * len(voters) > 2 * len(authorities)
