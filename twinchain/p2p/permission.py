"""Who may connect: reserved peers and the authorized set (``PeerAuthorizer``, see ``abc``).

Modes, as Substrate's ``--reserved-nodes`` / ``--reserved-only`` and pallet-node-authorization:

- open (no authorized set, not reserved-only): every peer is allowed; the default, so a plain
  ``twinchain node --dev`` and ad-hoc test networks keep working;
- permissioned (an authorized set was given, even an empty one): reserved and authorized peers
  only; the set can be replaced at runtime (``NetworkService.set_authorized_peers``: the
  ``--authorized-peers-file`` watcher; the chain's set is united with it by the node's
  ``twinchain.node.authorization.ChainAuthorizer``);
- reserved-only: reserved peers only, whatever the authorized set says.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from libp2p.peer.id import ID

log = logging.getLogger("twinchain.p2p.permission")


class PeerIdError(ValueError):
    """Not a libp2p peer id, nor a multiaddr ending in ``/p2p/<peer id>``."""


class AuthorizedPeersError(ValueError):
    """The authorized peers file cannot be read or holds a bad entry."""


def parse_peer_id(text: str) -> str:
    """A base58 peer id, from itself or from a multiaddr's ``/p2p/<id>`` tail."""
    raw = text.strip()
    if "/p2p/" in raw:
        raw = raw.rsplit("/p2p/", 1)[1].split("/", 1)[0]
    try:
        pid = ID.from_base58(raw)
    except Exception as exc:  # base58 and multihash raise several types
        raise PeerIdError(f"not a peer id: {text!r} ({exc})") from None
    # Any base58 string decodes: a peer id is the multihash of a public key, either inline
    # (identity, code 0: Ed25519 keys) or a SHA-256 (code 0x12, 32 bytes: RSA keys).
    b = pid.to_bytes()
    inline = len(b) > 2 and b[0] == 0x00 and b[1] == len(b) - 2
    hashed = len(b) == 34 and b[0] == 0x12 and b[1] == 0x20
    if not (inline or hashed) or pid.to_base58() != raw:
        raise PeerIdError(f"not a peer id: {text!r}")
    return raw


class PeerPermissions:
    """The node's :class:`~twinchain.p2p.abc.PeerAuthorizer`."""

    def __init__(
        self,
        reserved: Iterable[str] = (),
        authorized: Iterable[str] | None = None,
        *,
        reserved_only: bool = False,
    ) -> None:
        self._reserved = frozenset(parse_peer_id(p) for p in reserved)
        self._authorized: frozenset[str] | None = (
            None if authorized is None else frozenset(parse_peer_id(p) for p in authorized)
        )
        self.reserved_only = reserved_only

    @property
    def permissioned(self) -> bool:
        """False: every peer is allowed (no authorized set, not reserved-only)."""
        return self.reserved_only or self._authorized is not None

    @property
    def reserved(self) -> frozenset[str]:
        return self._reserved

    @property
    def authorized(self) -> frozenset[str] | None:
        """The authorized set, None in open mode."""
        return self._authorized

    def set_authorized(self, peers: Iterable[str]) -> None:
        """Replace the whole authorized set (which makes the network permissioned). The
        network service composes it from its sources (``NetworkService.set_authorized_peers``:
        the file, the chain); connected peers outside the new set are dropped within a
        second."""
        new = frozenset(parse_peer_id(p) for p in peers)
        if new != self._authorized:
            old = self._authorized or frozenset()
            log.info("authorized peers: %d (+%d, -%d)", len(new), len(new - old), len(old - new))
        self._authorized = new

    def allows(self, peer_id: str) -> bool:
        if peer_id in self._reserved:
            return True
        if self.reserved_only:
            return False
        return self._authorized is None or peer_id in self._authorized

    def is_reserved(self, peer_id: str) -> bool:
        return peer_id in self._reserved

    def is_authorized(self, peer_id: str) -> bool:
        return self._authorized is not None and peer_id in self._authorized


class AuthorizedPeersFile:
    """``--authorized-peers-file``: one peer id (or a multiaddr with ``/p2p/<id>``) a line,
    ``#`` comments; re-read when it changes, so an operator (or a script following the chain)
    can authorize a node without restarting this one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None

    def load(self) -> frozenset[str]:
        try:
            st = os.stat(self.path)
            text = self.path.read_text()
        except OSError as exc:
            raise AuthorizedPeersError(f"cannot read {self.path}: {exc}") from None
        self._stamp = (st.st_mtime_ns, st.st_size)
        out = set()
        for n, line in enumerate(text.splitlines(), 1):
            entry = line.split("#", 1)[0].strip()
            if not entry:
                continue
            try:
                out.add(parse_peer_id(entry))
            except PeerIdError as exc:
                raise AuthorizedPeersError(f"{self.path}:{n}: {exc}") from None
        return frozenset(out)

    def changed(self) -> frozenset[str] | None:
        """The file's set if it changed since the last read, else None. A broken edit keeps
        the previous set (logged): a typo must not lock every peer out."""
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        if (st.st_mtime_ns, st.st_size) == self._stamp:
            return None
        try:
            return self.load()
        except AuthorizedPeersError as exc:
            self._stamp = (st.st_mtime_ns, st.st_size)
            log.error("keeping the previous authorized peers: %s", exc)
            return None
