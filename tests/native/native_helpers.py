"""Helpers of the native tests.

(Imported by the tests as a plain module: pytest puts this folder on sys.path.)
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from types import ModuleType

from coincurve import PrivateKey

from twinchain import native


def native_module() -> ModuleType | None:
    """The C implementation, or None when it cannot be loaded. Only the fallback-only CI leg
    (TWINCHAIN_NATIVE=0) may lack it: elsewhere test_extension_available fails, and the
    parametrized tests skip their native half rather than fail twice."""
    try:
        return native.load_native()
    except ImportError:
        return None


@dataclass
class SigCorpus:
    pubkeys: list[bytes]
    messages: list[bytes]
    signatures: list[bytes]


def make_corpus(n: int, seed: int = 1) -> SigCorpus:
    """n valid BIP-340 triples over 64 keys (deterministic)."""
    rng = random.Random(seed)
    keys = [PrivateKey(rng.randbytes(31) + b"\x01") for _ in range(64)]
    pubs = [k.public_key_xonly.format() for k in keys]
    msgs = [rng.randbytes(32) for _ in range(n)]
    sigs = [keys[i % 64].sign_schnorr(m, rng.randbytes(32)) for i, m in enumerate(msgs)]
    return SigCorpus([pubs[i % 64] for i in range(n)], msgs, sigs)
