"""Signed requests: how a caller proves to a node which account it speaks for.

A read of private data (a twin's raw readings, an archived document) and a gateway's delivery
of raw readings to its facility's archive carry an ``auth`` object beside their parameters:

    {"account": "0x<32-byte BIP-340 key>", "timestamp": <ms>, "nonce": "0x<16 bytes>",
     "signature": "0x<64 bytes>"}

The signature covers :func:`request_message`: the chain (genesis hash), the method, the
parameters (canonical JSON, ``auth`` left out), the account, the timestamp and the nonce. The
parameters are signed as one object by name, whichever way they are sent: every parameter the
method declares but ``auth`` (``{"twin": .., "metric": .., "from": .., "to": ..}`` for
``twin_readings``, ``{"batches": [..]}`` for ``archive_deliver``), ``null`` where not given. A
node accepts it only within ``MAX_SKEW_MS`` of its own clock and only once per (account,
nonce) (:class:`NonceCache`): a captured request cannot be replayed, moved to another method
or chain, or have its parameters changed.

Imports only ``primitives``: the client signs with it, the node checks with it.
"""

from __future__ import annotations

import json
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from twinchain.primitives import codec
from twinchain.primitives.hashing import Domain, hash_for
from twinchain.primitives.keys import Keypair, verify

__all__ = [
    "MAX_SKEW_MS",
    "Auth",
    "AuthError",
    "NonceCache",
    "canonical_params",
    "check_request",
    "request_message",
    "sign_request",
]

MAX_SKEW_MS = 60_000  # a signed request is good this long either side of the node's clock
NONCE_BYTES = 16


class AuthError(ValueError):
    """A signed request that is malformed, stale, replayed or not signed by its account;
    ``reason`` says which: "malformed", "stale", "replayed" or "bad-signature"."""

    def __init__(self, message: str, reason: str = "malformed") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Auth:
    """A parsed ``auth`` object."""

    account: bytes
    timestamp: int
    nonce: bytes
    signature: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "account": "0x" + self.account.hex(),
            "timestamp": self.timestamp,
            "nonce": "0x" + self.nonce.hex(),
            "signature": "0x" + self.signature.hex(),
        }

    @classmethod
    def from_json(cls, obj: Any) -> Auth:
        """Parse an ``auth`` object (AuthError: malformed)."""
        if not isinstance(obj, dict) or set(obj) != {"account", "timestamp", "nonce", "signature"}:
            raise AuthError("auth must be {account, timestamp, nonce, signature}")
        ts = obj["timestamp"]
        if type(ts) is not int or ts < 0:
            raise AuthError("auth.timestamp must be a non-negative integer (ms)")
        fields = {}
        for name, size in (("account", 32), ("nonce", NONCE_BYTES), ("signature", 64)):
            v = obj[name]
            try:
                if not isinstance(v, str) or not v.startswith("0x"):
                    raise ValueError
                raw = bytes.fromhex(v[2:])
            except ValueError:
                raise AuthError(f"auth.{name} must be 0x-prefixed hex") from None
            if len(raw) != size:
                raise AuthError(f"auth.{name} must be {size} bytes")
            fields[name] = raw
        return cls(fields["account"], ts, fields["nonce"], fields["signature"])


def canonical_params(params: Any) -> bytes:
    """The parameters as the signature covers them: JSON with sorted keys, no spaces."""
    try:
        return json.dumps(params, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise AuthError(f"parameters are not plain JSON: {exc}") from None


def request_message(
    genesis_hash: bytes, method: str, params: Any, account: bytes, timestamp: int, nonce: bytes
) -> bytes:
    """The 32-byte digest a caller signs for one request."""
    payload = codec.encode(
        [b"rpc-request", genesis_hash, method, canonical_params(params), account, timestamp, nonce]
    )
    return hash_for(Domain.REQUEST, payload)


def sign_request(
    key: Keypair, genesis_hash: bytes, method: str, params: Any, *, now_ms: int | None = None
) -> dict[str, Any]:
    """The ``auth`` object for calling ``method`` with ``params`` (``auth`` not among them)."""
    ts = int(time.time() * 1000) if now_ms is None else now_ms
    nonce = os.urandom(NONCE_BYTES)
    msg = request_message(genesis_hash, method, params, key.public, ts, nonce)
    return Auth(key.public, ts, nonce, key.sign(msg)).to_json()


class NonceCache:
    """The (account, nonce) pairs seen within the skew window: a second use is a replay. The
    cache forgets a pair once its timestamp is older than the window, when the timestamp check
    refuses it anyway; ``max_entries`` bounds it against a flood (the oldest go first, and a
    request older than the oldest kept one is refused as possibly replayed)."""

    def __init__(self, window_ms: int = MAX_SKEW_MS, max_entries: int = 200_000) -> None:
        self.window_ms = window_ms
        self.max_entries = max_entries
        self._seen: OrderedDict[tuple[bytes, bytes], int] = OrderedDict()
        self._floor = 0  # timestamps at or below this may have been forgotten early

    def use(self, account: bytes, nonce: bytes, timestamp: int, now_ms: int) -> None:
        """Record a use (AuthError: seen before, or too old to tell)."""
        horizon = now_ms - self.window_ms
        while self._seen:
            _, ts = next(iter(self._seen.items()))
            if ts >= horizon and len(self._seen) < self.max_entries:
                break
            self._seen.popitem(last=False)
            if ts >= horizon:
                self._floor = max(self._floor, ts)
        if timestamp <= self._floor:
            raise AuthError("request too old to tell from a replay; sign it again", "replayed")
        if (account, nonce) in self._seen:
            raise AuthError("replayed request (nonce already used)", "replayed")
        self._seen[(account, nonce)] = timestamp


def check_request(
    auth: Auth,
    genesis_hash: bytes,
    method: str,
    params: Any,
    *,
    now_ms: int,
    nonces: NonceCache,
    max_skew_ms: int = MAX_SKEW_MS,
) -> bytes:
    """The account a signed request speaks for (AuthError: stale, replayed or forged)."""
    if abs(auth.timestamp - now_ms) > max_skew_ms:
        raise AuthError(
            f"request timestamp is {abs(auth.timestamp - now_ms)} ms from the node's clock "
            f"(at most {max_skew_ms})",
            "stale",
        )
    msg = request_message(genesis_hash, method, params, auth.account, auth.timestamp, auth.nonce)
    if not verify(auth.account, msg, auth.signature):
        raise AuthError("bad signature", "bad-signature")
    nonces.use(auth.account, auth.nonce, auth.timestamp, now_ms)
    return auth.account
