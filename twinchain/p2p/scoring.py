"""Peer reputation, Substrate style: penalties lower a score that slowly recovers toward zero;
at or below the ban threshold the peer is disconnected and refused for a while.

Scores are kept per peer id (not per address) and survive disconnects, so a peer cannot clean
its record by reconnecting. Time is injected (``clock``) so that tests need no sleeps.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("twinchain.p2p.scoring")


class Penalty:
    """How much each kind of misbehaviour costs (a score starts at 0; the ban is at -100)."""

    #: Undecodable frame or gossip envelope, or a protocol violation: no honest peer sends it.
    GARBAGE = 100
    #: A block the node rejected (bad seal, bad state root...), by gossip or by sync.
    INVALID_BLOCK = 100
    #: A sync response that breaks the request (wrong numbers, unlinked blocks, too many).
    BAD_RESPONSE = 100
    #: A finality vote the node rejected (bad signature, not an authority).
    INVALID_VOTE = 25
    #: A transaction batch the node rejected.
    INVALID_TRANSACTIONS = 20
    #: More gossip or requests than the per-peer rate allows.
    RATE_LIMIT = 5
    #: A sync request not answered in time.
    TIMEOUT = 10


@dataclass
class _Record:
    score: float = 0.0
    updated: float = 0.0
    banned_until: float | None = None
    reason: str = ""


class PeerScores:
    """Reputation of every peer seen; decides bans."""

    def __init__(
        self,
        *,
        ban_threshold: int = -100,
        ban_seconds: float = 300.0,
        recovery_per_second: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ban_threshold = ban_threshold
        self.ban_seconds = ban_seconds
        self.recovery_per_second = recovery_per_second
        self._clock = clock
        self._records: dict[str, _Record] = {}

    def _record(self, peer: str) -> _Record:
        now = self._clock()
        rec = self._records.get(peer)
        if rec is None:
            rec = self._records[peer] = _Record(updated=now)
            return rec
        # Linear recovery toward zero since the last update.
        if rec.score < 0:
            rec.score = min(0.0, rec.score + (now - rec.updated) * self.recovery_per_second)
        rec.updated = now
        if rec.banned_until is not None and now >= rec.banned_until:
            rec.banned_until = None
            # Let a peer back on probation: one more serious offence bans it again.
            rec.score = max(rec.score, self.ban_threshold / 2)
        return rec

    def score(self, peer: str) -> int:
        return round(self._record(peer).score)

    def is_banned(self, peer: str) -> bool:
        return self._record(peer).banned_until is not None

    def penalize(self, peer: str, penalty: int, reason: str) -> bool:
        """Lower ``peer``'s score by ``penalty`` (a negative penalty raises it, capped at 0).

        Returns True if this report banned the peer (it was not banned before).
        """
        rec = self._record(peer)
        rec.score = min(0.0, rec.score - penalty)
        if rec.banned_until is None and rec.score <= self.ban_threshold:
            rec.banned_until = self._clock() + self.ban_seconds
            rec.reason = reason
            log.warning(
                "banning peer %s for %.0f s (score %d): %s",
                peer,
                self.ban_seconds,
                round(rec.score),
                reason,
            )
            return True
        if penalty > 0:
            log.debug("peer %s: -%d (%s), score %d", peer, penalty, reason, round(rec.score))
        return False

    def banned(self) -> dict[str, float]:
        """Currently banned peers and the seconds left on each ban (expired bans are lifted)."""
        now = self._clock()
        out: dict[str, float] = {}
        for peer in list(self._records):
            rec = self._record(peer)
            if rec.banned_until is not None:
                out[peer] = rec.banned_until - now
        return out

    def forget_clean(self) -> None:
        """Drop the records of peers with a clean score and no ban (bounds memory)."""
        for peer in list(self._records):
            rec = self._record(peer)
            if rec.banned_until is None and rec.score >= 0:
                del self._records[peer]
