"""The node's hot path: batch signature verification and Merkle hashing.

This facade is what the rest of the node calls. Each function has a pure-Python implementation
here (the fallback); the C extension built by setup.py replaces them with bit-identical results
when it is available. ``TWINCHAIN_NATIVE=0`` forces the fallback; ``available`` says which path
is live.
"""

from __future__ import annotations

from twinchain.native import fallback

available: bool = False

verify_batch = fallback.verify_batch
merkle_root = fallback.merkle_root
hash_many = fallback.hash_many

__all__ = ["available", "hash_many", "merkle_root", "verify_batch"]
