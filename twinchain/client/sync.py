"""The blocking clients, over HTTP (httpx, keep-alive).

:class:`RpcClient` makes JSON-RPC calls (tests, the devnet and tools use it);
:class:`Client` adds the chain's metadata on top: calls built by name, signing, watching
to finality, proof-checked storage reads and events, with the same plans as the asyncio
client (:mod:`twinchain.client.plans`).

Never call them from a task of the event loop that serves the node: they block that thread.
``submit_and_watch`` runs a short private asyncio loop for its WebSocket, so it too must be
called outside a running event loop (from trio code, use ``trio.to_thread.run_sync``).
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from twinchain.client import plans
from twinchain.client.aio import AsyncClient
from twinchain.client.common import (
    DEFAULT_URL,
    ChainInfo,
    ClientError,
    Codec,
    Delivery,
    Reading,
    TxStatus,
    WatchTimeout,
    batch_results,
    http_url,
    is_bad_proof,
    request,
    result_of,
    tls_context,
)
from twinchain.primitives.keys import Keypair
from twinchain.primitives.types import Call, Era, Extrinsic, Header
from twinchain.protocol.jsonrpc import SERVER_ERROR, RpcError, from_hex, header_from_json, to_hex
from twinchain.protocol.telemetry import Batch


class RpcClient:
    """JSON-RPC calls over HTTP. ``call`` raises :class:`RpcError` for an error response (and
    for an HTTP error status, with code -32000 and the status in ``data``); a node that cannot
    be reached raises httpx's ``TransportError`` (``ConnectError``, ``ReadTimeout``...) so
    callers can retry on those. An https URL is checked against ``ca_file`` (PEM) if given,
    else the system's trusted authorities."""

    def __init__(
        self, url: str = DEFAULT_URL, *, timeout: float = 10.0, ca_file: str | Path | None = None
    ) -> None:
        self.url = http_url(url)
        ctx = tls_context(ca_file)
        self._http = httpx.Client(timeout=timeout, verify=True if ctx is None else ctx)
        self._ids = itertools.count(1)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RpcClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- raw calls
    def call(self, method: str, *params: Any) -> Any:
        """Call ``method`` with positional ``params``; return its result or raise RpcError."""
        rid = next(self._ids)
        return result_of(self._post(request(rid, method, params)), rid)

    def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """Several calls in one request; results in the order of ``calls``. An error in any
        call raises its RpcError (after the whole batch ran)."""
        if not calls:
            return []
        ids = [next(self._ids) for _ in calls]
        reqs = [request(i, m, p) for i, (m, p) in zip(ids, calls, strict=True)]
        return batch_results(self._post(reqs), ids)

    def _post(self, payload: Any) -> Any:
        resp = self._http.post(self.url, json=payload)
        if resp.status_code == 204:
            return None
        try:
            body = resp.json()
        except ValueError:
            body = None
        if resp.status_code != 200:
            if isinstance(body, dict) and isinstance(body.get("error"), dict):
                raise RpcError.from_json(body["error"])
            raise RpcError(SERVER_ERROR, f"HTTP {resp.status_code}", {"status": resp.status_code})
        if body is None:
            raise RpcError(SERVER_ERROR, "response is not JSON")
        return body

    # -- helpers
    def submit(self, xt: bytes) -> bytes:
        """author_submitExtrinsic; returns the extrinsic hash."""
        return from_hex(self.call("author_submitExtrinsic", to_hex(xt)), "hash", 32)

    def header(self, block_hash: bytes | None = None) -> Header | None:
        """The header of ``block_hash`` (default: best), None if unknown."""
        d = self.call("chain_getHeader", *([] if block_hash is None else [to_hex(block_hash)]))
        return None if d is None else header_from_json(d)

    def finalized_head(self) -> bytes:
        return plans.run(plans.finalized_head(), self.call)

    def block_hash(self, number: int | None = None) -> bytes | None:
        """Canonical hash at ``number`` (default: best), None if there is no such block."""
        h = self.call("chain_getBlockHash", *([] if number is None else [number]))
        return None if h is None else from_hex(h, "hash", 32)

    def storage(self, key: bytes, at: bytes | None = None) -> bytes | None:
        params = [to_hex(key)] + ([] if at is None else [to_hex(at)])
        v = self.call("state_getStorage", *params)
        return None if v is None else from_hex(v, "storage value")

    def next_index(self, account: bytes) -> int:
        """The nonce the account's next transaction should use (chain plus pool)."""
        n = self.call("system_accountNextIndex", to_hex(account))
        if type(n) is not int:
            raise RpcError(SERVER_ERROR, "system_accountNextIndex did not return an integer")
        return n


class Client:
    """Connects on construction: fetches and caches metadata, genesis hash and version.
    ``ca_file``: the PEM authority of an https/wss node's certificate."""

    def __init__(
        self, url: str = DEFAULT_URL, *, timeout: float = 10.0, ca_file: str | Path | None = None
    ) -> None:
        self.rpc = RpcClient(url, timeout=timeout, ca_file=ca_file)
        self.url = self.rpc.url
        self.ca_file = ca_file
        self.codec = Codec(self._run(plans.chain_info()))

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

    def _run(self, plan: plans.Plan[Any]) -> Any:
        return plans.run(plan, self.call)

    def refresh(self) -> ChainInfo:
        """Re-read the chain info (after a runtime upgrade)."""
        self.codec = Codec(self._run(plans.chain_info()))
        return self.codec.info

    def refresh_version(self) -> bool:
        """Re-read the runtime version (after ``Invalid:BadProof``, or when told of an
        upgrade): the metadata again if the best block runs another version than the one
        cached, and the version the next block runs, which what this client signs from now
        on names. True if that changed (said once in the log)."""
        before = self.info.signing_version
        current, upcoming = self._run(plans.next_spec_version(self.codec))
        if current != self.info.spec_version:
            self.refresh()
        return self.info.adopt_next_version(upcoming, before)

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
        xt: Extrinsic = self._run(plans.sign(self.info, call, keypair, tip=tip, era=era))
        return xt

    def sign_and_submit(
        self, call: Call, keypair: Keypair, *, tip: int = 0, era: Era | None = None
    ) -> bytes:
        """Sign and submit; returns the extrinsic hash. Refused as ``Invalid:BadProof``
        after a runtime upgrade changed the version to sign, it is signed again once."""
        try:
            return self.rpc.submit(self.sign(call, keypair, tip=tip, era=era).encode())
        except RpcError as exc:
            if not (is_bad_proof(exc) and self.refresh_version()):
                raise
        return self.rpc.submit(self.sign(call, keypair, tip=tip, era=era).encode())

    def sign_and_watch(
        self,
        call: Call,
        keypair: Keypair,
        *,
        tip: int = 0,
        era: Era | None = None,
        timeout: float = 60.0,
    ) -> tuple[Extrinsic, list[TxStatus]]:
        """Sign, submit and block until a final status: the extrinsic sent and every status
        seen. Refused as ``Invalid:BadProof`` after a runtime upgrade changed the version to
        sign, it is signed again (for the new version, with the nonce then next) once."""
        xt = self.sign(call, keypair, tip=tip, era=era)
        try:
            return xt, self._watch(xt, timeout)
        except RpcError as exc:
            if not (is_bad_proof(exc) and self.refresh_version()):
                raise
        xt = self.sign(call, keypair, tip=tip, era=era)
        return xt, self._watch(xt, timeout)

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
        returns every status seen, the final one last. A Call (signed here) refused as
        ``Invalid:BadProof`` after a runtime upgrade is signed again once (see
        :meth:`sign_and_watch`); a signed Extrinsic's refusal is raised, the version to sign
        re-read first."""
        if not isinstance(call, Extrinsic):
            if keypair is None:
                raise ClientError("a Call needs a keypair to sign it")
            return self.sign_and_watch(call, keypair, tip=tip, era=era, timeout=timeout)[1]
        try:
            return self._watch(call, timeout)
        except RpcError as exc:
            if is_bad_proof(exc):
                self.refresh_version()  # what is signed next names the right version
            raise

    def _watch(self, xt: Extrinsic, timeout: float) -> list[TxStatus]:
        try:
            return asyncio.run(_collect_statuses(self.url, xt, timeout, self.ca_file))
        except TimeoutError:
            raise WatchTimeout(f"no final status within {timeout}s") from None

    # -- storage
    def read_storage(
        self, pallet: str, item: str, *keys: Any, at: bytes | None = None, verify: bool = True
    ) -> Any:
        """Read and decode ``pallet.item[keys]`` at ``at`` (default: the finalized head).
        With ``verify`` the value is checked against a read proof and the state root of that
        block's header; ProofMismatch if anything disagrees."""
        return self._run(plans.read_storage(self.codec, pallet, item, keys, at=at, verify=verify))

    def events(self, at: bytes) -> list[dict[str, Any]]:
        """The events of block ``at``, decoded with the local runtime's types."""
        found: list[dict[str, Any]] = self._run(plans.events(self.codec, at))
        return found

    # -- the facility archive
    def readings(
        self,
        twin: int,
        metric: int,
        from_ms: int,
        to_ms: int,
        *,
        key: Keypair | None = None,
        api_key: str | None = None,
    ) -> list[Reading]:
        """The twin's raw readings of ``metric`` in ``[from_ms, to_ms]`` from this node's
        archive, asked as ``key``'s account or with ``api_key``, each verified against its
        batch's finalized record, read with a state proof (see :func:`plans.readings`)."""
        plan = plans.readings(self.codec, twin, metric, from_ms, to_ms, key=key, api_key=api_key)
        found: list[Reading] = self._run(plan)
        return found

    def put_document(
        self, twin: int, content: bytes, *, key: Keypair | None = None, api_key: str | None = None
    ) -> bytes:
        """Keep a document of ``twin`` in this node's archive; its hash (see
        :func:`plans.put_document`)."""
        digest: bytes = self._run(
            plans.put_document(self.info, twin, content, key=key, api_key=api_key)
        )
        return digest

    def document(
        self, twin: int, digest: bytes, *, key: Keypair | None = None, api_key: str | None = None
    ) -> bytes:
        """A document of ``twin`` by hash, checked against it (see :func:`plans.document`)."""
        content: bytes = self._run(
            plans.document(self.info, twin, digest, key=key, api_key=api_key)
        )
        return content

    def deliver(self, batches: list[Batch], gateway_key: Keypair) -> list[Delivery]:
        """Deliver signed device batches to this node's archive as the gateway."""
        found: list[Delivery] = self._run(plans.deliver(self.info, batches, gateway_key))
        return found


async def _collect_statuses(
    url: str, xt: Extrinsic, timeout: float, ca_file: str | Path | None = None
) -> list[TxStatus]:
    """Submit ``xt`` over a WebSocket and gather its statuses up to a final one."""
    out: list[TxStatus] = []
    async with asyncio.timeout(timeout):
        client = await AsyncClient(url, timeout=timeout, ca_file=ca_file).connect()
        try:
            async with client.submit_and_watch(xt) as statuses:
                async for status in statuses:
                    out.append(status)
        finally:
            await client.close()
    return out


__all__ = ["Client", "RpcClient"]
