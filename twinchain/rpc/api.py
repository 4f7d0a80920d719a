"""The RPC seam: what the server needs from a node, and the JSON shapes both ends share.

``NodeHandle`` is implemented by ``twinchain.node.service.Node``; tests use a small stand-in.
Bytes travel as ``0x``-prefixed lowercase hex and header numbers as minimal hex (``"0x1a"``),
as Substrate's RPC does, so the same client code reads both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from twinchain.primitives import codec
from twinchain.primitives.codec import CodecError
from twinchain.primitives.types import Header

if TYPE_CHECKING:
    from twinchain.consensus.grandpa import Voter
    from twinchain.node.blockchain import Blockchain
    from twinchain.node.txpool import TransactionPool
    from twinchain.primitives.keystore import Keystore


class NodeHandle(Protocol):
    """The running node as the RPC server sees it (read-only properties: plain attributes of
    the node satisfy them too)."""

    @property
    def chain(self) -> Blockchain:
        """Chain database and runtime."""

    @property
    def pool(self) -> TransactionPool:
        """The transaction pool (``pending()`` feeds author_pendingExtrinsics)."""

    @property
    def keystore(self) -> Keystore:
        """Local keys (author_insertKey / author_hasKey / author_rotateKeys)."""

    @property
    def name(self) -> str:
        """Human-readable node name (system_name)."""

    @property
    def version(self) -> str:
        """Implementation version (system_version)."""

    @property
    def roles(self) -> list[str]:
        """Substrate role names: "Authority", "Full", "Light"."""

    @property
    def is_syncing(self) -> bool:
        """True while the node is catching up with its peers."""

    @property
    def peers(self) -> list[dict[str, Any]]:
        """Connected peers in system_peers' shape (peerId, roles, bestHash, bestNumber)."""

    @property
    def local_peer_id(self) -> str:
        """This node's libp2p peer id (base58)."""

    @property
    def listen_addresses(self) -> list[str]:
        """Multiaddresses this node listens on for p2p."""

    @property
    def voter(self) -> Voter | None:
        """The finality voter of the current authority set (grandpa_roundState, finality
        metrics); read on each use, since a new set replaces it. None: no finality runs."""

    def submit_extrinsic(self, raw: bytes) -> bytes:
        """Validate and pool ``raw``; return its hash. Raises ``PoolError``."""
        ...


# --------------------------------------------------------------------------- wire helpers


def to_hex(data: bytes) -> str:
    return "0x" + data.hex()


def from_hex(text: Any, what: str = "value", length: int | None = None) -> bytes:
    """Decode ``0x``-hex; ValueError (with a message fit for a client) if malformed."""
    if type(text) is not str or not text.startswith("0x"):
        raise ValueError(f"{what} must be a 0x-prefixed hex string")
    try:
        raw = bytes.fromhex(text[2:])
    except ValueError:
        raise ValueError(f"{what} is not valid hex") from None
    if length is not None and len(raw) != length:
        raise ValueError(f"{what} must be {length} bytes")
    return raw


def number_to_hex(n: int) -> str:
    """Substrate's block-number shape: minimal hex, ``"0x0"`` for zero."""
    return hex(n)


def number_from_json(value: Any, what: str = "number") -> int:
    """A non-negative u64 given as a JSON integer or as hex (``"0x1a"``)."""
    if type(value) is int:
        n = value
    elif type(value) is str and value.startswith("0x") and 2 < len(value) <= 66:
        try:
            n = int(value[2:], 16)
        except ValueError:
            raise ValueError(f"{what} is not valid hex") from None
    else:
        raise ValueError(f"{what} must be an integer or a 0x-hex string")
    if not 0 <= n < 2**64:
        raise ValueError(f"{what} out of range")
    return n


def header_to_json(h: Header) -> dict[str, Any]:
    """Each digest log is the hex of its canonical encoding ``[engine, payload]``, as
    Substrate's logs are hex of their SCALE encoding."""
    return {
        "parentHash": to_hex(h.parent_hash),
        "number": number_to_hex(h.number),
        "stateRoot": to_hex(h.state_root),
        "extrinsicsRoot": to_hex(h.extrinsics_root),
        "slot": number_to_hex(h.slot),
        "digest": {"logs": [to_hex(codec.encode([e, p])) for e, p in h.digest]},
        "seal": to_hex(h.seal),
    }


def header_from_json(d: Any) -> Header:
    """Inverse of :func:`header_to_json` (so a client can check the hash); ValueError if bad."""
    if not isinstance(d, dict):
        raise ValueError("header must be an object")
    try:
        logs = d["digest"]["logs"]
        digest = [codec.decode(from_hex(x, "digest log")) for x in logs]
        return Header.from_wire(
            [
                from_hex(d["parentHash"], "parentHash"),
                number_from_json(d["number"]),
                from_hex(d["stateRoot"], "stateRoot"),
                from_hex(d["extrinsicsRoot"], "extrinsicsRoot"),
                number_from_json(d["slot"], "slot"),
                digest,
                from_hex(d["seal"], "seal"),
            ]
        )
    except (KeyError, TypeError, CodecError) as exc:
        raise ValueError(f"malformed header: {exc}") from None
