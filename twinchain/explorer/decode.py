"""Decoding driven by the node's runtime metadata (``state_getMetadata``) alone.

The metadata describes every call argument, event field and storage value with a type
description (``"u64"``, ``"AccountId"``, ``{"vec": ...}``, ``{"struct": ..., "fields": ...}``,
``{"enum": ..., "variants": ...}``...), so the explorer decodes wire values generically and
keeps working against a node whose runtime is newer than this package: no local runtime types
are used, only the canonical codec, the extrinsic envelope and the key/hash primitives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twinchain.primitives import codec
from twinchain.primitives.codec import CodecError
from twinchain.primitives.hashing import Domain, hash_for
from twinchain.primitives.keys import encode_address
from twinchain.primitives.types import Extrinsic, extrinsic_hash

PHASES = ("initialization", "apply", "finalization")


class DecodeError(ValueError):
    """A value does not match the metadata's description of it."""


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


@dataclass
class DecodedCall:
    pallet: str
    call: str
    args: dict[str, Any]

    @property
    def name(self) -> str:
        return f"{self.pallet}.{self.call}"


@dataclass
class DecodedExtrinsic:
    index: int
    hash: bytes
    call: DecodedCall
    signer: bytes | None = None
    nonce: int | None = None
    tip: int = 0
    success: bool | None = None  # from the block's ExtrinsicSuccess/Failed event
    fee: int | None = None
    error: str | None = None
    size: int = 0


@dataclass
class DecodedEvent:
    phase: str
    extrinsic: int
    pallet: str
    name: str
    args: dict[str, Any] = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        return f"{self.pallet}.{self.name}"


class Metadata:
    """Indexes of one runtime metadata document, and the decoders built on them."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.spec_version = doc.get("spec_version")
        self.pallets: dict[int, dict[str, Any]] = {}
        self.by_name: dict[str, dict[str, Any]] = {}
        for p in doc.get("pallets", []):
            self.pallets[int(p["index"])] = p
            self.by_name[p["name"]] = p

    # -- lookups
    def call_meta(self, pallet: int, index: int) -> tuple[str, dict[str, Any]]:
        p = self.pallets.get(pallet)
        if p is None:
            raise DecodeError(f"no pallet with index {pallet}")
        for c in p.get("calls", []):
            if c["index"] == index:
                return p["name"], c
        raise DecodeError(f"{p['name']} has no call {index}")

    def storage_meta(self, pallet: str, item: str) -> dict[str, Any]:
        p = self.by_name.get(pallet)
        for s in (p or {}).get("storage", []):
            if s["name"] == item:
                return s  # type: ignore[no-any-return]
        raise DecodeError(f"no storage item {pallet}.{item}")

    def has_pallet(self, name: str) -> bool:
        return name in self.by_name

    def storage_key(self, pallet: str, item: str, *keys: Any) -> bytes:
        """The raw key of a storage value (no keys) or map entry (keys in wire form)."""
        s = self.storage_meta(pallet, item)
        key = bytes.fromhex(s["prefix"][2:])
        for k in keys:
            enc = codec.encode(k)
            key += hash_for(Domain.STORAGE_KEY, enc)[:16] + enc
        return key

    def decode_storage(self, pallet: str, item: str, raw: bytes | None) -> Any:
        """A storage value as served by state_getStorage; None if absent."""
        if raw is None:
            return None
        s = self.storage_meta(pallet, item)
        try:
            return self.value(s["value"], codec.decode(raw))
        except CodecError as exc:
            raise DecodeError(f"{pallet}.{item}: {exc}") from None

    # -- values
    def value(self, desc: Any, wire: Any) -> Any:
        """A wire value as a readable Python value: accounts as addresses, hashes and bytes
        as 0x-hex, structs as dicts, enum variants by name, 128-bit integers as ints."""
        if isinstance(desc, str):
            return self._scalar(desc, wire)
        if not isinstance(desc, dict):
            return wire
        if "vec" in desc:
            return [self.value(desc["vec"], w) for w in _list(wire, desc)]
        if "packed" in desc:
            return _unpack_records(desc, wire)
        if "based" in desc:
            return _based_records(desc, wire)
        if "option" in desc:
            return None if wire is None else self.value(desc["option"], wire)
        if "tuple" in desc:
            items = _list(wire, desc)
            return [self.value(d, w) for d, w in zip(desc["tuple"], items, strict=False)]
        if "enum" in desc:
            variants = desc.get("variants", [])
            if type(wire) is int and 0 <= wire < len(variants):
                return variants[wire]
            raise DecodeError(f"{desc['enum']}: bad variant {wire!r}")
        if "struct" in desc:
            items = _list(wire, desc)
            return {
                name: self.value(d, w)
                for (name, d), w in zip(desc.get("fields", []), items, strict=False)
            }
        return wire

    def _scalar(self, name: str, wire: Any) -> Any:
        if name in ("u128", "i128"):
            if type(wire) is not bytes or len(wire) != 16:
                raise DecodeError(f"{name}: expected 16 bytes")
            return int.from_bytes(wire, "big", signed=name == "i128")
        if name == "AccountId" and type(wire) is bytes and len(wire) == 32:
            return encode_address(wire)
        if name == "RuntimeCall" and type(wire) is list and len(wire) == 3:
            try:
                c = self.call(wire)
            except DecodeError:
                return wire
            return {"call": c.name, "args": c.args}
        if type(wire) is bytes:
            return _hex(wire)
        return wire

    # -- calls, extrinsics and events
    def call(self, wire: Any) -> DecodedCall:
        if type(wire) is not list or len(wire) != 3 or type(wire[2]) is not list:
            raise DecodeError("a call is [pallet, call, [args]]")
        pallet, meta = self.call_meta(wire[0], wire[1])
        specs = meta.get("args", [])
        if len(specs) != len(wire[2]):
            raise DecodeError(f"{pallet}.{meta['name']} takes {len(specs)} arguments")
        args = {name: self.value(d, w) for (name, d), w in zip(specs, wire[2], strict=True)}
        return DecodedCall(pallet, meta["name"], args)

    def extrinsic(self, index: int, raw: bytes) -> DecodedExtrinsic:
        try:
            xt = Extrinsic.decode(raw)
        except CodecError as exc:
            raise DecodeError(f"extrinsic {index}: {exc}") from None
        try:
            call = self.call(list(xt.call.to_wire()))
        except DecodeError as exc:
            call = DecodedCall(f"#{xt.call.pallet}", f"#{xt.call.index}", {"error": str(exc)})
        s = xt.signed
        return DecodedExtrinsic(
            index=index,
            hash=extrinsic_hash(raw),
            call=call,
            signer=None if s is None else s.signer,
            nonce=None if s is None else s.nonce,
            tip=0 if s is None else s.tip,
            size=len(raw),
        )

    def events(self, raw: bytes | None) -> list[DecodedEvent]:
        """System.Events as state_getStorage serves it: the encoded bytes of an encoded list
        of ``[phase, extrinsic index, pallet index, event index, [args]]``."""
        if raw is None:
            return []
        try:
            inner = codec.decode(raw)
            if type(inner) is not bytes:
                raise DecodeError("System.Events is not bytes")
            if not inner:
                return []
            records = codec.decode(inner)
        except CodecError as exc:
            raise DecodeError(f"System.Events: {exc}") from None
        out = []
        for rec in records if type(records) is list else []:
            try:
                kind, idx, pi, ei, args = rec
                p = self.pallets[pi]
                v = next(e for e in p.get("events", []) if e["index"] == ei)
            except (ValueError, TypeError, KeyError, StopIteration):
                raise DecodeError(f"bad event record {rec!r:.80}") from None
            fields = v.get("fields", [])
            values = {n: self.value(d, w) for (n, d), w in zip(fields, args, strict=False)}
            phase = PHASES[kind] if type(kind) is int and 0 <= kind < len(PHASES) else str(kind)
            out.append(DecodedEvent(phase, idx, p["name"], v["name"], values))
        return out


def apply_outcomes(xts: list[DecodedExtrinsic], events: list[DecodedEvent]) -> None:
    """Success, fee and error of each extrinsic from its System.ExtrinsicSuccess/Failed."""
    by_index = {x.index: x for x in xts}
    for ev in events:
        if ev.pallet != "System" or ev.phase != "apply":
            continue
        x = by_index.get(ev.extrinsic)
        if x is None:
            continue
        if ev.name == "ExtrinsicSuccess":
            x.success, x.fee = True, ev.args.get("fee")
        elif ev.name == "ExtrinsicFailed":
            x.success, x.fee = False, ev.args.get("fee")
            x.error = f"{ev.args.get('module')}.{ev.args.get('error')}"


def _list(wire: Any, desc: Any) -> list[Any]:
    if type(wire) is not list:
        raise DecodeError(f"expected a list for {desc!r:.60}")
    return wire


_PACKED_SIZES = {"u8": 1, "u16": 2, "u32": 4, "u64": 8, "i64": 8, "u128": 16, "i128": 16}


def _based_records(desc: dict[str, Any], wire: Any) -> list[list[int]]:
    """A flat list of integer records after one base (telemetry summaries: ``[]``, or the
    base then the records), the ``relative`` field stored as base minus its value."""
    names = [str(k).split()[-1] for k in desc.get("based", [])]
    if not names or type(wire) is not list or any(type(v) is not int for v in wire):
        raise DecodeError("based: expected a list of integers")
    if not wire:
        return []
    if (len(wire) - 1) % len(names):
        raise DecodeError(f"based: expected a base and {len(names)}-field records")
    rel = names.index(desc["relative"]) if desc.get("relative") in names else None
    out = []
    for at in range(1, len(wire), len(names)):
        rec = list(wire[at : at + len(names)])
        if rel is not None:
            rec[rel] = wire[0] - rec[rel]
        out.append(rec)
    return out


def _unpack_records(desc: dict[str, Any], wire: Any) -> list[list[int]]:
    """A packed value (one bin of fixed-size big-endian integer records, as the runtime
    stores telemetry readings and aggregates) as a list of records."""
    kinds = [str(k).split()[0] for k in desc.get("packed", [])]
    if not kinds or any(k not in _PACKED_SIZES for k in kinds):
        raise DecodeError(f"unsupported packed layout {desc.get('packed')!r}")
    size = sum(_PACKED_SIZES[k] for k in kinds)
    if type(wire) is not bytes or len(wire) % size:
        raise DecodeError(f"packed: expected a bin of {size}-byte records")
    out = []
    for at in range(0, len(wire), size):
        rec = []
        for k in kinds:
            n = _PACKED_SIZES[k]
            rec.append(int.from_bytes(wire[at : at + n], "big", signed=k[0] == "i"))
            at += n
        out.append(rec)
    return out
