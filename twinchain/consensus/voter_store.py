"""The finality voter's durable memory, in the node's own key/value store (column ``VOTER``).

Keys: ``VOTER + b"r"`` holds ``[set_id, round, estimate hash, estimate number]``; ``VOTER +
b"v" + set_id (u64 BE) + round (u64 BE) + kind (u8)`` holds one own signed vote. A vote is
written with ``sync=True`` before the voter may send it (LevelDB then syncs its log, which also
carries the round record written just before). Votes of rounds more than ``KEEP_ROUNDS`` behind
the current one, and of earlier sets, are deleted at round starts.
"""

from __future__ import annotations

from twinchain.consensus.grandpa import KEEP_ROUNDS, PersistedVoter
from twinchain.primitives import codec
from twinchain.primitives.codec import CodecError
from twinchain.primitives.finality import Block, SignedVote
from twinchain.storage import columns as col
from twinchain.storage.abc import KeyValueStore, WriteBatch

_ROUND = col.col(col.VOTER, b"r")
_VOTES = col.col(col.VOTER, b"v")


def _vote_key(set_id: int, round: int, kind: int) -> bytes:
    return _VOTES + set_id.to_bytes(8, "big") + round.to_bytes(8, "big") + bytes([kind])


class KVVoterStore:
    """:class:`~twinchain.consensus.grandpa.VoterStore` on a :class:`KeyValueStore`."""

    def __init__(self, kv: KeyValueStore) -> None:
        self.kv = kv

    def load(self, set_id: int) -> PersistedVoter | None:
        raw = self.kv.get(_ROUND)
        round_no, estimate = 0, None
        if raw is not None:
            try:
                w = codec.decode(raw)
                if type(w) is list and len(w) == 4 and w[0] == set_id:
                    round_no = codec.U64.from_wire(w[1])
                    estimate = (codec.H256.from_wire(w[2]), codec.U64.from_wire(w[3]))
            except CodecError:
                pass  # an unreadable round record: resume from the votes alone
        votes: list[SignedVote] = []
        for _, value in self.kv.iterate(_VOTES + set_id.to_bytes(8, "big")):
            try:
                votes.append(SignedVote.decode(value))
            except CodecError:
                continue
        if estimate is None and not votes:
            return None
        if estimate is None:
            estimate = (b"\0" * 32, 0)  # below any finalized block: the voter ignores it
        return PersistedVoter(round_no, estimate, votes)

    def save_vote(self, vote: SignedVote) -> None:
        batch = WriteBatch()
        batch.put(_vote_key(vote.set_id, vote.round, vote.kind), vote.encode())
        self.kv.write(batch, sync=True)

    def save_round(self, set_id: int, round: int, estimate: Block) -> None:
        batch = WriteBatch()
        batch.put(_ROUND, codec.encode([set_id, round, estimate[0], estimate[1]]))
        keep_from = _vote_key(set_id, max(round - KEEP_ROUNDS, 0), 0)
        for key, _ in self.kv.iterate(_VOTES):
            if key >= keep_from:
                break
            batch.delete(key)
        # Not synced: the next vote's synced write flushes it, and a lost round record only
        # makes the voter resume from its newest recorded vote's round instead.
        self.kv.write(batch, sync=False)
