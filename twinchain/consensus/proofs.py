"""What proves a round's outcome to another node: justifications and catch-ups.

A **justification** proves a block final: a supermajority of one round's precommits for the
block or its descendants, plus the headers that link each precommit's target down to it. A
**catch-up** (GRANDPA's) hands a voter that fell behind the prevotes and precommits of a round
the sender completed, so it can adopt that round's estimate and move on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from twinchain.consensus.rounds import route_to, threshold
from twinchain.primitives import codec
from twinchain.primitives.codec import CodecError
from twinchain.primitives.finality import PRECOMMIT, Block, SignedVote
from twinchain.primitives.types import Header


class JustificationError(Exception):
    """The justification does not prove finality of its block."""


def encode_justification(
    round: int, set_id: int, block: Block, precommits: Iterable[SignedVote], ancestry: list[Header]
) -> bytes:
    return codec.encode(
        [
            round,
            set_id,
            block[0],
            block[1],
            [m.to_wire() for m in precommits],
            [h.to_wire() for h in ancestry],
        ]
    )


@dataclass(frozen=True)
class GrandpaJustification:
    round: int
    set_id: int
    block: Block
    precommits: tuple[SignedVote, ...]
    ancestry: tuple[Header, ...]

    @classmethod
    def decode(cls, data: bytes) -> GrandpaJustification:
        w = codec.decode(data, 4 << 20)
        if type(w) is not list or len(w) != 6 or type(w[4]) is not list or type(w[5]) is not list:
            raise CodecError("bad justification")
        return cls(
            codec.U64.from_wire(w[0]),
            codec.U64.from_wire(w[1]),
            (codec.H256.from_wire(w[2]), codec.U64.from_wire(w[3])),
            tuple(SignedVote.from_wire(m) for m in w[4]),
            tuple(Header.from_wire(h) for h in w[5]),
        )

    def verify(self, genesis_hash: bytes, authorities: list[bytes], set_id: int) -> None:
        """Raise JustificationError unless ``t`` distinct authorities precommitted to the block
        or to descendants linked to it by the included headers."""
        if self.set_id != set_id:
            raise JustificationError("wrong authority set")
        headers = {h.hash: h for h in self.ancestry}
        voters: set[bytes] = set()
        for m in self.precommits:
            if m.kind != PRECOMMIT or m.round != self.round or m.set_id != set_id:
                raise JustificationError("vote of another round, set or kind")
            if m.voter not in authorities or m.voter in voters:
                raise JustificationError("unknown or duplicate voter")
            if not m.verify(genesis_hash):
                raise JustificationError("bad vote signature")
            if m.target != self.block and route_to(headers.get, m.target, self.block) is None:
                raise JustificationError("precommit target does not descend from the block")
            voters.add(m.voter)
        if len(voters) < threshold(len(authorities)):
            raise JustificationError(
                f"{len(voters)} of {len(authorities)} precommits is not a supermajority"
            )


# ----------------------------------------------------------------------------- catch-up


@dataclass(frozen=True)
class CatchUp:
    """A completed round's votes, sent to a voter that fell behind (GRANDPA's catch-up)."""

    set_id: int
    round: int
    prevotes: tuple[SignedVote, ...]
    precommits: tuple[SignedVote, ...]

    def encode(self) -> bytes:
        return codec.encode(
            [
                self.set_id,
                self.round,
                [m.to_wire() for m in self.prevotes],
                [m.to_wire() for m in self.precommits],
            ]
        )

    @classmethod
    def decode(cls, data: bytes) -> CatchUp:
        w = codec.decode(data, 1 << 20)
        if type(w) is not list or len(w) != 4 or type(w[2]) is not list or type(w[3]) is not list:
            raise CodecError("catch-up must be [set, round, prevotes, precommits]")
        return cls(
            codec.U64.from_wire(w[0]),
            codec.U64.from_wire(w[1]),
            tuple(SignedVote.from_wire(m) for m in w[2]),
            tuple(SignedVote.from_wire(m) for m in w[3]),
        )


class CatchUpError(Exception):
    """A catch-up message that proves nothing (bad signatures, no supermajority...)."""
