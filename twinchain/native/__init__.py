"""The node's hot path: batch signature verification, Merkle hashing, and the Telemetry
pallet's per-reading checks and aggregation.

This facade is what the rest of the node calls. Two implementations with bit-identical
results sit behind it: the C extension (:mod:`twinchain.native.cimpl`, compiled by setup.py
through cffi: GIL released, thread pool, SIMD BLAKE3) and the pure-Python
:mod:`twinchain.native.fallback`.

At import the extension is used when it is built, current (see ``_spec``) and agrees with the
fallback on a self-check; otherwise the facade logs one warning and runs on the fallback.
``TWINCHAIN_NATIVE=0`` forces the fallback without loading the extension. ``available`` says
which path is live and :func:`use_native` switches at run time (the benchmarks compare both).
Callers look the functions up on the module at each call (``native.hash_many(...)``), never
``from twinchain.native import hash_many``, so that a switch reaches them.

Threads per batch call: ``TWINCHAIN_NATIVE_THREADS``, else the cores this process may use;
:func:`set_threads` changes it at run time.
"""

from __future__ import annotations

import logging
import os
from types import ModuleType
from typing import Any

from twinchain.native import fallback

log = logging.getLogger(__name__)

available: bool = False
#: Why the extension is not in use (None while it is).
build_error: str | None = None

verify_batch = fallback.verify_batch
merkle_root = fallback.merkle_root
hash_many = fallback.hash_many
blake3_hash = fallback.blake3_hash
blake3_derive_key = fallback.blake3_derive_key
merkle_root_packed = fallback.merkle_root_packed
readings_survey = fallback.readings_survey
readings_scan = fallback.readings_scan

_FUNCTIONS = (
    "verify_batch",
    "merkle_root",
    "merkle_root_packed",
    "hash_many",
    "blake3_hash",
    "blake3_derive_key",
    "readings_survey",
    "readings_scan",
)
# Not ``_native``: importing the extension binds the submodule twinchain.native._native to
# that name in this package's namespace, over whatever the facade kept there.
_loaded: ModuleType | None = None


def forced_off() -> bool:
    """Whether TWINCHAIN_NATIVE asks for the pure-Python path."""
    return os.environ.get("TWINCHAIN_NATIVE", "").strip().lower() in {"0", "false", "no", "off"}


def load_native() -> ModuleType:
    """The C implementation module, loaded and checked once.

    Raises ImportError when the extension is not built or is stale, RuntimeError when it
    disagrees with the fallback.
    """
    global _loaded
    if _loaded is None:
        from twinchain.native import cimpl  # ImportError when the extension was not built

        if cimpl.stale():
            raise ImportError(
                "the C extension is stale: its sources changed since it was built "
                "(rebuild with `pip install -e .`)"
            )
        _self_check(cimpl)
        _loaded = cimpl
    return _loaded


def _self_check(impl: ModuleType) -> None:
    """A few results of every function against the fallback: a build that links but computes
    wrongly (a mismatched libsecp256k1, a miscompiled kernel) must not be used."""
    from coincurve import PrivateKey

    key = fallback.blake3_hash(b"twinchain native self-check")
    items = [b"", b"x" * 65, bytes(range(256)) * 9]
    sk = PrivateKey(key)
    pk = sk.public_key_xonly.format()
    sig = sk.sign_schnorr(key, bytes(32))
    bad = sig[:-1] + bytes([sig[-1] ^ 1])
    stamps = (4_000, 3_000, 4_500, 70_000, 4_600, 1_000_000)
    values = (5, -(2**63), 2**63 - 1, 7, 90, 3)
    pairs = enumerate(zip(stamps, values, strict=True))
    readings = b"".join(fallback.READING.pack(1 + i % 2, ts, v) for i, (ts, v) in pairs)
    slots = [(1, (0, 100, 10), 200, 3_000, (3_900, 1)), (2, None, 0, 10**6, None)]
    cases: list[tuple[str, tuple[Any, ...]]] = [
        ("blake3_hash", (items[2],)),
        ("blake3_hash", (items[1], key)),
        ("blake3_derive_key", ("twinchain self-check", items[2])),
        ("hash_many", (key, items)),
        ("merkle_root", (items,)),
        ("merkle_root_packed", (readings, 18)),
        ("verify_batch", ([pk, pk, pk[:31]], [key, key, key], [sig, bad, sig])),
        ("readings_survey", (readings,)),
        ("readings_scan", (readings, slots, 5_000, 65_000, 1_000, -1)),
    ]
    for name, args in cases:
        if getattr(impl, name)(*args) != getattr(fallback, name)(*args):
            raise RuntimeError(f"the C extension's {name} disagrees with the fallback")


def use_native(on: bool = True) -> None:
    """Route the facade's functions to the C extension (``on``) or to the fallback.

    Raises like :func:`load_native` when the extension cannot be used.
    """
    global available
    impl = load_native() if on else fallback
    g = globals()
    for name in _FUNCTIONS:
        g[name] = getattr(impl, name)
    available = on


def set_threads(n: int | None = None) -> int:
    """Threads per native batch call (None: TWINCHAIN_NATIVE_THREADS, else the cores).

    Returns the value in force; 1 while the extension is not loaded (the fallback is
    single-threaded).
    """
    if n is not None and n < 1:
        raise ValueError("set_threads: need at least one thread")
    return _loaded.set_threads(n) if _loaded is not None else 1


def get_threads() -> int:
    return _loaded.get_threads() if _loaded is not None else 1


def info() -> dict[str, Any]:
    """What is live: for logs, telemetry and benchmark headers."""
    d: dict[str, Any] = {"available": available, "build_error": build_error}
    if _loaded is not None:
        d["threads"] = _loaded.get_threads()
        d["simd"] = _loaded.SIMD_NAMES[_loaded.get_simd()]
    return d


if forced_off():
    build_error = "disabled by TWINCHAIN_NATIVE"
    log.info("twinchain.native: TWINCHAIN_NATIVE=0, using the pure-Python fallback")
else:
    try:
        use_native(True)
    except Exception as exc:  # whatever breaks in the extension, the node runs on Python
        build_error = f"{type(exc).__name__}: {exc}"
        log.warning(
            "twinchain.native: C extension unavailable (%s); using the pure-Python fallback",
            build_error,
        )

__all__ = [
    "available",
    "blake3_derive_key",
    "blake3_hash",
    "build_error",
    "forced_off",
    "get_threads",
    "hash_many",
    "info",
    "load_native",
    "merkle_root",
    "merkle_root_packed",
    "readings_scan",
    "readings_survey",
    "set_threads",
    "use_native",
    "verify_batch",
]
