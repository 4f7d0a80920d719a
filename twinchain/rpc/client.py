"""A small synchronous JSON-RPC client over HTTP (httpx), for tests, the devnet and tools.

``call`` raises :class:`RpcError` for an error response (and for an HTTP error status, with
code -32000 and the status in ``data``); a node that cannot be reached raises httpx's
``TransportError`` (``ConnectError``, ``ReadTimeout``...) so callers can retry on those.
"""

from __future__ import annotations

import itertools
from types import TracebackType
from typing import Any

import httpx

from twinchain.primitives.types import Header
from twinchain.protocol.jsonrpc import SERVER_ERROR, RpcError, from_hex, header_from_json, to_hex

DEFAULT_URL = "http://127.0.0.1:9944"


class RpcClient:
    def __init__(self, url: str = DEFAULT_URL, *, timeout: float = 10.0) -> None:
        self.url = url
        self._http = httpx.Client(timeout=timeout)
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
        reply = self._post({"jsonrpc": "2.0", "id": rid, "method": method, "params": list(params)})
        return _result(reply, rid)

    def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """Several calls in one request; results in the order of ``calls``. An error in any
        call raises its RpcError (after the whole batch ran)."""
        if not calls:
            return []
        ids = [next(self._ids) for _ in calls]
        reqs = [
            {"jsonrpc": "2.0", "id": i, "method": m, "params": list(p)}
            for i, (m, p) in zip(ids, calls, strict=True)
        ]
        replies = self._post(reqs)
        if not isinstance(replies, list):
            return [_result(replies, None)]
        by_id = {r.get("id"): r for r in replies if isinstance(r, dict)}
        return [_result(by_id.get(i), i) for i in ids]

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
                raise _error(body["error"])
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
        return from_hex(self.call("chain_getFinalizedHead"), "hash", 32)

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


def _error(e: dict[str, Any]) -> RpcError:
    code = e.get("code")
    message = e.get("message")
    return RpcError(
        code if type(code) is int else SERVER_ERROR,
        message if isinstance(message, str) else "Server error",
        e.get("data"),
    )


def _result(reply: Any, rid: Any) -> Any:
    if not isinstance(reply, dict):
        raise RpcError(SERVER_ERROR, "no response for the request", {"id": rid})
    if isinstance(reply.get("error"), dict):
        raise _error(reply["error"])
    if "result" not in reply:
        raise RpcError(SERVER_ERROR, "malformed response", reply)
    return reply["result"]
