"""The node service: one trio nursery that owns every task of a running node.

Tasks: the Aura authoring loop (validators), the JSON-RPC server, and the status line. SIGINT
and SIGTERM cancel the nursery; the database is closed after every task has stopped, so a
clean stop and a SIGKILL both leave a consistent database (every block is one atomic batch).
"""

from __future__ import annotations

import logging
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import trio

from twinchain import __version__
from twinchain.consensus import aura
from twinchain.node.chain_spec import ChainSpec
from twinchain.node.client import BlockImportError, Client
from twinchain.node.keystore import Keystore
from twinchain.node.txpool import TransactionPool
from twinchain.primitives.keys import Keypair
from twinchain.runtime.executive import InvalidBlock, InvalidTransaction

log = logging.getLogger("twinchain.node")

# Share of a slot an author may spend applying transactions before it seals.
PROPOSE_SHARE = 0.5


@dataclass
class NodeConfig:
    spec: ChainSpec
    base_path: Path | None = None
    name: str = "twinchain-node"
    validator: bool = False
    author_key: Keypair | None = None
    port: int = 30333
    bootnodes: list[str] = field(default_factory=list)
    rpc_host: str = "127.0.0.1"
    rpc_port: int | None = 9944
    rpc_unsafe: bool = False
    rpc_cors: list[str] = field(default_factory=list)
    pruning: int | None = 256


class Node:
    """A running node. Satisfies ``twinchain.rpc.api.NodeHandle``."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        base = config.base_path
        if base is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="twinchain-")
            base = Path(self._tmp.name)
        self.base_path = base
        self.client = Client(config.spec, base, pruning=config.pruning)
        self.keystore = Keystore(base / "chains" / config.spec.id / "keystore")
        self.pool = TransactionPool(
            self.client.validate_transaction, best_number=self.client.best.number
        )
        self.name = config.name
        self.version = __version__
        self.is_syncing = False
        self.peers: list[dict[str, object]] = []
        self.local_peer_id = ""
        self.listen_addresses: list[str] = []
        self.rpc_port: int | None = None
        self.author_key = config.author_key
        if config.validator and self.author_key is None:
            keys = self.keystore.keys("aura")
            if not keys:
                raise SystemExit(
                    "--validator needs an 'aura' key in the keystore (twinchain key insert)"
                )
            self.author_key = keys[0]

    @property
    def roles(self) -> list[str]:
        return ["Authority"] if self.config.validator else ["Full"]

    def submit_extrinsic(self, raw: bytes) -> bytes:
        return self.pool.submit(raw)

    # ------------------------------------------------------------------ tasks
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._signals, nursery.cancel_scope)
                if self.config.rpc_port is not None:
                    from twinchain.rpc.server import serve_rpc

                    self.rpc_port = await nursery.start(
                        lambda task_status: serve_rpc(
                            self,
                            self.config.rpc_host,
                            self.config.rpc_port,  # type: ignore[arg-type]
                            unsafe=self.config.rpc_unsafe,
                            cors=self.config.rpc_cors or None,
                            task_status=task_status,
                        )
                    )
                if self.config.validator:
                    nursery.start_soon(self._author_loop)
                log.info(
                    "node %s ready: chain %s, best #%d, rpc %s",
                    self.name,
                    self.config.spec.name,
                    self.client.best.number,
                    self.rpc_port,
                )
                task_status.started()
        finally:
            self.close()

    def close(self) -> None:
        self.client.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    async def _signals(self, scope: trio.CancelScope) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for sig in signals:
                log.info("received %s, shutting down", signal.Signals(sig).name)
                scope.cancel()
                return

    async def _author_loop(self) -> None:
        assert self.author_key is not None
        duration = self.client.slot_duration()
        last_slot = self.client.best.slot
        while True:
            now = aura.now_ms()
            slot = now // duration
            if slot <= last_slot:
                await trio.sleep(((slot + 1) * duration - now) / 1000)
                continue
            last_slot = slot
            auths = self.client.authorities_at(self.client.best.hash)
            if aura.slot_author(auths, slot) != self.author_key.public:
                continue
            # The slot's start time: always a whole slot after the previous block's timestamp,
            # however late in its slot that block was authored (e.g. before a restart).
            try:
                self.author_block(slot, slot * duration)
            except (InvalidBlock, InvalidTransaction, BlockImportError) as exc:
                log.error("could not author a block in slot %d: %s", slot, exc)
            await trio.sleep(0)

    def author_block(self, slot: int, now_ms: int) -> None:
        """Build, import and (on a single-authority chain) finalize a block for ``slot``."""
        assert self.author_key is not None
        deadline = time.monotonic() + self.client.slot_duration() * PROPOSE_SHARE / 1000

        ready = self.pool.ready()
        invalid: list[bytes] = []

        def on_invalid(h: bytes, exc: InvalidTransaction) -> None:
            ready.report_invalid(h)  # its dependants are skipped for this block
            invalid.append(h)

        block, result = self.client.propose(
            self.author_key,
            slot,
            now_ms,
            ready,
            verified=self.pool.contains,
            on_invalid=on_invalid,
            deadline=deadline,
        )
        self.pool.remove(invalid)
        self.pool.prune([o.hash for o in result.outcomes], number=result.number)
        self.pool.revalidate()
        finalized = self.client.self_finalize(self.author_key, result.hash)
        log.info(
            "✨ authored #%d (0x%s…) slot %d: %d extrinsics in %.0f ms%s",
            result.number,
            result.hash.hex()[:12],
            slot,
            len(block.extrinsics),
            result.seconds * 1000,
            ", finalized" if finalized else "",
        )
