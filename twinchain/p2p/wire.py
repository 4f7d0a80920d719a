"""What goes on the wire: length-prefixed frames on streams, the sync messages, and the gossip
envelope. Every message is one canonical msgpack value (``twinchain.primitives.codec``).

Frame: ``uvarint(len(payload)) || payload``, as libp2p's own length-prefixed protocols, so a
peer written with any libp2p implementation can speak it.

Sync protocol ``/twinchain/<genesis-hex>/sync/1``: one long-lived stream per direction; the
peer that opened a stream sends requests on it and the other answers each one in order.

==========  =============================  ===========================================
kind        request                        response
==========  =============================  ===========================================
0 status    ``[0, status]``                ``[0, status]``
1 headers   ``[1, start, count]``          ``[1, [header, ...]]``
2 blocks    ``[2, start, count]``          ``[2, [[block, justification|nil], ...]]``
3 error     (never a request)              ``[3, reason]``
==========  =============================  ===========================================

``status`` is ``[best_number, best_hash, finalized_number, finalized_hash, genesis_hash]``;
headers, blocks and justifications are their canonical bytes. A range answer holds the
responder's best-chain blocks ``start, start+1, ...``, fewer than asked at its best block or
when the response would exceed :data:`MAX_RESPONSE_BYTES`.

Requests 4 and 5 serve finality: ``[4, block_hash]`` asks for the justification of a block
(answer ``[4, justification|nil]``), ``[5, set_id, round]`` asks a finality voter for the votes
of a round it completed, at least ``round`` (answer ``[5, catch_up|nil]``; see
``twinchain.consensus.proofs.CatchUp``). ``[6, block_hash, count]`` asks for a block and its
ancestors, newest first (answer as a blocks answer, kind 6): the way to a block a finality vote
names on a branch we never imported (it is not on the peer's best chain by number, so a range
request cannot reach it).

Gossip message: ``[kind, payload]`` with kind 0 block (payload: block bytes), 1 vote (vote
bytes), 2 transactions (payload: a list of transaction bytes), 3 commit (a finality
justification, on the votes topic).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import trio
from libp2p.abc import INetStream
from libp2p.exceptions import BaseLibp2pError

from twinchain.p2p.abc import ChainStatus
from twinchain.primitives import codec
from twinchain.primitives.codec import CodecError

#: Largest frame accepted on a sync stream (a block range answer is kept below it).
MAX_FRAME = codec.MAX_MESSAGE
#: Largest frame a sync responder reads: requests are tens of bytes (a status is the largest),
#: so a peer cannot make it buffer a 16 MiB "request".
MAX_REQUEST_FRAME = 4096
#: A responder stops adding blocks to a range answer beyond this many bytes.
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
#: Most blocks or headers one request may ask for.
MAX_RANGE = 512
#: Largest gossip message we publish or accept: a block of the runtime's maximum length
#: (4 MiB of extrinsics) and its header. py-libp2p's pubsub drops RPCs over 1 MiB unless told
#: otherwise (see :data:`MAX_PUBSUB_RPC` and ``host.build_host``).
MAX_GOSSIP_BYTES = 4 * 1024 * 1024 + 64 * 1024
#: Largest pubsub RPC a node sends or reads: one gossip message and the RPC's envelope
#: (signature, sender record, control messages).
MAX_PUBSUB_RPC = MAX_GOSSIP_BYTES + 64 * 1024
_READ_CHUNK = 64 * 1024


class ProtocolError(Exception):
    """The peer sent bytes that break the protocol (garbage, wrong shape): its fault."""


class StreamGone(Exception):
    """The stream or connection closed or was reset: nobody's fault."""


# --------------------------------------------------------------------------- framing


def encode_uvarint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_frame(value: Any) -> bytes:
    payload = codec.encode(value)
    return encode_uvarint(len(payload)) + payload


class FramedStream:
    """A libp2p stream read and written as canonical msgpack frames."""

    def __init__(self, stream: INetStream, max_frame: int = MAX_FRAME) -> None:
        self.stream = stream
        self.max_frame = max_frame
        self._buf = bytearray()

    async def _fill(self, n: int) -> None:
        while len(self._buf) < n:
            try:
                chunk = await self.stream.read(max(n - len(self._buf), _READ_CHUNK))
            except (BaseLibp2pError, OSError, EOFError, trio.BrokenResourceError) as exc:
                raise StreamGone(f"{type(exc).__name__}: {exc}") from None
            except trio.ClosedResourceError:
                raise StreamGone("closed") from None
            if not chunk:
                raise StreamGone("end of stream")
            self._buf += chunk

    async def read(self) -> Any:
        """The next frame's value; ProtocolError for garbage, StreamGone at the end."""
        length = 0
        shift = 0
        pos = 0
        while True:
            await self._fill(pos + 1)
            b = self._buf[pos]
            length |= (b & 0x7F) << shift
            pos += 1
            if not b & 0x80:
                break
            shift += 7
            if shift > 28:  # more than 4 bytes would mean > 256 MiB: garbage
                raise ProtocolError("frame length prefix too long")
        if pos > 1 and self._buf[pos - 1] == 0:
            raise ProtocolError("non-minimal frame length prefix")
        if length == 0 or length > self.max_frame:
            raise ProtocolError(f"bad frame length {length}")
        await self._fill(pos + length)
        payload = bytes(self._buf[pos : pos + length])
        del self._buf[: pos + length]
        try:
            return codec.decode(payload, self.max_frame)
        except CodecError as exc:
            raise ProtocolError(f"undecodable frame: {exc}") from None

    async def write(self, value: Any) -> None:
        data = encode_frame(value)
        try:
            await self.stream.write(data)
        except (BaseLibp2pError, OSError, trio.BrokenResourceError) as exc:
            raise StreamGone(f"{type(exc).__name__}: {exc}") from None
        except trio.ClosedResourceError:
            raise StreamGone("closed") from None

    async def reset(self) -> None:
        """Abort the stream (never raises)."""
        try:
            await self.stream.reset()
        except Exception:  # best effort: the connection may already be gone
            pass


# --------------------------------------------------------------------------- sync messages


class Kind(enum.IntEnum):
    STATUS = 0
    HEADERS = 1
    BLOCKS = 2
    ERROR = 3
    JUSTIFICATION = 4
    CATCH_UP = 5
    ANCESTRY = 6


def _uint(w: Any, what: str) -> int:
    if type(w) is not int or w < 0 or w >= 1 << 64:
        raise ProtocolError(f"{what}: expected an unsigned integer")
    return w


def _hash(w: Any, what: str) -> bytes:
    if type(w) is not bytes or len(w) != 32:
        raise ProtocolError(f"{what}: expected a 32-byte hash")
    return w


def status_to_wire(s: ChainStatus) -> list[Any]:
    return [s.best_number, s.best_hash, s.finalized_number, s.finalized_hash, s.genesis_hash]


def status_from_wire(w: Any) -> ChainStatus:
    if type(w) is not list or len(w) != 5:
        raise ProtocolError("status must have 5 fields")
    s = ChainStatus(
        best_number=_uint(w[0], "best number"),
        best_hash=_hash(w[1], "best hash"),
        finalized_number=_uint(w[2], "finalized number"),
        finalized_hash=_hash(w[3], "finalized hash"),
        genesis_hash=_hash(w[4], "genesis hash"),
    )
    if s.finalized_number > s.best_number:
        raise ProtocolError("status: finalized above best")
    return s


@dataclass(frozen=True)
class RangeRequest:
    kind: Kind
    start: int
    count: int


@dataclass(frozen=True)
class JustificationRequest:
    """The justification of one block (a finalized block of the peer's)."""

    block_hash: bytes


@dataclass(frozen=True)
class CatchUpRequest:
    """The votes of a completed finality round of set ``set_id``, at least ``round``."""

    set_id: int
    round: int


@dataclass(frozen=True)
class AncestryRequest:
    """Block ``block_hash`` and up to ``count - 1`` of its ancestors, newest first."""

    block_hash: bytes
    count: int


Request = ChainStatus | RangeRequest | JustificationRequest | CatchUpRequest | AncestryRequest


def decode_request(w: Any) -> Request:
    if type(w) is not list or not w or type(w[0]) is not int:
        raise ProtocolError("request must be [kind, ...]")
    if w[0] == Kind.STATUS and len(w) == 2:
        return status_from_wire(w[1])
    if w[0] in (Kind.HEADERS, Kind.BLOCKS) and len(w) == 3:
        start, count = _uint(w[1], "start"), _uint(w[2], "count")
        if not 1 <= count <= MAX_RANGE:
            raise ProtocolError(f"range count must be 1..{MAX_RANGE}")
        return RangeRequest(Kind(w[0]), start, count)
    if w[0] == Kind.JUSTIFICATION and len(w) == 2:
        return JustificationRequest(_hash(w[1], "block hash"))
    if w[0] == Kind.CATCH_UP and len(w) == 3:
        return CatchUpRequest(_uint(w[1], "set id"), _uint(w[2], "round"))
    if w[0] == Kind.ANCESTRY and len(w) == 3:
        count = _uint(w[2], "count")
        if not 1 <= count <= MAX_RANGE:
            raise ProtocolError(f"ancestry count must be 1..{MAX_RANGE}")
        return AncestryRequest(_hash(w[1], "block hash"), count)
    raise ProtocolError(f"unknown request kind {w[0]!r}")


def encode_request(req: Request) -> list[Any]:
    if isinstance(req, ChainStatus):
        return [Kind.STATUS.value, status_to_wire(req)]
    if isinstance(req, JustificationRequest):
        return [Kind.JUSTIFICATION.value, req.block_hash]
    if isinstance(req, CatchUpRequest):
        return [Kind.CATCH_UP.value, req.set_id, req.round]
    if isinstance(req, AncestryRequest):
        return [Kind.ANCESTRY.value, req.block_hash, req.count]
    return [req.kind.value, req.start, req.count]


class RemoteError(Exception):
    """The peer answered a request with an error message."""


def _check_response_kind(w: Any, kind: Kind) -> Any:
    if type(w) is not list or len(w) != 2 or type(w[0]) is not int:
        raise ProtocolError("response must be [kind, body]")
    if w[0] == Kind.ERROR:
        reason = w[1] if type(w[1]) is str else "?"
        raise RemoteError(reason[:200])
    if w[0] != kind:
        raise ProtocolError(f"response kind {w[0]} does not answer a {kind.name} request")
    return w[1]


def decode_status_response(w: Any) -> ChainStatus:
    return status_from_wire(_check_response_kind(w, Kind.STATUS))


def decode_blocks_response(
    w: Any, count: int, kind: Kind = Kind.BLOCKS
) -> list[tuple[bytes, bytes | None]]:
    """A blocks answer (``kind`` BLOCKS, or ANCESTRY): ``[block, justification|nil]`` items."""
    body = _check_response_kind(w, kind)
    if type(body) is not list or len(body) > count:
        raise ProtocolError("blocks response: not a list, or more blocks than asked")
    out: list[tuple[bytes, bytes | None]] = []
    for item in body:
        if (
            type(item) is not list
            or len(item) != 2
            or type(item[0]) is not bytes
            or (item[1] is not None and type(item[1]) is not bytes)
        ):
            raise ProtocolError("blocks response item must be [block, justification|nil]")
        out.append((item[0], item[1]))
    return out


def decode_headers_response(w: Any, count: int) -> list[bytes]:
    body = _check_response_kind(w, Kind.HEADERS)
    if type(body) is not list or len(body) > count or any(type(h) is not bytes for h in body):
        raise ProtocolError("headers response: not a list of bytes, or more than asked")
    return body


def decode_optional_bytes_response(w: Any, kind: Kind) -> bytes | None:
    """The body of a justification or catch-up answer: bytes, or None (the peer has none)."""
    body = _check_response_kind(w, kind)
    if body is not None and type(body) is not bytes:
        raise ProtocolError(f"{kind.name.lower()} response must be bytes or nil")
    return body


def error_response(reason: str) -> list[Any]:
    return [Kind.ERROR.value, reason[:200]]


# --------------------------------------------------------------------------- gossip envelope


class GossipKind(enum.IntEnum):
    BLOCK = 0
    VOTE = 1
    TRANSACTIONS = 2
    COMMIT = 3


#: The message kinds each topic carries (by the topic's own kind): commits go with votes.
TOPIC_KINDS: dict[GossipKind, tuple[GossipKind, ...]] = {
    GossipKind.BLOCK: (GossipKind.BLOCK,),
    GossipKind.VOTE: (GossipKind.VOTE, GossipKind.COMMIT),
    GossipKind.TRANSACTIONS: (GossipKind.TRANSACTIONS,),
}


def encode_gossip(kind: GossipKind, payload: bytes | list[bytes]) -> bytes:
    return codec.encode([kind.value, payload])


def decode_gossip(data: bytes, expected: GossipKind) -> bytes | list[bytes]:
    """The payload of a gossip message of kind ``expected``; ProtocolError otherwise."""
    kind, payload = decode_topic_message(data, expected)
    if kind is not expected:
        raise ProtocolError(f"gossip message is not a [{expected.name}, payload]")
    return payload


def decode_topic_message(data: bytes, topic: GossipKind) -> tuple[GossipKind, bytes | list[bytes]]:
    """The kind and payload of a message on ``topic``'s topic; ProtocolError for a kind the
    topic does not carry or a malformed payload."""
    try:
        w = codec.decode(data, MAX_GOSSIP_BYTES)
    except CodecError as exc:
        raise ProtocolError(f"undecodable gossip: {exc}") from None
    allowed = TOPIC_KINDS[topic]
    if type(w) is not list or len(w) != 2 or type(w[0]) is not int or w[0] not in allowed:
        raise ProtocolError(f"gossip message is not a [{topic.name}, payload]")
    expected = GossipKind(w[0])
    payload = w[1]
    if expected is GossipKind.TRANSACTIONS:
        if type(payload) is not list or not payload or any(type(x) is not bytes for x in payload):
            raise ProtocolError("transactions payload must be a non-empty list of bytes")
    elif type(payload) is not bytes:
        raise ProtocolError("payload must be bytes")
    return expected, payload
