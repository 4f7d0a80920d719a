"""The blocking client: calls over httpx (``twinchain.rpc.client.RpcClient``, keep-alive).

Never call it from a trio task of the thread that serves the node: it blocks that thread.
``submit_and_watch`` runs a short private trio loop for its WebSocket, so it too must be
called outside a running trio loop (use ``trio.to_thread.run_sync`` from trio code).
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import trio

from twinchain.client.aio import collect_statuses, http_url
from twinchain.client.common import (
    ChainInfo,
    ClientError,
    Codec,
    TxStatus,
    WatchTimeout,
    check_read,
    checked_header,
)
from twinchain.primitives.keys import Keypair
from twinchain.primitives.types import Call, Era, Extrinsic
from twinchain.protocol.jsonrpc import from_hex, to_hex
from twinchain.rpc.client import RpcClient


class Client:
    """Connects on construction: fetches and caches metadata, genesis hash and version."""

    def __init__(self, url: str = "127.0.0.1:9944", *, timeout: float = 10.0) -> None:
        self.url = http_url(url)
        self.rpc = RpcClient(self.url, timeout=timeout)
        self.codec = self._fetch()

    def close(self) -> None:
        self.rpc.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def call(self, method: str, *params: Any) -> Any:
        return self.rpc.call(method, *params)

    def _fetch(self) -> Codec:
        genesis = from_hex(self.call("chain_getBlockHash", 0), "genesis hash", 32)
        version = self.call("state_getRuntimeVersion")
        metadata = self.call("state_getMetadata")
        return Codec(ChainInfo(genesis, version, metadata))

    def refresh(self) -> ChainInfo:
        """Re-read the chain info (after a runtime upgrade)."""
        self.codec = self._fetch()
        return self.codec.info

    @property
    def info(self) -> ChainInfo:
        return self.codec.info

    def call_function(self, pallet: str, call: str, **args: Any) -> Call:
        """Build ``pallet.call(**args)`` from the node's metadata. Argument values are encoded
        with the local runtime's types (``Runtime.call_by_name``), which needs the node's
        specVersion to equal the local one: VersionMismatch otherwise."""
        return self.codec.build_call(pallet, call, args)

    # -- extrinsics
    def sign(
        self, call: Call, keypair: Keypair, *, tip: int = 0, era: Era | None = None
    ) -> Extrinsic:
        """Sign with the next nonce (chain plus pool); a mortal era is born at the best block."""
        nonce = self.rpc.next_index(keypair.public)
        birth_hash = None
        if era is not None and not era.is_immortal:
            best = self.rpc.header()
            if best is None:
                raise ClientError("the node has no best header")
            birth_hash = self.rpc.block_hash(era.birth(best.number))
        info = self.info
        return Extrinsic.sign(
            call,
            keypair,
            nonce,
            info.genesis_hash,
            info.spec_version,
            tip=tip,
            era=era,
            birth_hash=birth_hash,
        )

    def sign_and_submit(
        self, call: Call, keypair: Keypair, *, tip: int = 0, era: Era | None = None
    ) -> bytes:
        """Sign and submit; returns the extrinsic hash."""
        return self.rpc.submit(self.sign(call, keypair, tip=tip, era=era).encode())

    def submit_and_watch(
        self,
        call: Call | Extrinsic,
        keypair: Keypair | None = None,
        *,
        tip: int = 0,
        era: Era | None = None,
        timeout: float = 60.0,
    ) -> list[TxStatus]:
        """Submit and block until a final status (or WatchTimeout after ``timeout`` seconds);
        returns every status seen, the final one last."""
        if isinstance(call, Extrinsic):
            xt = call
        elif keypair is None:
            raise ClientError("a Call needs a keypair to sign it")
        else:
            xt = self.sign(call, keypair, tip=tip, era=era)
        try:
            return trio.run(collect_statuses, self.url, xt, timeout)
        except trio.TooSlowError:
            raise WatchTimeout(f"no final status within {timeout}s") from None

    # -- storage
    def read_storage(
        self, pallet: str, item: str, *keys: Any, at: bytes | None = None, verify: bool = True
    ) -> Any:
        """Read and decode ``pallet.item[keys]`` at ``at`` (default: the finalized head).
        With ``verify`` the value is checked against a read proof and the state root of that
        block's header; ProofMismatch if anything disagrees."""
        key = self.codec.storage_key(pallet, item, keys)
        if at is None:
            at = self.rpc.finalized_head()
        value_json = self.call("state_getStorage", to_hex(key), to_hex(at))
        if not verify:
            raw = None if value_json is None else from_hex(value_json, "storage value")
            return self.codec.decode_value(pallet, item, raw)
        header = checked_header(at, self.call("chain_getHeader", to_hex(at)))
        proof = self.call("state_getReadProof", [to_hex(key)], to_hex(at))
        return self.codec.decode_value(pallet, item, check_read(key, header, proof, value_json))
