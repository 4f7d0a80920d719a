"""What the blocking and asyncio clients share: endpoint URLs, the JSON-RPC envelope,
metadata lookups, call building, storage keys, event decoding, proof checking and
transaction statuses. Nothing here does I/O."""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twinchain.primitives.types import Call, Header
from twinchain.protocol.jsonrpc import (
    METHOD_NOT_FOUND,
    SERVER_ERROR,
    RpcError,
    from_hex,
    header_from_json,
)
from twinchain.runtime.executive import decode_events
from twinchain.runtime.framework import StorageItem
from twinchain.runtime.runtime import Runtime
from twinchain.storage.proof import ProofError, verify_read_proof

DEFAULT_URL = "127.0.0.1:9944"

log = logging.getLogger("twinchain.client")


class ClientError(Exception):
    """Base of the client's own errors (an error reply raises
    :class:`twinchain.protocol.jsonrpc.RpcError`)."""


class NodeUnavailable(ConnectionError):
    """The node cannot be reached, or the connection to it dropped or stopped answering."""


class VersionMismatch(ClientError):
    """The node runs another runtime than this package: local codec types would be wrong."""


class ProofMismatch(ClientError):
    """A storage value or its read proof does not check out against the finalized root."""


class WatchTimeout(ClientError):
    """A watched extrinsic did not reach a final status in time."""


def tls_context(ca_file: str | Path | None) -> ssl.SSLContext | None:
    """The TLS context for https/wss endpoints whose certificate ``ca_file`` (PEM) issued;
    None: the system's trusted authorities."""
    return None if ca_file is None else ssl.create_default_context(cafile=str(ca_file))


@dataclass(frozen=True)
class Reading:
    """One raw reading a node's archive answered, verified against its batch's finalized root
    on chain: reading ``index`` of batch ``seq`` of ``device``."""

    device: bytes
    seq: int
    index: int
    metric: int
    timestamp: int
    value: int


@dataclass(frozen=True)
class Delivery:
    """The archive's answer for one delivered batch: ``status`` "staged" (kept until its
    commitment is final), "archived" (checked against it and stored: the gateway may drop
    it) or "refused" (``reason`` says why)."""

    device: bytes
    seq: int
    status: str
    reason: str | None = None

    @classmethod
    def from_json(cls, d: Any) -> Delivery:
        if not isinstance(d, dict) or type(d.get("seq")) is not int:
            raise ClientError(f"malformed delivery answer {d!r:.80}")
        reason = d.get("reason")
        return cls(
            from_hex(d.get("device"), "device", 32),
            d["seq"],
            str(d.get("status")),
            None if reason is None else str(reason),
        )


def http_url(url: str) -> str:
    """``host:port``, ``http://``, or ``ws://`` forms all map to the HTTP endpoint."""
    if url.startswith(("ws://", "wss://")):
        url = "http" + url[2:]
    elif not url.startswith(("http://", "https://")):
        url = "http://" + url
    return url.rstrip("/") + "/"


def ws_url(url: str) -> str:
    """The WebSocket endpoint of the same forms (the node serves both on one port)."""
    return "ws" + http_url(url)[4:]


def request(rid: int, method: str, params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "method": method, "params": list(params)}


def result_of(reply: Any, rid: Any = None) -> Any:
    """The result of a JSON-RPC reply, or its error raised as RpcError."""
    if not isinstance(reply, dict):
        if reply is None:
            raise RpcError(SERVER_ERROR, "no response for the request", {"id": rid})
        raise RpcError(SERVER_ERROR, "malformed response", reply)
    if isinstance(reply.get("error"), dict):
        raise RpcError.from_json(reply["error"])
    if "result" not in reply:
        raise RpcError(SERVER_ERROR, "malformed response", reply)
    return reply["result"]


def batch_results(replies: Any, ids: list[int]) -> list[Any]:
    """The results of a batch reply in the order of ``ids`` (replies may come in any order);
    the first error raises its RpcError."""
    if not isinstance(replies, list):
        return [result_of(replies)]
    by_id = {r.get("id"): r for r in replies if isinstance(r, dict)}
    return [result_of(by_id.get(i), i) for i in ids]


def is_method_not_found(exc: BaseException) -> bool:
    """Whether ``exc`` is the node's answer to a method it does not have."""
    return isinstance(exc, RpcError) and exc.code == METHOD_NOT_FOUND


def is_bad_proof(exc: BaseException) -> bool:
    """Whether ``exc`` is the pool's ``Invalid:BadProof``: the signature does not check out,
    most often because it covers another spec version than the one the next block runs (a
    runtime upgrade since the signer read it)."""
    data = exc.data if isinstance(exc, RpcError) else None
    return isinstance(data, dict) and data.get("code") == "Invalid:BadProof"


def upcoming_version(version: int, number: int, scheduled: Any) -> int:
    """The spec version the block after block ``number`` runs with, given the version
    ``number`` ran (``version``) and the upgrade its state schedules (None: none): what a
    transaction signed now must name (the node's ``Blockchain.next_spec_version``)."""
    if scheduled is not None and number + 1 >= int(scheduled.at_block):
        return int(scheduled.spec_version)
    return version


# Pool / chain statuses after which a watch ends (as the server closes the subscription).
FINAL_STATUSES = frozenset({"finalized", "invalid", "dropped", "usurped"})


@dataclass(frozen=True)
class TxStatus:
    """One ``author_extrinsicUpdate``: ``kind`` is ready, future, inBlock, retracted,
    finalized, invalid, dropped or usurped; ``block`` is set for the block-carrying ones."""

    kind: str
    block: bytes | None = None
    raw: Any = None

    @property
    def is_final(self) -> bool:
        return self.kind in FINAL_STATUSES

    @classmethod
    def from_json(cls, result: Any) -> TxStatus:
        if isinstance(result, str):
            return cls(result, None, result)
        if isinstance(result, dict) and len(result) == 1:
            ((kind, value),) = result.items()
            block = None
            if isinstance(value, str) and value.startswith("0x") and len(value) == 66:
                block = from_hex(value, kind, 32)
            return cls(kind, block, result)
        raise ClientError(f"unexpected extrinsic status {result!r}")


@dataclass
class ChainInfo:
    """What a client caches on connect. ``next_spec_version``: the version the next block
    runs with, once the client read it (a scheduled upgrade's from the block before its
    height on; see ``refresh_version``); until then the best block's."""

    genesis_hash: bytes
    version: dict[str, Any]
    metadata: dict[str, Any]
    next_spec_version: int | None = None

    @property
    def spec_version(self) -> int:
        """The best block's spec version when this was read (the metadata's)."""
        return int(self.version["specVersion"])

    @property
    def signing_version(self) -> int:
        """The spec version a transaction signed now names."""
        return self.spec_version if self.next_spec_version is None else self.next_spec_version

    def adopt_next_version(self, upcoming: int, before: int) -> bool:
        """Sign for ``upcoming`` from now on; True (and one warning) if that is not
        ``before``, the version signed for until now."""
        self.next_spec_version = upcoming
        if upcoming == before:
            return False
        log.warning(
            "runtime upgrade: the chain's next block runs spec version %d (was %d); "
            "signing for %d from now on",
            upcoming,
            before,
            upcoming,
        )
        return True


class Codec:
    """Builds calls and storage keys from the node's metadata, encoding values with the local
    runtime's codec types, which is only correct when both run the same spec version."""

    def __init__(self, info: ChainInfo) -> None:
        self.info = info
        self.runtime = Runtime(info.genesis_hash)
        # A chain before its scheduled upgrade runs an older version this software may still
        # have: encode for that one (check_version refuses a version it lacks).
        if self.runtime.knows(info.spec_version):
            self.runtime.spec_version = info.spec_version
        self.pallets = {p["name"]: p for p in info.metadata.get("pallets", [])}

    def check_version(self) -> None:
        if self.info.spec_version != self.runtime.spec_version:
            raise VersionMismatch(
                f"node runs specVersion {self.info.spec_version}, "
                f"this client encodes for {self.runtime.spec_version}"
            )

    def _pallet(self, pallet: str) -> dict[str, Any]:
        meta = self.pallets.get(pallet)
        if meta is None:
            raise ClientError(f"the node's metadata has no pallet {pallet!r}")
        return meta

    def build_call(self, pallet: str, call: str, args: dict[str, Any]) -> Call:
        """A Call by names: indices and argument order from the metadata, values encoded by
        ``Runtime.call_by_name`` (same spec version checked first)."""
        self.check_version()
        meta = self._pallet(pallet)
        cmeta = next((c for c in meta["calls"] if c["name"] == call), None)
        if cmeta is None:
            raise ClientError(f"{pallet} has no call {call!r}")
        names = [a[0] for a in cmeta["args"]]
        missing = [n for n in names if n not in args]
        extra = sorted(set(args) - set(names))
        if missing or extra:
            raise TypeError(
                f"{pallet}.{call}({', '.join(names)}): missing {missing}, extra {extra}"
            )
        built = self.runtime.call_by_name(pallet, call, *(args[n] for n in names))
        # The metadata is the node's word; a disagreement means the local runtime is stale.
        if (built.pallet, built.index) != (meta["index"], cmeta["index"]):
            raise VersionMismatch(f"{pallet}.{call} has other indices on the node")
        return built

    def storage_item(self, pallet: str, item: str) -> StorageItem:
        self.check_version()
        meta = self._pallet(pallet)
        smeta = next((s for s in meta["storage"] if s["name"] == item), None)
        local = self.runtime.by_name.get(pallet)
        obj = getattr(local, item, None) if local is not None else None
        if smeta is None or not isinstance(obj, StorageItem):
            raise ClientError(f"{pallet} has no storage item {item!r}")
        if from_hex(smeta["prefix"], "prefix") != obj.prefix:
            raise VersionMismatch(f"{pallet}.{item} has another storage prefix on the node")
        return obj

    def storage_key(self, pallet: str, item: str, keys: tuple[Any, ...]) -> bytes:
        obj = self.storage_item(pallet, item)
        return obj.key(*keys)  # type: ignore[attr-defined, no-any-return]

    def decode_value(self, pallet: str, item: str, raw: bytes | None) -> Any:
        """Decode with the item's value type; an absent value reads as the item's default."""
        obj = self.storage_item(pallet, item)
        if raw is None:
            return getattr(obj, "default", None)
        return obj.value_type.decode(raw)  # type: ignore[attr-defined]

    def decode_events(self, raw: bytes | None) -> list[dict[str, Any]]:
        """A block's ``System.Events`` value as readable dicts (phase, extrinsic, pallet,
        event, args)."""
        self.check_version()
        return decode_events(self.runtime, raw or b"")


def checked_header(block_hash: bytes, header_json: Any) -> Header:
    """The header of ``block_hash``, refusing one whose hash is not the one asked for."""
    if header_json is None:
        raise ProofMismatch(f"the node has no header for {block_hash.hex()}")
    try:
        header = header_from_json(header_json)
    except ValueError as exc:
        raise ProofMismatch(f"malformed header: {exc}") from exc
    if header.hash != block_hash:
        raise ProofMismatch("the header does not hash to the requested block")
    return header


def check_read(
    key: bytes,
    header: Header,
    proof_json: Any,
    value_json: Any,
) -> bytes | None:
    """Verify ``proof_json`` (state_getReadProof's result) for ``key`` against the header's
    state root, and that the separately served value agrees; return the proven value."""
    try:
        if not isinstance(proof_json, dict) or from_hex(proof_json.get("at"), "at") != header.hash:
            raise ProofMismatch("the proof is for another block")
        nodes = [from_hex(n, "proof node") for n in proof_json["proof"]]
        proven = verify_read_proof(header.state_root, [key], nodes)[key]
        served = None if value_json is None else from_hex(value_json, "storage value")
    except (ProofError, ValueError, KeyError, TypeError) as exc:
        raise ProofMismatch(f"read proof refused: {exc}") from exc
    if proven != served:
        raise ProofMismatch("the served value differs from the proven one")
    return proven
