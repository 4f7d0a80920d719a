"""The JSON-RPC methods, with Substrate's names and result shapes.

Each handler is a plain synchronous function ``fn(ctx, *params)``; the registry binds JSON
params (by position or by name) to its signature. Handlers never await: a request is handled
without a checkpoint, so a subscription's first notification can never overtake its id.
"""

from __future__ import annotations

import inspect
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from twinchain.node.txpool import PoolError
from twinchain.primitives.codec import CodecError
from twinchain.primitives.keys import InvalidKey, Keypair, encode_address, parse_account
from twinchain.primitives.keystore import KEY_TYPES, KeystoreError
from twinchain.primitives.types import Extrinsic, Header, extrinsic_hash
from twinchain.protocol.jsonrpc import (
    INVALID_COUNT,
    METHOD_NOT_FOUND,
    STATE_UNAVAILABLE,
    UNSUPPORTED_KEY_TYPE,
    RpcError,
    from_hex,
    header_to_json,
    number_from_json,
    to_hex,
)
from twinchain.rpc import custody
from twinchain.rpc.api import ArchiveStore, NodeHandle
from twinchain.rpc.auth import Authenticator
from twinchain.rpc.errors import invalid_params, pool_error
from twinchain.rpc.twin import register as register_twin_methods
from twinchain.runtime.executive import InvalidTransaction
from twinchain.runtime.pallets.session import ownership_message
from twinchain.storage.abc import StateReader
from twinchain.storage.blockstore import ChainStoreError
from twinchain.storage.trie import StateError

log = logging.getLogger("twinchain.rpc")

# Engine id of our vote-based finality justifications in chain_getBlock (GRANDPA's is FRNK).
FINALITY_ENGINE_ID = b"TWFG"
MAX_KEYS_PAGED = 1000
MAX_BLOCK_HASH_LIST = 1000
# Session keys author_rotateKeys generates: the validator key signs blocks and finality votes.
SESSION_KEY_TYPES = ("aura",)

# Subscription kind -> the method name of its notifications.
NOTIFICATIONS = {
    "newHeads": "chain_newHead",
    "allHeads": "chain_allHead",
    "finalizedHeads": "chain_finalizedHead",
    "extrinsic": "author_extrinsicUpdate",
    "storage": "state_storage",
    "runtimeVersion": "state_runtimeVersion",
}
MAX_STORAGE_SUBSCRIPTION_KEYS = 1000


class Subscriptions(Protocol):
    """One WebSocket connection's subscriptions (the server implements it)."""

    def subscribe(self, kind: str, ctx: CallContext, arg: Any = None) -> str:
        """Reserve a subscription id; it goes live once the response is queued. ``arg``:
        the watched transaction hash ("extrinsic") or storage keys ("storage")."""
        ...

    def unsubscribe(self, kind: str, sub_id: str) -> bool: ...


@dataclass
class CallContext:
    node: NodeHandle
    peer: str | None
    allow_unsafe: bool
    subscriptions: Subscriptions | None = None
    starting_block: int = 0  # best block number when the server started (system_syncState)
    # Run after the response (or whole batch response) is queued to the client.
    after_response: list[Callable[[], None]] = field(default_factory=list)
    #: The server's checker of authenticated calls (its nonce cache, its API keys).
    auth: Authenticator | None = None
    #: The facility archive this node keeps, if any (see rpc.custody).
    archive: Callable[[], ArchiveStore | None] | None = None


@dataclass(frozen=True)
class Method:
    name: str
    fn: Callable[..., Any]
    unsafe: bool
    signature: inspect.Signature


METHODS: dict[str, Method] = {}


def rpc(*names: str, unsafe: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn(ctx, ...)`` under each of ``names`` (the first is canonical, the rest
    Substrate's aliases)."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(fn)
        params = list(sig.parameters.values())[1:]  # drop ctx
        public = sig.replace(parameters=params)
        for n in names:
            if n in METHODS:
                raise ValueError(f"duplicate RPC method {n}")
            METHODS[n] = Method(n, fn, unsafe, public)
        return fn

    return register


def call_method(name: str, params: Any, ctx: CallContext) -> Any:
    """Look up, authorize, bind and run one method; raises RpcError."""
    m = METHODS.get(name)
    if m is None:
        raise RpcError(METHOD_NOT_FOUND)
    if m.unsafe and not ctx.allow_unsafe:
        raise RpcError(METHOD_NOT_FOUND, "RPC call is unsafe to be called externally")
    try:
        if params is None:
            bound = m.signature.bind()
        elif isinstance(params, list):
            bound = m.signature.bind(*params)
        else:
            bound = m.signature.bind(**params)
    except TypeError as exc:
        raise invalid_params(str(exc)) from None
    return m.fn(ctx, *bound.args, **bound.kwargs)


def method_names(allow_unsafe: bool) -> list[str]:
    return sorted(n for n, m in METHODS.items() if allow_unsafe or not m.unsafe)


# --------------------------------------------------------------------------- param helpers


def _hex(value: Any, what: str, length: int | None = None) -> bytes:
    try:
        return from_hex(value, what, length)
    except ValueError as exc:
        raise invalid_params(str(exc)) from None


def _block_hash(ctx: CallContext, at: Any) -> bytes:
    """The block ``at`` names (default: best); must be known."""
    if at is None:
        return ctx.node.chain.best.hash
    h = _hex(at, "block hash", 32)
    if ctx.node.chain.blocks.header(h) is None:
        raise RpcError(STATE_UNAVAILABLE, "Unknown block", to_hex(h))
    return h


def _state(ctx: CallContext, at: Any) -> StateReader:
    h = _block_hash(ctx, at)
    try:
        return ctx.node.chain.state_at(h)
    except (ChainStoreError, StateError) as exc:
        raise RpcError(STATE_UNAVAILABLE, "State unavailable", str(exc)) from None


def _read(fn: Callable[[], Any]) -> Any:
    """Run a state read; a state pruned away meanwhile is a typed error, not an internal one."""
    try:
        return fn()
    except StateError as exc:
        raise RpcError(STATE_UNAVAILABLE, "State unavailable", str(exc)) from None


def _header_of(ctx: CallContext, hash_: Any) -> Header | None:
    if hash_ is None:
        return ctx.node.chain.best
    return ctx.node.chain.blocks.header(_hex(hash_, "block hash", 32))


def _account(value: Any) -> bytes:
    if type(value) is not str:
        raise invalid_params("account must be an address or 0x-hex account id")
    try:
        return parse_account(value)
    except (InvalidKey, ValueError) as exc:
        raise invalid_params(str(exc)) from None


# --------------------------------------------------------------------------- rpc


@rpc("rpc_methods")
def rpc_methods(ctx: CallContext) -> dict[str, Any]:
    return {"version": 1, "methods": method_names(ctx.allow_unsafe)}


# --------------------------------------------------------------------------- system


@rpc("system_name")
def system_name(ctx: CallContext) -> str:
    return ctx.node.name


@rpc("system_version")
def system_version(ctx: CallContext) -> str:
    return ctx.node.version


@rpc("system_chain")
def system_chain(ctx: CallContext) -> str:
    return ctx.node.chain.spec.name


@rpc("system_chainType")
def system_chain_type(ctx: CallContext) -> str:
    return ctx.node.chain.spec.chain_type


@rpc("system_properties")
def system_properties(ctx: CallContext) -> dict[str, Any]:
    return dict(ctx.node.chain.spec.properties)


@rpc("system_health")
def system_health(ctx: CallContext) -> dict[str, Any]:
    return health(ctx.node)


def health(node: NodeHandle) -> dict[str, Any]:
    return {
        "peers": len(node.peers),
        "isSyncing": node.is_syncing,
        # A development chain runs alone; any other chain is expected to have peers.
        "shouldHavePeers": node.chain.spec.chain_type != "Development",
        # Only once the node stopped at a runtime upgrade its software lacks: what to install.
        **({"upgradeRequired": str(halt)} if (halt := node.chain.upgrade_required) else {}),
    }


@rpc("system_localPeerId")
def system_local_peer_id(ctx: CallContext) -> str:
    return ctx.node.local_peer_id


@rpc("system_localListenAddresses")
def system_local_listen_addresses(ctx: CallContext) -> list[str]:
    return list(ctx.node.listen_addresses)


@rpc("system_peers", unsafe=True)
def system_peers(ctx: CallContext) -> list[dict[str, Any]]:
    return list(ctx.node.peers)


@rpc("system_nodeRoles")
def system_node_roles(ctx: CallContext) -> list[str]:
    return list(ctx.node.roles)


@rpc("system_syncState")
def system_sync_state(ctx: CallContext) -> dict[str, int]:
    best = ctx.node.chain.best.number
    # Until the sync layer reports the best block peers announce, ours is the highest known.
    return {"startingBlock": ctx.starting_block, "currentBlock": best, "highestBlock": best}


@rpc("system_accountNextIndex", "account_nextIndex")
def system_account_next_index(ctx: CallContext, account: Any) -> int:
    """On-chain nonce, then one more for each consecutive nonce the pool holds for it."""
    who = _account(account)
    client = ctx.node.chain
    item = client.runtime.system.Account
    raw = _read(lambda: client.state_at(client.best.hash).get(item.key(who)))
    nonce = 0 if raw is None else int(item.value_type.decode(raw).nonce)
    pooled: set[int] = set()
    for xt_raw in ctx.node.pool.pending():
        try:
            s = Extrinsic.decode(xt_raw).signed
        except CodecError:
            continue
        if s is not None and s.signer == who and s.nonce >= nonce:
            pooled.add(s.nonce)
    while nonce in pooled:
        nonce += 1
    return nonce


# --------------------------------------------------------------------------- chain


@rpc("chain_getHeader")
def chain_get_header(ctx: CallContext, hash: Any = None) -> dict[str, Any] | None:
    h = _header_of(ctx, hash)
    return None if h is None else header_to_json(h)


@rpc("chain_getBlock")
def chain_get_block(ctx: CallContext, hash: Any = None) -> dict[str, Any] | None:
    blocks = ctx.node.chain.blocks
    h = ctx.node.chain.best.hash if hash is None else _hex(hash, "block hash", 32)
    block = blocks.block(h)
    if block is None:
        return None
    just = blocks.justification(h)
    return {
        "block": {
            "header": header_to_json(block.header),
            "extrinsics": [to_hex(x) for x in block.extrinsics],
        },
        "justifications": None if just is None else [[to_hex(FINALITY_ENGINE_ID), to_hex(just)]],
    }


def _hash_at(ctx: CallContext, number: Any) -> str | None:
    try:
        n = number_from_json(number, "block number")
    except ValueError as exc:
        raise invalid_params(str(exc)) from None
    h = ctx.node.chain.blocks.hash_at(n)
    return None if h is None else to_hex(h)


@rpc("chain_getBlockHash", "chain_getHead")
def chain_get_block_hash(ctx: CallContext, number: Any = None) -> str | list[str | None] | None:
    """Best hash, the canonical hash at a number, or a list of them (Substrate's ListOrValue)."""
    if number is None:
        return to_hex(ctx.node.chain.best.hash)
    if isinstance(number, list):
        if len(number) > MAX_BLOCK_HASH_LIST:
            raise invalid_params(f"at most {MAX_BLOCK_HASH_LIST} block numbers")
        return [_hash_at(ctx, n) for n in number]
    return _hash_at(ctx, number)


@rpc("chain_getFinalizedHead", "chain_getFinalisedHead")
def chain_get_finalized_head(ctx: CallContext) -> str:
    return to_hex(ctx.node.chain.finalized.hash)


def _subscribe(ctx: CallContext, kind: str, arg: Any = None) -> str:
    if ctx.subscriptions is None:
        raise RpcError(METHOD_NOT_FOUND, "Subscriptions need a WebSocket connection")
    return ctx.subscriptions.subscribe(kind, ctx, arg)


def _unsubscribe(ctx: CallContext, kind: str, sub_id: Any) -> bool:
    if ctx.subscriptions is None:
        raise RpcError(METHOD_NOT_FOUND, "Subscriptions need a WebSocket connection")
    if type(sub_id) is not str:
        raise invalid_params("subscription id must be a string")
    return ctx.subscriptions.unsubscribe(kind, sub_id)


@rpc("chain_subscribeNewHeads", "chain_subscribeNewHead", "subscribe_newHead")
def chain_subscribe_new_heads(ctx: CallContext) -> str:
    return _subscribe(ctx, "newHeads")


@rpc("chain_unsubscribeNewHeads", "chain_unsubscribeNewHead", "unsubscribe_newHead")
def chain_unsubscribe_new_heads(ctx: CallContext, subscription: Any) -> bool:
    return _unsubscribe(ctx, "newHeads", subscription)


@rpc("chain_subscribeAllHeads")
def chain_subscribe_all_heads(ctx: CallContext) -> str:
    return _subscribe(ctx, "allHeads")


@rpc("chain_unsubscribeAllHeads")
def chain_unsubscribe_all_heads(ctx: CallContext, subscription: Any) -> bool:
    return _unsubscribe(ctx, "allHeads", subscription)


@rpc("chain_subscribeFinalizedHeads", "chain_subscribeFinalisedHeads")
def chain_subscribe_finalized_heads(ctx: CallContext) -> str:
    return _subscribe(ctx, "finalizedHeads")


@rpc("chain_unsubscribeFinalizedHeads", "chain_unsubscribeFinalisedHeads")
def chain_unsubscribe_finalized_heads(ctx: CallContext, subscription: Any) -> bool:
    return _unsubscribe(ctx, "finalizedHeads", subscription)


# --------------------------------------------------------------------------- state


@rpc("state_getStorage", "state_getStorageAt")
def state_get_storage(ctx: CallContext, key: Any, at: Any = None) -> str | None:
    k = _hex(key, "storage key")
    state = _state(ctx, at)
    v = _read(lambda: state.get(k))
    return None if v is None else to_hex(v)


@rpc("state_getKeysPaged", "state_getKeysPagedAt")
def state_get_keys_paged(
    ctx: CallContext, prefix: Any, count: Any, startKey: Any = None, at: Any = None
) -> list[str]:
    p = _hex(prefix, "prefix") if prefix is not None else b""
    if type(count) is not int or count < 0:
        raise invalid_params("count must be a non-negative integer")
    if count > MAX_KEYS_PAGED:
        raise RpcError(INVALID_COUNT, f"count exceeds maximum value ({MAX_KEYS_PAGED})")
    start = None if startKey is None else _hex(startKey, "startKey")
    state = _state(ctx, at)

    def page() -> list[str]:
        out: list[str] = []
        if count == 0:
            return out
        for k, _ in state.iter_prefix(p, start):
            out.append(to_hex(k))
            if len(out) >= count:
                break
        return out

    return _read(page)  # type: ignore[no-any-return]


MAX_PROOF_KEYS = 1000


@rpc("state_getReadProof")
def state_get_read_proof(ctx: CallContext, keys: Any, at: Any = None) -> dict[str, Any]:
    """Merkle proof of ``keys`` against the state root in the header of ``at``: the client
    checks it with ``twinchain.storage.proof.verify_read_proof`` without trusting us."""
    if not isinstance(keys, list):
        raise invalid_params("keys must be a list of 0x-hex storage keys")
    if len(keys) > MAX_PROOF_KEYS:
        raise invalid_params(f"at most {MAX_PROOF_KEYS} keys")
    ks = [_hex(k, "storage key") for k in keys]
    h = _block_hash(ctx, at)
    header = ctx.node.chain.blocks.header(h)
    assert header is not None  # _block_hash checked it
    statedb = ctx.node.chain.statedb
    nodes = _read(lambda: statedb.prove(header.state_root, ks))
    return {"at": to_hex(h), "proof": [to_hex(n) for n in nodes]}


@rpc("state_subscribeStorage")
def state_subscribe_storage(ctx: CallContext, keys: Any) -> str:
    """Values of ``keys`` now, then the ones that changed with each new best block. Unlike
    Substrate, keys are required: we keep no per-block change sets to stream "everything"."""
    if not isinstance(keys, list) or not keys:
        raise invalid_params("keys must be a non-empty list of 0x-hex storage keys")
    if len(keys) > MAX_STORAGE_SUBSCRIPTION_KEYS:
        raise invalid_params(f"at most {MAX_STORAGE_SUBSCRIPTION_KEYS} keys")
    ks = list(dict.fromkeys(_hex(k, "storage key") for k in keys))
    return _subscribe(ctx, "storage", ks)


@rpc("state_unsubscribeStorage")
def state_unsubscribe_storage(ctx: CallContext, subscription: Any) -> bool:
    return _unsubscribe(ctx, "storage", subscription)


@rpc("state_getMetadata")
def state_get_metadata(ctx: CallContext, at: Any = None) -> dict[str, Any]:
    """Our metadata is JSON already; Substrate's is SCALE hex."""
    _block_hash(ctx, at)
    return ctx.node.chain.runtime.metadata()


@rpc("state_getRuntimeVersion", "chain_getRuntimeVersion")
def state_get_runtime_version(ctx: CallContext, at: Any = None) -> dict[str, Any]:
    """The version block ``at`` (default: best) ran with; a scheduled upgrade shows from
    its block on."""
    return runtime_version(ctx.node, _block_hash(ctx, at))


def runtime_version(node: NodeHandle, block_hash: bytes) -> dict[str, Any]:
    chain = node.chain
    try:
        version = chain.spec_version_at(block_hash)
    except (ChainStoreError, StateError) as exc:
        raise RpcError(STATE_UNAVAILABLE, "State unavailable", str(exc)) from None
    return {**chain.runtime.version(version), "apis": []}


@rpc("state_subscribeRuntimeVersion", "chain_subscribeRuntimeVersion")
def state_subscribe_runtime_version(ctx: CallContext) -> str:
    """The best block's version now, then each time a new best block runs another one."""
    return _subscribe(ctx, "runtimeVersion")


@rpc("state_unsubscribeRuntimeVersion", "chain_unsubscribeRuntimeVersion")
def state_unsubscribe_runtime_version(ctx: CallContext, subscription: Any) -> bool:
    return _unsubscribe(ctx, "runtimeVersion", subscription)


# --------------------------------------------------------------------------- grandpa


# Substrate's code for a GRANDPA RPC asked before the voter runs.
GRANDPA_NOT_READY = 1


def _round_to_json(rnd: dict[str, Any]) -> dict[str, Any]:
    """One round of the voter's round_state with the missing voters as addresses (Substrate
    renders them as SS58 addresses; ours are the project's addresses)."""
    out = dict(rnd)
    for stage in ("prevotes", "precommits"):
        votes = dict(rnd[stage])
        votes["missing"] = [encode_address(a) for a in votes["missing"]]
        out[stage] = votes
    return out


@rpc("grandpa_roundState")
def grandpa_round_state(ctx: CallContext) -> dict[str, Any]:
    """The voter's current round and the earlier rounds it still tracks: per stage the weight
    voted so far and the voters yet to vote, next to the total and threshold weights."""
    voter = ctx.node.voter
    if voter is None:
        raise RpcError(GRANDPA_NOT_READY, "GRANDPA RPC endpoint not ready")
    state: dict[str, Any] = voter.round_state()
    return {
        "setId": state["setId"],
        "best": _round_to_json(state["best"]),
        "background": [_round_to_json(r) for r in state["background"]],
    }


# --------------------------------------------------------------------------- author


@rpc("author_submitExtrinsic")
def author_submit_extrinsic(ctx: CallContext, extrinsic: Any) -> str:
    raw = _hex(extrinsic, "extrinsic")
    try:
        return to_hex(ctx.node.submit_extrinsic(raw))
    except PoolError as exc:
        raise pool_error(exc.code, exc.detail) from None
    except InvalidTransaction as exc:
        raise pool_error(f"Invalid:{exc.code}", exc.detail) from None


@rpc("author_submitAndWatchExtrinsic")
def author_submit_and_watch_extrinsic(ctx: CallContext, extrinsic: Any) -> str:
    """Submit, then stream ``author_extrinsicUpdate``: "ready"/"future", {"inBlock": hash},
    {"finalized": hash}, or "invalid"/"dropped"/{"usurped": hash}. A refused submission is
    an error response, as in Substrate, not a subscription."""
    if ctx.subscriptions is None:
        raise RpcError(METHOD_NOT_FOUND, "Subscriptions need a WebSocket connection")
    raw = _hex(extrinsic, "extrinsic")
    # Watch before submitting: the pool reports "ready"/"future" during submit itself.
    sid = _subscribe(ctx, "extrinsic", extrinsic_hash(raw))
    try:
        author_submit_extrinsic(ctx, extrinsic)
    except Exception:  # no subscription for a refused (or failed) submission
        assert ctx.subscriptions is not None
        ctx.subscriptions.unsubscribe("extrinsic", sid)
        raise
    return sid


@rpc("author_unwatchExtrinsic")
def author_unwatch_extrinsic(ctx: CallContext, subscription: Any) -> bool:
    return _unsubscribe(ctx, "extrinsic", subscription)


@rpc("author_pendingExtrinsics")
def author_pending_extrinsics(ctx: CallContext) -> list[str]:
    return [to_hex(x) for x in ctx.node.pool.pending()]


def _key_type(value: Any) -> str:
    if type(value) is not str:
        raise invalid_params("key type must be a string")
    if value not in KEY_TYPES:
        raise RpcError(UNSUPPORTED_KEY_TYPE, "Unknown key type", f"one of {', '.join(KEY_TYPES)}")
    return value


def _keypair_from_suri(suri: Any) -> Keypair:
    """``//Name`` dev keys or a 0x-hex 32-byte seed."""
    if type(suri) is not str:
        raise invalid_params("suri must be a string")
    try:
        if suri.startswith("//"):
            return Keypair.from_dev_name(suri)
        return Keypair.from_seed(from_hex(suri, "suri", 32))
    except (InvalidKey, ValueError):
        # Never echo the secret back.
        raise invalid_params("suri must be //Name or a 0x-hex 32-byte seed") from None


@rpc("author_insertKey", unsafe=True)
def author_insert_key(ctx: CallContext, keyType: Any, suri: Any, publicKey: Any) -> None:
    kt = _key_type(keyType)
    kp = _keypair_from_suri(suri)
    if _hex(publicKey, "public key", 32) != kp.public:
        raise invalid_params("public key does not match the secret")
    try:
        ctx.node.keystore.insert(kt, kp)
    except (KeystoreError, OSError) as exc:
        log.warning("author_insertKey failed: %s", exc)
        raise RpcError(UNSUPPORTED_KEY_TYPE, "Keystore error", str(exc)) from None


@rpc("author_hasKey", unsafe=True)
def author_has_key(ctx: CallContext, publicKey: Any, keyType: Any) -> bool:
    return ctx.node.keystore.has(_key_type(keyType), _hex(publicKey, "public key", 32))


@rpc("author_rotateKeys", unsafe=True)
def author_rotate_keys(ctx: CallContext) -> str:
    """New session keys in the keystore; the result is their public keys concatenated."""
    try:
        keys = [ctx.node.keystore.generate(kt) for kt in SESSION_KEY_TYPES]
    except (KeystoreError, OSError) as exc:
        log.warning("author_rotateKeys failed: %s", exc)
        raise RpcError(UNSUPPORTED_KEY_TYPE, "Keystore error", str(exc)) from None
    return to_hex(b"".join(k.public for k in keys))


@rpc("author_rotateKeysWithOwner", unsafe=True)
def author_rotate_keys_with_owner(ctx: CallContext, owner: Any) -> dict[str, str]:
    """New session keys, and their proof of ownership for ``Session.set_keys`` signed by
    ``owner`` (the validator account): each new key's signature over the account. The node
    signs with a key from the session the chain makes it active (see SigningKeys)."""
    account = _hex(owner, "owner", 32)
    try:
        keys = [ctx.node.keystore.generate(kt) for kt in SESSION_KEY_TYPES]
    except (KeystoreError, OSError) as exc:
        log.warning("author_rotateKeysWithOwner failed: %s", exc)
        raise RpcError(UNSUPPORTED_KEY_TYPE, "Keystore error", str(exc)) from None
    message = ownership_message(ctx.node.chain.genesis_hash, account)
    return {
        "keys": to_hex(b"".join(k.public for k in keys)),
        "proof": to_hex(b"".join(k.sign(message) for k in keys)),
    }


@rpc("author_hasSessionKeys", unsafe=True)
def author_has_session_keys(ctx: CallContext, sessionKeys: Any) -> bool:
    """Whether the keystore holds every key of ``sessionKeys`` (as author_rotateKeys returns
    them: the public keys concatenated in SESSION_KEY_TYPES order)."""
    raw = _hex(sessionKeys, "session keys", 32 * len(SESSION_KEY_TYPES))
    return all(
        ctx.node.keystore.has(kt, raw[32 * i : 32 * i + 32])
        for i, kt in enumerate(SESSION_KEY_TYPES)
    )


def new_subscription_id() -> str:
    return secrets.token_urlsafe(12)


register_twin_methods(rpc)
for _name, _fn in custody.METHODS.items():
    rpc(_name)(_fn)
