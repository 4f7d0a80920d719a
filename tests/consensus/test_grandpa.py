"""The finality gadget, voters exchanging messages directly (the network is tested apart)."""

from __future__ import annotations

import pytest

from twinchain.consensus.grandpa import FUTURE_ROUNDS, Voter
from twinchain.consensus.proofs import (
    CatchUp,
    CatchUpError,
    GrandpaJustification,
    JustificationError,
)
from twinchain.consensus.rounds import threshold
from twinchain.consensus.voter_store import KVVoterStore
from twinchain.node.blockchain import Blockchain
from twinchain.node.chain_spec import local_spec
from twinchain.primitives.finality import PRECOMMIT, PREVOTE, SignedVote
from twinchain.primitives.keys import Keypair
from twinchain.primitives.types import Header
from twinchain.storage.kv import MemoryStore

NAMES = ["Alice", "Bob", "Charlie", "Dave"]
KEYS = [Keypair.from_dev_name(n) for n in NAMES]
SLOT = 1000


def test_threshold() -> None:
    assert [threshold(n) for n in (1, 2, 3, 4, 5, 6, 7, 10)] == [1, 2, 3, 3, 4, 5, 5, 7]


class Net:
    """Four voters over one shared block tree; ``views`` picks each voter's best head."""

    def __init__(self, online: int = 4) -> None:
        self.chain = Blockchain(local_spec([f"//{n}" for n in NAMES]), None)
        self.heads: dict[int, tuple[bytes, int]] = {}
        #: Each voter's durable memory (as its node's LevelDB would hold it).
        self.stores = [KVVoterStore(MemoryStore()) for _ in range(online)]
        self.now = 0
        self.finalized: list[list[tuple[bytes, int]]] = [[] for _ in range(online)]
        self.voters = [self.new_voter(i) for i in range(online)]
        self.justifications: list[bytes] = []

    def new_voter(self, i: int) -> Voter:
        """Voter ``i`` as its node (re)starts it: its store, its node's finalized block."""
        g = self.chain.genesis_hash
        return Voter(
            genesis_hash=g,
            authorities=[k.public for k in KEYS],
            set_id=0,
            finalized=self.finalized[i][-1]
            if i < len(self.finalized) and self.finalized[i]
            else (g, 0),
            lookup=self.chain.blocks.header,
            best_chain_containing=lambda base, i=i: self._best(i, base),
            keypair=KEYS[i],
            slot_ms=SLOT,
            now_ms=self.now,
            store=self.stores[i],
        )

    def _best(self, i: int, base: tuple[bytes, int]) -> tuple[bytes, int]:
        head = self.heads.get(i) or (self.chain.best.hash, self.chain.best.number)
        from twinchain.consensus.rounds import route_to

        return head if route_to(self.chain.blocks.header, head, base) is not None else base

    def extend(self, parent: Header, slot: int) -> Header:
        author = KEYS[slot % 4]
        block, _ = self.chain.propose(author, slot, slot * SLOT, parent=parent)
        return block.header

    def run(self, steps: int, deliver=lambda frm, to, vote: True, node: bool = False) -> None:  # type: ignore[no-untyped-def]
        """``steps`` half slots of ticks and vote exchange; ``node``: also what the node adds
        around its voter (re-sending own votes, asking a peer for a catch-up)."""
        for _ in range(steps):
            self.now += SLOT // 2
            outbox = []
            for i, v in enumerate(self.voters):
                votes, done = v.tick(self.now)
                if node and not votes:
                    votes = v.own_votes()
                if node and v.wants_catch_up(self.now):
                    for j, peer in enumerate(self.voters):
                        msg = peer.catch_up_for(v.current) if j != i else None
                        if msg is not None and deliver(j, i, msg):
                            v.on_catch_up(msg, self.now)
                            break
                outbox += [(i, m) for m in votes]
                for f in done:
                    self.finalized[i].append(f.block)
                    self.justifications.append(f.justification)
            for i, m in outbox:
                for j, v in enumerate(self.voters):
                    if j != i and deliver(i, j, m):
                        v.on_vote(SignedVote.decode(m.encode()))


def linear_chain(net: Net, length: int) -> Header:
    head = net.chain.best
    for s in range(1, length + 1):
        head = net.extend(head, s)
    return head


def test_four_voters_finalize_the_head_and_justification_verifies() -> None:
    net = Net()
    head = linear_chain(net, 5)
    net.run(8)
    assert all(f and f[-1] == (head.hash, 5) for f in net.finalized)
    just = GrandpaJustification.decode(net.justifications[-1])
    auths = [k.public for k in KEYS]
    just.verify(net.chain.genesis_hash, auths, 0)
    with pytest.raises(JustificationError):
        just.verify(net.chain.genesis_hash, auths, 1)
    weak = GrandpaJustification(just.round, 0, just.block, just.precommits[:2], just.ancestry)
    with pytest.raises(JustificationError):
        weak.verify(net.chain.genesis_hash, auths, 0)


def test_finality_follows_a_growing_chain() -> None:
    net = Net()
    head = linear_chain(net, 2)
    net.run(6)
    for s in range(3, 7):
        head = net.extend(head, s)
        net.run(4)
    assert net.voters[0].finalized == (head.hash, 6)


def test_three_of_four_still_finalize_two_of_four_do_not() -> None:
    three = Net(online=3)
    head = linear_chain(three, 3)
    three.run(8)
    assert three.voters[0].finalized == (head.hash, 3)
    two = Net(online=2)
    linear_chain(two, 3)
    two.run(12)
    assert two.voters[0].finalized[1] == 0 and not two.justifications


def test_equivocating_voter_is_reported_and_cannot_split_finality() -> None:
    net = Net()
    g = net.chain.best
    a1 = net.extend(g, 1)
    b1 = net.extend(g, 5)  # a fork at height 1, by another author
    dave = KEYS[3]
    v0 = net.voters[0]
    for target in ((a1.hash, 1), (b1.hash, 1)):
        ok, ev = v0.on_vote(SignedVote.sign(dave, PREVOTE, 1, 0, target, net.chain.genesis_hash))
        assert ok
    assert ev is not None and ev.offender == dave.public and len(v0.evidence) == 1
    # Honest voters split 2-1 between the forks: nothing conflicting can be finalized.
    net.heads = {0: (a1.hash, 1), 1: (a1.hash, 1), 2: (b1.hash, 1)}
    net.voters = net.voters[:3]
    net.finalized = net.finalized[:3]
    net.run(10)
    finals = {b for f in net.finalized for b in f}
    assert not ({(a1.hash, 1), (b1.hash, 1)} <= finals), "two conflicting blocks finalized"


def test_bad_votes_are_refused() -> None:
    net = Net()
    g = net.chain.genesis_hash
    v = net.voters[0]
    outsider = Keypair.from_dev_name("Mallory")
    assert v.on_vote(SignedVote.sign(outsider, PREVOTE, 1, 0, (g, 0), g)) == (False, None)
    other_chain = SignedVote.sign(KEYS[1], PRECOMMIT, 1, 0, (g, 0), b"\x01" * 32)
    assert v.on_vote(other_chain) == (False, None)
    wrong_set = SignedVote.sign(KEYS[1], PRECOMMIT, 1, 7, (g, 0), g)
    assert v.on_vote(wrong_set) == (False, None)


def test_a_new_block_is_finalized_without_waiting_for_the_round_timer() -> None:
    # A completable round ends as soon as the best chain grows past its estimate: finality
    # then follows a block within the vote exchange, not at the next slot-long round.
    net = Net()
    linear_chain(net, 1)
    net.run(7)  # ends half a slot into a round that has every vote for block 1
    assert all(v.finalized[1] == 1 for v in net.voters)
    rounds = [v.current for v in net.voters]
    head = net.extend(net.chain.best, 2)
    net.now += 1  # no round timer can expire: every voter's round started a slot-half ago
    for _ in range(4):
        outbox = [(i, m) for i, v in enumerate(net.voters) for m in v.tick(net.now)[0]]
        for i, m in outbox:
            for j, v in enumerate(net.voters):
                if j != i:
                    v.on_vote(m)
    assert all(v.finalized == (head.hash, 2) for v in net.voters)
    assert all(v.current == r + 1 for v, r in zip(net.voters, rounds, strict=True))


def test_three_prevotes_are_enough_when_the_fourth_cannot_move_the_ghost() -> None:
    # One voter still importing the block (silent here) must not hold back the precommits of
    # the other three until the round timer: no prevote of it could change what they commit.
    net = Net()
    linear_chain(net, 1)
    net.run(7)
    assert all(v.finalized[1] == 1 for v in net.voters)
    head = net.extend(net.chain.best, 2)
    busy = net.voters[3]
    net.now += 1  # no round timer can expire
    for _ in range(4):
        outbox = [(i, m) for i, v in enumerate(net.voters[:3]) for m in v.tick(net.now)[0]]
        for i, m in outbox:
            for j, v in enumerate(net.voters[:3]):
                if j != i:
                    v.on_vote(m)
    assert all(v.finalized == (head.hash, 2) for v in net.voters[:3])
    assert busy.finalized[1] == 1


def test_no_precommit_while_a_missing_prevote_could_still_move_the_ghost() -> None:
    net = Net()
    b = linear_chain(net, 1)
    c = net.extend(b, 2)
    g = net.chain.genesis_hash
    v0 = net.voters[0]
    net.heads[0] = (b.hash, 1)
    votes, _ = v0.tick(0)
    assert [(m.kind, m.target) for m in votes] == [(PREVOTE, (b.hash, 1))]
    rnd = v0.current
    for i in (1, 2):
        v0.on_vote(SignedVote.sign(KEYS[i], PREVOTE, rnd, 0, (c.hash, 2), g))
    # B (3 prevotes) is the GHOST, but the last voter could still lift C to 3: wait.
    votes, _ = v0.tick(1)
    assert [m for m in votes if m.kind == PRECOMMIT] == []
    v0.on_vote(SignedVote.sign(KEYS[3], PREVOTE, rnd, 0, (c.hash, 2), g))
    votes, _ = v0.tick(2)
    assert [(m.kind, m.target) for m in votes if m.kind == PRECOMMIT] == [(PRECOMMIT, (c.hash, 2))]


def test_a_voter_does_not_leave_a_round_with_fewer_than_t_precommits() -> None:
    """GRANDPA's completability: the precommits seen must reach the threshold first. Two of
    four precommits for the GHOST, a grown chain and an expired timer are not enough."""
    net = Net()
    b = linear_chain(net, 1)
    g = net.chain.genesis_hash
    v0 = net.voters[0]
    rnd = v0.current
    (prevote,) = v0.tick(0)[0]
    assert prevote.target == (b.hash, 1)
    for i in (1, 2):
        v0.on_vote(SignedVote.sign(KEYS[i], PREVOTE, rnd, 0, (b.hash, 1), g))
    votes, _ = v0.tick(1)
    assert [(m.kind, m.target) for m in votes] == [(PRECOMMIT, (b.hash, 1))]
    v0.on_vote(SignedVote.sign(KEYS[1], PRECOMMIT, rnd, 0, (b.hash, 1), g))
    net.extend(b, 2)  # the chain grew past the estimate, and the round timer runs out
    votes, done = v0.tick(2 * SLOT)
    assert v0.current == rnd and votes == [] and done == []
    v0.on_vote(SignedVote.sign(KEYS[2], PRECOMMIT, rnd, 0, (b.hash, 1), g))
    votes, done = v0.tick(2 * SLOT + 1)
    assert [f.block for f in done] == [(b.hash, 1)]
    assert v0.current == rnd + 1 and [m.kind for m in votes] == [PREVOTE]


def test_a_voter_that_missed_a_prevote_for_a_while_is_not_left_behind_for_good() -> None:
    """Charlie hears nothing from Alice for eight slots and nothing from Dave, whose
    precommits reach no one (a one-way loss on his link); Alice, Bob and Charlie are up.
    When rounds could be left on two precommits, Alice and Bob went on round after round
    with Dave's prevotes and without finalizing, Charlie stayed in the round whose prevote
    he had missed (once they were two rounds on, nobody re-sent it, and with no round
    holding a supermajority of precommits nobody could answer his catch-up): finality
    stopped for good. Now Alice and Bob wait in that round for Charlie's precommit, which
    follows Alice's re-sent prevote, and all finalize."""
    net = Net()
    head = linear_chain(net, 1)
    net.run(6, node=True)
    assert all(v.finalized[1] == 1 for v in net.voters)
    until = net.now + 8 * SLOT

    def deliver(frm: int, to: int, m: object) -> bool:
        if frm == 3 and (to == 2 or getattr(m, "kind", None) == PRECOMMIT):
            return False
        return not (frm == 0 and to == 2 and net.now < until)

    for step in range(40):
        if step % 2 == 0:
            head = net.extend(head, head.slot + 1)
        net.run(1, deliver=deliver, node=True)
    alice, bob, charlie = net.voters[:3]
    assert charlie.current + 1 >= alice.current, "Charlie was left behind"
    assert all(v.finalized[1] >= head.number - 2 for v in (alice, bob, charlie)), [
        v.finalized[1] for v in net.voters
    ]


# ----------------------------------------------------------------------------- restarts


def test_a_restarted_voter_resends_its_votes_and_never_signs_a_different_one() -> None:
    net = Net()
    b1 = linear_chain(net, 1)
    v0 = net.voters[0]
    net.heads[0] = (b1.hash, 1)
    votes, _ = v0.tick(net.now)
    (prevote,) = votes
    rnd = v0.current
    # Killed after the vote was recorded; the chain grew meanwhile, so a fresh voter would
    # prevote #2 in the same round: an equivocation.
    b2 = net.extend(b1, 2)
    net.heads[0] = (b2.hash, 2)
    again = net.new_voter(0)
    assert again.current == rnd
    assert again.own_votes() == [prevote]
    votes, _ = again.tick(net.now)
    assert prevote not in votes and all(m.kind == PRECOMMIT for m in votes)
    peer = net.voters[1]
    assert peer.on_vote(prevote) == (True, None)
    for m in again.own_votes():
        assert peer.on_vote(m)[1] is None
    assert not peer.evidence


def test_restarting_voters_one_after_another_keep_finality_going_without_equivocations() -> None:
    net = Net()
    head = linear_chain(net, 2)
    net.run(6)
    for victim in (2, 3, 0, 1, 2):
        head = net.extend(head, head.slot + 1)
        net.run(1)
        net.voters[victim] = net.new_voter(victim)  # killed and restarted
        net.run(2, node=True)
        head = net.extend(head, head.slot + 1)
        net.run(6, node=True)
        assert all(v.finalized == (head.hash, head.number) for v in net.voters), victim
    assert not any(v.evidence for v in net.voters)


def test_a_voter_restarted_with_no_memory_would_equivocate() -> None:
    """The hazard the store removes, shown with an empty store (a lost database)."""
    net = Net()
    b1 = linear_chain(net, 1)
    net.heads[0] = (b1.hash, 1)
    (prevote,) = net.voters[0].tick(net.now)[0]
    b2 = net.extend(b1, 2)
    net.heads[0] = (b2.hash, 2)
    net.stores[0] = KVVoterStore(MemoryStore())
    again = net.new_voter(0)
    (other,) = [m for m in again.tick(net.now)[0] if m.kind == PREVOTE]
    assert other.round == prevote.round and other.target != prevote.target
    assert net.voters[1].on_vote(prevote)[1] is None
    assert net.voters[1].on_vote(other)[1] is not None


def test_the_store_keeps_recent_rounds_only() -> None:
    net = Net()
    head = linear_chain(net, 1)
    for s in range(2, 40):
        head = net.extend(head, s)
        net.run(2)
    kv = net.stores[0].kv
    assert isinstance(kv, MemoryStore)
    rounds = {int.from_bytes(k[10:18], "big") for k, _ in kv.iterate(b"gv")}
    assert rounds and min(rounds) >= net.voters[0].current - 16


# ----------------------------------------------------------------------------- catch-up


def test_a_voter_that_missed_rounds_catches_up_and_votes_again() -> None:
    net = Net()
    head = linear_chain(net, 1)
    net.run(6)
    # Dave hears nothing for a while: the other three go on without him.
    deaf = lambda frm, to, m: to != 3  # noqa: E731
    for _ in range(6):
        head = net.extend(head, head.slot + 1)
        net.run(4, deliver=deaf)
    dave, alice = net.voters[3], net.voters[0]
    assert dave.current + 2 <= alice.current
    # He hears the others again: their votes show him behind, and he asks for a catch-up.
    net.run(1)
    assert dave.wants_catch_up(net.now)
    msg = alice.catch_up_for(dave.current)
    assert msg is not None and msg.round == alice.current - 1
    assert dave.on_catch_up(CatchUp.decode(msg.encode()), net.now)
    assert dave.current == alice.current and dave.catch_ups == 1
    # He votes in the others' round again: with Charlie silent, he is needed for finality.
    net.voters[2] = net.voters[3]
    net.voters.pop()
    net.finalized.pop()
    head = net.extend(head, head.slot + 1)
    net.run(8)
    assert all(v.finalized == (head.hash, head.number) for v in net.voters)


def test_a_catch_up_without_a_supermajority_or_with_a_bad_signature_is_refused() -> None:
    net = Net()
    head = linear_chain(net, 1)
    net.run(6)
    alice, bob = net.voters[0], net.voters[1]
    msg = alice.catch_up_for(1)
    assert msg is not None
    bob.current = 0  # as if behind
    short = CatchUp(msg.set_id, msg.round, msg.prevotes[:2], msg.precommits)
    with pytest.raises(CatchUpError):
        bob.on_catch_up(short, net.now)
    forged = SignedVote(*[*list(vars(msg.prevotes[0]).values())[:-1], b"\x01" * 64])
    bad = CatchUp(msg.set_id, msg.round, (forged, *msg.prevotes[1:]), msg.precommits)
    with pytest.raises(CatchUpError):
        bob.on_catch_up(bad, net.now)
    dup = CatchUp(msg.set_id, msg.round, (msg.prevotes[0],) * 3, msg.precommits)
    with pytest.raises(CatchUpError):
        bob.on_catch_up(dup, net.now)
    assert bob.current == 0 and head.number == 1


def test_votes_far_ahead_are_checked_not_kept_and_show_the_voter_behind() -> None:
    net = Net()
    g = net.chain.genesis_hash
    v = net.voters[0]
    far = SignedVote.sign(KEYS[1], PREVOTE, v.current + FUTURE_ROUNDS + 10, 0, (g, 0), g)
    assert v.on_vote(far) == (True, None)
    assert far.round not in v.rounds and v.highest_seen == far.round
    assert v.wants_catch_up(net.now)
    assert not v.wants_catch_up(net.now + 1)  # at most one ask per two slots
    bad = SignedVote(*[*list(vars(far).values())[:-1], b"\x02" * 64])
    assert v.on_vote(bad) == (False, None)


def test_round_state_has_substrates_shape() -> None:
    net = Net()
    linear_chain(net, 1)
    net.run(3)
    state = net.voters[0].round_state()
    assert state["setId"] == 0
    best = state["best"]
    assert isinstance(best, dict)
    assert best["totalWeight"] == 4 and best["thresholdWeight"] == 3
    for stage in ("prevotes", "precommits"):
        part = best[stage]
        assert part["currentWeight"] + len(part["missing"]) == 4
