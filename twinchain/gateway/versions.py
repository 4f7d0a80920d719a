"""The runtime version the gateway signs for, across runtime upgrades.

An extrinsic's signature covers the runtime spec version of the block that includes it. A
scheduled upgrade (``System.schedule_upgrade``: spec N from block H) switches it: from the
moment block H - 1 is the best block, the node's pool checks signatures against N and refuses
what was signed for the old version as ``Invalid:BadProof``.

The *version watch* (one task per connection) reads the version the next block runs with
(the best block's version and the upgrade its state schedules, as the node's
``Blockchain.next_spec_version``) after each new best block, on each
``chain_subscribeRuntimeVersion`` notification and after any ``Invalid:BadProof`` refusal.
When it changed, the packer signs for the new one from then on, the spool remembers it, the
metadata is read again once the best block runs it, and the unsettled extrinsics signed for
the old version whose nonce the best chain has not used are signed again with the same nonce
and batches (:meth:`.submission.Submitter.resign_stale`): stored, then sent. The change is said
once in the log. Nothing is lost or applied twice: one nonce, whichever signing of it the
chain takes, carries the same batches, each under its fixed sequence number.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from twinchain.client import AsyncClient, ClientError, is_method_not_found
from twinchain.client.common import upcoming_version
from twinchain.gateway.state import GatewayState
from twinchain.gateway.submission import Submitter
from twinchain.protocol.jsonrpc import RpcError, header_from_json, to_hex

log = logging.getLogger("twinchain.gateway")


class VersionWatch:
    def __init__(self, state: GatewayState, submitter: Submitter) -> None:
        self.state = state
        self.submitter = submitter
        self.recheck = asyncio.Event()
        self._head: Any = None  # the newest best head seen (JSON), read at the next check
        self.upgrades: list[tuple[int, int, int]] = []  # (from, to, best block) seen
        submitter.on_bad_proof = self.recheck.set

    def on_best(self, head: Any) -> None:
        """A new best head (from the head follower)."""
        self._head = head
        self.recheck.set()

    async def read(self, rpc: AsyncClient, head: Any = None) -> tuple[int, int, int]:
        """(best block number, its spec version, the version of the block after it)."""
        if head is None:
            head = await rpc.call("chain_getHeader")
        header = header_from_json(head)
        at = to_hex(header.hash)
        chain = self.state.chain
        try:
            key = chain.key("System", "ScheduledUpgrade")
        except ClientError:  # a runtime from before upgrades could be scheduled
            version = await rpc.call("state_getRuntimeVersion", at)
            return header.number, int(version["specVersion"]), int(version["specVersion"])
        version, raw = await rpc.batch(
            [("state_getRuntimeVersion", [at]), ("state_getStorage", [key, at])]
        )
        current = int(version["specVersion"])
        scheduled = chain.decode("System", "ScheduledUpgrade", raw)
        return header.number, current, upcoming_version(current, header.number, scheduled)

    async def check(self, rpc: AsyncClient, head: Any = None, *, send: bool = True) -> None:
        """Re-read the version to sign for; on a change switch to it and sign again what
        needs it (``send``: and send that at once). Run by :meth:`run`, and once on
        connecting, before everything unsettled is sent again."""
        s = self.state
        chain = s.chain
        assert s.spool is not None and chain.codec is not None
        number, current, upcoming = await self.read(rpc, head)
        if current != chain.codec.info.spec_version:
            # The best block runs another version than the metadata's: read it again.
            await rpc.refresh()
            chain.codec = rpc.codec
            probe = chain.codec.build_call("Telemetry", "submit", {"batches": []})
            chain.submit_index = (probe.pallet, probe.index)
        before = chain.spec_version
        if upcoming != before:
            chain.spec_version = upcoming
            await s.db(s.spool.set_meta, "spec_version", str(upcoming).encode())
        resigned = await self.submitter.resign_stale(rpc, send=send)
        if upcoming != before and before:
            self.upgrades.append((before, upcoming, number))
            log.warning(
                "runtime upgrade: the block after #%d runs spec version %d (was %d): signing "
                "for %d from now on; %d unsettled extrinsics signed again for it (same nonces, "
                "same batches)",
                number,
                upcoming,
                before,
                upcoming,
                len(resigned),
            )
        elif resigned:
            log.info(
                "%d unsettled extrinsics were signed for another spec version than %d: "
                "signed again (same nonces, same batches)",
                len(resigned),
                upcoming,
            )

    async def run(self, rpc: AsyncClient) -> None:
        """The version watch task, for one connection."""
        try:
            await rpc.subscribe(
                "chain_subscribeRuntimeVersion",
                sink=lambda _: self.recheck.set(),
                unsubscribe="chain_unsubscribeRuntimeVersion",
            )
        except RpcError as exc:  # a node from before runtime upgrades: best heads will do
            if not is_method_not_found(exc):
                raise
        while True:
            await self.recheck.wait()
            self.recheck.clear()
            head, self._head = self._head, None
            await self.check(rpc, head)


__all__ = ["VersionWatch"]
