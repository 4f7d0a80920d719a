"""The gateway's hot encodings: device batches, ``Telemetry.submit`` extrinsics, signatures.

Every byte produced here is the byte :mod:`twinchain.primitives` would produce; only the
work differs, and :meth:`XtBuilder.build` checks its first extrinsic against the generic
path (falling back to it for good on any difference):

* a batch's or commitment's wire form (``wire_type().to_wire``, which checks every field) is packed
  with msgpack directly: the canonical profile's second walk over the value
  (``codec.encode``) adds nothing for a value the type system just built;
* an extrinsic carries commitments the spool already holds canonically encoded, and a msgpack
  array is its header followed by its items' encodings: the call, the signing payload and
  the extrinsic are spliced from those bytes instead of decoding every batch and encoding
  everything twice more (the payload, then the extrinsic);
* BIP-340 signatures with the libsecp256k1 key pair made once per key: ``Keypair.sign``
  derives it (and the public keys) again on every call and verifies its own signature,
  five elliptic-curve multiplications where one does.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgpack

from twinchain.primitives import codec
from twinchain.primitives.hashing import Domain, hash_for
from twinchain.primitives.keys import Keypair, verify
from twinchain.primitives.types import (
    EXTRINSIC_VERSION,
    Call,
    Era,
    Extrinsic,
    SignedPart,
    signing_payload,
)
from twinchain.protocol.telemetry import Batch, Commitment

log = logging.getLogger("twinchain.gateway")

try:  # coincurve's own bindings: the library behind Keypair.sign
    from coincurve._libsecp256k1 import ffi as _ffi
    from coincurve._libsecp256k1 import lib as _lib
    from coincurve.context import GLOBAL_CONTEXT as _CTX
except ImportError:  # pragma: no cover - coincurve without its cffi module
    _ffi = _lib = _CTX = None


def _array_header(n: int) -> bytes:
    """msgpack's (shortest) header of an ``n``-item array."""
    if n < 16:
        return bytes([0x90 | n])
    if n < 1 << 16:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


def encode_batch(batch: Batch) -> bytes:
    """``codec.encode(Batch.wire_type().to_wire(batch))``, without the second walk."""
    return _encode_record(Batch, batch)


def encode_commitment(c: Commitment) -> bytes:
    """``codec.encode(Commitment.wire_type().to_wire(c))``, without the second walk."""
    return _encode_record(Commitment, c)


def _encode_record(cls: Any, value: Any) -> bytes:
    wire = cls.wire_type().to_wire(value)
    try:
        # strict_types: a tuple (which the canonical profile turns into a list) or any other
        # non-plain value raises instead of packing differently; the generic path decides.
        return msgpack.packb(wire, use_bin_type=True, strict_types=True)  # type: ignore[no-any-return]
    except (TypeError, ValueError, OverflowError):
        return codec.encode(wire)


@dataclass(frozen=True)
class CachedKeypair(Keypair):
    """A :class:`Keypair` whose ``sign`` reuses one libsecp256k1 key pair (same BIP-340
    signatures, with fresh auxiliary randomness as ``Keypair.sign``). Thread-safe: signing
    only reads the context and the key pair."""

    def __post_init__(self) -> None:
        kp = None
        if _lib is not None:
            kp = _ffi.new("secp256k1_keypair *")
            if not _lib.secp256k1_keypair_create(_CTX.ctx, kp, self.secret):
                kp = None
        object.__setattr__(self, "_kp", kp)

    @classmethod
    def of(cls, kp: Keypair) -> Keypair:
        c = cls(kp.secret, kp.public)
        return c if c._kp is not None else kp  # type: ignore[attr-defined]

    def sign(self, message32: bytes) -> bytes:
        kp = self._kp  # type: ignore[attr-defined]
        if kp is None or len(message32) != 32:
            return super().sign(message32)
        sig = _ffi.new("unsigned char[64]")
        if not _lib.secp256k1_schnorrsig_sign32(_CTX.ctx, sig, message32, kp, os.urandom(32)):
            return super().sign(message32)
        return bytes(_ffi.buffer(sig))


class XtBuilder:
    """Signed, immortal ``call_index`` extrinsics whose one argument is a list of items
    (commitments), from the items' canonical encodings."""

    def __init__(
        self, keypair: Keypair, genesis: bytes, spec_version: int, call_index: tuple[int, int]
    ) -> None:
        self.keypair = keypair
        self.genesis = genesis
        self.spec_version = spec_version
        self.call_index = call_index
        self.era = Era.immortal()
        self.checked = False  # the first extrinsic is compared with the generic path
        self.spliced = True  # False: a difference was seen; always the generic path
        p, i = call_index
        self._call_head = _array_header(3) + codec.encode(p) + codec.encode(i) + _array_header(1)
        tail = [codec.U128.to_wire(0), self.era.to_wire(), genesis, spec_version, genesis]
        self._payload_tail = b"".join(codec.encode(x) for x in tail)

    def build(self, bodies: Sequence[bytes], nonce: int) -> bytes:
        """The encoded extrinsic carrying the items ``bodies`` (each ``encode_commitment``)."""
        if not self.spliced:
            return self._generic(bodies, nonce)
        call = self._call_head + _array_header(len(bodies)) + b"".join(bodies)
        payload = _array_header(7) + call + codec.encode(nonce) + self._payload_tail
        sig = self.keypair.sign(hash_for(Domain.SIGNING, payload))
        signed = [self.keypair.public, sig, nonce, codec.U128.to_wire(0), self.era.to_wire()]
        raw = _array_header(3) + codec.encode(EXTRINSIC_VERSION) + codec.encode(signed) + call
        if not self.checked:
            self.checked = True
            if not self._same_as_generic(bodies, nonce, payload, sig, raw):
                log.error("spliced extrinsic differs from the generic encoding: not splicing")
                self.spliced = False
                return self._generic(bodies, nonce)
        return raw

    def _call(self, bodies: Sequence[bytes]) -> Call:
        args: Any = ([codec.decode(b) for b in bodies],)
        return Call(self.call_index[0], self.call_index[1], args)

    def _generic(self, bodies: Sequence[bytes], nonce: int) -> bytes:
        xt = Extrinsic.sign(
            self._call(bodies), self.keypair, nonce, self.genesis, self.spec_version
        )
        return xt.encode()

    def _same_as_generic(
        self, bodies: Sequence[bytes], nonce: int, payload: bytes, sig: bytes, raw: bytes
    ) -> bool:
        call = self._call(bodies)
        digest = signing_payload(
            call, nonce, 0, self.era, self.genesis, self.spec_version, self.genesis
        )
        if digest != hash_for(Domain.SIGNING, payload):
            return False
        signed = SignedPart(self.keypair.public, sig, nonce, 0, self.era)
        return Extrinsic(call, signed).encode() == raw


def signed_for(raw: bytes, genesis: bytes, spec_version: int) -> bool:
    """Whether the immortal extrinsic ``raw`` is signed for ``spec_version`` (the signature
    covers it; the bytes do not carry it): a spool's extrinsics signed before a restart
    across a runtime upgrade are told apart this way."""
    try:
        xt = Extrinsic.decode(raw)
    except Exception:  # undecodable: not signed for anything
        return False
    s = xt.signed
    if s is None:
        return False
    msg = signing_payload(xt.call, s.nonce, s.tip, s.era, genesis, spec_version, genesis)
    return verify(s.signer, msg, s.signature)


__all__ = ["CachedKeypair", "XtBuilder", "encode_batch", "encode_commitment", "signed_for"]
