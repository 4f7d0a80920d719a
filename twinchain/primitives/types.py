"""Chain data types: headers, blocks, extrinsics, mortality eras, and their canonical bytes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from twinchain.primitives import codec
from twinchain.primitives.codec import CodecError
from twinchain.primitives.hashing import ZERO_HASH, Domain, hash_for
from twinchain.primitives.keys import Keypair

EXTRINSIC_VERSION = 1
MAX_EXTRINSIC_SIZE = 512 * 1024
MAX_BLOCK_SIZE = 8 * 1024 * 1024
MAX_DIGEST_ITEMS = 16

# --------------------------------------------------------------------------- era


@dataclass(frozen=True)
class Era:
    """Transaction mortality, as Substrate's: valid for ``period`` blocks from its birth.

    ``period == 0`` is immortal. A mortal era's signature covers the hash of its birth block, so
    once the period has passed the birth the runtime computes moves on, the hash no longer
    matches and the signature fails: an expired transaction can never be replayed.
    """

    period: int = 0
    phase: int = 0

    @classmethod
    def immortal(cls) -> Era:
        return cls(0, 0)

    @classmethod
    def mortal(cls, period: int, current: int) -> Era:
        p = 4
        while p < period and p < 65536:
            p <<= 1
        return cls(p, current % p)

    @property
    def is_immortal(self) -> bool:
        return self.period == 0

    def birth(self, current: int) -> int:
        if self.is_immortal:
            return 0
        return (max(current, self.phase) - self.phase) // self.period * self.period + self.phase

    def death(self, current: int) -> int:
        if self.is_immortal:
            return 2**64 - 1
        return self.birth(current) + self.period

    def to_wire(self) -> Any:
        return None if self.is_immortal else [self.period, self.phase]

    @classmethod
    def from_wire(cls, w: Any) -> Era:
        if w is None:
            return cls.immortal()
        if (
            type(w) is not list
            or len(w) != 2
            or type(w[0]) is not int
            or type(w[1]) is not int
            or w[0] < 4
            or w[0] > 65536
            or w[0] & (w[0] - 1)
            or not 0 <= w[1] < w[0]
        ):
            raise CodecError(f"invalid era {w!r}")
        return cls(w[0], w[1])


# --------------------------------------------------------------------------- calls


@dataclass(frozen=True)
class Call:
    """A runtime call by index, with its arguments in wire form (decoded by the runtime)."""

    pallet: int
    index: int
    args: tuple[Any, ...] = ()

    def to_wire(self) -> Any:
        return [self.pallet, self.index, list(self.args)]

    @classmethod
    def from_wire(cls, w: Any) -> Call:
        if (
            type(w) is not list
            or len(w) != 3
            or type(w[0]) is not int
            or type(w[1]) is not int
            or not 0 <= w[0] < 256
            or not 0 <= w[1] < 256
            or type(w[2]) is not list
        ):
            raise CodecError("call must be [pallet u8, call u8, [args]]")
        return cls(w[0], w[1], tuple(w[2]))

    def encode(self) -> bytes:
        return codec.encode(self.to_wire())


# --------------------------------------------------------------------------- extrinsics


@dataclass(frozen=True)
class SignedPart:
    signer: bytes
    signature: bytes
    nonce: int
    tip: int
    era: Era


def signing_payload(
    call: Call,
    nonce: int,
    tip: int,
    era: Era,
    genesis_hash: bytes,
    spec_version: int,
    birth_hash: bytes,
) -> bytes:
    """The 32-byte digest a signer signs: the call and its extensions plus the chain context
    (genesis hash, runtime spec version, era birth block hash) that defeats replays."""
    payload = codec.encode(
        [
            call.to_wire(),
            nonce,
            codec.U128.to_wire(tip),
            era.to_wire(),
            genesis_hash,
            spec_version,
            birth_hash,
        ]
    )
    return hash_for(Domain.SIGNING, payload)


@dataclass(frozen=True)
class Extrinsic:
    """A signed transaction, or an unsigned inherent (``signed is None``)."""

    call: Call
    signed: SignedPart | None = None

    def to_wire(self) -> Any:
        s = self.signed
        sw = (
            None
            if s is None
            else [s.signer, s.signature, s.nonce, codec.U128.to_wire(s.tip), s.era.to_wire()]
        )
        return [EXTRINSIC_VERSION, sw, self.call.to_wire()]

    def encode(self) -> bytes:
        return codec.encode(self.to_wire())

    @classmethod
    def decode(cls, data: bytes) -> Extrinsic:
        w = codec.decode(data, MAX_EXTRINSIC_SIZE)
        if type(w) is not list or len(w) != 3 or type(w[0]) is not int or w[0] != EXTRINSIC_VERSION:
            raise CodecError("unsupported extrinsic format or version")
        sw = w[1]
        signed = None
        if sw is not None:
            if type(sw) is not list or len(sw) != 5:
                raise CodecError("signed part must have 5 fields")
            signed = SignedPart(
                signer=codec.AccountId.from_wire(sw[0]),
                signature=codec.Signature.from_wire(sw[1]),
                nonce=codec.U64.from_wire(sw[2]),
                tip=codec.U128.from_wire(sw[3]),
                era=Era.from_wire(sw[4]),
            )
        return cls(Call.from_wire(w[2]), signed)

    @property
    def hash(self) -> bytes:
        return extrinsic_hash(self.encode())

    @classmethod
    def sign(
        cls,
        call: Call,
        keypair: Keypair,
        nonce: int,
        genesis_hash: bytes,
        spec_version: int,
        *,
        tip: int = 0,
        era: Era | None = None,
        birth_hash: bytes | None = None,
    ) -> Extrinsic:
        """Sign ``call``; a mortal era needs the hash of its birth block."""
        era = era or Era.immortal()
        if era.is_immortal:
            birth_hash = genesis_hash
        elif birth_hash is None:
            raise ValueError("a mortal era needs birth_hash")
        msg = signing_payload(call, nonce, tip, era, genesis_hash, spec_version, birth_hash)
        sig = keypair.sign(msg)
        return cls(call, SignedPart(keypair.public, sig, nonce, tip, era))


def extrinsic_hash(encoded: bytes) -> bytes:
    return hash_for(Domain.EXTRINSIC, encoded)


# --------------------------------------------------------------------------- headers & blocks


@dataclass(frozen=True)
class Header:
    parent_hash: bytes
    number: int
    state_root: bytes
    extrinsics_root: bytes
    slot: int
    digest: tuple[tuple[bytes, bytes], ...] = ()
    seal: bytes = b""

    def _wire_unsealed(self) -> list[Any]:
        return [
            self.parent_hash,
            self.number,
            self.state_root,
            self.extrinsics_root,
            self.slot,
            [[e, p] for e, p in self.digest],
        ]

    def to_wire(self) -> Any:
        return [*self._wire_unsealed(), self.seal]

    def encode(self) -> bytes:
        return codec.encode(self.to_wire())

    @classmethod
    def from_wire(cls, w: Any) -> Header:
        if type(w) is not list or len(w) != 7:
            raise CodecError("header must have 7 fields")
        digest_w = w[5]
        if type(digest_w) is not list or len(digest_w) > MAX_DIGEST_ITEMS:
            raise CodecError("bad digest")
        digest = []
        for item in digest_w:
            if type(item) is not list or len(item) != 2:
                raise CodecError("digest item must be [engine, payload]")
            digest.append((codec.Fixed(4).from_wire(item[0]), codec.Bytes(4096).from_wire(item[1])))
        seal = w[6]
        if type(seal) is not bytes or len(seal) not in (0, 64):
            raise CodecError("seal must be empty or 64 bytes")
        return cls(
            parent_hash=codec.H256.from_wire(w[0]),
            number=codec.U64.from_wire(w[1]),
            state_root=codec.H256.from_wire(w[2]),
            extrinsics_root=codec.H256.from_wire(w[3]),
            slot=codec.U64.from_wire(w[4]),
            digest=tuple(digest),
            seal=seal,
        )

    @classmethod
    def decode(cls, data: bytes) -> Header:
        return cls.from_wire(codec.decode(data, 64 * 1024))

    @property
    def hash(self) -> bytes:
        return hash_for(Domain.HEADER, self.encode())

    def seal_message(self) -> bytes:
        """What the author signs: the header without its seal."""
        return hash_for(Domain.SEAL, codec.encode(self._wire_unsealed()))

    def sealed(self, keypair: Keypair) -> Header:
        return replace(self, seal=keypair.sign(self.seal_message()))


@dataclass(frozen=True)
class Block:
    header: Header
    extrinsics: tuple[bytes, ...] = field(default_factory=tuple)

    def to_wire(self) -> Any:
        return [self.header.to_wire(), list(self.extrinsics)]

    def encode(self) -> bytes:
        return codec.encode(self.to_wire())

    @classmethod
    def from_wire(cls, w: Any) -> Block:
        if type(w) is not list or len(w) != 2 or type(w[1]) is not list:
            raise CodecError("block must be [header, [extrinsics]]")
        for x in w[1]:
            if type(x) is not bytes or len(x) > MAX_EXTRINSIC_SIZE:
                raise CodecError("extrinsic must be bytes")
        return cls(Header.from_wire(w[0]), tuple(w[1]))

    @classmethod
    def decode(cls, data: bytes) -> Block:
        return cls.from_wire(codec.decode(data, MAX_BLOCK_SIZE))

    @property
    def hash(self) -> bytes:
        return self.header.hash


@dataclass(frozen=True)
class CompactBlock:
    """A block as gossiped: its header, and each extrinsic inline or only by its hash.

    The author sends by hash what reached it by gossip (its peers hold those in their pools
    already) and inline the rest (inherents, what was submitted to it over RPC). Every
    extrinsic otherwise crossed the network twice, in transaction gossip and again in the
    block. A receiver rebuilds the block from its pool (:meth:`resolve`); one that lacks an
    extrinsic fetches the block by sync instead. The header's extrinsics root still binds the
    rebuilt body: import checks it.

    Wire: ``[header, [item...], 1]`` where an item is a 32-byte hash or ``[raw]``; a full
    block is ``[header, [raw...]]`` (two items).
    """

    header: Header
    #: (inline raw, None) or (None, hash), in block order.
    items: tuple[tuple[bytes | None, bytes | None], ...]

    @classmethod
    def of(cls, block: Block, by_hash: Callable[[bytes], bool]) -> CompactBlock:
        items: list[tuple[bytes | None, bytes | None]] = []
        for raw in block.extrinsics:
            h = extrinsic_hash(raw)
            items.append((None, h) if by_hash(h) else (raw, None))
        return cls(block.header, tuple(items))

    def to_wire(self) -> Any:
        return [
            self.header.to_wire(),
            [h if raw is None else [raw] for raw, h in self.items],
            COMPACT_BLOCK_VERSION,
        ]

    def encode(self) -> bytes:
        return codec.encode(self.to_wire())

    @classmethod
    def from_wire(cls, w: Any) -> CompactBlock:
        if type(w) is not list or len(w) != 3 or w[2] != COMPACT_BLOCK_VERSION:
            raise CodecError("compact block must be [header, [items], 1]")
        if type(w[1]) is not list:
            raise CodecError("compact block items must be a list")
        items: list[tuple[bytes | None, bytes | None]] = []
        for x in w[1]:
            if type(x) is bytes and len(x) == 32:
                items.append((None, x))
            elif (
                type(x) is list
                and len(x) == 1
                and type(x[0]) is bytes
                and len(x[0]) <= MAX_EXTRINSIC_SIZE
            ):
                items.append((x[0], None))
            else:
                raise CodecError("compact block item must be a 32-byte hash or [extrinsic]")
        return cls(Header.from_wire(w[0]), tuple(items))

    def missing(self, lookup: Callable[[bytes], bytes | None]) -> list[bytes]:
        """Hashes of the extrinsics ``lookup`` cannot provide."""
        return [h for raw, h in self.items if raw is None and h is not None and lookup(h) is None]

    def resolve(self, lookup: Callable[[bytes], bytes | None]) -> Block | None:
        """The full block, its hashed extrinsics from ``lookup``; None if one is missing."""
        out: list[bytes] = []
        for raw, h in self.items:
            if raw is None:
                assert h is not None
                raw = lookup(h)
                if raw is None:
                    return None
            out.append(raw)
        return Block(self.header, tuple(out))


COMPACT_BLOCK_VERSION = 1


def decode_block_or_compact(data: bytes) -> Block | CompactBlock:
    """A gossiped block: full (``[header, [raw...]]``) or compact (see :class:`CompactBlock`)."""
    w = codec.decode(data, MAX_BLOCK_SIZE)
    if type(w) is list and len(w) == 3:
        return CompactBlock.from_wire(w)
    return Block.from_wire(w)


GENESIS_PARENT = ZERO_HASH
