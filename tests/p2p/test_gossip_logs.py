"""Gossip's debug lines (``-l gossip=debug``): why a vote or message was refused."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from twinchain.p2p.abc import Verdict
from twinchain.p2p.gossip import GossipLimits, GossipService, Topics
from twinchain.p2p.wire import GossipKind, encode_gossip
from twinchain.primitives.finality import PREVOTE, SignedVote, describe_vote
from twinchain.primitives.keys import Keypair

ALICE = Keypair.from_dev_name("Alice")
GENESIS = bytes(32)


class Handler:
    """Refuses every vote, as the node does one of another authority set."""

    def on_vote(self, peer_id: str, raw: bytes) -> Verdict:
        return Verdict.REJECT

    def describe_vote(self, raw: bytes) -> str:
        return describe_vote(raw)

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"unexpected handler call {name}")


def service(**limits: Any) -> tuple[GossipService, list[tuple[str, int, str]]]:
    reports: list[tuple[str, int, str]] = []
    svc = GossipService(
        Handler(),  # type: ignore[arg-type]
        Topics(GENESIS),
        report=lambda peer, penalty, reason: reports.append((peer, penalty, reason)),
        is_banned=lambda peer: False,
        on_block_seen=lambda peer, header, verdict: None,
        limits=GossipLimits(**limits),
    )
    return svc, reports


def test_refused_vote_and_rate_limit_are_logged_with_the_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    svc, reports = service(votes_burst=2.0, votes_rate=0.001)
    vote = SignedVote.sign(ALICE, PREVOTE, 7, 3, (b"\xab" * 32, 42), GENESIS)
    msg = encode_gossip(GossipKind.VOTE, vote.encode())
    with caplog.at_level(logging.DEBUG, logger="twinchain.p2p.gossip"):
        assert not svc._accept("peerA", GossipKind.VOTE, msg)
        assert not svc._accept("peerA", GossipKind.VOTE, b"\x01garbage")
        assert not svc._accept("peerA", GossipKind.VOTE, msg)  # third: over the burst of 2
    lines = [r.getMessage() for r in caplog.records if r.name == "twinchain.p2p.gossip"]
    assert lines[0] == (
        f"prevote round 7 set 3 for #42 (0x{'ab' * 6}…) by 0x{ALICE.public.hex()[:12]}… "
        "from peerA: rejected (undecodable, another set, not an authority or a bad signature)"
    )
    assert lines[1].startswith("undecodable vote gossip from peerA: ")
    assert lines[2] == "vote gossip from peerA over its rate limit: dropped"
    assert reports[0][2] == "invalid vote"


def test_nothing_is_formatted_at_info(caplog: pytest.LogCaptureFixture) -> None:
    svc, _ = service()
    vote = SignedVote.sign(ALICE, PREVOTE, 1, 0, (b"\x01" * 32, 1), GENESIS)
    with caplog.at_level(logging.INFO, logger="twinchain.p2p.gossip"):
        svc._accept("peerB", GossipKind.VOTE, encode_gossip(GossipKind.VOTE, vote.encode()))
    assert not [r for r in caplog.records if r.name == "twinchain.p2p.gossip"]
