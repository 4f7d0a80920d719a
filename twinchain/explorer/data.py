"""What the explorer shows, fetched over JSON-RPC and decoded from the metadata: block
summaries and details, search, node and peer info, and the twin-domain reads.

Nothing here touches Textual: the tabs and screens (:mod:`twinchain.explorer.tabs`,
:mod:`twinchain.explorer.screens`) render these dataclasses, and tests can call it against a
node directly.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from twinchain.client import (
    ClientError,
    NodeUnavailable,
    ReconnectingClient,
    is_method_not_found,
)
from twinchain.consensus.proofs import GrandpaJustification
from twinchain.explorer.decode import (
    DecodedEvent,
    DecodedExtrinsic,
    DecodeError,
    Metadata,
    apply_outcomes,
)
from twinchain.primitives.codec import CodecError
from twinchain.primitives.keys import DEV_NAMES, InvalidKey, Keypair, encode_address, parse_account
from twinchain.primitives.types import Header
from twinchain.protocol.jsonrpc import RpcError, from_hex, header_from_json, to_hex
from twinchain.runtime.pallets.council import required_votes
from twinchain.runtime.pallets.facility.types import peer_id_text

SEARCH_DEPTH = 512  # blocks scanned back for an extrinsic hash (the node keeps no index)
CACHE_BLOCKS = 256
OPTIONAL_SUFFIX = "not available on this node"


class NotAvailable(Exception):
    """The node does not serve this method (JSON-RPC -32601)."""

    def __init__(self, method: str) -> None:
        super().__init__(f"{method}: {OPTIONAL_SUFFIX}")
        self.method = method


@dataclass
class BlockSummary:
    number: int
    hash: bytes
    parent: bytes
    slot: int
    author: bytes | None
    author_label: str
    extrinsics: int
    events: int


@dataclass
class Voter:
    account: bytes
    label: str
    target_number: int
    target_hash: bytes


@dataclass
class JustificationInfo:
    round: int
    set_id: int
    target_number: int
    target_hash: bytes
    voters: list[Voter]


@dataclass
class BlockDetail:
    summary: BlockSummary
    header: dict[str, Any]
    extrinsics: list[DecodedExtrinsic]
    events: list[DecodedEvent]
    justification: JustificationInfo | None
    finalized: bool


@dataclass
class SearchResult:
    kind: str  # "block", "extrinsic", "account", "twin", "none"
    block: bytes | None = None
    extrinsic: int | None = None
    account: bytes | None = None
    twin: int | None = None
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)


def short_hash(h: bytes) -> str:
    x = h.hex()
    return f"0x{x[:6]}…{x[-4:]}"


def short_address(a: bytes) -> str:
    addr = encode_address(a)
    return f"{addr[:6]}…{addr[-4:]}"


class ChainData:
    """Decoded reads over one :class:`ReconnectingClient`; ``refresh()`` after each
    (re)connection."""

    def __init__(
        self, rpc: ReconnectingClient, *, key: Keypair | None = None, api_key: str | None = None
    ) -> None:
        self.rpc = rpc
        # Who the explorer reads private telemetry as (None, None: anyone, public data only).
        self.key, self.api_key = key, api_key
        self.meta: Metadata | None = None
        self.genesis: bytes | None = None
        self.chain = ""
        self.node_name = ""
        self.slot_ms = 1000
        self.labels: dict[bytes, str] = {
            Keypair.from_dev_name(n).public: n for n in DEV_NAMES
        }  # dev accounts by name; facility validators and operators override
        self._authorities: OrderedDict[bytes, list[bytes]] = OrderedDict()
        self._summaries: OrderedDict[bytes, BlockSummary] = OrderedDict()
        self._raw_blocks: OrderedDict[bytes, dict[str, Any]] = OrderedDict()

    # -- connection
    async def refresh(self) -> bool:
        """Chain identity, metadata and labels; True if the chain (genesis) changed."""
        genesis = from_hex(await self.rpc.call("chain_getBlockHash", 0), "genesis", 32)
        changed = self.genesis is not None and genesis != self.genesis
        self.genesis = genesis
        self.meta = Metadata(await self.rpc.call("state_getMetadata"))
        self.chain = await self.rpc.call("system_chain")
        self.node_name = await self.rpc.call("system_name")
        slot = await self.storage("Authority", "SlotDuration")
        self.slot_ms = int(slot) if isinstance(slot, int) and slot > 0 else 1000
        if changed:
            self._authorities.clear()
            self._summaries.clear()
            self._raw_blocks.clear()
        await self.refresh_labels()
        return changed

    async def refresh_labels(self) -> None:
        try:
            facs = await self.rpc.call("twin_facilities")
        except RpcError:
            return
        for f in facs:
            for key in ("operator", "validator"):
                with _suppress_bad_hex():
                    self.labels[from_hex(f[key], key, 32)] = str(f["name"])

    def label(self, account: bytes | None) -> str:
        if account is None:
            return "-"
        return self.labels.get(account) or short_address(account)

    @property
    def metadata(self) -> Metadata:
        if self.meta is None:
            raise RpcError(-32000, "metadata not loaded yet")
        return self.meta

    async def storage(self, pallet: str, item: str, *keys: Any, at: bytes | None = None) -> Any:
        meta = self.metadata
        try:
            key = meta.storage_key(pallet, item, *keys)
        except DecodeError:
            return None
        params: list[Any] = [to_hex(key)] + ([] if at is None else [to_hex(at)])
        raw = await self.rpc.call("state_getStorage", *params)
        return meta.decode_storage(pallet, item, None if raw is None else from_hex(raw, "value"))

    async def optional(self, method: str, *params: Any) -> Any:
        """A call the node may not serve: NotAvailable on method-not-found."""
        try:
            return await self.rpc.call(method, *params)
        except RpcError as exc:
            if is_method_not_found(exc):
                raise NotAvailable(method) from None
            raise

    # -- blocks
    async def raw_block(self, block_hash: bytes) -> dict[str, Any] | None:
        got = self._raw_blocks.get(block_hash)
        if got is None:
            got = await self.rpc.call("chain_getBlock", to_hex(block_hash))
            if got is None:
                return None
            self._raw_blocks[block_hash] = got
            while len(self._raw_blocks) > CACHE_BLOCKS:
                self._raw_blocks.popitem(last=False)
        return got

    async def _author(self, header: Header) -> bytes | None:
        auths = self._authorities.get(header.parent_hash)
        if auths is None:
            try:
                value = await self.storage("Authority", "Authorities", at=header.parent_hash)
            except RpcError:  # parent state pruned: the newest known set is the best guess
                value = next(reversed(self._authorities.values()), None)
            if not value:
                return None
            auths = [parse_account(a) if isinstance(a, str) else a for a in value]
            self._authorities[header.parent_hash] = auths
            while len(self._authorities) > CACHE_BLOCKS:
                self._authorities.popitem(last=False)
        return auths[header.slot % len(auths)] if auths else None

    async def summary(self, header_json: Any) -> BlockSummary:
        header = header_from_json(header_json)
        h = header.hash
        got = self._summaries.get(h)
        if got is not None:
            return got
        blk = await self.raw_block(h)
        n_xt = 0 if blk is None else len(blk["block"]["extrinsics"])
        count = await self.storage("System", "EventCount", at=h)
        author = await self._author(header) if header.number > 0 else None
        s = BlockSummary(
            header.number,
            h,
            header.parent_hash,
            header.slot,
            author,
            "genesis" if header.number == 0 else self.label(author),
            n_xt,
            int(count or 0),
        )
        self._summaries[h] = s
        while len(self._summaries) > CACHE_BLOCKS:
            self._summaries.popitem(last=False)
        return s

    async def header_at(self, number: int) -> dict[str, Any] | None:
        h = await self.rpc.call("chain_getBlockHash", number)
        return None if h is None else await self.rpc.call("chain_getHeader", h)

    async def detail(self, block_hash: bytes) -> BlockDetail | None:
        # Fetched afresh: a cached copy may predate the block's justification.
        blk = await self.rpc.call("chain_getBlock", to_hex(block_hash))
        if blk is None:
            return None
        self._raw_blocks[block_hash] = blk
        meta = self.metadata
        header_json = blk["block"]["header"]
        summary = await self.summary(header_json)
        xts = []
        for i, raw in enumerate(blk["block"]["extrinsics"]):
            try:
                xts.append(meta.extrinsic(i, from_hex(raw, "extrinsic")))
            except (DecodeError, ValueError):
                continue
        events_raw = await self.rpc.call(
            "state_getStorage", to_hex(meta.storage_key("System", "Events")), to_hex(block_hash)
        )
        events = meta.events(None if events_raw is None else from_hex(events_raw, "events"))
        apply_outcomes(xts, events)
        fin_hash = from_hex(await self.rpc.call("chain_getFinalizedHead"), "hash", 32)
        fin = header_from_json(await self.rpc.call("chain_getHeader", to_hex(fin_hash)))
        canonical = await self.rpc.call("chain_getBlockHash", summary.number)
        finalized = summary.number <= fin.number and canonical == to_hex(block_hash)
        header = {
            "number": summary.number,
            "hash": to_hex(block_hash),
            "parentHash": header_json["parentHash"],
            "stateRoot": header_json["stateRoot"],
            "extrinsicsRoot": header_json["extrinsicsRoot"],
            "slot": summary.slot,
            "author": self.label(summary.author),
            "seal": header_json["seal"],
            "digestLogs": len(header_json.get("digest", {}).get("logs", [])),
        }
        return BlockDetail(
            summary, header, xts, events, self._justification(blk.get("justifications")), finalized
        )

    def _justification(self, items: Any) -> JustificationInfo | None:
        for engine, data in items or []:
            try:
                j = GrandpaJustification.decode(from_hex(data, "justification"))
            except (CodecError, ValueError):
                continue
            voters = [
                Voter(v.voter, self.label(v.voter), v.target_number, v.target_hash)
                for v in j.precommits
            ]
            del engine
            return JustificationInfo(j.round, j.set_id, j.block[1], j.block[0], voters)
        return None

    # -- search
    async def search(self, text: str, recent: list[bytes] | None = None) -> SearchResult:
        """A block number, ``twin N``, a block or extrinsic hash, or an account."""
        q = text.strip()
        if not q:
            return SearchResult("none", message="type a block number, hash, account or twin N")
        m = re.fullmatch(r"(?:twin|t)\s*[:#]?\s*(\d+)", q, re.IGNORECASE)
        if m:
            tid = int(m.group(1))
            eq = await self.rpc.call("twin_equipment", tid)
            if eq is None:
                return SearchResult("none", message=f"no twin {tid}")
            return SearchResult("twin", twin=tid, data=eq)
        if re.fullmatch(r"#?\d+", q):
            n = int(q.lstrip("#"))
            if n >= 2**64:
                return SearchResult("none", message="block number out of range")
            h = await self.rpc.call("chain_getBlockHash", n)
            if h is None:
                return SearchResult("none", message=f"no block #{n}")
            return SearchResult("block", block=from_hex(h, "hash", 32))
        if re.fullmatch(r"0x[0-9a-fA-F]{64}", q):
            h = bytes.fromhex(q[2:])
            if await self.raw_block(h) is not None:
                return SearchResult("block", block=h)
            found = await self.find_extrinsic(h, recent or [])
            if found is not None:
                return SearchResult("extrinsic", block=found[0], extrinsic=found[1])
        try:
            who = parse_account(q)
        except (InvalidKey, ValueError):
            return SearchResult("none", message=f"nothing found for {q!r}")
        return SearchResult("account", account=who, data=await self.account(who))

    async def find_extrinsic(self, xt_hash: bytes, recent: list[bytes]) -> tuple[bytes, int] | None:
        """Scan cached blocks, then back from the best block, for an extrinsic hash."""
        meta = self.metadata
        seen: set[bytes] = set()

        def scan(block_hash: bytes, blk: dict[str, Any]) -> int | None:
            for i, raw in enumerate(blk["block"]["extrinsics"]):
                try:
                    if meta.extrinsic(i, from_hex(raw, "xt")).hash == xt_hash:
                        return i
                except (DecodeError, ValueError):
                    continue
            return None

        for h in [*recent, *list(self._raw_blocks)]:
            blk = self._raw_blocks.get(h)
            if blk is None or h in seen:
                continue
            seen.add(h)
            i = scan(h, blk)
            if i is not None:
                return h, i
        best = header_from_json(await self.rpc.call("chain_getHeader"))
        n = best.number
        while n >= 0 and best.number - n < SEARCH_DEPTH:
            h_hex = await self.rpc.call("chain_getBlockHash", n)
            n -= 1
            if h_hex is None:
                continue
            h = from_hex(h_hex, "hash", 32)
            if h in seen:
                continue
            blk = await self.raw_block(h)
            if blk is not None:
                i = scan(h, blk)
                if i is not None:
                    return h, i
        return None

    async def account(self, who: bytes) -> dict[str, Any]:
        hexed = to_hex(who)
        out: dict[str, Any] = {"address": encode_address(who), "label": self.label(who)}
        out["nonce"] = await self.rpc.call("system_accountNextIndex", hexed)
        has_balances = self._has("Balances", "Account")
        out["balance"] = await self.storage("Balances", "Account", who) if has_balances else None
        out["roles"] = [r.get("role") for r in await self.rpc.call("twin_roles", hexed)]
        out["twins"] = await self.rpc.call("twin_equipmentOf", hexed)
        return out

    def _has(self, pallet: str, item: str) -> bool:
        try:
            self.metadata.storage_meta(pallet, item)
        except DecodeError:
            return False
        return True

    # -- node
    async def status(self) -> dict[str, Any]:
        health = await self.rpc.call("system_health")
        pending = await self.rpc.call("author_pendingExtrinsics")
        return {"peers": health.get("peers", 0), "ready": len(pending), "health": health}

    async def node_info(self) -> dict[str, Any]:
        calls = {
            "name": ("system_name",),
            "version": ("system_version",),
            "chain": ("system_chain",),
            "chainType": ("system_chainType",),
            "roles": ("system_nodeRoles",),
            "peerId": ("system_localPeerId",),
            "listen": ("system_localListenAddresses",),
            "health": ("system_health",),
            "sync": ("system_syncState",),
            "runtime": ("state_getRuntimeVersion",),
        }
        out: dict[str, Any] = {}
        for key, (method, *params) in calls.items():
            try:
                out[key] = await self.rpc.call(method, *params)
            except RpcError as exc:
                out[key] = f"({exc.message})"
        out["genesis"] = None if self.genesis is None else to_hex(self.genesis)
        out["slotMs"] = self.slot_ms
        return out

    async def peers(self) -> list[dict[str, Any]]:
        """system_peers is an unsafe method: NotAvailable from a remote explorer."""
        peers = await self.optional("system_peers")
        return list(peers or [])

    # -- twin domain
    async def facilities(self) -> list[dict[str, Any]]:
        return list(await self.rpc.call("twin_facilities"))

    async def facility(self, fid: int) -> dict[str, Any] | None:
        return await self.rpc.call("twin_facility", fid)  # type: ignore[no-any-return]

    async def onboarding(self, fid: int) -> dict[str, Any]:
        """A facility's way onto the network: its validator proposal (status Pending: the
        council has not approved; Approved: joins at the next session), its authorized nodes
        (base58 peer ids) and whether its validator key is in the authority set now."""
        proposal = await self.storage("Facility", "ValidatorProposals", fid)
        nodes = await self.storage("Facility", "Nodes", fid) or []
        auths = await self.storage("Authority", "Authorities") or []
        f = await self.rpc.call("twin_facility", fid)
        key = None if f is None else encode_address(from_hex(f["validator"], "validator", 32))
        return {
            "proposal": proposal,
            "nodes": [peer_id_text(from_hex(n, "peer id")) for n in nodes],
            "authority": key in auths,
        }

    async def motions(self) -> list[dict[str, Any]]:
        """The council's open motions (decoded: call name, ayes, nays, threshold, end) with
        the ayes each needs among the members now."""
        members = await self.storage("Council", "Members") or []
        out = []
        for i in await self.storage("Council", "Open") or []:
            m = await self.storage("Council", "Motions", i)
            if m is not None:
                need = required_votes(m["threshold"], len(members))
                out.append({"index": i, "need": need, **m})
        return out

    async def twins(self, limit: int = 200) -> list[dict[str, Any]]:
        count = await self.storage("Equipment", "NextTwinId")
        out = []
        for tid in range(min(int(count or 0), limit)):
            t = await self.rpc.call("twin_equipment", tid)
            if t is not None:
                out.append(t)
        return out

    async def twin(self, tid: int) -> dict[str, Any] | None:
        return await self.rpc.call("twin_equipment", tid)  # type: ignore[no-any-return]

    async def aggregates(self, tid: int, metric: int | None = None) -> list[dict[str, Any]]:
        params: list[Any] = [tid] if metric is None else [tid, metric]
        return list(await self.rpc.call("twin_telemetryAggregates", *params))

    async def metrics(self) -> dict[int, dict[str, Any]]:
        return {m["id"]: m for m in await self.rpc.call("twin_metrics")}

    @property
    def identity(self) -> str | None:
        """Whom private reads are asked as, for people (None: no identity given)."""
        if self.key is not None:
            return self.label(self.key.public)
        return "an API key" if self.api_key else None

    async def public_metrics(self, tid: int) -> set[int]:
        """The metrics the twin's owner makes public (every metric on an older node)."""
        try:
            return set((await self.optional("twin_disclosure", tid))["public"])
        except NotAvailable:
            return set(await self.metrics())

    async def private_means(
        self, tid: int, metric: int, window_ms: int, since_ms: int, until_ms: int
    ) -> list[int]:
        """Window means of a private metric from the raw readings the node's archive serves
        to this identity, each verified against its batch root (AccessDenied: the chain does
        not let it read them; NodeUnavailable: not connected)."""
        client = self.rpc.client
        if client is None:
            raise NodeUnavailable("not connected to the node")
        try:
            client.info  # noqa: B018  # the metadata the proofs are checked with
        except ClientError:
            await client.refresh()
        found = await client.readings(
            tid, metric, since_ms, until_ms, key=self.key, api_key=self.api_key
        )
        sums: dict[int, list[int]] = {}
        for r in found:
            acc = sums.setdefault(r.timestamp - r.timestamp % window_ms, [0, 0])
            acc[0] += r.value
            acc[1] += 1
        return [total // n for _, (total, n) in sorted(sums.items())]


class _suppress_bad_hex:
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        return exc_type is not None and issubclass(exc_type, ValueError | KeyError | TypeError)
