"""Sign-in for the dashboard: who a browser session speaks for.

Two ways in, both ending in the same server-side session:

* **the user's own key.** The dashboard hands out a challenge (a random nonce, the chain's
  genesis hash, this dashboard's origin and an expiry). The user signs it where the key lives
  (``twinchain dashboard sign`` or ``twinchain dashboard login``), as a signed request of
  :mod:`twinchain.protocol.access` for the method ``dashboard_signIn``: the same BIP-340
  keys, hash domain and format the node checks for authorized reads, under a method name no
  node answers, so a sign-in can be replayed neither here (each challenge is used once) nor
  against a node;
* **an API key** the node's operator issued (``twinchain node api-key create``), checked
  against the node's key file (stored there as a BLAKE3 hash only).

A session is a random 32-byte token in an HttpOnly, SameSite=Strict cookie, kept in memory
with a server-side expiry; each session has its own CSRF token, required in the
``X-CSRF-Token`` header of every state-changing request. Nothing secret is logged.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twinchain.primitives.keys import Keypair, encode_address
from twinchain.protocol.access import Auth, AuthError, NonceCache, check_request, sign_request
from twinchain.rpc.auth import ApiKeyStore

SIGN_IN_METHOD = "dashboard_signIn"
CHALLENGE_TTL_MS = 5 * 60_000
LINK_TTL_MS = 60_000
SESSION_TTL_MS = 8 * 3600_000  # a shift
COOKIE = "twinchain_dashboard"
MAX_PENDING = 10_000


class SignInError(ValueError):
    """A sign-in refused: ``reason`` is one of "malformed", "expired", "unknown-challenge",
    "bad-signature", "replayed", "unknown-key", "revoked", "scope"."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Session:
    """A signed-in browser: the account it speaks for and how it proved it."""

    token: str
    account: bytes
    method: str  # "key" or "api-key"
    expires_ms: int
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    #: An API key session reads private data with that key (the archive checks it).
    api_key: str | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return encode_address(self.account)

    def to_json(self) -> dict[str, Any]:
        return {
            "account": "0x" + self.account.hex(),
            "address": self.address,
            "method": self.method,
            "expires": self.expires_ms,
        }


def challenge_params(challenge: dict[str, Any]) -> dict[str, Any]:
    """What a sign-in signature covers: exactly the challenge's fields."""
    return {k: challenge[k] for k in ("dashboard", "genesis", "nonce", "expires")}


def sign_challenge(key: Keypair, challenge: dict[str, Any]) -> dict[str, Any]:
    """The ``auth`` object answering a challenge (what ``twinchain dashboard sign`` prints)."""
    try:
        genesis = bytes.fromhex(str(challenge["genesis"]).removeprefix("0x"))
        params = challenge_params(challenge)
    except (KeyError, ValueError):
        raise SignInError("not a dashboard challenge", "malformed") from None
    return sign_request(key, genesis, SIGN_IN_METHOD, params)


class Sessions:
    """Challenges, one-time sign-in links and sessions of one dashboard (in memory: a restart
    signs everyone out)."""

    def __init__(
        self,
        origin: str,
        genesis: bytes,
        api_keys: Path | None = None,
        ttl_ms: int = SESSION_TTL_MS,
    ) -> None:
        self.origin = origin
        self.genesis = genesis
        self.api_keys = None if api_keys is None else ApiKeyStore(api_keys)
        self.ttl_ms = ttl_ms
        self._challenges: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._links: OrderedDict[str, tuple[bytes, int]] = OrderedDict()
        self._sessions: dict[str, Session] = {}
        self._nonces = NonceCache(window_ms=CHALLENGE_TTL_MS)

    # -- challenges
    def challenge(self) -> dict[str, Any]:
        """A new challenge, good for :data:`CHALLENGE_TTL_MS`."""
        self._expire()
        c = {
            "dashboard": self.origin,
            "genesis": "0x" + self.genesis.hex(),
            "nonce": "0x" + secrets.token_bytes(16).hex(),
            "expires": now_ms() + CHALLENGE_TTL_MS,
        }
        self._challenges[c["nonce"]] = c
        while len(self._challenges) > MAX_PENDING:
            self._challenges.popitem(last=False)
        return c

    def verify(self, challenge_nonce: Any, auth: Any) -> bytes:
        """The account that signed the challenge ``challenge_nonce`` (used up either way)."""
        if not isinstance(challenge_nonce, str):
            raise SignInError("challenge must be the challenge's nonce", "malformed")
        c = self._challenges.pop(challenge_nonce, None)
        if c is None:
            raise SignInError("unknown or used challenge: ask for a new one", "unknown-challenge")
        now = now_ms()
        if c["expires"] < now:
            raise SignInError("challenge expired: ask for a new one", "expired")
        try:
            parsed = Auth.from_json(auth)
            return check_request(
                parsed,
                self.genesis,
                SIGN_IN_METHOD,
                challenge_params(c),
                now_ms=now,
                nonces=self._nonces,
                max_skew_ms=CHALLENGE_TTL_MS,
            )
        except AuthError as exc:
            reason = {"bad-signature": "bad-signature", "replayed": "replayed"}.get(
                exc.reason, "malformed"
            )
            raise SignInError(f"sign-in refused: {exc}", reason) from None

    # -- one-time links (the CLI signs, the browser opens the link)
    def link(self, account: bytes) -> str:
        """A one-time token that signs a browser in as ``account`` within :data:`LINK_TTL_MS`."""
        self._expire()
        token = secrets.token_urlsafe(32)
        self._links[token] = (account, now_ms() + LINK_TTL_MS)
        while len(self._links) > MAX_PENDING:
            self._links.popitem(last=False)
        return token

    def redeem(self, token: str) -> Session:
        got = self._links.pop(token, None)
        if got is None or got[1] < now_ms():
            raise SignInError("sign-in link unknown, used or expired", "expired")
        return self.open(got[0], "key")

    # -- API keys
    def sign_in_api_key(self, key: Any) -> Session:
        """A session for the account of an API key with the ``readings`` scope."""
        if not isinstance(key, str) or not 8 <= len(key) <= 200:
            raise SignInError("apiKey must be the key's text", "malformed")
        if self.api_keys is None:
            raise SignInError("this dashboard was started without --api-keys", "unknown-key")
        k = self.api_keys.lookup(key)
        if k is None:
            raise SignInError("unknown API key", "unknown-key")
        if k.status(now_ms()) != "active":
            raise SignInError(f"API key is {k.status(now_ms())}", "revoked")
        if "readings" not in k.scopes:
            raise SignInError("API key lacks the 'readings' scope", "scope")
        s = self.open(k.account_id, "api-key")
        s.api_key = key
        return s

    # -- sessions
    def open(self, account: bytes, method: str) -> Session:
        s = Session(secrets.token_urlsafe(32), account, method, now_ms() + self.ttl_ms)
        self._sessions[s.token] = s
        return s

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        s = self._sessions.get(token)
        if s is None:
            return None
        if s.expires_ms < now_ms():
            del self._sessions[token]
            return None
        return s

    def close(self, token: str | None) -> None:
        if token:
            self._sessions.pop(token, None)

    def _expire(self) -> None:
        now = now_ms()
        for table in (self._challenges,):
            while table and next(iter(table.values()))["expires"] < now:
                table.popitem(last=False)
        while self._links and next(iter(self._links.values()))[1] < now:
            self._links.popitem(last=False)
        for t in [t for t, s in self._sessions.items() if s.expires_ms < now]:
            del self._sessions[t]


__all__ = [
    "COOKIE",
    "SIGN_IN_METHOD",
    "Session",
    "Sessions",
    "SignInError",
    "challenge_params",
    "sign_challenge",
]
