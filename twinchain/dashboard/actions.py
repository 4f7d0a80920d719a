"""Signed actions (acknowledge, assign, comment, work orders): prepared by the dashboard,
signed by the user where the user's key lives, submitted by the dashboard.

Why this way: an action recorded on chain must be signed by the person who takes it, and a
browser page should not hold a plant manager's key. So the dashboard never holds it either:

1. the page asks ``POST /api/actions`` for an action; the dashboard builds the call from the
   node's metadata, takes the signed-in account's next nonce and the chain's genesis and
   spec version, and answers a **signing request**: a short JSON text naming the call in
   words and carrying its exact fields;
2. the user signs it with ``twinchain dashboard sign --key KEY`` (pasted, or piped), which
   recomputes the 32-byte signing payload from those fields itself (so what it shows is what
   it signs), and prints the signature;
3. the page sends the signature to ``POST /api/actions/<id>/submit``; the dashboard checks it
   against the signed-in account, assembles the extrinsic and watches it to finality.

A pending action is good for :data:`ACTION_TTL_MS`, only for the session that asked for it,
and once. If the account signed something else meanwhile (its nonce moved), the node refuses
the extrinsic as stale and the page asks to prepare it again.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from twinchain.primitives import codec
from twinchain.primitives.codec import CodecError
from twinchain.primitives.keys import Keypair, verify
from twinchain.primitives.types import Call, Era, Extrinsic, SignedPart, signing_payload

ACTION_TTL_MS = 10 * 60_000
REQUEST_KIND = "twinchain-dashboard-action/1"
MAX_CALL_BYTES = 64 * 1024


class ActionError(ValueError):
    """A bad action request, a stale or unknown action, or a bad signature."""


@dataclass
class Pending:
    id: str
    session: str
    account: bytes
    call: Call
    nonce: int
    genesis: bytes
    spec_version: int
    description: str
    expires_ms: int

    @property
    def digest(self) -> bytes:
        return signing_payload(
            self.call, self.nonce, 0, Era.immortal(), self.genesis, self.spec_version, self.genesis
        )

    def request(self) -> dict[str, Any]:
        """The signing request the user's signer gets (everything the payload covers)."""
        return {
            "kind": REQUEST_KIND,
            "action": self.id,
            "description": self.description,
            "signer": "0x" + self.account.hex(),
            "call": "0x" + self.call.encode().hex(),
            "nonce": self.nonce,
            "genesis": "0x" + self.genesis.hex(),
            "specVersion": self.spec_version,
            "digest": "0x" + self.digest.hex(),
        }

    def extrinsic(self, signature: bytes) -> Extrinsic:
        if not verify(self.account, self.digest, signature):
            raise ActionError("the signature is not the signed-in account's over this action")
        return Extrinsic(
            self.call, SignedPart(self.account, signature, self.nonce, 0, Era.immortal())
        )


def _hex(value: Any, what: str, size: int | None = None) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ActionError(f"{what} must be 0x-prefixed hex")
    try:
        raw = bytes.fromhex(value[2:])
    except ValueError:
        raise ActionError(f"{what} must be 0x-prefixed hex") from None
    if size is not None and len(raw) != size:
        raise ActionError(f"{what} must be {size} bytes")
    return raw


def parse_request(text: str) -> dict[str, Any]:
    """A signing request pasted by the user (ActionError if it is not one)."""
    try:
        req = json.loads(text)
    except ValueError:
        raise ActionError("not a dashboard signing request (JSON expected)") from None
    if not isinstance(req, dict) or req.get("kind") != REQUEST_KIND:
        raise ActionError(f"not a dashboard signing request (kind {REQUEST_KIND})")
    return req


def sign_request(key: Keypair, req: dict[str, Any]) -> str:
    """Sign a signing request with ``key``: the payload is recomputed from the request's
    fields (its ``digest`` must agree), so the description and call shown are what is signed.
    Returns the signature as 0x hex."""
    try:
        call = Call.from_wire(codec.decode(_hex(req["call"], "call"), MAX_CALL_BYTES))
        nonce, spec = req["nonce"], req["specVersion"]
        genesis = _hex(req["genesis"], "genesis", 32)
        signer = _hex(req["signer"], "signer", 32)
    except (KeyError, ValueError, CodecError) as exc:
        raise ActionError(f"malformed signing request: {exc}") from None
    if type(nonce) is not int or type(spec) is not int or nonce < 0 or spec < 0:
        raise ActionError("nonce and specVersion must be non-negative integers")
    if signer != key.public:
        raise ActionError("this request is for another account than the key's")
    digest = signing_payload(call, nonce, 0, Era.immortal(), genesis, spec, genesis)
    if "digest" in req and _hex(req["digest"], "digest", 32) != digest:
        raise ActionError("the request's digest does not match its fields: not signed")
    return "0x" + key.sign(digest).hex()


class Actions:
    """Pending actions of one dashboard, by id."""

    def __init__(self) -> None:
        self._pending: dict[str, Pending] = {}

    def add(
        self,
        session: str,
        account: bytes,
        call: Call,
        nonce: int,
        genesis: bytes,
        spec_version: int,
        description: str,
    ) -> Pending:
        now = int(time.time() * 1000)
        for k in [k for k, p in self._pending.items() if p.expires_ms < now]:
            del self._pending[k]
        p = Pending(
            secrets.token_urlsafe(12),
            session,
            account,
            call,
            nonce,
            genesis,
            spec_version,
            description,
            now + ACTION_TTL_MS,
        )
        self._pending[p.id] = p
        return p

    def take(self, action_id: str, session: str, signature: Any) -> Extrinsic:
        """The signed extrinsic of a pending action of ``session`` (used up once signed)."""
        p = self._pending.get(action_id)
        if p is None or p.session != session or p.expires_ms < time.time() * 1000:
            raise ActionError("unknown or expired action: prepare it again")
        xt = p.extrinsic(_hex(signature, "signature", 64))
        del self._pending[action_id]
        return xt


__all__ = ["ActionError", "Actions", "Pending", "parse_request", "sign_request"]
