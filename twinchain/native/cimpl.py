"""The C implementations behind the facade: same functions and results as :mod:`fallback`.

Importing this module loads the extension (ImportError when it was not built) and finds
libsecp256k1 inside coincurve: the verifier and the key parser are handed to C as function
addresses, with coincurve's global context, because cdata cannot cross between two cffi
modules. Every call releases the GIL (cffi does so for all out-of-line API calls) and the C
side keeps no state between calls, so Python threads may call these concurrently.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
from collections.abc import Sequence

import coincurve
import msgpack
from coincurve._libsecp256k1 import ffi as _cc_ffi
from coincurve._libsecp256k1 import lib as _cc_lib

from twinchain.native import _spec
from twinchain.native._native import ffi, lib
from twinchain.native.fallback import READING, PartialAggregate, Slot, as_bytes
from twinchain.primitives.hashing import ZERO_HASH, Domain, domain_key

log = logging.getLogger("twinchain.native")

_LEAF_KEY = domain_key(Domain.MERKLE_LEAF)
_NODE_KEY = domain_key(Domain.MERKLE_NODE)


def _addr(cdata: object) -> int:
    return int(_cc_ffi.cast("uintptr_t", cdata))


# libsecp256k1 >= 0.2 verifies messages of any length (ctx, sig64, msg, msglen, pubkey); the
# older msg32 form has 4 parameters and would be called wrongly, so refuse it.
if len(_cc_ffi.typeof(_cc_lib.secp256k1_schnorrsig_verify).args) != 5:
    raise ImportError("coincurve's libsecp256k1 lacks secp256k1_schnorrsig_verify(msglen)")
_CONTEXT = coincurve.GLOBAL_CONTEXT  # kept referenced: C holds its address
_CTX = _addr(_CONTEXT.ctx)
_PARSE = _addr(_cc_lib.secp256k1_xonly_pubkey_parse)
_VERIFY = _addr(_cc_lib.secp256k1_schnorrsig_verify)

SIMD_NAMES = ("portable", "sse4.1", "avx2", "avx512")
SIMD_MAX: int = lib.tc_simd_max()
THREADS_SUPPORTED: bool = bool(lib.tc_threads_supported())


def default_threads() -> int:
    """TWINCHAIN_NATIVE_THREADS if set, else the cores this process may run on."""
    env = os.environ.get("TWINCHAIN_NATIVE_THREADS", "").strip()
    if env:
        try:
            n = int(env)
            if n >= 1:
                return n
        except ValueError:
            pass
        log.warning("ignoring TWINCHAIN_NATIVE_THREADS=%r: not a positive integer", env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


_threads = default_threads()
_simd = SIMD_MAX


def set_threads(n: int | None = None) -> int:
    """Threads per batch call (None: the default); returns the value now in force."""
    global _threads
    if n is not None and n < 1:
        raise ValueError("set_threads: need at least one thread")
    _threads = default_threads() if n is None else n
    return _threads


def get_threads() -> int:
    return _threads


def set_simd(level: int | None = None) -> int:
    """Cap the SIMD level (0 portable ... 3 AVX-512; None: the best available). For tests and
    benchmarks: every level gives the same bytes."""
    global _simd
    _simd = SIMD_MAX if level is None else max(0, min(int(level), SIMD_MAX))
    return _simd


def get_simd() -> int:
    return _simd


def _buf(x: bytes | bytearray | memoryview) -> object:
    return x if type(x) is bytes else ffi.from_buffer(x)


# Each thread keeps its msgpack packer between calls: a fresh packer's buffer is new memory,
# and first-touching it costs as much as packing (about 25 ms for a million Merkle leaves on
# these VMs). Buffers that grew past this size are dropped rather than kept.
_KEEP_PACKER_BYTES = 64 << 20
_tls = threading.local()


def _pack(items: Sequence[bytes]) -> msgpack.Packer:
    """``items`` as one msgpack array of bins, in a packer to lend to C and then recycle.

    msgpack's packer walks the Python objects in a single C pass (see packed_batch in
    tc_native.c), about half the cost of ``b"".join`` plus a list of lengths, and its buffer
    goes to C without a copy.
    """
    packer = getattr(_tls, "packer", None)
    if packer is None:
        packer = msgpack.Packer(autoreset=False, use_bin_type=True)
    else:
        _tls.packer = None  # taken: a nested call on this thread would make its own
    try:
        # msgpack packs lists and tuples as arrays; other sequences become a list first.
        packer.pack(items if type(items) in (list, tuple) else list(items))
    except BaseException:
        _recycle(packer, 0)
        raise
    return packer


def _recycle(packer: msgpack.Packer, size: int) -> None:
    packer.reset()
    if size <= _KEEP_PACKER_BYTES:
        _tls.packer = packer


_UNPACK_RUN = 256
_unpack_run = struct.Struct("32s" * _UNPACK_RUN).unpack_from


def _split32(b: bytes, n: int) -> list[bytes]:
    """``b`` cut into ``n`` 32-byte digests: struct cuts runs of 256 in C, 4x faster than a
    slicing loop (which handles the remainder)."""
    out: list[bytes] = []
    full = (n - n % _UNPACK_RUN) * 32
    for off in range(0, full, _UNPACK_RUN * 32):
        out += _unpack_run(b, off)
    out += [b[i : i + 32] for i in range(full, 32 * n, 32)]
    return out


def _check(rc: int, what: str) -> None:
    if rc == -1:
        raise MemoryError(f"{what}: out of memory")
    if rc != 0:
        raise TypeError(f"{what}: items must be bytes-like")


def verify_batch(
    pubkeys: Sequence[bytes], messages: Sequence[bytes], signatures: Sequence[bytes]
) -> list[bool]:
    """BIP-340 verify each (x-only pubkey, 32-byte message, 64-byte signature).

    Malformed items (wrong lengths, not bytes-like, a key off the curve, s >= n, r >= p) are
    False; only lists of different lengths raise.
    """
    n = len(pubkeys)
    if not n == len(messages) == len(signatures):
        raise ValueError("verify_batch: inputs differ in length")
    if n == 0:
        return []
    suspects = [
        i
        for i, (pk, msg, sig) in enumerate(zip(pubkeys, messages, signatures, strict=True))
        if type(pk) is not bytes
        or type(msg) is not bytes
        or type(sig) is not bytes
        or len(pk) != 32
        or len(msg) != 32
        or len(sig) != 64
    ]
    bad: list[int] = []
    if suspects:
        # Bytes-like items become bytes; unusable ones get zero placeholders so that every
        # slot has its fixed width in C (an all-zero x is no curve point: it fails to parse),
        # and False below.
        pubkeys, messages, signatures = list(pubkeys), list(messages), list(signatures)
        for i in suspects:
            pk, msg, sig = as_bytes(pubkeys[i]), as_bytes(messages[i]), as_bytes(signatures[i])
            if (
                pk is None
                or msg is None
                or sig is None
                or len(pk) != 32
                or len(msg) != 32
                or len(sig) != 64
            ):
                pk, msg, sig = bytes(32), bytes(32), bytes(64)
                bad.append(i)
            pubkeys[i], messages[i], signatures[i] = pk, msg, sig
    out = bytearray(n)
    lib.tc_verify_batch(
        _CTX,
        _PARSE,
        _VERIFY,
        b"".join(pubkeys),
        b"".join(messages),
        b"".join(signatures),
        n,
        ffi.from_buffer(out),
        _threads,
    )
    for i in bad:
        out[i] = 0
    return [b == 1 for b in out]


def hash_many(key: bytes, items: Sequence[bytes]) -> list[bytes]:
    """Keyed BLAKE3 of each item (the level-by-level node hashing of the state trie)."""
    if len(key) != 32:
        raise ValueError("hash_many: a BLAKE3 key is 32 bytes")
    n = len(items)
    if n == 0:
        return []
    packer = _pack(items)
    out = bytearray(32 * n)
    with packer.getbuffer() as view, ffi.from_buffer(view) as buf:
        size = len(view)
        rc = lib.tc_hash_many(_buf(key), buf, size, n, ffi.from_buffer(out), _threads, _simd)
    _recycle(packer, size)
    _check(rc, "hash_many")
    return _split32(bytes(out), n)


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """Binary Merkle root; leaves are domain-hashed, an odd node is promoted unchanged.

    The empty list has the all-zero root.
    """
    n = len(leaves)
    if n == 0:
        return ZERO_HASH
    packer = _pack(leaves)
    out = bytearray(32)
    with packer.getbuffer() as view, ffi.from_buffer(view) as buf:
        size = len(view)
        rc = lib.tc_merkle_root(
            _LEAF_KEY, _NODE_KEY, buf, size, n, ffi.from_buffer(out), _threads, _simd
        )
    _recycle(packer, size)
    _check(rc, "merkle_root")
    return bytes(out)


def merkle_root_packed(data: bytes, leaf_len: int) -> bytes:
    """:func:`merkle_root` of ``data`` cut into leaves of ``leaf_len`` bytes (ValueError when
    it does not divide)."""
    if leaf_len <= 0 or len(data) % leaf_len:
        raise ValueError("merkle_root_packed: data is no whole number of leaves")
    out = bytearray(32)
    n = len(data) // leaf_len
    rc = lib.tc_merkle_root_fixed(
        _LEAF_KEY, _NODE_KEY, _buf(data), leaf_len, n, ffi.from_buffer(out), _threads, _simd
    )
    _check(rc, "merkle_root_packed")
    return bytes(out)


def blake3_hash(data: bytes, key: bytes | None = None) -> bytes:
    """BLAKE3 of ``data`` (keyed mode when ``key``, 32 bytes, is given): 32-byte digest."""
    out = bytearray(32)
    if key is None:
        k = ffi.NULL
    elif len(key) == 32:
        k = _buf(key)
    else:
        raise ValueError("blake3_hash: a BLAKE3 key is 32 bytes")
    d = _buf(data)
    lib.tc_blake3(k, d, len(d), ffi.from_buffer(out))  # len of a cdata buffer: its bytes
    return bytes(out)


def blake3_derive_key(context: str, material: bytes) -> bytes:
    """BLAKE3 derive_key mode: a 32-byte key for the ``context`` string from ``material``."""
    if not isinstance(context, str):
        raise TypeError("blake3_derive_key: the context is a str")
    ctx = context.encode()
    m = _buf(material)
    out = bytearray(32)
    lib.tc_blake3_derive_key(ctx, len(ctx), m, len(m), ffi.from_buffer(out))
    return bytes(out)


_U64 = (1 << 64) - 1
_SLOT = struct.Struct("=QQqqQQQQQq")  # TC_SLOT_LEN
_AGG = struct.Struct("=QQQqqqQqQQ")  # TC_AGG_LEN


def readings_survey(raw: bytes) -> tuple[tuple[int, ...], int, int]:
    """Of packed readings: the distinct metrics in order of first appearance, the smallest
    and the largest timestamp (0, 0 for none). ValueError: not a whole number of readings."""
    n = len(raw) // READING.size
    if len(raw) % READING.size:
        raise ValueError("readings_survey: not a whole number of 18-byte readings")
    if not n:
        return (), 0, 0
    metrics = bytearray(8 * n)
    k = ffi.new("size_t *")
    stamps = bytearray(16)
    out = ffi.from_buffer(metrics)
    lib.tc_readings_survey(_buf(raw), len(raw), out, k, ffi.from_buffer(stamps))
    first, last = struct.unpack("=QQ", stamps)
    return struct.unpack_from(f"={k[0]}Q", metrics), first, last


def readings_scan(
    raw: bytes, slots: Sequence[Slot], now: int, limit: int, window: int, newest: int
) -> tuple[bytes, list[PartialAggregate], list[tuple[int, int] | None], int, int]:
    """Check one batch's readings and fold them into partial aggregates (see fallback)."""
    n = len(raw) // READING.size
    if len(raw) % READING.size or window <= 0:
        raise ValueError("readings_scan: malformed readings or window")
    packed = bytearray(_SLOT.size * len(slots))
    for i, (m, env, min_interval, max_age, last) in enumerate(slots):
        lo, hi, step = (0, 0, 0) if env is None else env
        ts, v = (0, 0) if last is None else last
        _SLOT.pack_into(
            packed, i * _SLOT.size, m, env is not None, lo, hi, step, min_interval, max_age,
            last is not None, ts, v,
        )  # fmt: skip
    # A limit past 2**64 - 1 excludes no timestamp, like 2**64 - 1 itself.
    clock = bytearray(
        struct.pack("=QQQQQ", now, min(limit, _U64), window, max(newest, 0), newest >= 0)
    )
    flags = bytearray(n)
    aggs = bytearray(_AGG.size * n)
    n_aggs, n_flagged = ffi.new("size_t *"), ffi.new("size_t *")
    rc = lib.tc_readings_scan(
        _buf(raw), len(raw), ffi.from_buffer(packed), len(slots), ffi.from_buffer(clock),
        ffi.from_buffer(flags), ffi.from_buffer(aggs), n_aggs, n_flagged,
    )  # fmt: skip
    if rc:
        raise ValueError("readings_scan: a metric without a slot")
    out: list[PartialAggregate] = [
        (start, m, count, lo, hi, sum_hi * 4294967296 + sum_lo, last, last_ts, fl)
        for start, m, count, lo, hi, sum_hi, sum_lo, last, last_ts, fl in _AGG.iter_unpack(
            memoryview(aggs)[: _AGG.size * n_aggs[0]]
        )
    ]
    lasts: list[tuple[int, int] | None] = [
        (rec[8], rec[9]) if rec[7] else None for rec in _SLOT.iter_unpack(packed)
    ]
    start, has_newest = struct.unpack_from("=QQ", clock, 24)
    newest = start if has_newest else -1
    return bytes(flags), out, lasts, newest, n_flagged[0]


def built_digest() -> str:
    """The source digest compiled into the extension."""
    return ffi.string(lib.tc_source_digest()).decode()


def stale() -> bool:
    """True when the C sources next to this module differ from those the .so was built from
    (absent sources, as in a stripped install, count as current)."""
    current = _spec.source_digest()
    return current is not None and current != built_digest()
