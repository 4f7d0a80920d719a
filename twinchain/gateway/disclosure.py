"""The twins' disclosure policies as the chain has them: which metrics a new batch of each
twin summarizes in public (``twin_disclosure``; ``DEFAULT_PUBLIC`` from a node that does not
know the method). Read on connecting and every ``policy_refresh_blocks`` finalized blocks;
a change applies to the batches cut after it (one the chain then refuses with ``NotPublic``
is signed again by the settler, see :mod:`.settlement`)."""

from __future__ import annotations

import json
import logging

from twinchain.client import AsyncClient
from twinchain.gateway.state import GatewayState
from twinchain.protocol.jsonrpc import RpcError
from twinchain.protocol.telemetry import DEFAULT_PUBLIC

log = logging.getLogger("twinchain.gateway")

METHOD_NOT_FOUND = -32601


class Disclosure:
    def __init__(self, state: GatewayState) -> None:
        self.state = state
        self.refreshed_at = -1  # the finalized block number of the last refresh
        self._unsupported_logged = False

    def due(self, number: int) -> bool:
        """Whether finalized block ``number`` is ``policy_refresh_blocks`` past the last read."""
        return number - self.refreshed_at >= self.state.b.policy_refresh_blocks

    async def refresh(
        self,
        rpc: AsyncClient,
        twins: set[int] | None = None,
        at: str | None = None,
        number: int | None = None,
    ) -> set[int]:
        """Read the policies of ``twins`` (all configured ones by default) at block ``at``
        (the best block when None); the twins whose policy changed."""
        s = self.state
        twins = set(s.policy) if twins is None else twins
        order = sorted(twins)
        try:
            params = [[t] if at is None else [t, at] for t in order]
            answers = await rpc.batch([("twin_disclosure", p) for p in params])
        except RpcError as exc:
            if exc.code != METHOD_NOT_FOUND:
                raise
            if not self._unsupported_logged:
                self._unsupported_logged = True
                log.warning("the node has no twin_disclosure: using the default policy")
            answers = [{"public": sorted(DEFAULT_PUBLIC)} for _ in order]
        changed = set()
        for twin, a in zip(order, answers, strict=True):
            public = frozenset(int(m) for m in (a or {}).get("public", DEFAULT_PUBLIC))
            if s.policy.get(twin) != public:
                if twin in s.policy:
                    log.info(
                        "twin %d: public metrics now %s (new batches summarize these)",
                        twin,
                        sorted(public),
                    )
                changed.add(twin)
                s.policy[twin] = public
        if number is not None:
            self.refreshed_at = max(self.refreshed_at, number)
        if changed and s.spool is not None:
            blob = json.dumps({t: sorted(p) for t, p in s.policy.items()}).encode()
            await s.db(s.spool.set_meta, "policy", blob)
        return changed

    def load(self, blob: bytes | None) -> None:
        """The policies a previous run stored (cutting goes on offline with them)."""
        if blob:
            for t, ms in json.loads(blob).items():
                if int(t) in self.state.policy:
                    self.state.policy[int(t)] = frozenset(ms)


__all__ = ["Disclosure"]
