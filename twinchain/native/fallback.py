"""Pure-Python reference implementations of the native functions (the fallback path)."""

from __future__ import annotations

import struct
from collections.abc import Sequence

from blake3 import blake3
from coincurve import PublicKeyXOnly

from twinchain.primitives.hashing import ZERO_HASH, Domain, domain_key

_LEAF_KEY = domain_key(Domain.MERKLE_LEAF)
_NODE_KEY = domain_key(Domain.MERKLE_NODE)


def as_bytes(x: object) -> bytes | None:
    """``x`` as bytes when it is bytes-like, else None (a signature check treats it as bad)."""
    if type(x) is bytes:
        return x
    try:
        return bytes(memoryview(x))  # type: ignore[arg-type]
    except TypeError:
        return None


def verify_batch(
    pubkeys: Sequence[bytes], messages: Sequence[bytes], signatures: Sequence[bytes]
) -> list[bool]:
    """BIP-340 verify each (x-only pubkey, 32-byte message, 64-byte signature).

    Malformed items (wrong lengths, not bytes-like, a key off the curve, s >= n, r >= p) are
    False; only lists of different lengths raise.
    """
    if not len(pubkeys) == len(messages) == len(signatures):
        raise ValueError("verify_batch: inputs differ in length")
    out: list[bool] = []
    for pk_in, msg_in, sig_in in zip(pubkeys, messages, signatures, strict=True):
        ok = False
        pk, msg, sig = as_bytes(pk_in), as_bytes(msg_in), as_bytes(sig_in)
        if pk is not None and msg is not None and sig is not None:
            if len(pk) == 32 and len(msg) == 32 and len(sig) == 64:
                try:
                    ok = PublicKeyXOnly(pk).verify(sig, msg)
                except Exception:  # pubkey off the curve and similar: just invalid
                    ok = False
        out.append(ok)
    return out


def hash_many(key: bytes, items: Sequence[bytes]) -> list[bytes]:
    """Keyed BLAKE3 of each item (the level-by-level node hashing of the state trie)."""
    if len(key) != 32:
        raise ValueError("hash_many: a BLAKE3 key is 32 bytes")
    return [blake3(x, key=key).digest() for x in items]


def blake3_hash(data: bytes, key: bytes | None = None) -> bytes:
    """BLAKE3 of ``data`` (keyed mode when ``key``, 32 bytes, is given): 32-byte digest."""
    if key is None:
        return blake3(data).digest()
    if len(key) != 32:
        raise ValueError("blake3_hash: a BLAKE3 key is 32 bytes")
    return blake3(data, key=key).digest()


def blake3_derive_key(context: str, material: bytes) -> bytes:
    """BLAKE3 derive_key mode: a 32-byte key for the ``context`` string from ``material``."""
    if not isinstance(context, str):
        raise TypeError("blake3_derive_key: the context is a str")
    return blake3(material, derive_key_context=context).digest()


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """Binary Merkle root; leaves are domain-hashed, an odd node is promoted unchanged.

    The empty list has the all-zero root.
    """
    if not leaves:
        return ZERO_HASH
    level = [blake3(x, key=_LEAF_KEY).digest() for x in leaves]
    while len(level) > 1:
        nxt = [
            blake3(level[i] + level[i + 1], key=_NODE_KEY).digest()
            for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def merkle_root_packed(data: bytes, leaf_len: int) -> bytes:
    """:func:`merkle_root` of ``data`` cut into leaves of ``leaf_len`` bytes (ValueError when
    it does not divide)."""
    if leaf_len <= 0 or len(data) % leaf_len:
        raise ValueError("merkle_root_packed: data is no whole number of leaves")
    return merkle_root([data[i : i + leaf_len] for i in range(0, len(data), leaf_len)])


# --------------------------------------------------------------------------- telemetry batches
# A reading is 18 packed bytes (big-endian u16 metric, u64 timestamp ms, i64 value): the
# Telemetry pallet's Merkle leaf. The rules below are the pallet's (see telemetry.py).

READING = struct.Struct(">HQq")

#: Flag bits of :func:`readings_scan`, in the order the pallet raises their events.
FLAG_OUT_OF_RANGE, FLAG_FROM_FUTURE, FLAG_STALE, FLAG_TOO_FAST, FLAG_JUMP = 1, 2, 4, 8, 16

#: (metric, envelope (min, max, max_step) or None, min_interval_ms, max_age_ms,
#: last reading (ts, value) or None)
Slot = tuple[int, "tuple[int, int, int] | None", int, int, "tuple[int, int] | None"]
#: (window start, metric, count, min, max, sum, last, last_ts, flagged)
PartialAggregate = tuple[int, int, int, int, int, int, int, int, int]


def readings_survey(raw: bytes) -> tuple[tuple[int, ...], int, int]:
    """Of packed readings: the distinct metrics in order of first appearance, the smallest
    and the largest timestamp (0, 0 for none). ValueError: not a whole number of readings."""
    if len(raw) % READING.size:
        raise ValueError("readings_survey: not a whole number of 18-byte readings")
    if not raw:
        return (), 0, 0
    metrics = dict.fromkeys(m for m, _, _ in READING.iter_unpack(raw))
    stamps = [ts for _, ts, _ in READING.iter_unpack(raw)]
    return tuple(metrics), min(stamps), max(stamps)


def readings_scan(
    raw: bytes, slots: Sequence[Slot], now: int, limit: int, window: int, newest: int
) -> tuple[bytes, list[PartialAggregate], list[tuple[int, int] | None], int, int]:
    """Check one batch's readings and fold them into partial aggregates.

    ``slots``: one per metric of the batch. Returns (a flag byte per reading, the partial
    aggregates per (window start, metric) in order of first appearance, each slot's last
    reading after the batch, the newest window start of a reading not from the future
    (``newest`` if none is newer), how many readings have a flag). ValueError: a malformed
    length, a zero window or a metric without a slot.
    """
    if len(raw) % READING.size or window <= 0:
        raise ValueError("readings_scan: malformed readings or window")
    index = {s[0]: i for i, s in enumerate(slots)}
    lasts = [s[4] for s in slots]
    flags = bytearray(len(raw) // READING.size)
    aggs: dict[tuple[int, int], list[int]] = {}
    flagged = 0
    for i, (m, ts, v) in enumerate(READING.iter_unpack(raw)):
        j = index.get(m)
        if j is None:
            raise ValueError(f"readings_scan: no slot for metric {m}")
        _, env, min_interval, max_age, _ = slots[j]
        last = lasts[j]
        f = 0
        if env is not None and not env[0] <= v <= env[1]:
            f |= FLAG_OUT_OF_RANGE
        newer = last is None or ts >= last[0]
        if ts > limit:
            f |= FLAG_FROM_FUTURE
        elif not newer or now - ts > max_age:
            f |= FLAG_STALE
        if last is not None and newer:
            if ts - last[0] < min_interval:
                f |= FLAG_TOO_FAST
            if env is not None and env[2] and abs(v - last[1]) > env[2]:
                f |= FLAG_JUMP
        if newer:
            lasts[j] = (ts, v)
        if f:
            flags[i] = f
            flagged += 1
        start = ts - ts % window
        if ts <= limit and start > newest:
            newest = start
        a = aggs.get((start, m))
        if a is None:
            aggs[start, m] = [start, m, 1, v, v, v, v, ts, 1 if f else 0]
            continue
        if v < a[3]:
            a[3] = v
        if v > a[4]:
            a[4] = v
        if ts >= a[7]:
            a[6], a[7] = v, ts
        a[2] += 1
        a[5] += v
        if f:
            a[8] += 1
    return bytes(flags), [tuple(a) for a in aggs.values()], lasts, newest, flagged  # type: ignore[misc]
