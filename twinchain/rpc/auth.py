"""Who an authenticated JSON-RPC call speaks for: signed requests and API keys.

A method that reads private data (``twin_readings``) or delivers raw readings to the facility
archive (``archive_deliver``) takes an ``auth`` param beside its others, one of:

* a **signed request** (:mod:`twinchain.protocol.access`): ``{account, timestamp, nonce,
  signature}``, a BIP-340 signature of the account's key over the chain, the method and the
  method's other params as one JSON object ``{name: value}`` (every declared param but
  ``auth``, ``null`` where not given) whichever way they were sent, by position or by name;
  stale, replayed (per server :class:`NonceCache`) or forged requests are refused;
* an **API key** ``{"apiKey": "tck_<id>_<secret>"}`` that the node's operator issued to a
  service account (``twinchain node api-key create``): it speaks for that account within its
  scopes until it expires or is revoked. The node keeps only its BLAKE3 hash, in
  ``<base-path>/api-keys.json`` (mode 0600), and rereads the file when it changes, so that a
  revocation takes effect without a restart.

Every refusal is a typed error: :data:`UNAUTHORIZED` for missing or bad credentials,
:data:`FORBIDDEN` for a key without the scope (a missing right is the method's to refuse).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from twinchain.primitives.errors import CliError
from twinchain.primitives.hashing import blake3_hash
from twinchain.primitives.keys import InvalidKey, encode_address, parse_account
from twinchain.protocol.access import Auth, AuthError, NonceCache, check_request
from twinchain.protocol.jsonrpc import FORBIDDEN, UNAUTHORIZED, RpcError

log = logging.getLogger("twinchain.rpc")

#: What an API key may be allowed to do: read raw readings, fetch archived documents,
#: deliver batches to the archive (a gateway's service account).
SCOPES = ("readings", "documents", "deliver")
API_KEYS_FILE = "api-keys.json"
KEY_PREFIX = "tck_"
DAY_MS = 86_400_000


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Caller:
    """The account an authenticated call speaks for, and how it proved it."""

    account: bytes
    via: str  # "signature" or "api-key"
    key_id: str | None = None


# --------------------------------------------------------------------------- API keys


@dataclass(frozen=True)
class ApiKey:
    """One issued key as stored: never the key itself, only its hash."""

    id: str
    hash: str  # hex BLAKE3 of the whole key text
    account: str  # 0x-hex account id
    scopes: tuple[str, ...]
    created_ms: int
    expires_ms: int | None = None
    revoked_ms: int | None = None

    @property
    def account_id(self) -> bytes:
        return bytes.fromhex(self.account[2:])

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "scopes": list(self.scopes)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ApiKey:
        return cls(
            str(d["id"]),
            str(d["hash"]),
            str(d["account"]),
            tuple(str(s) for s in d["scopes"]),
            int(d["created_ms"]),
            None if d.get("expires_ms") is None else int(d["expires_ms"]),
            None if d.get("revoked_ms") is None else int(d["revoked_ms"]),
        )

    def status(self, at_ms: int) -> str:
        if self.revoked_ms is not None:
            return "revoked"
        if self.expires_ms is not None and at_ms >= self.expires_ms:
            return "expired"
        return "active"


def key_hash(key: str) -> str:
    return blake3_hash(key.encode()).hex()


class ApiKeyStore:
    """The API keys of one node, in ``path`` (JSON, mode 0600). The CLI writes it; the
    server reads it, again whenever its modification time or size changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._keys: dict[str, ApiKey] = {}  # by hash

    def _load(self) -> dict[str, ApiKey]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._keys = None, {}
            return self._keys
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            try:
                entries = json.loads(self.path.read_text())["keys"]
                keys = {k.hash: k for k in map(ApiKey.from_json, entries)}
            except (OSError, ValueError, KeyError, TypeError) as exc:
                # Keep what we had: a half-edited file must not open or close every door.
                log.warning("cannot read %s (%s); keeping the keys read before", self.path, exc)
                return self._keys
            if st.st_mode & 0o077:
                log.warning("%s is readable by others: chmod 600 it", self.path)
            self._stamp, self._keys = stamp, keys
        return self._keys

    def keys(self) -> list[ApiKey]:
        with self._lock:
            return sorted(self._load().values(), key=lambda k: k.created_ms)

    def lookup(self, key: str) -> ApiKey | None:
        """The stored record of ``key`` (whatever its status), None if never issued."""
        with self._lock:
            return self._load().get(key_hash(key))

    def _save(self, keys: list[ApiKey]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"keys": [k.to_json() for k in keys]}, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)  # an older tmp file may have had other bits
        os.replace(tmp, self.path)

    def create(
        self,
        account: bytes,
        scopes: list[str],
        *,
        expires_days: float | None = None,
        at_ms: int | None = None,
    ) -> tuple[str, ApiKey]:
        """Issue a key: returns the key text (shown once, never stored) and its record."""
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown or not scopes:
            raise ValueError(
                f"scopes must be some of {', '.join(SCOPES)} (got {unknown or 'none'})"
            )
        t = now_ms() if at_ms is None else at_ms
        kid = secrets.token_hex(4)
        key = f"{KEY_PREFIX}{kid}_{secrets.token_urlsafe(32)}"
        expires = None if expires_days is None else t + int(expires_days * DAY_MS)
        rec = ApiKey(
            kid, key_hash(key), "0x" + account.hex(), tuple(dict.fromkeys(scopes)), t, expires
        )
        with self._lock:
            self._save([*self._load().values(), rec])
            self._stamp = None  # reread: our own write is the new state
        return key, rec

    def revoke(self, kid: str, *, at_ms: int | None = None) -> ApiKey:
        """Mark key ``kid`` revoked (KeyError: no such key)."""
        t = now_ms() if at_ms is None else at_ms
        with self._lock:
            keys = list(self._load().values())
            found = [k for k in keys if k.id == kid]
            if not found:
                raise KeyError(kid)
            rec = found[0]
            if rec.revoked_ms is None:
                rec = ApiKey(**{**asdict(rec), "revoked_ms": t})
            self._save([rec if k.id == kid else k for k in keys])
            self._stamp = None
        return rec


# --------------------------------------------------------------------------- checking


def unauthorized(message: str, reason: str) -> RpcError:
    return RpcError(UNAUTHORIZED, message, {"reason": reason})


def forbidden(message: str, reason: str) -> RpcError:
    return RpcError(FORBIDDEN, message, {"reason": reason})


class Authenticator:
    """Checks the ``auth`` param of one server's authenticated calls (its nonce cache is the
    server's: a request accepted once is refused as a replay for as long as it is fresh)."""

    def __init__(
        self,
        genesis_hash: bytes,
        api_keys: ApiKeyStore | None = None,
        *,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.genesis_hash = genesis_hash
        self.api_keys = api_keys
        self.nonces = NonceCache()
        self.clock = clock

    def authenticate(self, method: str, params: dict[str, Any], auth: Any, scope: str) -> Caller:
        """The caller of ``method`` with its other ``params`` (as the object the signature
        covers) and ``auth``; RpcError UNAUTHORIZED / FORBIDDEN otherwise."""
        if auth is None:
            raise unauthorized(
                f"{method} needs an auth param: a signed request or an API key", "missing"
            )
        if isinstance(auth, dict) and "apiKey" in auth:
            return self._api_key(auth, scope)
        try:
            parsed = Auth.from_json(auth)
            who = check_request(
                parsed, self.genesis_hash, method, params, now_ms=self.clock(), nonces=self.nonces
            )
        except AuthError as exc:
            raise unauthorized(f"signed request refused: {exc}", exc.reason) from None
        return Caller(who, "signature")

    def _api_key(self, auth: dict[str, Any], scope: str) -> Caller:
        key = auth["apiKey"]
        if set(auth) != {"apiKey"} or type(key) is not str or not key.startswith(KEY_PREFIX):
            raise unauthorized("auth must be {apiKey: 'tck_...'}", "malformed")
        if self.api_keys is None:
            raise unauthorized("this node issues no API keys", "unknown-key")
        rec = self.api_keys.lookup(key)
        if rec is None:
            raise unauthorized("unknown API key", "unknown-key")
        status = rec.status(self.clock())
        if status == "revoked":
            raise unauthorized(f"API key {rec.id} was revoked", "revoked-key")
        if status == "expired":
            assert rec.expires_ms is not None
            raise unauthorized(f"API key {rec.id} expired at {_iso(rec.expires_ms)}", "expired-key")
        if scope not in rec.scopes:
            raise forbidden(
                f"API key {rec.id} lacks the scope {scope!r} (has {', '.join(rec.scopes)})",
                "scope",
            )
        return Caller(rec.account_id, "api-key", rec.id)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# --------------------------------------------------------------------------- CLI


def add_api_key_commands(node_parser: argparse.ArgumentParser) -> None:
    """``twinchain node api-key create|list|revoke``: the node operator's key management,
    beside the node's own flags (which they do not use)."""
    sub = node_parser.add_subparsers(dest="node_cmd", metavar="{api-key}")
    ak = sub.add_parser("api-key", help="issue, list and revoke RPC API keys")
    aks = ak.add_subparsers(dest="api_key_cmd", required=True)

    def base(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--base-path",
            "-d",
            type=Path,
            required=True,
            dest="key_base_path",
            help="the node's data folder (keys live in api-keys.json there)",
        )

    c = aks.add_parser("create", help="issue a key; it is printed once and stored only hashed")
    base(c)
    c.add_argument("--account", required=True, help="account it speaks for (address or 0x-hex)")
    c.add_argument("--scopes", required=True, help=f"comma-separated: {', '.join(SCOPES)}")
    c.add_argument("--expires-days", type=float, help="valid this many days (default: no expiry)")
    c.set_defaults(fn=cmd_api_key_create)
    ls = aks.add_parser("list", help="list the keys (never the keys themselves)")
    base(ls)
    ls.set_defaults(fn=cmd_api_key_list)
    rv = aks.add_parser("revoke", help="revoke a key by its id")
    base(rv)
    rv.add_argument("id", help="the key's id (as list shows it)")
    rv.set_defaults(fn=cmd_api_key_revoke)


def _store(args: argparse.Namespace) -> ApiKeyStore:
    return ApiKeyStore(args.key_base_path / API_KEYS_FILE)


def cmd_api_key_create(args: argparse.Namespace) -> int:
    try:
        account = parse_account(args.account)
    except (InvalidKey, ValueError) as exc:
        raise CliError(f"--account: {exc}") from None
    scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
    try:
        key, rec = _store(args).create(account, scopes, expires_days=args.expires_days)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    expiry = "never" if rec.expires_ms is None else _iso(rec.expires_ms)
    print(f"id       {rec.id}")
    print(f"account  {encode_address(account)}")
    print(f"scopes   {','.join(rec.scopes)}")
    print(f"expires  {expiry}")
    print(f"key      {key}")
    print("The key is shown this once; the node keeps only its hash.")
    return 0


def cmd_api_key_list(args: argparse.Namespace) -> int:
    t = now_ms()
    keys = _store(args).keys()
    if not keys:
        print("no API keys")
    for k in keys:
        expiry = "never" if k.expires_ms is None else _iso(k.expires_ms)
        print(
            f"{k.id}  {k.status(t):8}  {encode_address(k.account_id)}  "
            f"scopes={','.join(k.scopes)}  expires={expiry}"
        )
    return 0


def cmd_api_key_revoke(args: argparse.Namespace) -> int:
    try:
        rec = _store(args).revoke(args.id)
    except KeyError:
        raise CliError(f"no API key {args.id!r}") from None
    print(f"revoked {rec.id}")
    return 0


__all__ = [
    "API_KEYS_FILE",
    "SCOPES",
    "ApiKey",
    "ApiKeyStore",
    "Authenticator",
    "Caller",
    "add_api_key_commands",
    "forbidden",
    "unauthorized",
]
