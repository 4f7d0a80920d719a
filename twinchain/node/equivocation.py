"""Equivocation evidence: two blocks of one slot by its author, or two different finality votes
of one kind by one voter in one round, put on chain through the Authority pallet's report calls
(signed by this node's key; a node without one only notices)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from twinchain.consensus.rounds import Equivocation
from twinchain.node.blockchain import Blockchain
from twinchain.node.txpool import PoolError
from twinchain.primitives.keys import Keypair
from twinchain.primitives.types import Extrinsic, Header

log = logging.getLogger("twinchain.node")

#: Slots whose first header is remembered (halved when exceeded).
SLOT_HEADERS_MAX = 1024


class EquivocationReporter:
    """Notices equivocations and submits each once, through ``submit`` (the node's own
    transaction path: pool and gossip)."""

    def __init__(
        self, chain: Blockchain, keypair: Keypair | None, submit: Callable[[bytes], bytes]
    ) -> None:
        self.chain = chain
        self.keypair = keypair
        self._submit_extrinsic = submit
        self._slot_headers: dict[int, Header] = {}
        self._reported: set[bytes] = set()

    def check_slot(self, header: Header) -> None:
        """An imported header: report it if its slot already has another block."""
        seen = self._slot_headers.get(header.slot)
        if seen is None:
            self._slot_headers[header.slot] = header
            if len(self._slot_headers) > SLOT_HEADERS_MAX:
                for s in sorted(self._slot_headers)[: SLOT_HEADERS_MAX // 2]:
                    del self._slot_headers[s]
        elif seen.hash != header.hash:
            self._submit_report(
                "report_block_equivocation", seen.encode(), header.encode(), key=seen.hash
            )

    def report_votes(self, ev: Equivocation) -> None:
        """Two different votes of one voter, kind and round, found by the finality voter."""
        self._submit_report(
            "report_vote_equivocation",
            ev.first.encode(),
            ev.second.encode(),
            key=ev.first.signature,
        )

    def _submit_report(self, call_name: str, first: bytes, second: bytes, key: bytes) -> None:
        """Put equivocation evidence on chain, signed by this node's key (if it has one)."""
        if self.keypair is None or key in self._reported:
            return
        self._reported.add(key)
        rt = self.chain.runtime
        call = rt.call_by_name("Authority", call_name, *sorted([first, second]))
        state = self.chain.state_at()
        raw_info = state.get(rt.system.Account.key(self.keypair.public))
        nonce = 0 if raw_info is None else rt.system.Account.value_type.decode(raw_info).nonce
        for n in range(nonce, nonce + 16):
            # The version the next block runs (a scheduled upgrade's from its block on):
            # the pool checks the signature against it.
            xt = Extrinsic.sign(
                call, self.keypair, n, self.chain.genesis_hash, self.chain.next_spec_version()
            ).encode()
            try:
                self._submit_extrinsic(xt)
                log.warning("equivocation evidence submitted (%s)", call_name)
                return
            except PoolError as exc:
                if exc.code not in ("ReplacementUnderpriced", "AlreadyImported"):
                    log.warning("could not submit equivocation evidence: %s", exc)
                    return
