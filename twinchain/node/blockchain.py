"""The chain: the chain database, the runtime, block building and block import in one place.

It is synchronous (plain method calls); the node's trio tasks call it. Every state-changing
method ends in one atomic WriteBatch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from twinchain.consensus import aura
from twinchain.consensus.proofs import (
    GrandpaJustification,
    JustificationError,
    encode_justification,
)
from twinchain.native.merkle import merkle_root
from twinchain.node.chain_spec import ChainSpec
from twinchain.primitives.codec import CodecError
from twinchain.primitives.finality import PRECOMMIT, SignedVote
from twinchain.primitives.keys import Keypair
from twinchain.primitives.types import Block, Header, extrinsic_hash
from twinchain.runtime.executive import (
    ApplyOutcome,
    Executive,
    InvalidBlock,
    InvalidTransaction,
    UnsupportedRuntime,
    ValidTransaction,
)
from twinchain.runtime.migrations import LEGACY_SPEC_VERSION
from twinchain.runtime.pallets.system import UpgradeSchedule
from twinchain.runtime.runtime import Runtime
from twinchain.storage.abc import KeyValueStore, StateReader, WriteBatch
from twinchain.storage.blockstore import BlockStore, ChainStoreError
from twinchain.storage.kv import LevelDBStore, MemoryStore
from twinchain.storage.statedb import StateDB
from twinchain.storage.trie import StateError

log = logging.getLogger("twinchain.chain")

HALT_REMINDER_S = 60.0


class BlockImportError(Exception):
    """A block was not imported; ``reason``: known, stale (at or below the finalized height, or
    off the finalized chain), unknown-parent, future, unsupported-runtime (the block runs a
    spec version this software lacks: this node stops there) or invalid (only this one blames
    the sender)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass
class ImportResult:
    hash: bytes
    number: int
    is_best: bool
    finalized: bool
    outcomes: list[ApplyOutcome] = field(default_factory=list)
    seconds: float = 0.0


class Blockchain:
    """The chain of one node: database, runtime, import and authoring."""

    def __init__(
        self,
        spec: ChainSpec,
        base_path: str | Path | None,
        *,
        pruning: int | None = 256,
        blocks_pruning: int | None = None,
        kv: KeyValueStore | None = None,
    ) -> None:
        self.spec = spec
        if kv is None:
            if base_path is None:
                kv = MemoryStore()
            else:
                db = Path(base_path) / "chains" / spec.id / "db"
                db.mkdir(parents=True, exist_ok=True)
                kv = LevelDBStore(db)
        self.kv = kv
        self.statedb = StateDB(kv, pruning=pruning)
        self.blocks = BlockStore(kv, self.statedb, blocks_pruning=blocks_pruning)
        genesis = spec.genesis_block()
        self.genesis_hash = genesis.hash
        stored = self.blocks.genesis_hash
        if stored is None:
            update = self.statedb.prepare(b"\x00" * 32, spec.genesis_storage())
            if update.root != genesis.header.state_root:
                raise ChainStoreError("genesis state root mismatch")
            batch = WriteBatch()
            self.blocks.init_genesis(batch, genesis, update)
            self.blocks.commit(batch)
        elif stored != self.genesis_hash:
            raise ChainStoreError(
                f"database at {base_path} belongs to another chain "
                f"(genesis 0x{stored.hex()}, spec gives 0x{self.genesis_hash.hex()})"
            )
        self.runtime = Runtime(self.genesis_hash)
        self.executive = Executive(self.runtime)
        # Pool validation swaps the runtime's state and block context: give it its own, so a
        # validation can never land in the middle of a block being built or imported.
        self._pool_executive = Executive(Runtime(self.genesis_hash))
        self._preverified: set[bytes] = set()
        # (best hash, best number, state view) for pool validation, kept while the best
        # block stays: the pool validates every entry after each block, and the header
        # hash and state view are the same for all of them.
        self._pool_best: tuple[bytes, int, StateReader] | None = None
        self.import_listeners: list[Callable[[ImportResult, Block], None]] = []
        self.finality_listeners: list[Callable[[Header], None]] = []
        #: Set once this node meets a block it cannot run (a spec version its software
        #: lacks): it imports and authors nothing there (nor after: their parent is
        #: missing), and says what to install; it still serves the chain before it.
        self.upgrade_required: UnsupportedRuntime | None = None
        self._warned_schedule: UpgradeSchedule | None = None
        self._reminded = 0.0
        self._check_upgrade(self.best)

    def close(self) -> None:
        self.kv.close()

    # -- reads
    @property
    def best(self) -> Header:
        return self.blocks.best_header()

    @property
    def finalized(self) -> Header:
        return self.blocks.finalized_header()

    def state_at(self, block_hash: bytes | None = None) -> StateReader:
        h = self.blocks.header(block_hash or self.blocks.best_hash)
        if h is None:
            raise ChainStoreError("unknown block")
        return self.statedb.at(h.state_root)

    def descends_from(self, header: Header, ancestor: Header) -> bool:
        """Whether ``header`` is ``ancestor`` or one of its descendants."""
        if self.blocks.hash_at(ancestor.number) == ancestor.hash and (
            self.blocks.hash_at(header.number) == header.hash
        ):
            return True  # both on the canonical chain: no walk needed
        cur: Header | None = header
        while cur is not None and cur.number > ancestor.number:
            cur = self.blocks.header(cur.parent_hash)
        return cur is not None and cur.hash == ancestor.hash

    def authorities_at(self, block_hash: bytes) -> list[bytes]:
        """The authority set in force after ``block_hash``: the authors of its children."""
        return self._authorities(self.state_at(block_hash))

    def _authorities(self, state: StateReader) -> list[bytes]:
        """The authority set stored in ``state`` (through the runtime's storage layout)."""
        item = self.runtime.authority.Authorities
        raw = state.get(item.key())
        return [] if raw is None else item.value_type.decode(raw)

    def set_id_at(self, block_hash: bytes) -> int:
        """Index of the authority set in force after ``block_hash`` (finality votes name it)."""
        item = self.runtime.authority.SetId
        raw = self.state_at(block_hash).get(item.key())
        return 0 if raw is None else item.value_type.decode(raw)

    def slot_duration(self) -> int:
        return self.spec.slot_duration_ms

    # -- runtime versions
    def spec_version_at(self, block_hash: bytes) -> int:
        """The spec version ``block_hash`` ran with (its post-state's System.SpecVersion)."""
        item = self.runtime.system.SpecVersion
        raw = self.state_at(block_hash).get(item.key())
        return LEGACY_SPEC_VERSION if raw is None else int(item.value_type.decode(raw))

    def scheduled_upgrade_at(self, block_hash: bytes) -> UpgradeSchedule | None:
        """The upgrade scheduled after ``block_hash``, if any."""
        item = self.runtime.system.ScheduledUpgrade
        raw = self.state_at(block_hash).get(item.key())
        return None if raw is None else item.value_type.decode(raw)  # type: ignore[no-any-return]

    def next_spec_version(self) -> int:
        """The version the block after the best one runs with: the one a transaction signed
        now must name (the node's own signers: equivocation reports, archive anchors)."""
        best = self.best
        due = self.scheduled_upgrade_at(best.hash)
        if due is not None and best.number + 1 >= due.at_block:
            return int(due.spec_version)
        return self.spec_version_at(best.hash)

    def _check_upgrade(self, head: Header) -> None:
        """Warn, once per schedule, that this node will stop at a scheduled upgrade its
        software lacks; stop now if the chain already runs a version it lacks."""
        if self.upgrade_required is not None:
            return
        version = self.spec_version_at(head.hash)
        if not self.runtime.knows(version):
            self._halt(
                UnsupportedRuntime(
                    version, head.number + 1, self.runtime.max_spec_version, in_effect=True
                )
            )
            return
        due = self.scheduled_upgrade_at(head.hash)
        if due is None or self.runtime.knows(due.spec_version) or due == self._warned_schedule:
            return
        self._warned_schedule = due
        log.warning(
            "runtime spec version %d scheduled at block %d: install twinchain with spec %d "
            "before then; this node runs spec versions up to %d and will stop at block %d",
            due.spec_version,
            due.at_block,
            due.spec_version,
            self.runtime.max_spec_version,
            due.at_block,
        )

    def _halt(self, exc: UnsupportedRuntime) -> None:
        # Peers keep offering the block: say why at once, then again once a minute.
        first = self.upgrade_required is None
        self.upgrade_required = exc
        if first or time.monotonic() - self._reminded >= HALT_REMINDER_S:
            self._reminded = time.monotonic()
            log.error("⛔ stopped: %s", exc)

    # -- transactions
    def _pool_context(self) -> tuple[bytes, int, StateReader]:
        """The best block's hash, number and state, for pool validation."""
        best_hash = self.blocks.best_hash
        ctx = self._pool_best
        if ctx is None or ctx[0] != best_hash:
            header = self.blocks.header(best_hash)
            if header is None:
                raise ChainStoreError("unknown best block")
            ctx = (best_hash, header.number, self.statedb.at(header.state_root))
            self._pool_best = ctx
        return ctx

    def validate_transaction(self, raw: bytes, tx_hash: bytes | None = None) -> ValidTransaction:
        """Validate ``raw`` against the best state for the pool; ``tx_hash``: its
        ``extrinsic_hash`` if the caller has it (the pool does), to spare hashing it again."""
        best_hash, number, state = self._pool_context()
        checked = False
        if self._preverified:
            if tx_hash is None:
                tx_hash = extrinsic_hash(raw)
            checked = tx_hash in self._preverified
        return self._pool_executive.validate_transaction(
            state, raw, number, best_hash, signature_checked=checked, tx_hash=tx_hash
        )

    def preverify(self, raws: list[bytes]) -> list[bool | None]:
        """Check a batch's signatures in one call; the good ones skip the check when
        :meth:`validate_transaction` sees them next (call :meth:`clear_preverified` after)."""
        best_hash, number, state = self._pool_context()
        oks = self._pool_executive.signature_batch(state, raws, number, best_hash)
        self._preverified.update(extrinsic_hash(r) for r, ok in zip(raws, oks, strict=True) if ok)
        return oks

    def clear_preverified(self) -> None:
        self._preverified.clear()

    # -- authoring
    def propose(
        self,
        keypair: Keypair,
        slot: int,
        now_ms: int,
        ready: Iterable[tuple[bytes, bytes]] = (),
        *,
        verified: Callable[[bytes], bool] = lambda h: False,
        on_invalid: Callable[[bytes, InvalidTransaction], None] | None = None,
        deadline: float | None = None,
        parent: Header | None = None,
        max_bytes: int | None = None,
    ) -> tuple[Block, ImportResult]:
        """Build, seal and import a block on ``parent`` (default: best) for ``slot``.

        ``max_bytes``: stop before the extrinsics exceed this many bytes (below the runtime's
        block length limit: what the network can gossip in one message)."""
        parent = parent or self.best
        t0 = time.perf_counter()
        ex = self.executive
        try:
            ex.initialize_block(self.state_at(parent.hash), parent.number + 1, parent.hash, slot)
        except UnsupportedRuntime as exc:
            self._halt(exc)
            raise
        extrinsics: list[bytes] = []
        for raw in ex.inherents(now_ms):
            ex.apply_extrinsic(raw)
            extrinsics.append(raw)
        size = sum(len(x) for x in extrinsics)
        for h, raw in ready:
            if deadline is not None and time.monotonic() > deadline:
                break
            if max_bytes is not None and size + len(raw) > max_bytes:
                break  # not ``continue``: what depends on it must not go in without it
            try:
                ex.apply_extrinsic(raw, verified=verified(h))
            except InvalidTransaction as exc:
                if exc.code == "ExhaustsResources":
                    break
                if on_invalid is not None:
                    on_invalid(h, exc)
                continue
            extrinsics.append(raw)
            size += len(raw)
        changes = ex.finalize_block()
        outcomes = list(ex.outcomes)
        update = self.statedb.prepare(parent.state_root, changes)
        header = Header(
            parent_hash=parent.hash,
            number=parent.number + 1,
            state_root=update.root,
            extrinsics_root=merkle_root(extrinsics),
            slot=slot,
        ).sealed(keypair)
        block = Block(header, tuple(extrinsics))
        result = self._write(block, update, outcomes, t0)
        return block, result

    # -- import
    def import_block(
        self,
        block: Block,
        *,
        verified: Iterable[bytes] = (),
        check_time: bool = True,
        now_ms: int | None = None,
        durable: bool = True,
    ) -> ImportResult:
        """Verify and re-execute ``block``; write it if valid. Raises BlockImportError."""
        t0 = time.perf_counter()
        header = block.header
        h = header.hash
        if self.blocks.header(h) is not None:
            raise BlockImportError("known", f"block #{header.number} already imported")
        # A block at or below our finalized height, or on a fork that finality has left
        # behind, can no longer matter; it is not evidence of misbehaviour either (an honest
        # author that had not yet seen the finality, a validator that started late and
        # relays old blocks), so it is "stale": dropped without blaming the sender.
        finalized = self.finalized
        if header.number <= finalized.number:
            raise BlockImportError(
                "stale", f"block #{header.number} is at or below finalized #{finalized.number}"
            )
        parent = self.blocks.header(header.parent_hash)
        if parent is None:
            raise BlockImportError("unknown-parent", f"parent of #{header.number} unknown")
        if header.number != parent.number + 1:
            raise BlockImportError("invalid", "block number does not follow its parent")
        if not self.descends_from(parent, finalized):
            raise BlockImportError("stale", "block does not build on the finalized chain")
        try:
            parent_state = self.state_at(parent.hash)
            aura.check_header(
                self._authorities(parent_state),
                parent,
                header,
                self.slot_duration(),
                now_ms=now_ms if check_time else None,
            )
            result = self.executive.execute_block(parent_state, block, verified)
        except aura.FutureBlock as exc:
            raise BlockImportError("future", str(exc)) from None
        except UnsupportedRuntime as exc:
            # Its descendants never get here: their parent is unknown (no fork, no work).
            self._halt(exc)
            raise BlockImportError("unsupported-runtime", str(exc)) from None
        except (aura.BadSeal, InvalidBlock, CodecError) as exc:
            raise BlockImportError("invalid", str(exc)) from None
        except StateError as exc:
            raise BlockImportError("unknown-parent", f"parent state unavailable: {exc}") from None
        update = self.statedb.prepare(parent.state_root, result.changes)
        if update.root != header.state_root:
            raise BlockImportError(
                "invalid",
                f"state root mismatch: header 0x{header.state_root.hex()[:16]}…, "
                f"computed 0x{update.root.hex()[:16]}…",
            )
        return self._write(block, update, result.outcomes, t0, durable)

    def _write(
        self,
        block: Block,
        update: object,
        outcomes: list[ApplyOutcome],
        t0: float,
        durable: bool = True,
    ) -> ImportResult:
        header = block.header
        is_best = header.number > self.best.number
        batch = WriteBatch()
        h = self.blocks.write_block(batch, block, update, set_best=is_best)  # type: ignore[arg-type]
        # ``durable`` waits for the disk (power-loss safety); a process kill loses nothing
        # either way, so catch-up sync skips the wait per block.
        self.blocks.commit(batch, sync=durable)
        result = ImportResult(h, header.number, is_best, False, outcomes, time.perf_counter() - t0)
        if is_best:
            halt = self.upgrade_required
            if halt is not None and header.number >= halt.at_block:
                self.upgrade_required = None  # past it on a branch that never scheduled it
            self._check_upgrade(header)
        for listener in self.import_listeners:
            listener(result, block)
        return result

    # -- finality
    def finalize(
        self, block_hash: bytes, justification: bytes | None = None, *, durable: bool = True
    ) -> None:
        """Mark a block final (with its encoded justification) and prune old state.

        A final block not on our best chain moves the best chain onto it: a finalized block
        is never reverted, so the fork that lacks it is dead.
        """
        header = self.blocks.header(block_hash)
        if header is None:
            raise ChainStoreError("cannot finalize an unknown block")
        batch = WriteBatch()
        if self.blocks.hash_at(header.number) != block_hash:
            self.blocks.set_best(batch, header)
        self.blocks.set_finalized(batch, block_hash, justification)
        self.blocks.commit(batch, sync=durable)
        for listener in self.finality_listeners:
            listener(header)

    def verify_justification(self, block_hash: bytes, raw: bytes) -> None:
        """Raise JustificationError unless ``raw`` proves ``block_hash`` final."""
        try:
            just = GrandpaJustification.decode(raw)
        except CodecError as exc:
            raise JustificationError(f"undecodable justification: {exc}") from None
        header = self.blocks.header(block_hash)
        if header is None or just.block != (block_hash, header.number):
            raise JustificationError("justification is for another block")
        just.verify(
            self.genesis_hash,
            self.authorities_at(header.parent_hash),
            set_id=self.set_id_at(header.parent_hash),
        )

    def self_finalize(self, keypair: Keypair, block_hash: bytes) -> bool:
        """Single-authority chains: the sole authority's precommit is a supermajority."""
        header = self.blocks.header(block_hash)
        assert header is not None
        if self.authorities_at(header.parent_hash) != [keypair.public]:
            return False
        target = (block_hash, header.number)
        set_id = self.set_id_at(header.parent_hash)
        vote = SignedVote.sign(keypair, PRECOMMIT, header.number, set_id, target, self.genesis_hash)
        self.finalize(block_hash, encode_justification(header.number, set_id, target, [vote], []))
        return True

    # -- export / import of block files
    def iter_blocks(self, start: int, end: int) -> Iterator[bytes]:
        for n in range(start, end + 1):
            h = self.blocks.hash_at(n)
            if h is None:
                return
            raw = self.blocks.block_bytes(h)
            if raw is None:
                raise ChainStoreError(
                    f"the body of block #{n} was pruned (--blocks-pruning); export from an "
                    "archive node"
                )
            yield raw
