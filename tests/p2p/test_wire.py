"""The wire formats: stream frames, sync messages, the gossip envelope (no network)."""

from __future__ import annotations

from typing import Any

import pytest

from twinchain.p2p.abc import ChainStatus
from twinchain.p2p.wire import (
    MAX_RANGE,
    CatchUpRequest,
    FramedStream,
    GossipKind,
    JustificationRequest,
    Kind,
    ProtocolError,
    RangeRequest,
    RemoteError,
    StreamGone,
    decode_blocks_response,
    decode_gossip,
    decode_optional_bytes_response,
    decode_request,
    decode_status_response,
    decode_topic_message,
    encode_frame,
    encode_gossip,
    encode_request,
    error_response,
    status_to_wire,
)
from twinchain.primitives import codec

H = bytes(range(32))
STATUS = ChainStatus(10, H, 8, H[::-1], b"\x01" * 32)


class FakeStream:
    """Delivers ``data`` in small pieces, as a real stream may."""

    def __init__(self, data: bytes, piece: int = 3) -> None:
        self.data = data
        self.piece = piece
        self.written = b""

    async def read(self, n: int | None = None) -> bytes:
        out, self.data = self.data[: self.piece], self.data[self.piece :]
        return out

    async def write(self, data: bytes) -> None:
        self.written += data


def framed(data: bytes) -> FramedStream:
    return FramedStream(FakeStream(data))  # type: ignore[arg-type]


async def test_frames_round_trip_across_partial_reads() -> None:
    values: list[Any] = [[0, status_to_wire(STATUS)], [2, 1, 128], b"x" * 300]
    f = framed(b"".join(encode_frame(v) for v in values))
    for v in values:
        assert await f.read() == v
    with pytest.raises(StreamGone):
        await f.read()


async def test_written_frames_are_length_prefixed_canonical_msgpack() -> None:
    stream = FakeStream(b"")
    await FramedStream(stream).write([1, 2, 3])  # type: ignore[arg-type]
    assert stream.written == bytes([len(codec.encode([1, 2, 3]))]) + codec.encode([1, 2, 3])


@pytest.mark.parametrize(
    "data",
    [
        b"\x05hello",  # trailing bytes after a msgpack value
        b"\x00",  # empty frame
        b"\x80\x00\x01",  # non-minimal length prefix
        b"\xff\xff\xff\xff\xff\x01",  # absurd length
        b"\x02\x81\xa1",  # a map: outside the canonical profile
    ],
)
async def test_garbage_frames_are_protocol_errors(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        await framed(data).read()


async def test_frame_larger_than_the_limit_is_refused_before_reading_it() -> None:
    f = FramedStream(FakeStream(encode_frame(b"x" * 100)), max_frame=50)  # type: ignore[arg-type]
    with pytest.raises(ProtocolError):
        await f.read()


def test_requests_round_trip_and_are_checked() -> None:
    for req in (
        STATUS,
        RangeRequest(Kind.BLOCKS, 5, 128),
        RangeRequest(Kind.HEADERS, 0, 1),
        JustificationRequest(H),
        CatchUpRequest(2, 77),
    ):
        assert decode_request(codec.decode(codec.encode(encode_request(req)))) == req
    for bad in (
        [4, b"short"],
        [4, H, 1],
        [5, 1],
        [5, -1, 3],
        [],
        [9, 1, 1],
        [2, 1, 0],
        [2, 1, MAX_RANGE + 1],
        [2, -1, 5],
        [0, [1, H, 2, H, H]],  # finalized above best
        [0, [1, b"short", 0, H, H]],
        [True, 1, 1],
    ):
        with pytest.raises(ProtocolError):
            decode_request(bad)


def test_responses_are_checked_against_the_request() -> None:
    assert decode_status_response([0, status_to_wire(STATUS)]) == STATUS
    assert decode_blocks_response([2, [[b"b1", None], [b"b2", b"j"]]], 2) == [
        (b"b1", None),
        (b"b2", b"j"),
    ]
    with pytest.raises(ProtocolError):
        decode_blocks_response([2, [[b"b1", None], [b"b2", None]]], 1)  # more than asked
    with pytest.raises(ProtocolError):
        decode_blocks_response([0, status_to_wire(STATUS)], 1)  # answers another request
    with pytest.raises(ProtocolError):
        decode_blocks_response([2, [[b"b1", 5]]], 1)
    with pytest.raises(RemoteError, match="rate limited"):
        decode_blocks_response(error_response("rate limited"), 1)
    assert decode_optional_bytes_response([4, b"j"], Kind.JUSTIFICATION) == b"j"
    assert decode_optional_bytes_response([5, None], Kind.CATCH_UP) is None
    with pytest.raises(ProtocolError):
        decode_optional_bytes_response([5, b"c"], Kind.JUSTIFICATION)
    with pytest.raises(ProtocolError):
        decode_optional_bytes_response([4, 7], Kind.JUSTIFICATION)


def test_gossip_envelope() -> None:
    assert decode_gossip(encode_gossip(GossipKind.BLOCK, b"blk"), GossipKind.BLOCK) == b"blk"
    txs = [b"a", b"b"]
    data = encode_gossip(GossipKind.TRANSACTIONS, txs)
    assert decode_gossip(data, GossipKind.TRANSACTIONS) == txs
    # Commits travel on the votes topic, and only there.
    commit = encode_gossip(GossipKind.COMMIT, b"just")
    assert decode_topic_message(commit, GossipKind.VOTE) == (GossipKind.COMMIT, b"just")
    with pytest.raises(ProtocolError):
        decode_topic_message(commit, GossipKind.BLOCK)
    for data, kind in (
        (encode_gossip(GossipKind.VOTE, b"v"), GossipKind.BLOCK),  # wrong topic
        (codec.encode([True, b"v"]), GossipKind.VOTE),
        (codec.encode([2, []]), GossipKind.TRANSACTIONS),
        (codec.encode([0, [b"x"]]), GossipKind.BLOCK),
        (b"\xc1", GossipKind.BLOCK),
    ):
        with pytest.raises(ProtocolError):
            decode_gossip(data, kind)
